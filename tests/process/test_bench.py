#!/usr/bin/env python3
"""`hello-client bench` as a user runs it: short benchmarks against a real hello-server over
UNIX and TCP, read back as JSON and as a table; --compare; peers that answer wrongly, close
or stay silent; usage errors; the progress line on a terminal."""
import json
import os
import pty
import select
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import (CLIENT, EX_IOERR, EX_OK, EX_OSERR, EX_PROTOCOL, EX_TEMPFAIL, EX_UNAVAILABLE,  # noqa: E402
                     EX_USAGE, LINE_REPLY, PYTHON, RAW_REPLY, RUN_TIMEOUT, Process, Server, TutorialServer,
                     abstract_name, clean_env, describe, expect_one_line_failure, run, socket_path)

BENCH = [CLIENT, "bench"]
PERCENTILES = ("min", "p50", "p90", "p99", "p99_9", "max")


def bench_json(testcase, *args, code=EX_OK):
    """Runs a bench with --json; checks its exit code (unless `code` is None) and returns the
    parsed document, with the exit code added as "exit_code"."""
    result = run([*BENCH, *args, "--json"])
    if code is not None:
        testcase.assertEqual(result.returncode, code, describe(result))
    testcase.assertEqual(result.stderr, "", describe(result))
    lines = result.stdout.splitlines()
    testcase.assertEqual(len(lines), 1, describe(result))
    doc = json.loads(lines[0])
    doc["exit_code"] = result.returncode
    return doc


def check_result(testcase, row, requests):
    """A clean run of `requests` requests: all answered, no error, percentiles ordered."""
    testcase.assertEqual(row["requests"], requests, row)
    testcase.assertEqual(row["errors"]["total"], 0, row)
    latency = row["latency_us"]
    values = [latency[k] for k in PERCENTILES]
    testcase.assertGreater(values[0], 0, row)
    testcase.assertEqual(values, sorted(values), row)
    testcase.assertGreater(row["seconds"], 0, row)
    testcase.assertAlmostEqual(row["requests_per_second"], requests / row["seconds"], delta=1e-6 * requests / row["seconds"])


class BenchAgainstServer(unittest.TestCase):
    def test_unix_raw_lockstep_counts_every_request(self):
        with Server("--listen", "unix:" + socket_path(self)) as server:
            doc = bench_json(self, "--connect", server.endpoints[0], "--requests", "2000", "--connections", "10")
        self.assertEqual(doc["scenario"]["mode"], "persistent")
        self.assertEqual(doc["scenario"]["framing"], "raw")
        self.assertEqual(doc["scenario"]["requests"], 2000)
        self.assertIsNone(doc["scenario"]["duration_s"])
        self.assertEqual(len(doc["results"]), 1)
        row = doc["results"][0]
        self.assertEqual(row["endpoint"], server.endpoints[0])
        check_result(self, row, 2000)
        self.assertEqual(row["connects"], 10)
        self.assertEqual(row["connect_retries"], 0)
        self.assertEqual(row["ratio"], 1.0)

    def test_tcp_line_pipelined(self):
        with Server("--listen", "tcp:127.0.0.1:0", "--framing", "line") as server:
            doc = bench_json(self, "--connect", server.endpoints[0], "--framing", "line", "--pipeline", "16",
                             "--requests", "2000", "--connections", "7")
        self.assertEqual(doc["scenario"]["pipeline"], 16)
        # 2000 is not a multiple of 16: the last batches are short, and still counted exactly.
        check_result(self, doc["results"][0], 2000)

    def test_abstract_socket(self):
        with Server("--listen", "unix:@" + abstract_name()) as server:
            doc = bench_json(self, "--connect", server.endpoints[0], "--requests", "500", "--connections", "3")
        check_result(self, doc["results"][0], 500)

    def test_connect_mode_opens_a_connection_per_request(self):
        for listen in ("unix:" + socket_path(self), "tcp:127.0.0.1:0"):
            with self.subTest(listen=listen), Server("--listen", listen) as server:
                doc = bench_json(self, "--connect", server.endpoints[0], "--mode", "connect", "--connections", "4",
                                 "--requests", "400")
                row = doc["results"][0]
                check_result(self, row, 400)
                self.assertEqual(row["connects"], 400)

    def test_threads_share_the_requests(self):
        with Server("--listen", "unix:" + socket_path(self), "--threads", "2") as server:
            doc = bench_json(self, "--connect", server.endpoints[0], "--threads", "3", "--connections", "7",
                             "--requests", "3001")
        self.assertEqual(doc["scenario"]["threads"], 3)
        check_result(self, doc["results"][0], 3001)
        self.assertEqual(doc["results"][0]["connects"], 7)

    def test_more_threads_than_connections_is_one_thread_per_connection(self):
        with Server("--listen", "unix:" + socket_path(self)) as server:
            doc = bench_json(self, "--connect", server.endpoints[0], "--threads", "8", "--connections", "2",
                             "--requests", "100")
        self.assertEqual(doc["scenario"]["threads"], 2)
        check_result(self, doc["results"][0], 100)

    def test_duration_with_warmup(self):
        with Server("--listen", "unix:" + socket_path(self)) as server:
            doc = bench_json(self, "--connect", server.endpoints[0], "--duration", "0.5", "--warmup", "0.2",
                             "--connections", "4")
        self.assertEqual(doc["scenario"]["duration_s"], 0.5)
        self.assertEqual(doc["scenario"]["warmup_s"], 0.2)
        row = doc["results"][0]
        self.assertGreater(row["requests"], 0, row)
        self.assertEqual(row["errors"]["total"], 0, row)
        # The measured interval is the duration, warm-up left out (a loaded machine may stop late).
        self.assertGreaterEqual(row["seconds"], 0.5, row)
        self.assertLess(row["seconds"], 1.5, row)

    def test_table(self):
        with Server("--listen", "unix:" + socket_path(self)) as server:
            result = run([*BENCH, "--connect", server.endpoints[0], "--requests", "300", "--connections", "2"])
        self.assertEqual(result.returncode, EX_OK, describe(result))
        self.assertEqual(result.stderr, "", describe(result))
        # Not a terminal: no progress line, nothing rewritten in place.
        self.assertNotIn("\r", result.stdout)
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0], "hello-client bench: persistent, 2 connections, 1 thread, raw framing, "
                                   "300 requests", describe(result))
        self.assertEqual(lines[1], "")
        self.assertEqual(lines[2].split()[:4], ["endpoint", "requests", "seconds", "req/s"], describe(result))
        self.assertNotIn("ratio", lines[2])
        row = lines[3].split()
        self.assertEqual(row[:2], [server.endpoints[0], "300"], describe(result))
        self.assertEqual(len(lines), 4, describe(result))

    def test_plain_client_is_unchanged(self):
        with Server("--listen", "unix:" + socket_path(self)) as server:
            result = run([CLIENT, "--connect", server.endpoints[0], "--count", "2"])
        self.assertEqual((result.returncode, result.stdout, result.stderr), (EX_OK, "hello client\nhello client\n", ""),
                         describe(result))


class BenchCompare(unittest.TestCase):
    def endpoints(self, server):
        return [server.endpoint("unix:"), server.endpoint("tcp:")]

    def test_table_has_a_ratio_row_per_endpoint(self):
        with Server("--listen", "unix:" + socket_path(self), "--listen", "tcp:127.0.0.1:0") as server:
            eps = self.endpoints(server)
            result = run([*BENCH, "--compare", *eps, "--requests", "1000", "--connections", "4"])
        self.assertEqual(result.returncode, EX_OK, describe(result))
        lines = result.stdout.splitlines()
        header = lines[2].split()
        self.assertIn("ratio", header, describe(result))
        column = header.index("ratio")
        rows = [line.split() for line in lines[3:]]
        self.assertEqual([r[0] for r in rows], eps, describe(result))
        self.assertEqual(rows[0][column], "1.00x", describe(result))
        self.assertRegex(rows[1][column], r"^\d+\.\d\dx$", describe(result))
        # Each ratio is that endpoint's req/s over the first's.
        rps = [float(r[header.index("req/s")].replace(",", "")) for r in rows]
        self.assertAlmostEqual(float(rows[1][column][:-1]), rps[1] / rps[0], delta=0.006 + 0.0001 * rps[1] / rps[0])

    def test_json_has_a_result_per_endpoint(self):
        with Server("--listen", "unix:" + socket_path(self), "--listen", "tcp:127.0.0.1:0",
                    "--listen", "unix:@" + abstract_name()) as server:
            eps = [server.endpoint("unix:/"), server.endpoint("tcp:"), server.endpoint("unix:@")]
            doc = bench_json(self, "--compare", *eps, "--requests", "500", "--connections", "2")
        results = doc["results"]
        self.assertEqual([r["endpoint"] for r in results], eps)
        for row in results:
            check_result(self, row, 500)
        self.assertEqual(results[0]["ratio"], 1.0)
        for row in results[1:]:
            self.assertAlmostEqual(row["ratio"], row["requests_per_second"] / results[0]["requests_per_second"])

    def test_an_endpoint_nobody_serves_fails_before_any_run(self):
        with Server("--listen", "unix:" + socket_path(self)) as server:
            missing = "unix:" + socket_path(self)
            line = expect_one_line_failure(self, [*BENCH, "--compare", server.endpoints[0], missing, "--requests",
                                                  "10"], EX_UNAVAILABLE, program="hello-client bench")
        self.assertIn(missing, line)


class Peer:
    """A Python server on a UNIX path that answers every chunk it reads with `reply` (None:
    never answers; b"": closes the connection instead), for as many connections as come; with
    `first`, the very first chunk (the bench's probe) gets that instead; with `delay`, every
    answer waits that long (a slow server). With `stop_after`, it stops listening (and removes
    its socket) once it has answered that many."""

    def __init__(self, path, reply, stop_after=None, first=None, delay=0):
        self.path = path
        self.reply = reply
        self.first = first
        self.delay = delay
        self.stop_after = stop_after
        self.answered = 0
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(64)
        self.stopping = threading.Event()
        self.threads = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn):
        with conn:
            conn.settimeout(RUN_TIMEOUT)
            try:
                while conn.recv(4096):
                    reply = self._next_reply()
                    if reply == b"":
                        return
                    if reply is not None:
                        time.sleep(self.delay)  # the behaviour under test, not a synchronisation
                        conn.sendall(reply)
                        self._count_answer()
            except OSError:
                pass

    def _next_reply(self):
        with self.lock:
            first, self.first = self.first, None
        return first if first is not None else self.reply

    def _count_answer(self):
        with self.lock:
            self.answered += 1
            if self.answered != self.stop_after:
                return
        self.stop_listening()

    def stop_listening(self):
        self.stopping.set()
        try:
            os.unlink(self.path)
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()

    def __enter__(self):
        self.acceptor.start()
        return self

    def __exit__(self, *exc):
        self.stop_listening()
        self.acceptor.join(RUN_TIMEOUT)
        for t in self.threads:
            t.join(RUN_TIMEOUT)
        return False


class SlowAcceptor(Process):
    """A Python listener (`script`, given the path) ready once it prints `listening`."""

    ready_stream = "stdout"

    def __init__(self, script, path):
        super().__init__([PYTHON, "-c", script, path])

    def is_ready_line(self, line):
        return line == "listening"


class BenchErrors(unittest.TestCase):
    """Peers that answer the probe (the first request) right, then go wrong in the run."""

    def check_errors(self, reply, kind, code, *extra):
        path = socket_path(self)
        with Peer(path, reply, first=LINE_REPLY if "line" in extra else RAW_REPLY):
            doc = bench_json(self, "--connect", "unix:" + path, "--requests", "40", "--connections", "2", *extra,
                             code=code)
        row = doc["results"][0]
        # Every request is either answered right or counted as an error, once.
        self.assertEqual(row["requests"] + row["errors"]["total"], 40, row)
        self.assertEqual(row["requests"], 0, row)
        self.assertEqual(row["errors"][kind], 40, row)
        return row

    def test_wrong_reply(self):
        self.check_errors(b"hello world!", "unexpected_reply", EX_PROTOCOL)

    def test_reply_with_a_byte_too_many(self):
        self.check_errors(b"hello client!", "unexpected_reply", EX_PROTOCOL)

    def test_wrong_line_reply(self):
        self.check_errors(b"hello clienT\n", "unexpected_reply", EX_PROTOCOL, "--framing", "line")

    def test_peer_that_closes(self):
        self.check_errors(b"", "closed", EX_PROTOCOL)

    def test_peer_that_never_answers(self):
        path = socket_path(self)
        with Peer(path, None, first=RAW_REPLY):
            doc = bench_json(self, "--connect", "unix:" + path, "--requests", "4", "--connections", "2", "--timeout",
                             "0.2", code=EX_TEMPFAIL)
        row = doc["results"][0]
        self.assertEqual((row["requests"], row["errors"]["timeout"], row["errors"]["total"]), (0, 4, 4), row)

    def test_replies_owed_when_the_time_is_up_are_waited_for(self):
        # The run ends before the timeout would: the requests in flight still end as errors,
        # and a run that answered nothing is no success. The wait is a wait, not a spin.
        path = socket_path(self)
        with Peer(path, None, first=RAW_REPLY):
            started = time.monotonic()
            cpu_before = os.times()
            doc = bench_json(self, "--connect", "unix:" + path, "--duration", "0.2", "--connections", "3", "--timeout",
                             "1.5", code=EX_TEMPFAIL)
            cpu_after = os.times()
            waited = time.monotonic() - started
        row = doc["results"][0]
        self.assertEqual((row["requests"], row["errors"]["timeout"], row["errors"]["total"]), (0, 3, 3), row)
        self.assertGreaterEqual(waited, 1.5)
        cpu = (cpu_after.children_user + cpu_after.children_system) - (cpu_before.children_user +
                                                                       cpu_before.children_system)
        self.assertLess(cpu, 0.5, f"the bench used {cpu:.2f} s of CPU in {waited:.2f} s, waiting")

    def test_connects_waiting_on_a_full_backlog_when_the_time_is_up(self):
        # A listener with a backlog of 1 that takes a connection every 0.2 s and never answers
        # (but the probe): when the time is up, some connects wait for room and others for
        # replies. The run still ends, a timeout after its duration, with the timeouts counted.
        path = socket_path(self)
        script = ("import socket, sys, time\n"
                  "s = socket.socket(socket.AF_UNIX)\n"
                  "s.bind(sys.argv[1])\n"
                  "s.listen(1)\n"
                  "print('listening', flush=True)\n"
                  "c, _ = s.accept()\n"
                  "c.recv(64)\n"
                  "c.sendall(b'hello client')\n"
                  "held = [c]\n"
                  "while True:\n"
                  "    held.append(s.accept()[0])\n"
                  "    time.sleep(0.2)  # the slowness under test\n")
        with SlowAcceptor(script, path):
            started = time.monotonic()
            doc = bench_json(self, "--connect", "unix:" + path, "--mode", "connect", "--connections", "6",
                             "--timeout", "1", "--duration", "1.5", code=EX_TEMPFAIL)
            waited = time.monotonic() - started
        row = doc["results"][0]
        self.assertEqual(row["requests"], 0, row)
        self.assertGreater(row["errors"]["timeout"], 0, row)
        self.assertEqual(row["errors"]["total"], row["errors"]["timeout"], row)
        self.assertLess(waited, 6.0)

    def test_a_run_that_answered_nothing_in_time_fails(self):
        # Every reply comes, but only after the measured time: nothing was measured.
        path = socket_path(self)
        with Peer(path, RAW_REPLY, delay=0.6):
            result = run([*BENCH, "--connect", "unix:" + path, "--duration", "0.2", "--connections", "2", "--json"])
        self.assertEqual(result.returncode, EX_TEMPFAIL, describe(result))
        row = json.loads(result.stdout)["results"][0]
        self.assertEqual((row["requests"], row["errors"]["total"]), (0, 0), row)
        self.assertEqual(result.stderr, f"hello-client bench: unix:{path}: no request was answered in the measured time\n")

    def test_errors_are_listed_under_the_table(self):
        path = socket_path(self)
        with Peer(path, b"hello world!", first=RAW_REPLY):
            result = run([*BENCH, "--connect", "unix:" + path, "--requests", "10", "--connections", "1"])
        self.assertEqual(result.returncode, EX_PROTOCOL, describe(result))
        self.assertIn(f"unix:{path}: errors: 10 with an unexpected reply\n", result.stdout, describe(result))

    def test_nothing_listening(self):
        path = socket_path(self)
        line = expect_one_line_failure(self, [*BENCH, "--connect", "unix:" + path, "--requests", "10"],
                                       EX_UNAVAILABLE, program="hello-client bench")
        self.assertIn("cannot connect to unix:" + path, line)
        expect_one_line_failure(self, [*BENCH, "--connect", "tcp:127.0.0.1:1", "--requests", "10"], EX_UNAVAILABLE,
                                program="hello-client bench")
        line = expect_one_line_failure(self, [*BENCH, "--connect", "tcp:no-such-host.invalid:1"], EX_UNAVAILABLE,
                                       program="hello-client bench")
        self.assertTrue(line.endswith(": no such host"), line)  # in the client's words

    def test_connect_mode_against_a_server_that_goes_away(self):
        # Connections refused in the middle of a run are errors; the run still ends and says so.
        path = socket_path(self)
        with Peer(path, b"hello client", stop_after=20) as peer:
            doc = bench_json(self, "--connect", "unix:" + path, "--mode", "connect", "--connections", "2",
                             "--duration", "0.5", code=None)
            self.assertTrue(peer.stopping.is_set())
        row = doc["results"][0]
        self.assertGreater(row["errors"]["connect"], 0, row)
        # A connection left in the backlog when the listener closed is reset: that one is cut
        # off rather than refused, and the worse code wins.
        errors = row["errors"]
        self.assertEqual(errors["total"], errors["connect"] + errors["closed"], row)
        self.assertEqual(doc["exit_code"], EX_PROTOCOL if errors["closed"] else EX_UNAVAILABLE, row)


class BenchProbe(unittest.TestCase):
    """Each endpoint is sent one request before anything is measured."""

    def test_a_silent_server_fails_before_the_run(self):
        path = socket_path(self)
        with Peer(path, None):
            line = expect_one_line_failure(self, [*BENCH, "--connect", "unix:" + path, "--timeout", "0.3"],
                                           EX_TEMPFAIL, program="hello-client bench")
        self.assertEqual(line, f"hello-client bench: unix:{path}: no whole reply to a first request within 0.3 s; "
                               "does the server use line framing?")

    def test_a_wrong_reply_fails_before_the_run(self):
        path = socket_path(self)
        with Peer(path, b"hello world!"):
            line = expect_one_line_failure(self, [*BENCH, "--connect", "unix:" + path], EX_PROTOCOL,
                                           program="hello-client bench")
        self.assertIn("a first request got 'hello world!', expected 'hello client'", line)

    def test_the_other_framing_is_named(self):
        with Server("--listen", "unix:" + socket_path(self)) as server:
            line = expect_one_line_failure(self, [*BENCH, "--connect", server.endpoints[0], "--framing", "line",
                                                  "--timeout", "0.3"], EX_TEMPFAIL, program="hello-client bench")
        self.assertIn("(got 'hello client'); does the server use raw framing?", line)

    def test_the_tutorial_server_is_served_and_lives_on(self):
        # It reads once per connection and dies if a connection closes before its request.
        with TutorialServer("unix", socket_path(self)) as tutorial:
            doc = bench_json(self, "--connect", tutorial.endpoint, "--mode", "connect", "--connections", "1",
                             "--requests", "3")
            check_result(self, doc["results"][0], 3)
            received = []  # the probe and 3 requests

            def fourth_request(line):
                received.extend([line] if line == "hello server" else [])
                return len(received) == 4

            self.assertIsNotNone(tutorial.stdout.wait_line(fourth_request, 5), tutorial.stdout.text())
            self.assertTrue(tutorial.alive(), tutorial.stderr.text())

    def test_more_connections_than_descriptors_is_said_at_once(self):
        import resource

        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

        with Server("--listen", "unix:" + socket_path(self)) as server:
            for mode in ("connect", "persistent"):
                with self.subTest(mode=mode):
                    result = subprocess.run([*BENCH, "--connect", server.endpoints[0], "--mode", mode, "--connections",
                                             "100", "--duration", "0.2"], capture_output=True, text=True,
                                            timeout=RUN_TIMEOUT, env=clean_env(), preexec_fn=low_limit)
                    self.assertEqual(result.returncode, EX_OSERR, describe(result))
                    self.assertEqual(result.stderr, "hello-client bench: --connections 100 needs as many descriptors, "
                                                    "and this process may open 64 (ulimit -n)\n")

    def test_results_that_cannot_be_written_fail(self):
        with Server("--listen", "unix:" + socket_path(self)) as server, open("/dev/full", "w") as full:
            result = subprocess.run([*BENCH, "--connect", server.endpoints[0], "--requests", "10"], stdout=full,
                                    stderr=subprocess.PIPE, text=True, timeout=RUN_TIMEOUT, env=clean_env())
        self.assertEqual(result.returncode, EX_IOERR, result.stderr)
        self.assertEqual(result.stderr, "hello-client bench: cannot write the results: No space left on device\n")


class BenchUsage(unittest.TestCase):
    def usage(self, *args):
        return expect_one_line_failure(self, [*BENCH, *args], EX_USAGE, program="hello-client bench")

    def test_pipelining_needs_line_framing(self):
        line = self.usage("--pipeline", "4")
        self.assertIn("--pipeline needs --framing line", line)
        self.usage("--pipeline", "4", "--framing", "raw")

    def test_mistakes(self):
        for args in (["--mode", "lockstep"], ["--connections", "0"], ["--connections", "-1"], ["--threads", "x"],
                     ["--requests", "0"], ["--duration", "0"], ["--duration", "1", "--requests", "5"],
                     ["--requests", "5", "--warmup", "1"], ["--framing", "json"], ["--timeout", "0"],
                     ["--connect", "unix:/a", "--compare", "unix:/b", "unix:/c"], ["--compare", "unix:/a"],
                     ["--connect", "nowhere:1"], ["--bogus"], ["extra"], ["--message", ""],
                     ["--framing", "line", "--message", "a\nb"], ["--pipeline", "0", "--framing", "line"]):
            with self.subTest(args=args):
                self.usage(*args)

    def test_help(self):
        result = run([*BENCH, "--help"])
        self.assertEqual(result.returncode, EX_OK, describe(result))
        self.assertTrue(result.stdout.startswith("Usage: hello-client bench [OPTIONS]\n"), describe(result))
        for option in ("--mode", "--pipeline", "--compare", "--warmup", "--threads", "--json"):
            self.assertIn(option, result.stdout)
        client_help = run([CLIENT, "--help"])
        self.assertIn("hello-client bench", client_help.stdout)


class BenchProgress(unittest.TestCase):
    def on_a_terminal(self, server, *args):
        """The bench's exit code and everything it wrote to a terminal."""
        master, slave = pty.openpty()
        proc = subprocess.Popen([*BENCH, "--connect", server.endpoints[0], *args], stdin=subprocess.DEVNULL,
                                stdout=slave, stderr=subprocess.PIPE, env=clean_env())
        os.close(slave)
        output = b""
        deadline = time.monotonic() + RUN_TIMEOUT
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], deadline - time.monotonic())
                if not ready:
                    break
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child has closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            rc = proc.wait(RUN_TIMEOUT)
        finally:
            os.close(master)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            err = proc.stderr.read()
            proc.stderr.close()
        self.assertEqual(err, b"")
        return rc, output.decode()

    def test_progress_line_on_a_terminal(self):
        with Server("--listen", "unix:" + socket_path(self)) as server:
            rc, text = self.on_a_terminal(server, "--duration", "1.5", "--connections", "2")
        self.assertEqual(rc, EX_OK, text)
        # At least one line rewritten in place each second, then erased before the table.
        self.assertRegex(text, r"\r" + server.endpoints[0] + r": 1s, [\d,]+ requests, [\d,]+ req/s, 0 errors\x1b\[K")
        self.assertIn("\r\x1b[Khello-client bench: persistent", text)

    def test_after_a_warmup_of_whole_seconds(self):
        # The tick that ends the warm-up has measured nothing yet: no "0s" line.
        with Server("--listen", "unix:" + socket_path(self)) as server:
            rc, text = self.on_a_terminal(server, "--warmup", "1", "--duration", "1.5", "--connections", "2")
        self.assertEqual(rc, EX_OK, text)
        self.assertNotIn(": 0s,", text)
        self.assertRegex(text, r"\r" + server.endpoints[0] + r": 1s, [\d,]+ requests")


if __name__ == "__main__":
    unittest.main()
