#!/usr/bin/env python3
"""The host's end of the test guest's network benchmark (chv.bench=net-tx|net-rx).

Run where the guest's tap is (the benchmark's network namespace): binds UDP
PEER_IP:PORT and waits for the guest's "chv-bench hello KIND SECONDS", answers
"chv-bench go" (to every hello), then
  net-tx: counts the guest's "chv-bench data" datagrams until its
          "chv-bench end OPS BYTES" (or 2 s without data);
  net-rx: sends MTU-sized "chv-bench data" datagrams to GUEST_IP:PORT as
          fast as it can until the guest's "end" (or SECONDS + 30 s).
Prints one line "net_peer_bench: KIND datagrams=N bytes=N seconds=S
mib_s=X" with what it received or sent (bytes: UDP payload) and, for
net-tx, what the guest said it sent. Exit status 0 when the exchange
finished, 1 with a "net_peer_bench: FAIL: ..." line otherwise.
"""
import argparse
import select
import socket
import sys
import time

HELLO = b"chv-bench hello "
DATA = b"chv-bench data"
END = b"chv-bench end"
GO = b"chv-bench go"


def fail(msg):
    print("net_peer_bench: FAIL: " + msg, flush=True)
    sys.exit(1)


def report(kind, n, nbytes, secs, extra=""):
    rate = nbytes / secs / 1048576 if secs > 0 else 0.0
    print("net_peer_bench: %s datagrams=%d bytes=%d seconds=%.3f mib_s=%.2f%s"
          % (kind, n, nbytes, secs, rate, extra), flush=True)


def receive(s, guest, deadline):
    """net-tx: count data until "end"; returns (datagrams, bytes, seconds, end text)."""
    n = nbytes = 0
    first = last = None
    s.setblocking(False)
    while True:
        now = time.monotonic()
        if now > deadline:
            fail("no \"chv-bench end\" before the deadline (%d datagrams so far)" % n)
        if last is not None and now - last > 2.0:
            return n, nbytes, last - first, None
        r, _, _ = select.select([s], [], [], 0.5)
        if not r:
            continue
        while True:
            try:
                data, src = s.recvfrom(4096)
            except BlockingIOError:
                break
            if src[0] != guest:
                continue
            if data.startswith(DATA):
                last = time.monotonic()
                if first is None:
                    first = last
                else:  # the first one starts the clock
                    n += 1
                    nbytes += len(data)
            elif data.startswith(END):
                return n, nbytes, (last - first) if first else 0.0, data.decode("ascii", "replace")
            elif data.startswith(HELLO):
                s.sendto(GO, src)


def send(s, guest, port, mtu, deadline):
    """net-rx: send until "end"; returns (datagrams, bytes, seconds)."""
    payload = DATA + bytes(mtu - 28 - len(DATA))
    dst = (guest, port)
    n = nbytes = 0
    s.setblocking(False)
    t0 = time.monotonic()
    while True:
        for _ in range(64):
            try:
                s.sendto(payload, dst)
                n += 1
                nbytes += len(payload)
            except (BlockingIOError, OSError):
                # A full queue towards the tap: drop and go on, as a UDP
                # sender does.
                break
        try:
            while True:
                data, src = s.recvfrom(4096)
                if src[0] == guest and data.startswith(END):
                    return n, nbytes, time.monotonic() - t0
                if src[0] == guest and data.startswith(HELLO):
                    s.sendto(GO, src)
        except BlockingIOError:
            pass
        if time.monotonic() > deadline:
            fail("no \"chv-bench end\" from the guest before the deadline")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("guest_ip")
    ap.add_argument("peer_ip")
    ap.add_argument("port", type=int)
    ap.add_argument("--mtu", type=int, default=1500, help="IP MTU of the link (default 1500)")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds to wait for the guest's hello (default 120)")
    a = ap.parse_args()

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    try:
        s.bind((a.peer_ip, a.port))
    except OSError as e:
        fail("cannot bind %s:%d: %s" % (a.peer_ip, a.port, e))
    print("net_peer_bench: listening on %s:%d" % (a.peer_ip, a.port), flush=True)

    deadline = time.monotonic() + a.timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            fail("no hello from %s within %.0f s" % (a.guest_ip, a.timeout))
        s.settimeout(left)
        try:
            data, src = s.recvfrom(4096)
        except socket.timeout:
            continue
        if src[0] == a.guest_ip and data.startswith(HELLO):
            break
    words = data[len(HELLO):].decode("ascii", "replace").split()
    if len(words) != 2 or words[0] not in ("net-tx", "net-rx") or not words[1].isdigit():
        fail("malformed hello %r" % data)
    kind, secs = words[0], int(words[1])
    print("net_peer_bench: hello from %s:%d: %s %d s" % (src[0], src[1], kind, secs), flush=True)
    s.sendto(GO, src)
    run_deadline = time.monotonic() + secs + 30
    if kind == "net-tx":
        n, nbytes, t, end = receive(s, a.guest_ip, run_deadline)
        report("received", n, nbytes, t, " guest: %s" % (end or "(no end seen)"))
        if n == 0:
            fail("no data received")
    else:
        n, nbytes, t = send(s, a.guest_ip, src[1], a.mtu, run_deadline)
        report("sent", n, nbytes, t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
