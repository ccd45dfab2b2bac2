#pragma once

#include <hello/server.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

// The daemon's side of systemd's protocols, through libsystemd. Outside systemd (no
// NOTIFY_SOCKET, no LISTEN_FDS, no WATCHDOG_USEC) every call is a getenv() and nothing more.
namespace hello::app::systemd {

// The listening sockets passed down for this process (socket activation), named from
// LISTEN_FDNAMES; the variables are unset, so that nothing started later takes them too.
[[nodiscard]] std::vector<inherited_socket> take_inherited_sockets();

// Sends `state` ("READY=1", "STATUS=...", ...) to the service manager, if there is one.
void notify(const std::string& state);

// "RELOADING=1" with the MONOTONIC_USEC= that systemd wants beside it.
void notify_reloading();

// How often systemd wants to hear WATCHDOG=1 from this process, if it does.
[[nodiscard]] std::optional<std::chrono::microseconds> watchdog_interval();

}  // namespace hello::app::systemd
