"""Shared support for the process-level tests of hello-server and hello-client.

Everything here uses real processes and real sockets. Nothing waits by sleeping: child
processes are synchronised on the lines they print (read with select and a deadline) and
on their exit (wait with a timeout); every socket gets a timeout.
"""
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.environ.get("HELLO_SERVER") or "/work/main/build/apps/hello-server"
CLIENT = os.environ.get("HELLO_CLIENT") or "/work/main/build/apps/hello-client"
TUTORIAL_SERVER = os.path.join(HERE, "tutorial_server.py")
TUTORIAL_CLIENT = os.path.join(HERE, "tutorial_client.py")
PYTHON = sys.executable or "python3"

START_TIMEOUT = 10.0  # for a process to print its start-up line
STOP_TIMEOUT = 10.0  # for a process to exit once asked to
RUN_TIMEOUT = 15.0  # for a short-lived process (client, failing server) to finish
IO_TIMEOUT = 5.0  # for every blocking socket operation

# sysexits(3), as the binaries use them
EX_OK = 0
EX_USAGE = 64
EX_UNAVAILABLE = 69
EX_OSERR = 71
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_PROTOCOL = 76
EX_CONFIG = 78

RAW_REPLY = b"hello client"
LINE_REPLY = b"hello client\n"


# ---- environment and temporary places ------------------------------------------------------

def clean_env(**extra):
    """The environment without any HELLO_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELLO_")}
    env.update(extra)
    return env


def make_tempdir(testcase):
    """A fresh, short-named directory under /tmp, removed when the test ends."""
    path = tempfile.mkdtemp(prefix="hp", dir="/tmp")
    testcase.addCleanup(shutil.rmtree, path, True)
    return path


def socket_path(testcase, name="s.sock"):
    """A path for a UNIX socket inside a fresh temporary directory."""
    return os.path.join(make_tempdir(testcase), name)


def abstract_name():
    """A name in the abstract UNIX namespace that no other test or run uses."""
    return f"hello-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"


# ---- addresses and raw socket work ---------------------------------------------------------

def sockaddr(endpoint):
    """(family, address) for Python's socket module from `unix:/p`, `unix:@n` or `tcp:h:p`."""
    if endpoint.startswith("unix:@"):
        return socket.AF_UNIX, "\0" + endpoint[len("unix:@"):]
    if endpoint.startswith("unix:"):
        return socket.AF_UNIX, endpoint[len("unix:"):]
    if endpoint.startswith("tcp:"):
        host, port = endpoint[len("tcp:"):].rsplit(":", 1)
        if host.startswith("["):
            return socket.AF_INET6, (host[1:-1], int(port))
        return socket.AF_INET, (host, int(port))
    raise ValueError(f"not an endpoint: {endpoint!r}")


def connect(endpoint, timeout=IO_TIMEOUT):
    family, address = sockaddr(endpoint)
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(address)
    except BaseException:
        s.close()
        raise
    return s


def recv_exactly(sock, n):
    """Exactly n bytes; AssertionError when the peer closes before."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise AssertionError(f"connection closed after {data!r}; wanted {n} bytes")
        data += chunk
    return data


def recv_until_eof(sock, limit=1 << 20):
    """Everything the peer sends until it closes (at most `limit` bytes)."""
    data = b""
    while len(data) <= limit:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"peer sent more than {limit} bytes without closing")


def recv_reply(sock, size=len(RAW_REPLY)):
    """Up to `size` bytes: stops early only when the peer closes."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def request(endpoint, payload=b"hello server", timeout=IO_TIMEOUT):
    """One raw request on a fresh connection; returns the reply (up to len('hello client'))."""
    with connect(endpoint, timeout) as s:
        s.sendall(payload)
        return recv_reply(s)


# ---- child processes -----------------------------------------------------------------------

class LineStream:
    """The lines a child writes to one pipe.

    Until `start_draining()`, lines are read in the waiting thread with select and a
    deadline. Afterwards a background thread reads everything (so the child never blocks
    on a full pipe) and waiters are woken as lines arrive.
    """

    def __init__(self, pipe):
        self._pipe = pipe
        self._fd = pipe.fileno()
        self._partial = b""
        self._lines = []
        self._eof = False
        self._cond = threading.Condition()
        self._drainer = None

    def _feed(self, chunk):
        with self._cond:
            if not chunk:
                self._eof = True
                if self._partial:
                    self._lines.append(self._partial.decode(errors="replace"))
                    self._partial = b""
            else:
                self._partial += chunk
                *complete, self._partial = self._partial.split(b"\n")
                self._lines.extend(line.decode(errors="replace") for line in complete)
            self._cond.notify_all()

    def _read_once(self):
        try:
            chunk = os.read(self._fd, 65536)
        except OSError:
            chunk = b""
        self._feed(chunk)
        return bool(chunk)

    def _drain(self):
        while self._read_once():
            pass

    def start_draining(self):
        if self._drainer is None:
            self._drainer = threading.Thread(target=self._drain, daemon=True)
            self._drainer.start()

    def wait_line(self, predicate, timeout):
        """The first line (seen so far or arriving within `timeout`) for which predicate is
        true; None on EOF or when the deadline passes."""
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            with self._cond:
                while checked < len(self._lines):
                    line = self._lines[checked]
                    checked += 1
                    if predicate(line):
                        return line
                if self._eof:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if self._drainer is not None:
                    self._cond.wait(left)
                    continue
            ready, _, _ = select.select([self._fd], [], [], left)
            if ready:
                self._read_once()

    def finish(self, timeout=STOP_TIMEOUT):
        """Reads to EOF (the child has exited) and returns all the text."""
        self.start_draining()
        self._drainer.join(timeout)
        if not self._drainer.is_alive():
            self._pipe.close()
        return self.text()

    def lines(self):
        with self._cond:
            return list(self._lines)

    def text(self):
        with self._cond:
            tail = [self._partial.decode(errors="replace")] if self._partial else []
            return "".join(line + "\n" for line in self._lines) + "".join(tail)


class Process:
    """A long-running child started with piped stdout and stderr. As a context manager
    it is stopped with SIGTERM on exit (killed, and the test failed, if it does not
    stop within STOP_TIMEOUT)."""

    ready_stream = "stderr"  # where the start-up line appears

    def __init__(self, argv, env=None):
        self.argv = [str(a) for a in argv]
        self.env = clean_env() if env is None else env
        self.proc = None
        self.returncode = None
        self.stdout = None
        self.stderr = None

    def start(self):
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self.env)
        self.stdout = LineStream(self.proc.stdout)
        self.stderr = LineStream(self.proc.stderr)
        waited, other = ((self.stderr, self.stdout) if self.ready_stream == "stderr"
                         else (self.stdout, self.stderr))
        other.start_draining()
        line = waited.wait_line(self.is_ready_line, START_TIMEOUT)
        if line is None:
            running = self.proc.poll() is None
            if running:
                self.proc.kill()
            rc = self.proc.wait(STOP_TIMEOUT)
            raise AssertionError(
                f"{' '.join(self.argv)} did not start "
                f"({'no start-up line within %.0f s' % START_TIMEOUT if running else 'exited %d' % rc})\n"
                f"--- stdout ---\n{self.stdout.finish()}--- stderr ---\n{self.stderr.finish()}")
        waited.start_draining()
        self.on_ready(line)
        return self

    def is_ready_line(self, line):
        raise NotImplementedError

    def on_ready(self, line):
        pass

    def alive(self):
        return self.proc.poll() is None

    def signal(self, signo):
        self.proc.send_signal(signo)

    def state(self):
        """What the kernel says of the child (run state, where it sleeps, pending, blocked
        and caught signals): for failure messages when it does not react."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                wanted = ("State", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
                fields = [l.strip() for l in f if l.split(":")[0] in wanted]
            with open(f"/proc/{self.proc.pid}/wchan") as f:
                fields.append("wchan: " + f.read().strip())
        except OSError as e:
            return f"pid {self.proc.pid}: no state ({e}); exit status {self.proc.poll()}"
        return f"pid {self.proc.pid}: " + "; ".join(fields)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Waits for the process to exit by itself; kills it and fails on timeout."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait(STOP_TIMEOUT)
            raise AssertionError(
                f"{' '.join(self.argv)} did not exit within {timeout} s; killed\n"
                f"--- stderr ---\n{self.stderr.finish()}") from None
        self.stdout.finish()
        self.stderr.finish()
        return self.returncode

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then wait_exit; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if self.returncode is not None:
            return False
        try:
            rc = self.stop()
        except AssertionError:
            if exc_type is None:
                raise
            return False
        if exc_type is None:
            self.check_exit_status(rc)
        return False

    def check_exit_status(self, rc):
        pass


class Server(Process):
    """hello-server with the given arguments; ready once it logs its endpoints."""

    STARTUP = re.compile(r"hello-server listening on (.+) \(framing (\w+), (\d+) threads?\)$")

    def __init__(self, *args, env=None, wrapper=()):
        """`wrapper`: a command that execs the server, such as prlimit with its options."""
        super().__init__([*wrapper, SERVER, *args], env)
        self.endpoints = []
        self.framing = None
        self.threads = None

    def is_ready_line(self, line):
        return self.STARTUP.search(line) is not None

    def on_ready(self, line):
        m = self.STARTUP.search(line)
        self.endpoints = m.group(1).split(", ")
        self.framing = m.group(2)
        self.threads = int(m.group(3))

    def endpoint(self, prefix):
        """The first endpoint starting with prefix (`unix:/`, `unix:@`, `tcp:`)."""
        for ep in self.endpoints:
            if ep.startswith(prefix):
                return ep
        raise AssertionError(f"no {prefix} endpoint among {self.endpoints}")

    def check_exit_status(self, rc):
        if rc != EX_OK:
            raise AssertionError(f"hello-server exited {rc} after SIGTERM, expected 0\n"
                                 f"--- stderr ---\n{self.stderr.text()}")


class TutorialServer(Process):
    """tutorial_server.py on `unix PATH` or `tcp HOST PORT`; ready once it says so."""

    ready_stream = "stdout"

    def __init__(self, *address):
        super().__init__([PYTHON, TUTORIAL_SERVER, *address])
        self.endpoint = None

    def is_ready_line(self, line):
        return line.startswith("listening on ")

    def on_ready(self, line):
        self.endpoint = line[len("listening on "):]


class StuckListener(Process):
    """A listener on a UNIX path that never accepts, as a hung server would, in a network
    namespace of its own: our /proc/net/unix does not list it, so only a connect probe can
    tell that it is alive. Needs `unshare --net` (root)."""

    ready_stream = "stdout"
    SCRIPT = ("import signal, socket, sys\n"
              "s = socket.socket(socket.AF_UNIX)\n"
              "s.bind(sys.argv[1])\n"
              "s.listen(0)\n"
              "print('listening', flush=True)\n"
              "signal.pause()\n")

    def __init__(self, path):
        super().__init__(["unshare", "--net", PYTHON, "-c", self.SCRIPT, path])

    @staticmethod
    def available():
        return run(["unshare", "--net", "true"]).returncode == 0

    def is_ready_line(self, line):
        return line == "listening"


def fill_backlog(path, limit=64):
    """Connects to `path` without blocking until its listener's backlog is full; returns the
    connections, which the caller closes."""
    queued = []
    for _ in range(limit):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
        except BlockingIOError:
            s.close()
            return queued
        queued.append(s)
    for s in queued:
        s.close()
    raise AssertionError(f"{path}: {limit} connections queued and the backlog is still not full")


def run(argv, timeout=RUN_TIMEOUT, env=None, input=None):
    """Runs a short-lived process to completion; kills it and fails the test on timeout."""
    argv = [str(a) for a in argv]
    try:
        return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                              env=clean_env() if env is None else env)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        raise AssertionError(f"{' '.join(argv)} still running after {timeout} s; killed\n"
                             f"--- stdout ---\n{out}\n--- stderr ---\n{err}") from None


def describe(result):
    """A CompletedProcess for assertion messages."""
    return (f"\ncommand: {' '.join(result.args)}\nexit: {result.returncode}\n"
            f"--- stdout ---\n{result.stdout}--- stderr ---\n{result.stderr}")


# ---- a scripted peer for the client's tests ------------------------------------------------

class ScriptedServer:
    """A one-connection Python server on a UNIX path, run in a thread: accepts one client,
    reads one chunk, sends `reply` (nothing if None), then holds the connection until the
    client closes it. `join()` re-raises anything that went wrong in the thread."""

    def __init__(self, path, reply):
        self.path = path
        self.reply = reply
        self.received = None
        self.error = None
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.settimeout(RUN_TIMEOUT)
        self.listener.bind(path)
        self.listener.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        try:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(RUN_TIMEOUT)
                self.received = conn.recv(1024)
                if self.reply is not None:
                    conn.sendall(self.reply)
                while conn.recv(1024):
                    pass
        except BaseException as e:  # reported by join()
            self.error = e

    def __enter__(self):
        self.thread.start()
        return self

    def join(self):
        self.thread.join(RUN_TIMEOUT + 1)
        if self.thread.is_alive():
            raise AssertionError("scripted server thread still running")
        if self.error is not None:
            raise AssertionError(f"scripted server failed: {self.error!r}")

    def __exit__(self, *exc):
        self.listener.close()
        self.thread.join(RUN_TIMEOUT + 1)
        return False


# ---- shared assertions ----------------------------------------------------------------------

def expect_one_line_failure(testcase, argv, code, env=None, timeout=RUN_TIMEOUT, program=None):
    """Runs a program that must fail: exit `code`, nothing on stdout, exactly one line on
    stderr starting with the program's name (argv[0]'s, unless a wrapper runs it). Returns
    that line."""
    result = run(argv, env=env, timeout=timeout)
    testcase.assertEqual(result.returncode, code, describe(result))
    testcase.assertEqual(result.stdout, "", describe(result))
    lines = result.stderr.splitlines()
    testcase.assertEqual(len(lines), 1, describe(result))
    program = program or os.path.basename(str(argv[0]))
    testcase.assertTrue(lines[0].startswith(program + ": "), describe(result))
    return lines[0]


def raise_descriptor_limit():
    """Lets this test process hold as many sockets as the hard limit allows."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def cpu_seconds(pid):
    """User plus system CPU time the process `pid` has used so far, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
