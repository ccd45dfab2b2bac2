#!/usr/bin/env python3
"""hello-server attacked on purpose: stops with several threads and many connections,
a local user racing the socket file, threads the system will not give, stray signals,
files that are not files, endless lines, crafted lock files and what --print-config
cannot write."""
import fcntl
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import (CLIENT, EX_CONFIG, EX_OK, EX_OSERR, EX_UNAVAILABLE, IO_TIMEOUT, LINE_REPLY,  # noqa: E402
                     RAW_REPLY, SERVER, STOP_TIMEOUT, Server, abstract_name, connect, cpu_seconds, describe,
                     expect_one_line_failure, make_tempdir, raise_descriptor_limit, recv_exactly, request, run,
                     socket_path)

SUMMARY = re.compile(r"stopped: served (\d+) connections and (\d+) requests")


def open_answered(endpoint, count, framing):
    """`count` connections, each answered once, so that the server has accepted them all."""
    payload, reply = (b"hello server", RAW_REPLY) if framing == "raw" else (b"hi\n", LINE_REPLY)
    conns = []
    try:
        for _ in range(count):
            conns.append(connect(endpoint))
            conns[-1].sendall(payload)
        for s in conns:
            if recv_exactly(s, len(reply)) != reply:
                raise AssertionError("unexpected reply")
    except BaseException:
        for s in conns:
            s.close()
        raise
    return conns


class ThreadedStop(unittest.TestCase):
    """SIGTERM with connections open, on several threads: the drain must end every time."""

    @classmethod
    def setUpClass(cls):
        raise_descriptor_limit()

    def stop_with_connections_open(self, threads, connections, framing, rounds):
        for attempt in range(rounds):
            path = socket_path(self)
            with Server("--listen", "unix:" + path, "--threads", threads, "--framing", framing) as server:
                conns = open_answered(server.endpoints[0], connections, framing)
                try:
                    server.signal(signal.SIGTERM)
                    try:
                        rc = server.wait_exit(STOP_TIMEOUT)
                    except AssertionError as e:
                        raise AssertionError(f"round {attempt + 1}: {e}") from None
                finally:
                    for s in conns:
                        s.close()
            self.assertEqual(rc, EX_OK, server.stderr.text())
            m = SUMMARY.search(server.stderr.text())
            self.assertIsNotNone(m, server.stderr.text())
            self.assertEqual(int(m.group(1)), connections)

    def test_two_threads_one_connection_raw(self):
        self.stop_with_connections_open(2, 1, "raw", rounds=20)

    def test_two_threads_one_connection_line(self):
        self.stop_with_connections_open(2, 1, "line", rounds=20)

    def test_eight_threads_one_connection_raw(self):
        self.stop_with_connections_open(8, 1, "raw", rounds=20)

    def test_two_threads_thousand_connections_line(self):
        self.stop_with_connections_open(2, 1000, "line", rounds=3)

    def test_eight_threads_thousand_connections_raw(self):
        self.stop_with_connections_open(8, 1000, "raw", rounds=3)

    def test_eight_threads_thousand_connections_line(self):
        self.stop_with_connections_open(8, 1000, "line", rounds=3)


class BacklogAtStop(unittest.TestCase):
    """Clients whose connect() succeeded and whose request was sent are answered, even those
    still queued in the listen backlog when SIGTERM arrives."""

    CLIENTS = 1000

    @classmethod
    def setUpClass(cls):
        raise_descriptor_limit()

    def sent_versus_answered(self, listen, threads):
        with Server("--listen", listen, "--threads", threads) as server:
            endpoint = server.endpoints[0]
            conns = []
            self.addCleanup(lambda: [s.close() for s in conns])
            for _ in range(self.CLIENTS):
                s = connect(endpoint)
                conns.append(s)
                s.sendall(b"hello server")
            server.signal(signal.SIGTERM)
            answered = 0
            for s in conns:
                try:
                    if recv_exactly(s, len(RAW_REPLY)) == RAW_REPLY:
                        answered += 1
                except (AssertionError, OSError):
                    pass
            rc = server.wait_exit(STOP_TIMEOUT)
        self.assertEqual(rc, EX_OK, server.stderr.text())
        self.assertEqual(answered, self.CLIENTS, f"{answered} of {self.CLIENTS} answered\n{server.stderr.text()}")

    def test_unix_one_thread(self):
        self.sent_versus_answered("unix:" + socket_path(self), 1)

    def test_unix_two_threads(self):
        self.sent_versus_answered("unix:" + socket_path(self), 2)

    def test_tcp_one_thread(self):
        self.sent_versus_answered("tcp:127.0.0.1:0", 1)

    def test_tcp_two_threads(self):
        self.sent_versus_answered("tcp:127.0.0.1:0", 2)


class SocketModeRace(unittest.TestCase):
    """A user who can write to the socket directory swaps the fresh socket for a symlink to
    a file they must not touch, between bind() and the mode change. The mode must land on
    the server's socket or nowhere."""

    ATTEMPTS = 400
    BUDGET = 30.0  # seconds

    def test_symlink_swap_never_changes_another_file(self):
        shared = make_tempdir(self)
        os.chmod(shared, 0o777)  # writable by others, no sticky bit: the attack's premise
        private = make_tempdir(self)
        target = os.path.join(private, "secret")
        with open(target, "w") as f:
            f.write("not for others\n")
        os.chmod(target, 0o600)
        sock = os.path.join(shared, "s.sock")
        moved = os.path.join(shared, "moved")
        # The second endpoint is taken: the server binds the socket, sets its mode, then
        # fails on the port and exits, so that one start is one try at the race.
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(blocker.close)
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        taken = f"tcp:127.0.0.1:{blocker.getsockname()[1]}"

        stop = threading.Event()
        swaps = [0]

        def attacker():
            while not stop.is_set():
                try:
                    os.rename(sock, moved)
                    os.symlink(target, sock)
                    swaps[0] += 1
                except OSError:
                    pass

        thread = threading.Thread(target=attacker, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 5)
        self.addCleanup(stop.set)
        deadline = time.monotonic() + self.BUDGET
        outcomes = {}
        tries = 0
        while tries < self.ATTEMPTS and time.monotonic() < deadline:
            tries += 1
            result = run([SERVER, "--listen", "unix:" + sock, "--listen", taken, "--socket-mode", "0666"])
            outcomes[result.returncode] = outcomes.get(result.returncode, 0) + 1
            mode = stat.S_IMODE(os.stat(target).st_mode)
            self.assertEqual(mode, 0o600, f"after {tries} starts the server chmod-ed {target} to {mode:o}"
                                          f"{describe(result)}")
            for leftover in (sock, moved, sock + ".lock"):
                try:
                    os.unlink(leftover)
                except FileNotFoundError:
                    pass
        stop.set()
        thread.join(5)
        self.assertGreater(swaps[0], 0, "the attacker never swapped a socket: the test proved nothing")
        print(f"\n{tries} starts, {swaps[0]} swaps, exit codes {outcomes}", file=sys.stderr)


class ThreadShortage(unittest.TestCase):
    """A low RLIMIT_NPROC: the server cannot have the threads it was asked for."""

    def test_exit_71_before_serving(self):
        if shutil.which("prlimit") is None or shutil.which("setpriv") is None:
            self.fail("prlimit and setpriv (util-linux) are needed")
        # RLIMIT_NPROC does not bind root: run as nobody, from a copy nobody may execute.
        place = make_tempdir(self)
        os.chmod(place, 0o755)
        server = os.path.join(place, "hello-server")
        shutil.copy(SERVER, server)
        os.chmod(server, 0o755)
        line = expect_one_line_failure(
            self, ["prlimit", "--nproc=4", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                   server, "--listen", "tcp:127.0.0.1:0", "--threads", "64"], EX_OSERR,
            program="hello-server")
        self.assertRegex(line, r"^hello-server: cannot start thread \d+ of 64: Resource temporarily unavailable$")


class StraySignals(unittest.TestCase):
    def test_hup_usr1_usr2_are_logged_and_survived(self):
        path = socket_path(self)
        with Server("--listen", "unix:" + path, "--threads", "2") as server:
            for signo, name in ((signal.SIGHUP, "SIGHUP"), (signal.SIGUSR1, "SIGUSR1"), (signal.SIGUSR2, "SIGUSR2")):
                server.signal(signo)
                line = server.stderr.wait_line(lambda text, n=name: f"received {n}" in text, STOP_TIMEOUT)
                self.assertIsNotNone(line, server.stderr.text())
                self.assertEqual(request(server.endpoints[0]), RAW_REPLY)
            self.assertTrue(os.path.exists(path))
        self.assertEqual(server.returncode, EX_OK, server.stderr.text())

    def test_term_after_hup_still_drains(self):
        with Server("--listen", "unix:" + socket_path(self)) as server:
            server.signal(signal.SIGHUP)
            self.assertIsNotNone(server.stderr.wait_line(lambda t: "received SIGHUP" in t, STOP_TIMEOUT))
            rc = server.stop()
        self.assertEqual(rc, EX_OK, server.stderr.text())
        self.assertIn("shutting down", server.stderr.text())


class LongestAbstractName(unittest.TestCase):
    def test_107_byte_abstract_name_is_served(self):
        name = (abstract_name() + "x" * 107)[:107]
        with Server("--listen", "unix:@" + name) as server:
            self.assertEqual(server.endpoints, ["unix:@" + name])
            self.assertEqual(request("unix:@" + name), RAW_REPLY)
            result = run([CLIENT, "--connect", "unix:@" + name])
            self.assertEqual(result.returncode, EX_OK, describe(result))
            self.assertEqual(result.stdout, "hello client\n")

    def test_108_byte_abstract_name_is_refused_by_both(self):
        name = "a" * 108
        line = expect_one_line_failure(self, [SERVER, "--listen", "unix:@" + name, "--check-config"], EX_CONFIG)
        self.assertIn("limit is 107", line)
        line = expect_one_line_failure(self, [CLIENT, "--connect", "unix:@" + name], 64)
        self.assertIn("limit is 107", line)


class ConfigFilesThatAreNotFiles(unittest.TestCase):
    def expect_unreadable(self, path, why, extra=()):
        for mode in (["--check-config"], []):
            line = expect_one_line_failure(
                self, [SERVER, "--config", path, "--listen", "unix:" + socket_path(self), *extra, *mode], EX_CONFIG,
                timeout=5)
            self.assertIn(why, line)

    def test_proc_file_that_fails_to_read(self):
        self.expect_unreadable("/proc/self/mem", "Input/output error")

    def test_dev_zero(self):
        self.expect_unreadable("/dev/zero", "not a regular file")

    def test_fifo_does_not_hang(self):
        fifo = os.path.join(make_tempdir(self), "fifo")
        os.mkfifo(fifo)
        self.expect_unreadable(fifo, "not a regular file")

    def test_file_over_one_mebibyte(self):
        big = os.path.join(make_tempdir(self), "big.conf")
        with open(big, "w") as f:
            f.write(("# padding\n" * 110000))
        self.expect_unreadable(big, "larger than 1 MiB")


class LongLines(unittest.TestCase):
    def test_cpu_grows_linearly_with_line_length(self):
        """An 8 MiB line in 2 KiB pieces: each byte scanned and copied once costs well under a
        second of CPU; re-scanning the unfinished line on every read costs many seconds."""
        size = 8 << 20
        with Server("--listen", "unix:" + socket_path(self), "--framing", "line",
                    "--max-request-bytes", str(16 << 20)) as server:
            pid = server.proc.pid
            before = cpu_seconds(pid)
            with connect(server.endpoints[0], timeout=60) as s:
                # A small send buffer keeps the server reading the line a piece at a time.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
                piece = b"x" * 2048
                for _ in range(size // len(piece)):
                    s.sendall(piece)
                s.sendall(b"\nping\n")
                self.assertEqual(recv_exactly(s, 2 * len(LINE_REPLY)), 2 * LINE_REPLY)
            used = cpu_seconds(pid) - before
        print(f"\n{used:.2f} s of CPU for one {size}-byte line", file=sys.stderr)
        self.assertLess(used, 1.0, f"{used:.2f} s of CPU for one {size}-byte line")


class MisleadingErrors(unittest.TestCase):
    def test_an_endpoint_name_is_logged_escaped(self):
        # An abstract name may hold any byte: a newline or a terminal escape in it must not
        # split a log line or reach the terminal.
        name = abstract_name() + "\n\x1b[31m"
        with Server("--listen", "unix:@" + name) as server:
            self.assertEqual(server.endpoints, ["unix:@" + name.replace("\n", "\\x0a").replace("\x1b", "\\x1b")])
        text = server.stderr.text()
        self.assertNotIn("\x1b", text)
        self.assertEqual(len([line for line in text.splitlines() if "listening on" in line]), 1, text)

    def test_crafted_lock_file_pid_is_not_echoed(self):
        path = socket_path(self)
        with open(path + ".lock", "w") as lock:
            lock.write("\x1b[2J\x1b[31mpwned 4242\n")
            lock.flush()
            fcntl.flock(lock, fcntl.LOCK_EX)
            line = expect_one_line_failure(self, [SERVER, "--listen", "unix:" + path], EX_UNAVAILABLE)
        self.assertIn("in use by a live server (pid unknown)", line)
        self.assertNotIn("\x1b", line)

    def test_lock_file_pid_is_printed(self):
        path = socket_path(self)
        with open(path + ".lock", "w") as lock:
            lock.write("4242\n")
            lock.flush()
            fcntl.flock(lock, fcntl.LOCK_EX)
            line = expect_one_line_failure(self, [SERVER, "--listen", "unix:" + path], EX_UNAVAILABLE)
        self.assertIn("(pid 4242)", line)

    def test_one_socket_through_a_symlinked_directory_is_a_duplicate(self):
        directory = make_tempdir(self)
        link = directory + "-link"
        os.symlink(directory, link)
        self.addCleanup(os.unlink, link)
        line = expect_one_line_failure(
            self, [SERVER, "--listen", f"unix:{directory}/a.sock", "--listen", f"unix:{link}/a.sock"], EX_CONFIG)
        self.assertIn("listed twice", line)

    def test_nul_byte_in_a_config_value_is_shown(self):
        cfg = os.path.join(make_tempdir(self), "nul.conf")
        with open(cfg, "wb") as f:
            f.write(b"framing = ra\0w\n")
        line = expect_one_line_failure(self, [SERVER, "--config", cfg, "--check-config"], EX_CONFIG)
        self.assertIn("'ra\\x00w'", line)
        self.assertIn("expected raw or line", line)

    def test_control_characters_in_an_endpoint_are_escaped(self):
        line = expect_one_line_failure(self, [SERVER, "--listen", "bogus\x1b[31m\nsecond"], EX_CONFIG)
        self.assertIn("'bogus\\x1b[31m\\x0asecond'", line)

    def test_variable_named_just_the_prefix_is_ignored(self):
        env = dict(os.environ, HELLO_="1")
        env.pop("HELLO_LISTEN", None)
        result = run([SERVER, "--listen", "unix:" + socket_path(self), "--check-config"], env=env)
        self.assertEqual(result.returncode, EX_OK, describe(result))
        self.assertEqual(result.stderr, "")


class OptionParserPlaceholders(unittest.TestCase):
    """Boost.Program_options fills its messages in a loop that never ends when the name or line
    it reports holds a placeholder of its own: the messages are built without it."""

    def test_option_named_like_a_placeholder(self):
        for program in (SERVER, CLIENT):
            with self.subTest(program=os.path.basename(program)):
                line = expect_one_line_failure(self, [program, "--%canonical_option%"], 64, timeout=5)
                self.assertIn("unknown option '--%canonical_option%'", line)

    def test_config_file_naming_a_placeholder(self):
        directory = make_tempdir(self)
        for text, expected in (("%canonical_option% = 1\n", "unknown option '%canonical_option%'"),
                               ("x%invalid_line%x\n", "invalid line 'x%invalid_line%x'")):
            with self.subTest(text=text):
                cfg = os.path.join(directory, "placeholder.conf")
                with open(cfg, "w") as f:
                    f.write(text)
                line = expect_one_line_failure(self, [SERVER, "--config", cfg, "--check-config"], EX_CONFIG, timeout=5)
                self.assertIn(expected, line)

    def test_bracketed_host_that_would_not_read_back(self):
        line = expect_one_line_failure(self, [SERVER, "--listen", "tcp:[[x]:1", "--check-config"], EX_CONFIG)
        self.assertIn("brackets inside the host", line)


class PrintConfigReadsBack(unittest.TestCase):
    """Every printed configuration, read back as a config file, gives the same settings; what
    the file format cannot carry is printed commented out, with the reason."""

    def settings(self, printed):
        """The effective lines, without comments."""
        return [line.split("  #", 1)[0] for line in printed.splitlines() if not line.startswith("#")]

    def round_trip(self, args):
        first = run([SERVER, *args, "--print-config"])
        self.assertEqual(first.returncode, EX_OK, describe(first))
        cfg = os.path.join(make_tempdir(self), "printed.conf")
        with open(cfg, "w") as f:
            f.write(first.stdout)
        second = run([SERVER, "--config", cfg, "--print-config"])
        self.assertEqual(second.returncode, EX_OK, describe(second))
        if any(line.startswith("listen = ") for line in first.stdout.splitlines()):
            self.assertEqual(self.settings(first.stdout), self.settings(second.stdout), first.stdout)
        return first.stdout

    def test_ordinary_settings(self):
        directory = make_tempdir(self)
        self.round_trip(["--listen", f"unix:{directory}/a b.sock", "--listen", "tcp:[::1]:0", "--listen", "@x",
                         "--framing", "line", "--threads", "3", "--socket-mode", "0600", "--drain-timeout", "0.25",
                         "--max-request-bytes", "77", "--log-level", "debug"])

    def test_what_the_file_cannot_carry_is_commented_out(self):
        directory = make_tempdir(self)
        cases = {f"unix:{directory}/trailing ": "trims blanks",
                 f"unix:{directory}/new\nline": "control character",
                 f"unix:{directory}/hash#tag": "'#' cannot appear",
                 f"unix:{directory}/tab\t": "control character"}
        for endpoint, why in cases.items():
            with self.subTest(endpoint=endpoint):
                printed = self.round_trip(["--listen", f"unix:{directory}/plain.sock", "--listen", endpoint])
                lines = [line for line in printed.splitlines() if line.startswith("# listen = ")]
                self.assertEqual(len(lines), 1, printed)
                self.assertIn(why, lines[0])
                self.assertIn(f"listen = unix:{directory}/plain.sock  #", printed)


if __name__ == "__main__":
    unittest.main()
