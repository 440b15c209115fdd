#!/usr/bin/env bash
# systemd integration without systemd running: socket activation through
# systemd-socket-activate, and sd_notify READY/STATUS/STOPPING to a test-owned
# NOTIFY_SOCKET; a second chvd on the same socket refuses to start.
. "$(dirname "$0")/lib.sh"
command -v systemd-socket-activate >/dev/null || skip "systemd-socket-activate not installed"
mkdir -p "$T/state" "$T/run"
SOCK=$T/run/act.sock
export CHVD_SOCKET=$SOCK
$PY - "$T/notify" >"$T/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
try:
    while True:
        msg = s.recv(4096).decode()
        print(msg.replace("\n", "|"), flush=True)
        if "STOPPING=1" in msg:
            break
except socket.timeout:
    pass
PY
NP=$!
for _ in $(seq 50); do [ -S "$T/notify" ] && break; sleep 0.1; done
systemd-socket-activate -l "$SOCK" -E NOTIFY_SOCKET="$T/notify" -E ASAN_OPTIONS="$ASAN_OPTIONS" \
	"$CHVD" --listen "$SOCK" --state-dir "$T/state" --runtime-dir "$T/run" >"$T/chvd.log" 2>&1 &
CHVD_PID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
# The first connection starts chvd.
"$CHVCTL" --timeout 20000 ping >"$T/ping" || { cat "$T/chvd.log"; fail "ping through the activated socket failed"; }
grep -q 'socket systemd passed' "$T/chvd.log" || { cat "$T/chvd.log"; fail "chvd did not use the passed socket"; }
set +e
"$CHVD" --listen "$SOCK" --state-dir "$T/state2" --runtime-dir "$T/run" >"$T/second.log" 2>&1
st=$?
set -e
[ "$st" != 0 ] || fail "a second chvd on the same socket started"
grep -q 'another chvd' "$T/second.log" || { cat "$T/second.log"; fail "second chvd: no clear refusal"; }
"$CHVCTL" ping >/dev/null || fail "the first chvd stopped serving after the second one's attempt"
kill -TERM "$CHVD_PID"; wait "$CHVD_PID" || fail "chvd exited non-zero on SIGTERM"
wait "$NP" || true
grep -q 'READY=1' "$T/notify.log" || { cat "$T/notify.log"; fail "no READY=1"; }
grep -q 'STATUS=serving, 0 VMs' "$T/notify.log" || { cat "$T/notify.log"; fail "no STATUS with the VM count"; }
grep -q 'STOPPING=1' "$T/notify.log" || { cat "$T/notify.log"; fail "no STOPPING=1"; }
echo PASS
