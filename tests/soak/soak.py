#!/usr/bin/env python3
"""Soak test for hello-server: many connections held, load on some, faulty peers mixed in.

    python3 tests/soak/soak.py --server build/apps/hello-server --seconds 60 --connections 15000

Starts the server on a UNIX socket file and on TCP 127.0.0.1 (port 0), raises the descriptor
limit as needed, and:
  1. opens --connections connections, half over UNIX and half over TCP, and holds them; each
     counts as held once it has been answered a request;
  2. for --seconds, keeps --active of them busy with lockstep requests (send, wait for the reply,
     send again) and injects faulty peers on extra connections: vanishing mid-request,
     resetting (SO_LINGER 0), half-closing after sending, sending one byte at a time, sending
     binary garbage with NUL bytes, sending an oversized line (line framing), and reading
     nothing while sending requests (a slow reader, which --write-timeout must cut off);
  3. stops the load, lets the faults finish, has every held connection answer one more request,
     then reads the server's RSS once more while the connections are still held;
  4. stops the server with SIGTERM (it must exit 0) and reads its log.

It reports the connections held, the faults injected per kind and what the server did with them,
requests sent and answered, and the server's RSS (from /proc/PID/status) at the start, once the
connections are held, during the run and at the end; and exits 1 when an expectation fails:
  - every held connection answered twice, and well-behaved clients saw no error (sent == answered);
  - every fault was handled as documented: half-closed and slow-byte requests answered, garbage
    lines answered one reply each, oversized lines refused with `error: request too long`, slow
    readers closed within 1.25 times --write-timeout (plus 2 s) of their last send going through;
  - the server stayed up, logged no error, and exited 0 on SIGTERM;
  - RSS is flat: at the end it is within --rss-margin (percent, at least --rss-margin-mib MiB) of
    the RSS once the connections were held.
Traffic goes only to 127.0.0.1 and a UNIX socket in a fresh directory under /tmp. Every wait is
bounded. Uses --workers processes (epoll, one loop each) so that the client side keeps up.
"""

import argparse
import errno
import heapq
import multiprocessing
import os
import random
import re
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

FAULT_KINDS = ("vanish", "reset", "half_close", "one_byte", "garbage", "oversized", "slow_reader")
FAULT_TEXT = {
    "vanish": "vanish mid-request",
    "reset": "reset (SO_LINGER 0)",
    "half_close": "half-close after sending",
    "one_byte": "one byte at a time",
    "garbage": "binary garbage, NUL bytes",
    "oversized": "oversized line",
    "slow_reader": "slow reader (never reads)",
}
# How many of each may be under way at once in one worker.
FAULT_CAP = {"one_byte": 8, "slow_reader": 2}
DEFAULT_FAULT_CAP = 24
REPLY_TIMEOUT = 15.0  # seconds a well-behaved request may wait for its reply under load
CONNECT_TIMEOUT = 30.0

EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP = select.EPOLLIN, select.EPOLLOUT, select.EPOLLERR, select.EPOLLHUP
EPOLLRDHUP = getattr(select, "EPOLLRDHUP", 0x2000)
GONE = (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ECONNABORTED)


def now():
    return time.monotonic()


def rss_kib(pid):
    """VmRSS of a process in KiB, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def mib(kib):
    return "?" if kib is None else f"{kib / 1024:.1f} MiB"


# --- client side: one epoll loop per worker process ----------------------------------------------


class Conn:
    """One client socket. Subclasses say what it does once connected."""

    def __init__(self, w, family):
        self.w = w
        self.family = family
        self.sock = None
        self.fd = -1
        self.mask = 0
        self.rbuf = bytearray()
        self.out = b""
        self.deadline = None
        self.closed = False
        self.up = False  # connected
        self.retries = 0

    # connection set-up
    def connect(self):
        w = self.w
        if self.family == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            self.configure(s)
            err = s.connect_ex(w.cfg["unix_path"])
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            self.configure(s)
            err = s.connect_ex(("127.0.0.1", w.cfg["tcp_port"]))
        self.sock, self.fd = s, s.fileno()
        w.conns[self.fd] = self
        if err == 0:
            self.up = True
            self.connected()
        elif err == errno.EINPROGRESS:
            self.set_deadline(CONNECT_TIMEOUT)
            self.watch(EPOLLOUT)
        elif err == errno.EAGAIN and self.family == "unix" and self.retries < CONNECT_TIMEOUT / 0.02:
            # A full backlog on a UNIX socket: try again shortly (the server is alive).
            w.stats["connect_retries"] += 1
            self.retries += 1
            self.drop()
            w.later(0.02, self.retry)
        else:
            self.fail(f"connect: {os.strerror(err)}")

    def configure(self, sock):
        """Socket options to set before connecting."""

    def retry(self):
        self.closed = False
        self.up = False
        self.rbuf.clear()
        self.out = b""
        self.connect()

    def connected(self):
        raise NotImplementedError

    # epoll plumbing
    def watch(self, mask):
        if self.closed:
            return
        if self.mask == 0:
            self.w.ep.register(self.fd, mask)
        elif mask != self.mask:
            self.w.ep.modify(self.fd, mask)
        self.mask = mask

    def unwatch(self):
        if self.mask:
            self.w.ep.unregister(self.fd)
            self.mask = 0

    def set_deadline(self, seconds):
        self.deadline = None if seconds is None else now() + seconds
        if seconds is None:
            self.w.deadlines.pop(self, None)
        else:
            self.w.deadlines[self] = self.deadline

    def drop(self):
        """Closes the socket, forgetting it."""
        if self.closed:
            return
        self.closed = True
        self.unwatch()
        self.w.conns.pop(self.fd, None)
        self.w.deadlines.pop(self, None)
        try:
            self.sock.close()
        except OSError:
            pass

    def event(self, ev):
        if self.up:
            self.on_event(ev)
            return
        # A non-blocking connect finished.
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        self.set_deadline(None)
        if err:
            self.fail(f"connect: {os.strerror(err)}")
            return
        self.up = True
        self.connected()

    def send_all(self, data):
        """Sends what fits now; the rest goes out when the socket is writable. False when gone."""
        self.out += data
        try:
            while self.out:
                n = self.sock.send(self.out)
                self.out = self.out[n:]
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno in GONE:
                return False
            raise
        return True

    def read_some(self):
        """Appends what is there to rbuf; returns False at end of stream, None on a reset."""
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return True
        except OSError as e:
            if e.errno in GONE:
                return None
            raise
        if not data:
            return False
        self.rbuf += data
        return True

    def on_event(self, ev):
        raise NotImplementedError

    def on_deadline(self):
        self.fail("timed out")

    def fail(self, why):
        raise NotImplementedError


class Client(Conn):
    """A well-behaved client: one request at a time, each reply checked byte for byte."""

    def __init__(self, w, family):
        super().__init__(w, family)
        self.establishing = True  # until the first reply: then it is held
        self.held = False
        self.active = False
        self.waiting = False

    def connected(self):
        self.watch(EPOLLIN)
        self.request()

    def request(self):
        self.waiting = True
        self.w.stats["sent"] += 1
        self.set_deadline(REPLY_TIMEOUT)
        if not self.send_all(self.w.request):
            self.fail("the server closed the connection (send)")
            return
        self.watch(EPOLLIN | (EPOLLOUT if self.out else 0))

    def on_event(self, ev):
        if ev & EPOLLOUT:
            if not self.send_all(b""):
                self.fail("the server closed the connection (send)")
                return
            self.watch(EPOLLIN | (EPOLLOUT if self.out else 0))
        if not ev & (EPOLLIN | EPOLLHUP | EPOLLERR):
            return
        state = self.read_some()
        if state is None:
            self.fail("connection reset by the server")
            return
        reply = self.w.reply
        if self.rbuf and (not self.waiting or self.rbuf != reply[: len(self.rbuf)]):
            self.fail(f"unexpected bytes from the server: {bytes(self.rbuf[:40])!r}")
            return
        if len(self.rbuf) == len(reply):
            self.rbuf.clear()
            self.waiting = False
            self.set_deadline(None)
            self.w.stats["answered"] += 1
            if self.establishing:
                self.establishing = False
                self.held = True
                self.w.connecting -= 1
                self.w.held_by_family[self.family] += 1
            self.w.answered(self)
            return
        if state is False:
            self.fail("the server closed the connection")

    def on_deadline(self):
        self.fail(f"no reply within {REPLY_TIMEOUT:.0f} s")

    def fail(self, why):
        w = self.w
        w.error(why)
        if self.establishing:
            self.establishing = False
            w.connecting -= 1
        if self.waiting and w.verifying:
            w.verify_outstanding -= 1
        self.waiting = False
        if self.held:
            w.held_lost += 1
        self.drop()


class Fault(Conn):
    """A faulty peer: does one wrong thing, then says whether the server did the right thing."""

    kind = "?"

    def __init__(self, w, family):
        super().__init__(w, family)
        self.done_ = False

    def connected(self):
        self.w.fstats[self.kind]["injected"] += 1
        self.w.fstats[self.kind]["unix" if self.family == "unix" else "tcp"] += 1
        self.start()

    def start(self):
        raise NotImplementedError

    def finish(self, ok=True, why=""):
        if self.done_:
            return
        self.done_ = True
        st = self.w.fstats[self.kind]
        if ok:
            st["ok"] += 1
        else:
            st["failed"] += 1
            if len(st["why"]) < 5:
                st["why"].append(f"{self.family}: {why}")
        self.drop()
        self.w.fault_ended(self)

    def fail(self, why):
        self.finish(False, why)

    def on_deadline(self):
        self.finish(False, "no answer in time")

    def expect_exactly(self, expected, then):
        """Reads until `expected` came (then calls `then`), failing on anything else."""
        self.expected = expected
        self.then = then
        self.watch(EPOLLIN)
        self.set_deadline(REPLY_TIMEOUT)

    def on_event(self, ev):
        state = self.read_some()
        if state is None:
            self.finish(False, f"reset by the server after {bytes(self.rbuf)!r}")
            return
        exp = getattr(self, "expected", b"")
        if self.rbuf != exp[: len(self.rbuf)]:
            self.finish(False, f"unexpected bytes {bytes(self.rbuf[:60])!r}")
            return
        if len(self.rbuf) == len(exp) and exp:
            self.rbuf.clear()
            self.expected = b""
            self.set_deadline(None)
            self.then()
            return
        if state is False:
            self.finish(False, f"closed by the server after {len(self.rbuf)} of {len(exp)} expected bytes")


class Vanish(Fault):
    kind = "vanish"

    def start(self):
        self.unwatch()  # whatever comes back is never read
        self.send_all(self.w.request[:7])  # half a request
        self.w.later(0.05, self.finish)  # and gone


class Reset(Fault):
    kind = "reset"

    def start(self):
        self.send_all(self.w.request)
        self.expect_exactly(self.w.reply, self.reply_came)

    def reply_came(self):
        # Half a request more, then a reset: SO_LINGER 0 makes close() send RST over TCP; over
        # UNIX, closing with data unread (the next reply) resets the server's end.
        self.send_all(self.w.request[:5])
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.finish()


class HalfClose(Fault):
    kind = "half_close"

    def start(self):
        self.send_all(self.w.request)
        self.sock.shutdown(socket.SHUT_WR)
        self.expect_exactly(self.w.reply, self.reply_came)

    def reply_came(self):
        self.expected = b""
        self.then = None
        self.set_deadline(REPLY_TIMEOUT)

    def on_event(self, ev):
        if self.then is None:  # the reply came: now the server must close
            state = self.read_some()
            if state is False and not self.rbuf:
                self.finish()
            elif self.rbuf or state is None:
                self.finish(False, f"after the reply: {bytes(self.rbuf[:40])!r}, reset={state is None}")
            return
        super().on_event(ev)


class OneByte(Fault):
    kind = "one_byte"

    def start(self):
        self.i = 0
        self.watch(EPOLLIN)
        self.next_byte()

    def next_byte(self):
        if self.closed:
            return
        w = self.w
        if not self.send_all(w.request[self.i : self.i + 1]):
            self.finish(False, "closed by the server")
            return
        self.i += 1
        last = self.i == len(w.request)
        if w.framing == "raw":
            # Every read is a request: each byte is answered before the next is sent.
            self.expect_exactly(w.reply, self.finish if last else self.later_byte)
        elif last:
            self.expect_exactly(w.reply, self.finish)
        else:
            self.expected = b""  # nothing may come before the line is complete
            self.set_deadline(None)
            self.later_byte()

    def later_byte(self):
        self.w.later(self.w.cfg["byte_interval"], self.next_byte)


class Garbage(Fault):
    kind = "garbage"

    def start(self):
        w = self.w
        rng = w.rng
        self.rounds = rng.randint(1, 4)
        if w.framing == "line":
            lines = []
            for _ in range(self.rounds):
                n = rng.randint(1, min(w.cfg["max_request_bytes"], 300))
                junk = bytearray(rng.randrange(256) for _ in range(n))
                junk = junk.replace(b"\n", b"\x00")
                junk[rng.randrange(n)] = 0  # a NUL in every line
                lines.append(bytes(junk) + b"\n")
            self.send_all(b"".join(lines))
            self.expect_exactly(w.reply * self.rounds, self.finish)
        else:
            self.next_chunk()

    def next_chunk(self):
        if self.rounds == 0:
            self.finish()
            return
        self.rounds -= 1
        rng = self.w.rng
        n = rng.randint(1, 300)
        junk = bytearray(rng.randrange(256) for _ in range(n))
        junk[rng.randrange(n)] = 0
        self.send_all(bytes(junk))
        self.expect_exactly(self.w.reply, self.next_chunk)


class Oversized(Fault):
    kind = "oversized"

    def start(self):
        w = self.w
        limit = w.cfg["max_request_bytes"]
        self.endless = w.rng.random() < 0.5
        # Over the limit, but within one 64 KiB read: the server reads it all before it refuses.
        n = min(limit + w.rng.randint(1, 4000), 60000)
        self.send_all(b"x" * n + (b"" if self.endless else b"\n"))
        self.expect_exactly(w.too_long, self.refused)

    def refused(self):
        self.expected = b""
        self.then = None
        self.set_deadline(REPLY_TIMEOUT)

    def on_event(self, ev):
        if getattr(self, "then", 1) is None:  # refused: now the server must close
            state = self.read_some()
            if state is False and not self.rbuf:
                self.finish()
            elif state is None and not self.rbuf:
                self.finish()  # closed with our bytes unread: a reset, after the refusal
            elif self.rbuf:
                self.finish(False, f"after the refusal: {bytes(self.rbuf[:40])!r}")
            return
        super().on_event(ev)


class SlowReader(Fault):
    kind = "slow_reader"

    def configure(self, sock):
        # A small receive buffer, fixed before connecting: TCP autotuning would otherwise let
        # this kernel take tens of MB of replies (tcp_rmem's maximum) before the server's writes
        # block. In raw framing every read is answered with 12 bytes whatever it brought, so the
        # requests go one byte per segment (TCP_NODELAY) for the replies to pile up fast.
        if self.family == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            if self.w.framing == "raw":
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def start(self):
        w = self.w
        # Raw framing answers each read: tiny sends make many reads, so the replies pile up fast.
        self.block = w.request[:1] if w.framing == "raw" else w.request * 100
        self.sent = 0
        self.last_progress = now()
        self.watch(EPOLLOUT | EPOLLRDHUP)
        self.limit = w.cfg["write_timeout"] * 2 + 10
        self.set_deadline(self.limit)

    def on_event(self, ev):
        if ev & (EPOLLHUP | EPOLLERR | EPOLLRDHUP):
            self.cut_off()
            return
        try:
            for _ in range(64):
                n = self.sock.send(self.block)
                self.sent += n
                self.last_progress = now()
                self.set_deadline(self.limit)
        except BlockingIOError:
            pass  # full; epoll says when there is room again, which is never if nobody reads
        except OSError as e:
            if e.errno in GONE:
                self.cut_off()
                return
            raise

    def cut_off(self):
        w = self.w
        waited = now() - self.last_progress
        st = w.fstats[self.kind]
        st.setdefault("cut_after", []).append(round(waited, 2))
        st.setdefault("sent_bytes", []).append(self.sent)
        wt = w.cfg["write_timeout"]
        # The server's clock starts when its write blocks, which is before our last send went
        # through (over TCP, well before: the server's receive buffer takes MBs first), and it
        # closes between 1 and 1.25 times the timeout later.
        if waited > 1.25 * wt + 2:
            self.finish(False, f"closed {waited:.2f} s after its last send went through; write timeout {wt} s")
        else:
            self.finish()

    def on_deadline(self):
        self.finish(False, f"still open {self.limit:.0f} s after it stalled (write timeout {self.w.cfg['write_timeout']} s)")


FAULT_CLASSES = {c.kind: c for c in (Vanish, Reset, HalfClose, OneByte, Garbage, Oversized, SlowReader)}


class Worker:
    def __init__(self, index, cfg):
        self.index = index
        self.cfg = cfg
        self.framing = cfg["framing"]
        self.request = b"hello server\n" if self.framing == "line" else b"hello server"
        self.reply = b"hello client\n" if self.framing == "line" else b"hello client"
        self.too_long = b"error: request too long\n"
        self.ep = select.epoll()
        self.conns = {}
        self.deadlines = {}
        self.timers = []
        self.seq = 0
        self.rng = random.Random(cfg["seed"] * 1000 + index)
        self.stats = {"sent": 0, "answered": 0, "connect_retries": 0}
        self.errors = {}
        self.fstats = {k: {"injected": 0, "ok": 0, "failed": 0, "unix": 0, "tcp": 0, "why": []} for k in FAULT_KINDS}
        self.faults_open = {k: 0 for k in FAULT_KINDS}
        self.held = []
        self.held_by_family = {"unix": 0, "tcp": 0}
        self.held_lost = 0
        self.connecting = 0
        self.loading = False
        self.verifying = False
        self.verify_outstanding = 0
        self.verified = 0

    # plumbing
    def later(self, delay, fn):
        self.seq += 1
        heapq.heappush(self.timers, (now() + delay, self.seq, fn))

    def error(self, why):
        self.errors[why] = self.errors.get(why, 0) + 1

    def poll_once(self, timeout):
        if self.timers:
            timeout = max(0.0, min(timeout, self.timers[0][0] - now()))
        for fd, ev in self.ep.poll(timeout, 1024):
            conn = self.conns.get(fd)
            if conn is not None and not conn.closed:
                conn.event(ev)
        t = now()
        while self.timers and self.timers[0][0] <= t:
            _, _, fn = heapq.heappop(self.timers)
            fn()
        if t >= self.next_sweep:
            self.next_sweep = t + 0.25
            for conn, deadline in list(self.deadlines.items()):
                if deadline <= t and not conn.closed:
                    conn.set_deadline(None)
                    conn.on_deadline()

    def run_until(self, done, limit):
        end = now() + limit
        while not done():
            if now() > end:
                return False
            self.poll_once(0.05)
        return True

    # phase 1: establish the held connections
    def establish(self, count):
        self.next_sweep = now()
        families = ["unix" if (self.index + i) % 2 == 0 else "tcp" for i in range(count)]
        pending = list(reversed(families))
        inflight_cap = self.cfg["connect_burst"]

        def more():
            while pending and self.connecting < inflight_cap:
                c = Client(self, pending.pop())
                self.connecting += 1
                self.held.append(c)
                c.connect()

        def done():
            more()
            return not pending and self.connecting <= 0

        if not self.run_until(done, self.cfg["establish_timeout"]):
            self.error("holding the connections took too long")
        return sum(1 for c in self.held if c.held)

    def answered(self, client):
        if self.verifying:
            self.verify_outstanding -= 1
            self.verified += 1
        elif self.loading and client.active:
            client.request()

    # phase 2: load and faults
    def fault_ended(self, fault):
        self.faults_open[fault.kind] -= 1

    def start_fault(self, t_end):
        kinds = [k for k in self.cfg["faults"] if not (k == "oversized" and self.framing == "raw")]
        for _ in range(len(kinds)):
            kind = kinds[self.fault_turn % len(kinds)]
            self.fault_turn += 1
            if self.faults_open[kind] >= FAULT_CAP.get(kind, DEFAULT_FAULT_CAP):
                continue
            if kind == "slow_reader" and now() > t_end - (1.25 * self.cfg["write_timeout"] + 5):
                continue  # would not be cut off before the end
            if kind == "one_byte" and now() > t_end - (len(self.request) * self.cfg["byte_interval"] + 2):
                continue
            family = "unix" if (self.fault_count[kind] + self.index) % 2 == 0 else "tcp"
            self.fault_count[kind] += 1
            self.faults_open[kind] += 1
            FAULT_CLASSES[kind](self, family).connect()
            return

    def load(self, t_start, seconds):
        t_end = t_start + seconds
        self.loading = True
        self.fault_turn = self.index
        self.fault_count = {k: 0 for k in FAULT_KINDS}
        active = [c for c in self.held if c.held and not c.closed][: self.cfg["active_per_worker"]]
        for c in active:
            c.active = True
            c.request()
        interval = self.cfg["fault_interval"]
        next_fault = now() + self.rng.random() * interval
        while now() < t_end:
            self.poll_once(min(0.05, max(0.0, next_fault - now())))
            if self.cfg["faults"] and now() >= next_fault:
                self.start_fault(t_end)
                next_fault += interval
                if next_fault < now() - 1:
                    next_fault = now()
        self.loading = False
        # Let the requests under way be answered and the faults finish.
        limit = REPLY_TIMEOUT + 2 * self.cfg["write_timeout"] + 15
        ok = self.run_until(
            lambda: not any(c.waiting for c in active) and not any(self.faults_open.values()), limit
        )
        if not ok:
            self.error("requests or faults still under way after the run")
        return len(active)

    # phase 3: every held connection answers once more
    def verify(self):
        self.verifying = True
        queue = [c for c in self.held if c.held and not c.closed]

        def done():
            while queue and self.verify_outstanding < 2000:
                self.verify_outstanding += 1
                queue.pop().request()
            return not queue and self.verify_outstanding == 0

        if not self.run_until(done, 120):
            self.error("the final round of requests took too long")
        self.verifying = False
        return self.verified

    def report(self):
        return {
            "stats": self.stats,
            "errors": self.errors,
            "faults": self.fstats,
            "held_lost": self.held_lost,
            "held_by_family": self.held_by_family,
        }


def worker_main(index, cfg, pipe):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    w = Worker(index, cfg)
    try:
        held = w.establish(cfg["held_per_worker"][index])
        pipe.send(("held", held, w.report()))
        if not pipe.poll(cfg["wait_limit"]):
            return
        message = pipe.recv()
        if message[0] != "go":
            return
        active = w.load(message[1], cfg["seconds"])
        verified = w.verify()
        rep = w.report()
        rep.update(active=active, verified=verified, held=held)
        pipe.send(("done", rep))
        if pipe.poll(cfg["wait_limit"]):
            pipe.recv()  # release
    except Exception as e:  # reported, not hidden: the parent fails the run
        import traceback

        pipe.send(("crashed", f"worker {index}: {e!r}\n{traceback.format_exc()}"))
    finally:
        for conn in list(w.conns.values()):
            conn.drop()


# --- the parent: server, workers, report ---------------------------------------------------------


def raise_fd_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            soft = hard = needed
        except (ValueError, OSError):
            pass  # not root: keep the hard limit we have
    if soft < hard or soft == resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def start_server(args, workdir):
    unix_path = os.path.join(workdir, "soak.sock")
    log_path = os.path.join(workdir, "server.log")
    command = [
        args.server,
        "--listen", f"unix:{unix_path}",
        "--listen", "tcp:127.0.0.1:0",
        "--framing", args.framing,
        "--write-timeout", str(args.write_timeout),
        "--max-request-bytes", str(args.max_request_bytes),
        "--log-level", "info",
    ] + args.server_arg
    log = open(log_path, "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELLO_")}
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    log.close()
    deadline = now() + 15
    port = None
    while now() < deadline and proc.poll() is None:
        with open(log_path, errors="replace") as f:
            m = re.search(r"listening on .*tcp:127\.0\.0\.1:(\d+)", f.read())
        if m:
            port = int(m.group(1))
            break
        time.sleep(0.05)
    if port is None:
        proc.kill()
        proc.wait(5)
        with open(log_path, errors="replace") as f:
            sys.exit(f"soak: the server did not start:\n{' '.join(command)}\n{f.read()}")
    return proc, unix_path, port, log_path, command


def split(total, parts):
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def merge_reports(reports):
    total = {"sent": 0, "answered": 0, "connect_retries": 0}
    errors = {}
    faults = {k: {"injected": 0, "ok": 0, "failed": 0, "unix": 0, "tcp": 0, "why": [], "cut_after": [], "sent_bytes": []} for k in FAULT_KINDS}
    held_lost = 0
    family = {"unix": 0, "tcp": 0}
    for r in reports:
        for k in family:
            family[k] += r["held_by_family"][k]
        for k in total:
            total[k] += r["stats"][k]
        for why, n in r["errors"].items():
            errors[why] = errors.get(why, 0) + n
        for k, st in r["faults"].items():
            for key in ("injected", "ok", "failed", "unix", "tcp"):
                faults[k][key] += st[key]
            faults[k]["why"] += st["why"]
            faults[k]["cut_after"] += st.get("cut_after", [])
            faults[k]["sent_bytes"] += st.get("sent_bytes", [])
        held_lost += r["held_lost"]
    return total, errors, faults, held_lost, family


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True, help="the hello-server binary")
    parser.add_argument("--seconds", type=float, default=60, help="how long the load and faults last (default 60)")
    parser.add_argument("--connections", type=int, default=15000, help="connections held, half UNIX, half TCP (default 15000)")
    parser.add_argument("--active", type=int, default=500, help="how many of them carry lockstep load (default 500)")
    parser.add_argument("--framing", choices=("line", "raw"), default="line", help="the server's framing (default line)")
    parser.add_argument("--workers", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--fault-interval", type=float, default=0.02, help="seconds between faulty peers, per worker (default 0.02)")
    parser.add_argument("--faults", default=",".join(FAULT_KINDS), help="kinds of faulty peers (default all: %(default)s)")
    parser.add_argument("--byte-interval", type=float, default=1.0, help="one-byte peers: seconds between bytes (default 1)")
    parser.add_argument("--write-timeout", type=float, default=5, help="the server's --write-timeout (default 5)")
    parser.add_argument("--max-request-bytes", type=int, default=4096, help="the server's --max-request-bytes (default 4096)")
    parser.add_argument("--rss-margin", type=float, default=5, help="allowed RSS growth, percent (default 5)")
    parser.add_argument("--rss-margin-mib", type=float, default=4, help="...but at least this many MiB (default 4)")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the faulty peers' bytes (default 1)")
    parser.add_argument("--server-arg", action="append", default=[], help="one more argument for the server (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (server log) afterwards")
    args = parser.parse_args()

    faults = [k for k in args.faults.split(",") if k]
    unknown = set(faults) - set(FAULT_KINDS)
    if unknown:
        parser.error(f"unknown fault kinds: {', '.join(sorted(unknown))}")
    if args.framing == "raw" and "oversized" in faults:
        faults.remove("oversized")  # raw framing has no lines and no limit
    workers = max(1, args.workers)
    per_worker_conns = -(-args.connections // workers)
    fault_fds = 100 * len(FAULT_KINDS)
    limit = raise_fd_limit(args.connections + fault_fds * workers + 1000)
    if per_worker_conns + fault_fds + 100 > limit:
        sys.exit(f"soak: descriptor limit {limit} too low for {per_worker_conns} connections per worker")

    started = now()
    workdir = tempfile.mkdtemp(prefix="hello-soak-", dir="/tmp")
    proc = None
    failures = []
    try:
        proc, unix_path, port, log_path, command = start_server(args, workdir)
        print(f"soak: {' '.join(command)}")
        print(f"soak: server pid {proc.pid}, unix:{unix_path} and tcp:127.0.0.1:{port}; descriptor limit {limit}")
        time.sleep(0.2)
        rss_start = rss_kib(proc.pid)

        cfg = {
            "unix_path": unix_path,
            "tcp_port": port,
            "framing": args.framing,
            "seconds": args.seconds,
            "held_per_worker": split(args.connections, workers),
            "active_per_worker": -(-args.active // workers),
            "faults": faults,
            "fault_interval": args.fault_interval,
            "byte_interval": args.byte_interval,
            "write_timeout": args.write_timeout,
            "max_request_bytes": args.max_request_bytes,
            "connect_burst": 256,
            "establish_timeout": 60 + args.connections / 200,
            "wait_limit": args.seconds + 600,
            "seed": args.seed,
        }
        ctx = multiprocessing.get_context("fork")
        pipes, procs = [], []
        for i in range(workers):
            parent_end, child_end = ctx.Pipe()
            p = ctx.Process(target=worker_main, args=(i, cfg, child_end), daemon=True)
            p.start()
            pipes.append(parent_end)
            procs.append(p)

        def collect(expect, limit_s):
            out = []
            deadline = now() + limit_s
            for i, pipe in enumerate(pipes):
                if not pipe.poll(max(0.0, deadline - now())):
                    failures.append(f"worker {i} sent no '{expect}' report in time")
                    out.append(None)
                    continue
                msg = pipe.recv()
                if msg[0] == "crashed":
                    failures.append(msg[1])
                    out.append(None)
                else:
                    out.append(msg)
            return out

        t0 = now()
        ready = collect("held", cfg["establish_timeout"] + 30)
        held = sum(m[1] for m in ready if m)
        establish_s = now() - t0
        time.sleep(1)
        rss_held = rss_kib(proc.pid)
        print(f"soak: {held} of {args.connections} connections held after {establish_s:.1f} s; "
              f"server RSS {mib(rss_start)} at start, {mib(rss_held)} with the connections held")
        if failures:
            raise RuntimeError("could not hold the connections")

        t_start = now() + 0.2
        for pipe in pipes:
            pipe.send(("go", t_start))
        samples = []
        while now() < t_start + args.seconds:
            time.sleep(min(5.0, max(0.0, t_start + args.seconds - now())))
            r = rss_kib(proc.pid)
            samples.append((now() - t_start, r))
            print(f"soak: [{now() - t_start:5.1f} s] server RSS {mib(r)}", flush=True)
            if proc.poll() is not None:
                failures.append(f"the server exited during the run with status {proc.returncode}")
                break
        done = collect("done", REPLY_TIMEOUT + 2 * args.write_timeout + 15 + 120 + args.connections / 500)
        reports = [m[1] for m in done if m]
        time.sleep(1)
        rss_end = rss_kib(proc.pid)
        for pipe in pipes:
            try:
                pipe.send(("release",))
            except OSError:
                pass
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.terminate()
                failures.append("a worker did not exit")
        time.sleep(1)
        rss_released = rss_kib(proc.pid)
        with open(f"/proc/{proc.pid}/status") as status:
            hwm = next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), None)

        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(5)
            failures.append("the server did not stop within 30 s of SIGTERM")
        with open(log_path, errors="replace") as f:
            log = f.read().splitlines()

        # --- the report ---
        total, errors, fstats, held_lost, family = merge_reports(reports)
        active = sum(r["active"] for r in reports)
        verified = sum(r["verified"] for r in reports)
        levels = {}
        for line in log:
            parts = line.split(" ", 2)
            if len(parts) == 3:
                levels[parts[1]] = levels.get(parts[1], 0) + 1
        warn_kinds = {
            "slow readers cut off (\"took no reply\")": sum("took no reply" in l for l in log),
            "oversized requests refused": sum("refused; closing" in l for l in log),
            "read/write failures": sum(("read failed" in l or "write failed" in l) for l in log),
        }
        stopped = next((l for l in reversed(log) if "stopped: served" in l), "(no 'stopped' line)")

        print()
        print(f"== soak test: {args.seconds:.0f} s, framing {args.framing}, {workers} client processes")
        print(f"connections held:      {held} of {args.connections} "
              f"({family['unix']} UNIX, {family['tcp']} TCP; "
              f"each answered on opening and again at the end: {verified} of {held}; lost meanwhile: {held_lost})")
        print(f"lockstep load:         {active} of them, one request at a time each")
        print(f"well-behaved requests: sent {total['sent']}, answered {total['answered']}, errors {sum(errors.values())}"
              f"  ({total['answered'] / max(args.seconds, 1):.0f} per second over the run, "
              f"UNIX backlog retries {total['connect_retries']})")
        for why, n in sorted(errors.items()):
            print(f"  error: {why}: {n}")
        print("faults injected:")
        for kind in FAULT_KINDS:
            st = fstats[kind]
            if kind not in faults:
                print(f"  {FAULT_TEXT[kind]:28} not injected" + (" (no lines in raw framing)" if kind == "oversized" else ""))
                continue
            extra = ""
            if kind == "slow_reader" and st["cut_after"]:
                cuts = st["cut_after"]
                extra = (f"; cut off {min(cuts):.1f} to {max(cuts):.1f} s after their last send went through "
                         f"(write timeout {args.write_timeout:g} s), having sent {min(st['sent_bytes'])}"
                         f" to {max(st['sent_bytes'])} bytes")
            print(f"  {FAULT_TEXT[kind]:28} {st['injected']:6} ({st['unix']} UNIX, {st['tcp']} TCP): "
                  f"{st['ok']} handled as expected, {st['failed']} not{extra}")
            for why in st["why"]:
                print(f"      {why}")
        print(f"server RSS:            start {mib(rss_start)}, connections held {mib(rss_held)}, end {mib(rss_end)} "
              f"(connections still held), after they closed {mib(rss_released)}, peak {mib(hwm)}")
        print("                       during the run: " + ", ".join(f"{t:.0f} s {mib(r)}" for t, r in samples))
        print(f"server log:            {', '.join(f'{n} {lvl}' for lvl, n in sorted(levels.items()))}; "
              + "; ".join(f"{k}: {n}" for k, n in warn_kinds.items()))
        print(f"server stop:           exit {code}; {stopped.split(' ', 2)[-1]}")

        # --- expectations ---
        if held != args.connections:
            failures.append(f"held {held} connections, not {args.connections}")
        if verified != held or held_lost:
            failures.append(f"{verified} of {held} held connections answered at the end ({held_lost} lost)")
        if errors or total["sent"] != total["answered"]:
            failures.append(f"well-behaved clients: {sum(errors.values())} errors, sent {total['sent']} vs answered {total['answered']}")
        too_short = {
            "one_byte": args.seconds <= len(b"hello server\n") * args.byte_interval + 2,
            "slow_reader": args.seconds <= 1.25 * args.write_timeout + 5,
        }
        for kind in faults:
            st = fstats[kind]
            if st["injected"] == 0 and too_short.get(kind):
                print(f"note: no {FAULT_TEXT[kind]} fault fits in a run of {args.seconds:g} s")
            elif st["injected"] == 0:
                failures.append(f"no {FAULT_TEXT[kind]} fault was injected")
            if st["failed"]:
                failures.append(f"{st['failed']} {FAULT_TEXT[kind]} faults not handled as expected")
        if levels.get("error", 0) or levels.get("critical", 0):
            failures.append("the server logged errors: " + "; ".join(l for l in log if " error " in l or " critical " in l)[:2000])
        if code != 0:
            failures.append(f"the server exited {code} on SIGTERM, not 0")
        margin = max(rss_held * args.rss_margin / 100, args.rss_margin_mib * 1024) if rss_held else 0
        if rss_end is None or rss_held is None or rss_end > rss_held + margin:
            failures.append(f"RSS not flat: {mib(rss_end)} at the end vs {mib(rss_held)} with the connections held "
                            f"(margin {mib(margin)})")
        else:
            print(f"RSS flat:              end - held = {(rss_end - rss_held) / 1024:+.1f} MiB, within {mib(margin)} "
                  f"({args.rss_margin:g} %, at least {args.rss_margin_mib:g} MiB)")
    except RuntimeError:
        pass
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if args.keep:
            print(f"soak: kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"soak: {now() - started:.0f} s in all")
    if failures:
        print("SOAK FAILED:")
        for f in failures:
            print(f"  - {f}")
        return 1
    print("SOAK PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
