#!/usr/bin/env python3
"""hello-server as systemd runs it, without systemd: socket activation through the real
systemd-socket-activate tool, the notification protocol on a datagram socket the test owns,
the watchdog's rate, and SIGHUP reloading the configuration."""
import os
import re
import shutil
import signal
import socket
import statistics
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import (CLIENT, EX_CONFIG, EX_OK, LINE_REPLY, RAW_REPLY, SERVER, START_TIMEOUT,  # noqa: E402
                     STOP_TIMEOUT, Process, Server, clean_env, connect, describe, expect_one_line_failure,
                     make_tempdir, recv_exactly, request, run, socket_path)


class Notifications:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET: every message the server
    sends, with the time it arrived."""

    def __init__(self, testcase):
        self.path = os.path.join(make_tempdir(testcase), "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        testcase.addCleanup(self.sock.close)
        self.messages = []  # (monotonic time, {key: value})

    def _receive(self, deadline):
        """One more message, unless the deadline passes first (then False)."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return False
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.messages.append((time.monotonic(), fields))
        return True

    def wait_for(self, key, value=None, timeout=START_TIMEOUT):
        """The first message (already received or arriving within `timeout`) that sets `key`
        (to `value`, if given); fails the test otherwise."""
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            while checked < len(self.messages):
                fields = self.messages[checked][1]
                checked += 1
                if key in fields and (value is None or fields[key] == value):
                    return fields
            if not self._receive(deadline):
                raise AssertionError(f"no {key}={value or '...'} within {timeout} s; got {self.keys()}")

    def wait_count(self, key, count, timeout):
        """Waits until `count` messages have set `key`; fails the test otherwise."""
        deadline = time.monotonic() + timeout
        while len(self.times_of(key)) < count:
            if not self._receive(deadline):
                raise AssertionError(f"{len(self.times_of(key))} {key} messages of {count} within {timeout} s")

    def keys(self):
        return [sorted(fields) for _, fields in self.messages]

    def times_of(self, key):
        return [t for t, fields in self.messages if key in fields]


class ActivatedServer(Process):
    """hello-server started by systemd-socket-activate on the first connection."""

    ready_stream = "stderr"

    def __init__(self, listen_args, server_args, env=None):
        super().__init__(["systemd-socket-activate", *listen_args, SERVER, *server_args], env)

    def is_ready_line(self, line):
        return line.startswith("Listening on ")


def require_socket_activate(testcase):
    if shutil.which("systemd-socket-activate") is None:
        testcase.fail("systemd-socket-activate (Debian's systemd package) is needed")


class SocketActivation(unittest.TestCase):
    def test_unix_socket_is_served_and_left_to_its_owner(self):
        require_socket_activate(self)
        path = socket_path(self)
        with ActivatedServer(["-l", path, "--fdname=hello"], ["--listen", "unix:" + path]) as activated:
            # The first client starts the server, which finds it in the inherited socket's queue.
            self.assertEqual(request("unix:" + path), RAW_REPLY)
            line = activated.stderr.wait_line(lambda t: "hello-server listening on" in t, START_TIMEOUT)
            self.assertIn("unix:" + path, line)
            self.assertEqual(request("unix:" + path), RAW_REPLY)
            rc = activated.stop()
        self.assertEqual(rc, EX_OK, activated.stderr.text())
        # The socket belongs to the supervisor: not removed, no lock file taken.
        self.assertTrue(os.path.exists(path), "the server removed a socket it did not create")
        self.assertFalse(os.path.exists(path + ".lock"), activated.stderr.text())

    def test_tcp_socket_is_served(self):
        require_socket_activate(self)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        with ActivatedServer(["-l", f"127.0.0.1:{port}"], ["--listen", f"tcp:127.0.0.1:{port}"]) as activated:
            self.assertEqual(request(f"tcp:127.0.0.1:{port}"), RAW_REPLY)
            rc = activated.stop()
        self.assertEqual(rc, EX_OK, activated.stderr.text())

    def test_inherited_socket_no_endpoint_names_is_served_too(self):
        require_socket_activate(self)
        inherited = socket_path(self)
        configured = socket_path(self)
        with ActivatedServer(["-l", inherited, "--fdname=extra"], ["--listen", "unix:" + configured]) as activated:
            self.assertEqual(request("unix:" + inherited), RAW_REPLY)
            self.assertEqual(request("unix:" + configured), RAW_REPLY)
            line = activated.stderr.wait_line(lambda t: "serving inherited socket" in t, START_TIMEOUT)
            self.assertIn("(extra)", line)
            rc = activated.stop()
        self.assertEqual(rc, EX_OK, activated.stderr.text())
        self.assertFalse(os.path.exists(configured), "the server's own socket file is removed at stop")
        self.assertTrue(os.path.exists(inherited))

    def test_inherited_descriptor_that_is_not_a_listening_socket_is_exit_78(self):
        # fd 3 is a regular file, announced as a socket passed down to this very process.
        script = 'exec 3</etc/hostname; LISTEN_FDS=1 LISTEN_PID=$$ exec "$@"'
        line = expect_one_line_failure(
            self, ["sh", "-c", script, "sh", SERVER, "--listen", "unix:" + socket_path(self)], EX_CONFIG,
            program="hello-server")
        self.assertIn("inherited descriptor 3", line)
        self.assertIn("not a listening", line)


class NotifyProtocol(unittest.TestCase):
    def test_ready_status_and_stopping(self):
        notes = Notifications(self)
        with Server("--listen", "unix:" + socket_path(self), env=clean_env(NOTIFY_SOCKET=notes.path)) as server:
            ready = notes.wait_for("READY", "1")
            self.assertIn("listening on unix:", ready.get("STATUS", ""))
            # READY means serving: a client is answered at once.
            self.assertEqual(request(server.endpoints[0]), RAW_REPLY)
            server.signal(signal.SIGTERM)
            stopping = notes.wait_for("STOPPING", "1")
            self.assertGreater(int(stopping["EXTEND_TIMEOUT_USEC"]), 10_000_000)
            rc = server.wait_exit()
        self.assertEqual(rc, EX_OK, server.stderr.text())

    def test_nothing_is_sent_without_notify_socket(self):
        notes = Notifications(self)
        with Server("--listen", "unix:" + socket_path(self)):
            pass
        notes.sock.setblocking(False)
        with self.assertRaises(BlockingIOError):
            notes.sock.recv(4096)

    def test_watchdog_pings_at_half_the_interval(self):
        notes = Notifications(self)
        interval = 0.2
        env = clean_env(NOTIFY_SOCKET=notes.path, WATCHDOG_USEC=str(int(interval * 1e6)))
        with Server("--listen", "unix:" + socket_path(self), "--threads", "2", env=env):
            notes.wait_count("WATCHDOG", 12, timeout=10)
        pings = notes.times_of("WATCHDOG")
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        self.assertGreaterEqual(len(gaps), 8, pings)
        median = statistics.median(gaps)
        self.assertGreater(median, interval / 2 * 0.5, gaps)
        self.assertLess(median, interval / 2 * 1.5, gaps)

    def test_watchdog_for_another_pid_is_not_ours(self):
        notes = Notifications(self)
        env = clean_env(NOTIFY_SOCKET=notes.path, WATCHDOG_USEC="100000", WATCHDOG_PID="1")
        with Server("--listen", "unix:" + socket_path(self), env=env) as server:
            notes.wait_for("READY", "1")
            self.assertEqual(request(server.endpoints[0]), RAW_REPLY)
            server.signal(signal.SIGTERM)
            notes.wait_for("STOPPING", "1")
        self.assertEqual(notes.times_of("WATCHDOG"), [])


class Reload(unittest.TestCase):
    def write_config(self, path, text):
        with open(path + ".new", "w") as f:
            f.write(text)
        os.replace(path + ".new", path)

    def test_sighup_applies_a_changed_config_file(self):
        directory = make_tempdir(self)
        first, second = os.path.join(directory, "first.sock"), os.path.join(directory, "second.sock")
        cfg = os.path.join(directory, "hello.conf")
        self.write_config(cfg, f"listen = unix:{first}\nframing = raw\n")
        notes = Notifications(self)
        with Server("--config", cfg, "--threads", "2", env=clean_env(NOTIFY_SOCKET=notes.path)) as server:
            notes.wait_for("READY", "1")
            held = connect("unix:" + first)  # opened before the reload: keeps its raw framing
            self.addCleanup(held.close)
            held.sendall(b"x")
            self.assertEqual(recv_exactly(held, len(RAW_REPLY)), RAW_REPLY)

            self.write_config(cfg, f"listen = unix:{second}\nframing = line\n")
            notes.messages.clear()
            server.signal(signal.SIGHUP)
            reloading = notes.wait_for("RELOADING", "1")
            self.assertIn("MONOTONIC_USEC", reloading)
            ready = notes.wait_for("READY", "1")
            self.assertIn(second, ready["STATUS"])
            self.assertNotIn(first, ready["STATUS"])

            with connect("unix:" + second) as s:
                s.sendall(b"hello server\n")
                self.assertEqual(recv_exactly(s, len(LINE_REPLY)), LINE_REPLY)
            self.assertFalse(os.path.exists(first), "the listener removed from the file keeps its socket file")
            with self.assertRaises(OSError):
                connect("unix:" + first).close()
            held.sendall(b"y")
            self.assertEqual(recv_exactly(held, len(RAW_REPLY)), RAW_REPLY)
        self.assertEqual(server.returncode, EX_OK, server.stderr.text())
        self.assertFalse(os.path.exists(second))

    def test_broken_config_keeps_the_old_one_running(self):
        directory = make_tempdir(self)
        path = os.path.join(directory, "s.sock")
        cfg = os.path.join(directory, "hello.conf")
        self.write_config(cfg, f"listen = unix:{path}\n")
        notes = Notifications(self)
        with Server("--config", cfg, env=clean_env(NOTIFY_SOCKET=notes.path)) as server:
            notes.wait_for("READY", "1")
            self.write_config(cfg, f"listen = unix:{path}\nframing = sideways\n")
            notes.messages.clear()
            server.signal(signal.SIGHUP)
            ready = notes.wait_for("READY", "1")
            self.assertIn("reload failed", ready["STATUS"])
            line = server.stderr.wait_line(lambda t: "reload failed" in t, STOP_TIMEOUT)
            self.assertIn("error", line)
            self.assertIn("sideways", line)
            self.assertEqual(request("unix:" + path), RAW_REPLY)
        self.assertEqual(server.returncode, EX_OK, server.stderr.text())

    def test_endpoint_that_will_not_bind_is_reported_and_the_rest_applies(self):
        directory = make_tempdir(self)
        path = os.path.join(directory, "s.sock")
        cfg = os.path.join(directory, "hello.conf")
        self.write_config(cfg, f"listen = unix:{path}\n")
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        notes = Notifications(self)
        with Server("--config", cfg, env=clean_env(NOTIFY_SOCKET=notes.path)) as server:
            notes.wait_for("READY", "1")
            self.write_config(cfg, f"listen = unix:{path}\nlisten = tcp:127.0.0.1:{port}\nframing = line\n")
            server.signal(signal.SIGHUP)
            line = server.stderr.wait_line(lambda t: "reload: cannot listen" in t, STOP_TIMEOUT)
            self.assertIn(f"tcp:127.0.0.1:{port}", line)
            self.assertIsNotNone(server.stderr.wait_line(lambda t: "reloaded in part" in t, STOP_TIMEOUT))
            with connect("unix:" + path) as s:
                s.sendall(b"hello server\n")
                self.assertEqual(recv_exactly(s, len(LINE_REPLY)), LINE_REPLY)
        self.assertEqual(server.returncode, EX_OK, server.stderr.text())


if __name__ == "__main__":
    unittest.main()
