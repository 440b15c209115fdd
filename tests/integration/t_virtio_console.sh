#!/usr/bin/env bash
# virtio-console end to end: the guest's driver finds the device at the slot
# after the disks, reads its configuration and writes a known line through
# the transmit queue; the line reaches --console file= and a client of
# --console socket=; bad --console values are configuration errors naming
# --console; under chvd the file gets the line and the counters count it
# (tty is refused there); the same guest check passes under QEMU q35 with virtio-serial
# and a virtconsole on port 0.
. "$(dirname "$0")/lib.sh"
need_kvm
LINE='chv-testguest virtio-console hello'

for img in "$ELF" "$BZ"; do
	name=$(basename "$img")
	run_vmm st "$T/$name" --kernel "$img" --memory size=64M --serial "file=$T/$name.log" \
		--console "file=$T/$name.con" --cmdline "chv.checks=boot,pci,console chv.pci=3"
	expect_status "$st" 0 "$name" "$T/$name"
	guest_passed "$T/$name.log" 3
	expect_ok "$T/$name.log" "virtio-console"
	tr -d '\r' <"$T/$name.log" |
		grep -q '^# virtio-console: 00:02.0 1af4:1043, .*config 12 bytes, size 80x25, max_nr_ports 1' ||
		{ cat "$T/$name.log"; fail "$name: virtio-console not found at 00:02.0 with its configuration"; }
	[ "$(cat "$T/$name.con")" = "$LINE" ] ||
		{ od -c "$T/$name.con" | head; fail "$name: the console file does not hold the line"; }
done

# After a disk: the next free slot.
truncate -s 1M "$T/disk.img"
run_vmm st "$T/disk" --kernel "$ELF" --memory size=64M --serial "file=$T/disk.log" \
	--disk "path=$T/disk.img" --console "file=$T/disk.con" --cmdline "chv.console=1"
expect_status "$st" 0 "--disk with --console" "$T/disk"
expect_ok "$T/disk.log" "virtio-console"
tr -d '\r' <"$T/disk.log" | grep -q '^# virtio-console: 00:03.0 1af4:1043' ||
	{ cat "$T/disk.log"; fail "with one disk, virtio-console is not at 00:03.0"; }
grep -qx "$LINE" "$T/disk.con" || fail "with a disk, the line is not in the console file"

# --console null: the device is there, its output dropped; off: no device.
run_vmm st "$T/null" --kernel "$ELF" --memory size=64M --serial "file=$T/null.log" \
	--console null --cmdline "chv.console=1"
expect_status "$st" 0 "--console null" "$T/null"
expect_ok "$T/null.log" "virtio-console"
run_vmm st "$T/off" --kernel "$ELF" --memory size=64M --serial "file=$T/off.log" \
	--console off --cmdline "chv.checks=console"
expect_status "$st" 0 "--console off" "$T/off"
grep -q '^not ok 1 - virtio-console' "$T/off.log" ||
	{ cat "$T/off.log"; fail "--console off: the guest found a virtio-console"; }

# --console socket=: a client that connects while the guest hangs reads the
# line (kept in the sink's ring until it came).
sock=$T/con.sock
"$VMM" --kernel "$ELF" --memory size=64M --serial "file=$T/s.log" --console "socket=$sock" \
	--cmdline "chv.console=1 chv.action=hang" >"$T/s.out" 2>"$T/s.err" </dev/null &
pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { kill -TERM "$pid"; fail "no socket at $sock"; }
python3 - "$sock" "$LINE" >"$T/s.console" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1]); s.settimeout(0.5)
want = sys.argv[2].encode() + b"\n"
buf = b""; end = time.time() + 60
while want not in buf and time.time() < end:
    try:
        d = s.recv(65536)
        if not d: break
        buf += d
    except socket.timeout:
        pass
sys.stdout.write(buf.decode("ascii", "replace"))
PY
kill -TERM "$pid"
set +e; wait "$pid"; st=$?; set -e
expect_status "$st" 5 "SIGTERM while the guest hangs" "$T/s"
grep -qx "$LINE" "$T/s.console" || { cat "$T/s.console"; fail "the socket client did not read the line"; }
expect_ok "$T/s.log" "virtio-console"
[ ! -e "$sock" ] || fail "socket $sock left behind"

# Configuration errors: exit 2, naming --console.
for bad in "TTY" "file=" "socket=" "file" "pipe=/x" "socket=/$(printf 's%.0s' $(seq 120))"; do
	run_vmm st "$T/bad" --kernel "$ELF" --console "$bad"
	expect_status "$st" 2 "--console $bad" "$T/bad"
	grep -q -- '--console' "$T/bad.err" || { cat "$T/bad.err"; fail "--console $bad: message does not name --console"; }
done
run_vmm st "$T/bad" --kernel "$ELF" --serial tty --console tty
expect_status "$st" 2 "--serial tty --console tty" "$T/bad"
grep -q -- '--console: tty is already taken by --serial tty' "$T/bad.err" ||
	{ cat "$T/bad.err"; fail "two ttys: message does not name --console"; }
run_vmm st "$T/bad" --kernel "$ELF" --console "file=$T/no/such/dir/c.log"
expect_status "$st" 2 "--console file= in a missing directory" "$T/bad"
grep -q -- '--console' "$T/bad.err" || { cat "$T/bad.err"; fail "an unopenable console file does not name --console"; }

# Under chvd: the console's file, its counters; tty is refused by the API.
start_chvd
ctl create --id c1 --kernel "$ELF" --memory size=64M --serial tty --console "file=$T/c1.con" \
	--cmdline "chv.checks=boot,console chv.action=hang" >/dev/null
wait_state c1 CREATED 5
ctl boot c1 >/dev/null
wait_state c1 RUNNING 5
for _ in $(seq 300); do
	grep -qx "$LINE" "$T/c1.con" 2>/dev/null && break
	sleep 0.1
done
grep -qx "$LINE" "$T/c1.con" || fail "chvd: the line is not in the console file"
ctl counters c1 >"$T/counters"
value() { awk -v k="$1" '$1 == k { print $2 }' "$T/counters"; }
[ "$(value virtio.console.tx_bytes)" = "$(( ${#LINE} + 1 ))" ] ||
	{ cat "$T/counters"; fail "virtio.console.tx_bytes is not $(( ${#LINE} + 1 ))"; }
[ "$(value virtio.console.tx_requests)" = 1 ] || { cat "$T/counters"; fail "virtio.console.tx_requests is not 1"; }
[ "$(value virtio.console.errors)" = 0 ] || { cat "$T/counters"; fail "virtio.console.errors is not 0"; }
ctl shutdown c1 --force >/dev/null
wait_state c1 SHUTDOWN 5
ctl delete c1 >/dev/null
set +e
"$CHVCTL" create --id c2 --kernel "$ELF" --console tty >"$T/c2.out" 2>"$T/c2.err"
st=$?
set -e
[ "$st" != 0 ] || fail "chvctl create with --console tty succeeded"
grep -q "config.console.mode: TTY is not supported under chvd" "$T/c2.err" ||
	{ cat "$T/c2.err"; fail "the tty refusal does not name config.console.mode"; }
stop_chvd

command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (chv parts passed)"
run=$CHV_SOURCE_DIR/tests/guest/run-qemu.sh
# virtio-serial with one virtconsole (port 0): without MULTIPORT the driver
# uses queues 0 and 1 only, as with chv's device.
sh "$run" -M q35 -c 1 -m 128M -o "$T/q35.log" -a "chv.checks=boot,pci,console" "$ELF" \
	-- -device virtio-serial-pci,disable-legacy=on,addr=0x3 \
	-chardev "file,id=vcon,path=$T/q35.con" -device virtconsole,chardev=vcon ||
	{ cat "$T/q35.log"; fail "virtio-console check failed under QEMU q35"; }
expect_ok "$T/q35.log" "virtio-console"
tr -d '\r' <"$T/q35.log" | grep -q '^# virtio-console: 00:03.0 1af4:1043' ||
	{ cat "$T/q35.log"; fail "q35: the driver did not use 00:03.0 1af4:1043"; }
grep -qx "$LINE" "$T/q35.con" || { od -c "$T/q35.con" | head; fail "q35: the line is not in the chardev file"; }
echo PASS
