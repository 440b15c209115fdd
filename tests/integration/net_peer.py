#!/usr/bin/env python3
"""The host's end of the test guest's virtio-net check (chv.net=GUEST,PEER,PORT).

Run inside the test's network namespace: binds UDP PEER_IP:PORT, waits for
the guest's "chv-net hello <mac>" from GUEST_IP:PORT, answers "ack <mac>",
forgets the guest's MAC (so the guest must answer an ARP request), pings
GUEST_IP three times (every reply required), then sends "done".
Exit status 0 when all of that worked; 1 with a "net_peer: FAIL: ..." line
otherwise (timeouts included).
"""
import argparse
import re
import socket
import subprocess
import sys
import time

HELLO = b"chv-net hello "


def fail(msg):
    print("net_peer: FAIL: " + msg, flush=True)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("guest_ip")
    ap.add_argument("peer_ip")
    ap.add_argument("port", type=int)
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds for the whole exchange (default 60)")
    a = ap.parse_args()
    deadline = time.monotonic() + a.timeout

    def left():
        return deadline - time.monotonic()

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((a.peer_ip, a.port))
    except OSError as e:
        fail("cannot bind %s:%d: %s" % (a.peer_ip, a.port, e))
    print("net_peer: listening on %s:%d" % (a.peer_ip, a.port), flush=True)

    while True:
        if left() <= 0:
            fail("no hello from %s within %.0f s" % (a.guest_ip, a.timeout))
        s.settimeout(left())
        try:
            data, src = s.recvfrom(2048)
        except socket.timeout:
            continue
        if src[0] == a.guest_ip and data.startswith(HELLO):
            break
        print("net_peer: ignored %r from %s:%d" % (data[:64], src[0], src[1]), flush=True)
    text = data.decode("ascii", "replace")
    print("net_peer: hello from %s:%d: %s" % (src[0], src[1], text), flush=True)
    if src[1] != a.port:
        fail("the hello came from port %d, not %d" % (src[1], a.port))
    if not re.fullmatch(r"chv-net hello ([0-9a-f]{2}:){5}[0-9a-f]{2}", text):
        fail("the hello %r does not end in a MAC address" % text)
    s.sendto(b"ack " + data[len(HELLO):], src)

    if left() <= 0:
        fail("out of time before the ping")
    # The kernel learnt the guest's MAC from its ARP request; forgetting it
    # makes the ping start with an ARP request the guest has to answer.
    subprocess.run(["ip", "neigh", "flush", "to", a.guest_ip], check=False)
    cmd = ["ping", "-n", "-c", "3", "-i", "0.2", "-W", "5", a.guest_ip]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=max(left(), 1))
    except subprocess.TimeoutExpired:
        fail("%s did not finish in time" % " ".join(cmd))
    for line in p.stdout.splitlines():
        print("net_peer: ping: " + line, flush=True)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", p.stdout)
    if p.returncode != 0 or not m or m.group(1) != "3" or m.group(2) != "3":
        fail("%s: exit status %d, not 3 replies to 3 requests" % (" ".join(cmd), p.returncode))

    s.sendto(b"done", src)
    print("net_peer: done sent; passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
