#include "systemd.hpp"

#include "exit_code.hpp"

#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <cstring>
#include <ctime>

namespace hello::app::systemd {

std::vector<inherited_socket> take_inherited_sockets() {
    char** names = nullptr;
    const int count = ::sd_listen_fds_with_names(1, &names);
    if (count < 0)
        throw startup_error(exit_code::config,
                            "cannot take the sockets passed down (LISTEN_FDS): " + std::string(std::strerror(-count)));
    std::vector<inherited_socket> out;
    for (int i = 0; i < count; ++i) {
        // systemd names an unnamed socket "unknown"; keep that out of the log.
        std::string name = names && names[i] ? names[i] : "";
        if (name == "unknown") name.clear();
        out.push_back({SD_LISTEN_FDS_START + i, std::move(name)});
    }
    if (names) {
        for (int i = 0; i < count; ++i) ::free(names[i]);
        ::free(names);
    }
    return out;
}

void notify(const std::string& state) {
    ::sd_notify(0, state.c_str());
}

void notify_reloading() {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    const auto usec = static_cast<unsigned long long>(now.tv_sec) * 1'000'000ULL +
                      static_cast<unsigned long long>(now.tv_nsec) / 1000ULL;
    notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

std::optional<std::chrono::microseconds> watchdog_interval() {
    std::uint64_t usec = 0;
    if (::sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
    return std::chrono::microseconds(usec);
}

}  // namespace hello::app::systemd
