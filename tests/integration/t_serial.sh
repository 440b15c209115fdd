#!/usr/bin/env bash
# Serial console modes: tty, file, null, off, socket (history for a client that
# connects late, then SIGTERM stops the VMM with status 5 and removes the socket).
. "$(dirname "$0")/lib.sh"
need_kvm
args=(--kernel "$ELF" --memory size=64M --cmdline "chv.mem=64M chv.cpus=1")
run_vmm st "$T/tty" "${args[@]}" --serial tty
expect_status "$st" 0 "serial tty" "$T/tty"
guest_passed "$T/tty.out"
echo previous >"$T/file"
run_vmm st "$T/f" "${args[@]}" --serial "file=$T/file"
expect_status "$st" 0 "serial file" "$T/f"
head -n1 "$T/file" | grep -q previous || fail "serial file was not appended to"
guest_passed "$T/file"
run_vmm st "$T/null" "${args[@]}" --serial null
expect_status "$st" 0 "serial null" "$T/null"
[ ! -s "$T/null.out" ] || fail "serial null printed output"
run_vmm st "$T/off" "${args[@]}" --serial off
expect_status "$st" 0 "serial off" "$T/off"
[ ! -s "$T/off.out" ] || fail "serial off printed output"

sock=$T/console.sock
"$VMM" --kernel "$ELF" --memory size=64M --serial "socket=$sock" \
	--cmdline "chv.mem=64M chv.cpus=1 chv.action=hang" >"$T/s.out" 2>"$T/s.err" &
pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || fail "no socket at $sock"
python3 - "$sock" >"$T/s.console" <<'PY'
import re, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1]); s.settimeout(0.5)
buf = b""; end = time.time() + 60
while not re.search(rb"# chv-testguest:[^\n]*\n", buf) and time.time() < end:
    try:
        d = s.recv(65536)
        if not d: break
        buf += d
    except socket.timeout:
        pass
sys.stdout.write(buf.decode("ascii", "replace"))
PY
guest_passed "$T/s.console"
kill -TERM "$pid"
set +e; wait "$pid"; st=$?; set -e
expect_status "$st" 5 "SIGTERM while the guest hangs" "$T/s"
[ ! -e "$sock" ] || fail "socket $sock left behind"
echo PASS
