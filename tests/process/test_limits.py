#!/usr/bin/env python3
"""Limits, timeouts, bad peers and access control: what one peer, or many, can and cannot do
to hello-server, and what they see when they hit a limit."""
import os
import selectors
import shutil
import signal
import socket
import stat
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import (CLIENT, EX_CONFIG, EX_OK, EX_UNAVAILABLE, EX_USAGE, IO_TIMEOUT, LINE_REPLY, PYTHON, RAW_REPLY,  # noqa: E402
                     SERVER, STOP_TIMEOUT, Server, abstract_name, clean_env, connect, describe,
                     expect_one_line_failure, make_tempdir, raise_descriptor_limit, recv_exactly, recv_until_eof,
                     request, run, socket_path)

NOBODY = 65534


def log_lines(server, level):
    """The server's log lines at `level` (`warning`, `error`)."""
    return [line for line in server.stderr.lines() if f" {level} " in line]


class ConnectionLimit(unittest.TestCase):
    def test_line_peer_over_the_limit_is_told_and_the_others_carry_on(self):
        with Server("--listen", "unix:" + socket_path(self), "--framing", "line", "--max-connections", "3") as server:
            ep = server.endpoints[0]
            held = []
            for _ in range(3):
                s = connect(ep)
                self.addCleanup(s.close)
                s.sendall(b"hi\n")
                self.assertEqual(recv_exactly(s, len(LINE_REPLY)), LINE_REPLY)
                held.append(s)
            with connect(ep) as extra:
                self.assertEqual(recv_until_eof(extra), b"error: too many connections\n")
            for s in held:
                s.sendall(b"still here\n")
                self.assertEqual(recv_exactly(s, len(LINE_REPLY)), LINE_REPLY)
            warning = server.stderr.wait_line(lambda t: "refused" in t, STOP_TIMEOUT)
            self.assertIn("max-connections", warning)
            # A place that frees up is taken again.
            held.pop().close()
            deadline = time.monotonic() + IO_TIMEOUT
            while True:
                with connect(ep) as again:
                    again.sendall(b"hi\n")
                    if recv_exactly(again, len(LINE_REPLY)) == LINE_REPLY:
                        break
                self.assertLess(time.monotonic(), deadline, "the freed place was never taken again")
        self.assertIn("turned away", server.stderr.text())

    def test_raw_peer_over_the_limit_is_closed(self):
        with Server("--listen", "unix:" + socket_path(self), "--max-connections", "1") as server:
            with connect(server.endpoints[0]) as first:
                first.sendall(b"hello server")
                self.assertEqual(recv_exactly(first, len(RAW_REPLY)), RAW_REPLY)
                with connect(server.endpoints[0]) as second:
                    self.assertEqual(recv_until_eof(second), b"")

    def test_default_follows_the_descriptor_limit(self):
        # The server raises its descriptor limit to the hard limit, then keeps 64 back, and 4
        # more for each event loop's own.
        for threads, limit in (("1", 1932), ("3", 1924)):
            with Server("--listen", "unix:" + socket_path(self), "--threads", threads,
                        wrapper=["prlimit", "--nofile=1000:2000"]) as server:
                line = server.stderr.wait_line(lambda t: "limits:" in t, STOP_TIMEOUT)
            self.assertIn(f"limits: {limit} connections at once", line)


class Timeouts(unittest.TestCase):
    def test_idle_connection_is_closed_and_a_busy_one_is_not(self):
        # A second of idle timeout: the busy peer's pauses, 0.1 s each, stay far below it even
        # when a loaded machine holds this process up for a few hundred milliseconds.
        with Server("--listen", "unix:" + socket_path(self), "--idle-timeout", "1", "--log-level", "debug") as server:
            ep = server.endpoints[0]
            idle = connect(ep, timeout=10)
            self.addCleanup(idle.close)
            opened = time.monotonic()
            busy = connect(ep)
            self.addCleanup(busy.close)
            # Busy: a request every 0.1 s for longer than the timeout, each answered.
            while time.monotonic() - opened < 2.5:
                busy.sendall(b"hello server")
                self.assertEqual(recv_exactly(busy, len(RAW_REPLY)), RAW_REPLY)
                time.sleep(0.1)  # the pause between requests is the behaviour under test
            self.assertEqual(recv_until_eof(idle), b"")
            self.assertGreaterEqual(time.monotonic() - opened, 1.0)
            self.assertIsNotNone(server.stderr.wait_line(lambda t: "idle for" in t and " debug " in t, STOP_TIMEOUT))

    def test_peer_that_never_reads_its_replies_is_cut_off(self):
        with Server("--listen", "unix:" + socket_path(self), "--framing", "line", "--write-timeout", "0.5") as server:
            ep = server.endpoints[0]
            slow = connect(ep)
            self.addCleanup(slow.close)
            slow.setblocking(False)
            chunk = b"a\n" * 32768
            sent = 0
            cut_off = None
            deadline = time.monotonic() + 20
            while cut_off is None and time.monotonic() < deadline:
                try:
                    sent += slow.send(chunk)
                except BlockingIOError:
                    cut_off = server.stderr.wait_line(lambda t: "took no reply" in t, 0.2)
                except (BrokenPipeError, ConnectionResetError):
                    cut_off = server.stderr.wait_line(lambda t: "took no reply" in t, STOP_TIMEOUT)
            self.assertIsNotNone(cut_off, f"sent {sent} bytes; {server.stderr.text()}")
            self.assertIn(" warning ", cut_off)
            with connect(ep) as other:
                other.sendall(b"x\n")
                self.assertEqual(recv_exactly(other, len(LINE_REPLY)), LINE_REPLY)


class BadPeers(unittest.TestCase):
    """Each fault is survived: the server carries on for everybody else, and logs nothing
    above debug level for what is only a peer's business."""

    def serve(self, *args):
        server = Server("--listen", "unix:" + socket_path(self), *args).start()
        self.addCleanup(server.stop)
        return server

    def assert_still_serving_quietly(self, server):
        payload, reply = (b"x", RAW_REPLY) if server.framing == "raw" else (b"x\n", LINE_REPLY)
        with connect(server.endpoints[0]) as s:
            s.sendall(payload)
            self.assertEqual(recv_exactly(s, len(reply)), reply)
        self.assertEqual(log_lines(server, "warning") + log_lines(server, "error"), [])

    def test_peer_vanishing_mid_request(self):
        server = self.serve("--framing", "line")
        with connect(server.endpoints[0]) as s:
            s.sendall(b"hello ser")
        self.assert_still_serving_quietly(server)

    def test_peer_resetting(self):
        server = self.serve("--framing", "line")
        s = connect(server.endpoints[0])
        s.sendall(b"hello server\nhello")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        self.assert_still_serving_quietly(server)

    def test_tcp_peer_resetting(self):
        server = Server("--listen", "tcp:127.0.0.1:0").start()
        self.addCleanup(server.stop)
        for _ in range(20):
            s = connect(server.endpoints[0])
            s.sendall(b"hello server")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        self.assertEqual(request(server.endpoints[0]), RAW_REPLY)
        self.assertEqual(log_lines(server, "warning") + log_lines(server, "error"), [])

    def test_half_close_after_sending_still_gets_the_reply(self):
        for framing, payload, reply in (("raw", b"hello server", RAW_REPLY), ("line", b"a\nb\n", LINE_REPLY * 2)):
            with self.subTest(framing=framing):
                server = self.serve("--framing", framing)
                with connect(server.endpoints[0]) as s:
                    s.sendall(payload)
                    s.shutdown(socket.SHUT_WR)
                    self.assertEqual(recv_until_eof(s), reply)
                self.assert_still_serving_quietly(server)

    def test_one_byte_at_a_time(self):
        server = self.serve("--framing", "line")
        with connect(server.endpoints[0]) as slow, connect(server.endpoints[0]) as other:
            for byte in b"hello server":
                slow.sendall(bytes([byte]))
                other.sendall(b"meanwhile\n")  # served between the slow peer's bytes
                self.assertEqual(recv_exactly(other, len(LINE_REPLY)), LINE_REPLY)
            slow.sendall(b"\n")
            self.assertEqual(recv_exactly(slow, len(LINE_REPLY)), LINE_REPLY)
        self.assert_still_serving_quietly(server)

    def test_binary_garbage_and_nul_bytes(self):
        garbage = bytes(range(256)) * 4
        raw = self.serve()
        with connect(raw.endpoints[0]) as s:
            s.sendall(b"\0\0\0")
            self.assertEqual(recv_exactly(s, len(RAW_REPLY)), RAW_REPLY)
            s.sendall(garbage.replace(b"\n", b""))
            self.assertEqual(recv_exactly(s, len(RAW_REPLY)), RAW_REPLY)
        line = self.serve("--framing", "line")
        with connect(line.endpoints[0]) as s:
            s.sendall(garbage)  # 1024 bytes, 4 newlines: 4 requests, and an unfinished fifth
            self.assertEqual(recv_exactly(s, 4 * len(LINE_REPLY)), 4 * LINE_REPLY)
            s.sendall(b"\0\n")
            self.assertEqual(recv_exactly(s, len(LINE_REPLY)), LINE_REPLY)
        self.assert_still_serving_quietly(raw)
        self.assert_still_serving_quietly(line)

    def test_oversized_line_is_refused_and_logged_as_a_warning(self):
        server = self.serve("--framing", "line", "--max-request-bytes", "8")
        with connect(server.endpoints[0]) as s:
            s.sendall(b"ok\n" + b"x" * 100 + b"\n")
            self.assertEqual(recv_until_eof(s), LINE_REPLY + b"error: request too long\n")
        self.assertIsNotNone(server.stderr.wait_line(lambda t: " warning " in t and "refused" in t, STOP_TIMEOUT))
        with connect(server.endpoints[0]) as s:
            s.sendall(b"fine\n")
            self.assertEqual(recv_exactly(s, len(LINE_REPLY)), LINE_REPLY)


class SigtermUnderLoad(unittest.TestCase):
    """1,000 connections in lockstep; SIGTERM arrives mid-flight. Every request whose bytes
    were all sent before the signal gets its reply."""

    CONNECTIONS = 1000

    @classmethod
    def setUpClass(cls):
        raise_descriptor_limit()

    def run_load_then_stop(self, listen, threads):
        with Server("--listen", listen, "--threads", threads, "--framing", "line") as server:
            conns = [connect(server.endpoints[0]) for _ in range(self.CONNECTIONS)]
            self.addCleanup(lambda: [c.close() for c in conns])
            selector = selectors.DefaultSelector()
            owed = {}  # connection -> bytes of reply still due
            for c in conns:
                c.setblocking(False)
                c.sendall(b"hello server\n")
                owed[c] = len(LINE_REPLY)
                selector.register(c, selectors.EVENT_READ)
            answered = 0
            rounds = 0
            signalled_with = None
            deadline = time.monotonic() + 60
            while owed and time.monotonic() < deadline:
                for key, _ in selector.select(timeout=1):
                    c = key.fileobj
                    try:
                        data = c.recv(65536)
                    except ConnectionResetError:
                        data = b""
                    if not data:
                        selector.unregister(c)  # closed with its reply still owed: reported below
                        continue
                    owed[c] -= len(data)
                    if owed[c] > 0:
                        continue
                    answered += 1
                    del owed[c]
                    rounds += 1
                    if signalled_with is None:
                        c.sendall(b"hello server\n")
                        owed[c] = len(LINE_REPLY)
                    if signalled_with is None and rounds == 3 * self.CONNECTIONS:
                        # Every request sent so far was sent in full before this signal.
                        signalled_with = len(owed)
                        server.signal(signal.SIGTERM)
            rc = server.wait_exit(STOP_TIMEOUT)
        self.assertIsNotNone(signalled_with, "the load never reached the signal")
        self.assertEqual(owed, {}, f"{len(owed)} of the {signalled_with} requests in flight at SIGTERM got no reply")
        self.assertEqual(rc, EX_OK, server.stderr.text())
        print(f"\n{answered} requests answered, {signalled_with} of them in flight at SIGTERM", file=sys.stderr)

    def test_unix(self):
        self.run_load_then_stop("unix:" + socket_path(self), 1)

    def test_unix_two_threads(self):
        self.run_load_then_stop("unix:" + socket_path(self), 2)

    def test_tcp(self):
        self.run_load_then_stop("tcp:127.0.0.1:0", 1)


class AccessControl(unittest.TestCase):
    """A second, real user: nobody (65534)."""

    def client_as_nobody(self, *args, group=NOBODY):
        """hello-client run as uid nobody (from a copy nobody may execute); the result."""
        place = make_tempdir(self)
        os.chmod(place, 0o755)
        client = os.path.join(place, "hello-client")
        shutil.copy(CLIENT, client)
        os.chmod(client, 0o755)
        return run(["setpriv", f"--reuid={NOBODY}", f"--regid={group}", "--clear-groups", client, *args])

    def server_as_nobody(self):
        """The argv prefix that runs hello-server as nobody (from a copy nobody may execute)."""
        place = make_tempdir(self)
        os.chmod(place, 0o755)
        server = os.path.join(place, "hello-server")
        shutil.copy(SERVER, server)
        os.chmod(server, 0o755)
        return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", server]

    def test_a_directory_the_server_may_not_search_is_not_called_missing(self):
        closed = make_tempdir(self)  # 0700, root's
        os.mkdir(os.path.join(closed, "sub"))
        endpoint = "unix:" + os.path.join(closed, "sub", "s.sock")
        line = expect_one_line_failure(self, [*self.server_as_nobody(), "--listen", endpoint, "--check-config"],
                                       EX_UNAVAILABLE, program="hello-server")
        self.assertIn("Permission denied", line)
        self.assertNotIn("does not exist", line)

    def test_a_socket_whose_group_cannot_be_set_is_not_left_behind(self):
        # nobody may not give its socket to group root: the start fails, and the socket it
        # bound goes with it.
        directory = make_tempdir(self)
        os.chown(directory, NOBODY, NOBODY)
        path = os.path.join(directory, "s.sock")
        line = expect_one_line_failure(self, [*self.server_as_nobody(), "--listen", "unix:" + path, "--socket-group",
                                              "root"], EX_UNAVAILABLE, program="hello-server")
        self.assertIn("Operation not permitted", line)
        self.assertEqual(os.listdir(directory), [])

    def test_socket_mode_keeps_others_out(self):
        directory = make_tempdir(self)
        os.chmod(directory, 0o755)
        path = os.path.join(directory, "s.sock")
        with Server("--listen", "unix:" + path, "--socket-mode", "0660"):
            result = self.client_as_nobody("--connect", "unix:" + path)
            self.assertEqual(result.returncode, 69, describe(result))
            self.assertIn("Permission denied", result.stderr)

    def test_socket_group_lets_its_members_in(self):
        directory = make_tempdir(self)
        os.chmod(directory, 0o755)
        path = os.path.join(directory, "s.sock")
        with Server("--listen", "unix:" + path, "--socket-mode", "0660", "--socket-group", str(NOBODY)):
            st = os.stat(path)
            self.assertEqual((stat.S_IMODE(st.st_mode), st.st_gid), (0o660, NOBODY))
            result = self.client_as_nobody("--connect", "unix:" + path, group=NOBODY)
            self.assertEqual((result.returncode, result.stdout), (0, "hello client\n"), describe(result))

    def test_allowlist_guards_an_abstract_socket(self):
        ep = "unix:@" + abstract_name()
        with Server("--listen", ep, "--framing", "line", "--allow-uid", "0") as server:
            denied = self.client_as_nobody("--connect", ep, "--framing", "line")
            self.assertEqual(denied.returncode, 76, describe(denied))
            self.assertIn("error: not allowed", denied.stderr)
            line = server.stderr.wait_line(lambda t: "denied" in t, STOP_TIMEOUT)
            self.assertIn(f"uid={NOBODY}", line)
            self.assertIn("pid=", line)
            with connect(ep) as allowed:
                allowed.sendall(b"root is allowed\n")
                self.assertEqual(recv_exactly(allowed, len(LINE_REPLY)), LINE_REPLY)
        with Server("--listen", ep, "--allow-uid", "root,nobody"):
            admitted = self.client_as_nobody("--connect", ep)
            self.assertEqual((admitted.returncode, admitted.stdout), (0, "hello client\n"), describe(admitted))

    def test_a_flood_of_denials_is_counted_not_logged(self):
        # Any local user may knock as often as it likes: at most one warning a second, and every
        # denial in the count.
        ep = "unix:@" + abstract_name()
        knocks = 300
        script = ("import socket, sys\n"
                  "for _ in range(int(sys.argv[2])):\n"
                  "    s = socket.socket(socket.AF_UNIX)\n"
                  "    s.connect('\\0' + sys.argv[1])\n"
                  "    s.close()\n")
        with Server("--listen", ep, "--allow-uid", "0") as server:
            started = time.monotonic()
            knocked = run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", PYTHON, "-c", script,
                           ep[len("unix:@"):], str(knocks)])
            self.assertEqual(knocked.returncode, 0, describe(knocked))
            self.assertEqual(server.stop(), EX_OK, server.stderr.text())
            seconds = time.monotonic() - started
        warnings = [line for line in server.stderr.lines() if " warning " in line and "denied" in line]
        self.assertGreaterEqual(len(warnings), 1, server.stderr.text())
        self.assertLessEqual(len(warnings), int(seconds) + 1, server.stderr.text())
        self.assertIn(f"and {knocks} not allowed", server.stderr.text())

    def test_an_empty_allowlist_is_refused(self):
        # Empty would mean "anyone": a variable left empty must not drop the access control.
        ep = "unix:@" + abstract_name()
        line = expect_one_line_failure(self, [SERVER, "--listen", ep, "--allow-uid", ""], EX_USAGE)
        self.assertIn("invalid value '' for allow-uid", line)
        expect_one_line_failure(self, [SERVER, "--listen", ep], EX_USAGE, env=clean_env(HELLO_ALLOW_GID=" , "))
        config = os.path.join(make_tempdir(self), "hello.conf")
        with open(config, "w") as f:
            f.write(f"listen = {ep}\nallow-uid =\n")
        expect_one_line_failure(self, [SERVER, "--config", config], EX_CONFIG)

    def test_allowlist_by_group(self):
        ep = "unix:@" + abstract_name()
        with Server("--listen", ep, "--allow-gid", str(NOBODY)):
            admitted = self.client_as_nobody("--connect", ep, group=NOBODY)
            self.assertEqual(admitted.returncode, 0, describe(admitted))
            denied = self.client_as_nobody("--connect", ep, group=0)
            self.assertNotEqual(denied.returncode, 0, describe(denied))

    def test_reload_applies_a_changed_allowlist_to_new_connections(self):
        directory = make_tempdir(self)
        cfg = os.path.join(directory, "hello.conf")
        ep = "unix:@" + abstract_name()
        with open(cfg, "w") as f:
            f.write(f"listen = {ep}\nallow-uid = 0\n")
        with Server("--config", cfg) as server:
            self.assertNotEqual(self.client_as_nobody("--connect", ep).returncode, 0)
            with open(cfg, "w") as f:
                f.write(f"listen = {ep}\nallow-uid = 0, {NOBODY}\n")
            server.signal(signal.SIGHUP)
            self.assertIsNotNone(server.stderr.wait_line(lambda t: "reloaded" in t, STOP_TIMEOUT))
            admitted = self.client_as_nobody("--connect", ep)
            self.assertEqual(admitted.returncode, 0, describe(admitted))


if __name__ == "__main__":
    unittest.main()
