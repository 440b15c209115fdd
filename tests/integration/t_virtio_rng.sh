#!/usr/bin/env bash
# virtio-rng end to end: the guest's virtio-pci driver finds the device every
# VM has, sets it up and draws entropy through it, under chv-vmm (PVH and
# bzImage, default and explicit --rng src=), under chvd (counters show the
# requests and the ioeventfd kicks), and under QEMU q35 with its own
# virtio-rng-pci; a bad --rng is a configuration error naming --rng.
. "$(dirname "$0")/lib.sh"
need_kvm

for img in "$ELF" "$BZ"; do
	name=$(basename "$img")
	run_vmm st "$T/$name" --kernel "$img" --memory size=64M --serial "file=$T/$name.log" \
		--cmdline "chv.checks=boot,pci,rng chv.pci=2"
	expect_status "$st" 0 "$name" "$T/$name"
	guest_passed "$T/$name.log" 3
	expect_ok "$T/$name.log" "virtio-rng"
	tr -d '\r' <"$T/$name.log" | grep -q '^# virtio-rng: 00:01.0 1af4:1044, BAR0 at 0x' ||
		{ cat "$T/$name.log"; fail "$name: virtio-rng not found at 00:01.0"; }
done

# chv.rng=1 alone enables the check; a regular file is a valid source.
head -c 65536 /dev/urandom >"$T/entropy"
run_vmm st "$T/file" --kernel "$ELF" --memory size=64M --serial "file=$T/file.log" \
	--rng "src=$T/entropy" --cmdline "chv.rng=1"
expect_status "$st" 0 "--rng src=FILE" "$T/file"
expect_ok "$T/file.log" "virtio-rng"

# A source that gives nothing: the device answers with 0 bytes, the guest's
# check fails, and the VMM is unharmed (the guest still powers off).
run_vmm st "$T/null" --kernel "$ELF" --memory size=64M --serial "file=$T/null.log" \
	--rng src=/dev/null --cmdline "chv.checks=rng"
expect_status "$st" 0 "--rng src=/dev/null" "$T/null"
grep -q '^not ok 1 - virtio-rng # request 0: 0 bytes of 4096' "$T/null.log" ||
	{ cat "$T/null.log"; fail "an empty source did not fail the guest's check"; }

# Configuration errors: exit 2, naming --rng and the path.
for bad in "src=$T/missing" "src=$T" "src=" "path=/dev/urandom"; do
	run_vmm st "$T/bad" --kernel "$ELF" --rng "$bad"
	expect_status "$st" 2 "--rng $bad" "$T/bad"
	grep -q -- '--rng' "$T/bad.err" || { cat "$T/bad.err"; fail "--rng $bad: message does not name --rng"; }
done
run_vmm st "$T/bad" --kernel "$ELF" --rng "src=$T/missing"
grep -q -- "--rng: src=$T/missing: No such file" "$T/bad.err" ||
	{ cat "$T/bad.err"; fail "the missing source's path is not named"; }

# Under chvd: create with the same flag, boot, console, counters.
start_chvd
ctl create --id r1 --kernel "$ELF" --memory size=64M --serial tty --rng src=/dev/urandom \
	--cmdline "chv.checks=boot,rng chv.action=hang" >/dev/null
wait_state r1 CREATED 5
ctl --json info r1 >"$T/r1.json"
grep -q '/dev/urandom' "$T/r1.json" || { cat "$T/r1.json"; fail "info does not show rng.src"; }
ctl boot r1 >/dev/null
wait_state r1 RUNNING 5
for _ in $(seq 300); do
	ctl console r1 --no-follow >"$T/console" 2>/dev/null
	grep -q '^# chv-testguest:' "$T/console" && break
	sleep 0.1
done
guest_passed "$T/console" 2
expect_ok "$T/console" "virtio-rng"
ctl counters r1 >"$T/counters"
value() { awk -v k="$1" '$1 == k { print $2 }' "$T/counters"; }
req=$(value virtio.rng.requests) bytes=$(value virtio.rng.bytes) kicks=$(value virtio.rng.notifications)
[ -n "$req" ] && [ "$req" -ge 4 ] || { cat "$T/counters"; fail "virtio.rng.requests is '$req', expected >= 4"; }
[ "$bytes" = 16384 ] || { cat "$T/counters"; fail "virtio.rng.bytes is '$bytes', expected 16384"; }
# Every kick came through the ioeventfd, none through a vCPU exit.
[ -n "$kicks" ] && [ "$kicks" -ge 1 ] || { cat "$T/counters"; fail "no ioeventfd notifications"; }
[ "$(value virtio.rng.errors)" = 0 ] || { cat "$T/counters"; fail "virtio.rng.errors is not 0"; }
ctl shutdown r1 --force >/dev/null
wait_state r1 SHUTDOWN 5
# The API refuses a bad source, naming the field.
set +e
"$CHVCTL" create --id r2 --kernel "$ELF" --rng "src=$T/missing" >"$T/r2.out" 2>"$T/r2.err"
st=$?
set -e
[ "$st" != 0 ] || fail "chvctl create with a missing rng source succeeded"
grep -q "rng" "$T/r2.err" || { cat "$T/r2.err"; fail "the error does not name rng"; }
ctl delete r1 >/dev/null
stop_chvd

command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (chv parts passed)"
run=$CHV_SOURCE_DIR/tests/guest/run-qemu.sh
# disable-legacy=on: the modern-only id 0x1044, as chv presents it.
sh "$run" -M q35 -c 1 -m 128M -o "$T/q35.log" -a "chv.checks=boot,pci,rng" "$ELF" \
	-- -device virtio-rng-pci,disable-legacy=on,addr=0x3 ||
	{ cat "$T/q35.log"; fail "virtio-rng check failed under QEMU q35"; }
expect_ok "$T/q35.log" "virtio-rng"
tr -d '\r' <"$T/q35.log" | grep -q '^# virtio-rng: 00:03.0 1af4:1044' ||
	{ cat "$T/q35.log"; fail "q35: the driver did not use 00:03.0 1af4:1044"; }
# QEMU's default (transitional) device works through the same modern interface.
sh "$run" -M q35 -c 1 -m 128M -o "$T/q35t.log" -a "chv.rng=1" "$BZ" \
	-- -device virtio-rng-pci,addr=0x4 ||
	{ cat "$T/q35t.log"; fail "virtio-rng (transitional) check failed under QEMU q35"; }
expect_ok "$T/q35t.log" "virtio-rng"
echo PASS
