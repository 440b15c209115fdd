#!/usr/bin/env bash
# Hostile mode under chv-vmm: the test guest feeds chv's virtio-blk every
# kind of malformed descriptor chain (chv.hostile=blk, see docs/test-guest.md).
# chv must refuse every one of them (DEVICE_NEEDS_RESET, or an error status
# for the well-formed but wrong requests), say why in its log, keep running,
# work again after the guest's reset (the final read has the host's CRC), and
# end with a normal power-off. No malformed write may reach the image.
# Then every kind at once (blk, ports, mmio, msix, queues, storm): chv must
# refuse every bad queue layout and out-of-range MSI-X vector, survive garbage
# on every port and MMIO region and both interrupt storms, and still power off.
. "$(dirname "$0")/lib.sh"
need_kvm
head -c $((2048 * 512)) /dev/urandom >"$T/disk.img"
before=$(sha256sum <"$T/disk.img")
crc=$($PY -c 'import sys, zlib; print("%08x" % zlib.crc32(open(sys.argv[1], "rb").read()[:64 * 512]))' "$T/disk.img")

for img in "$ELF" "$BZ"; do
	name=$(basename "$img")
	run_vmm st "$T/$name" --kernel "$img" --memory size=64M --serial "file=$T/$name.log" \
		--disk "path=$T/disk.img" \
		--cmdline "chv.checks=boot,hostile chv.hostile=blk chv.blk=64:$crc"
	expect_status "$st" 0 "$name: hostile guest" "$T/$name"
	sed -i 's/\r$//' "$T/$name.log"
	guest_passed "$T/$name.log" 3
	grep '^# hostile: ' "$T/$name.log"
	# Every case refused; none carried out, not even the harmless reads.
	expect_ok "$T/$name.log" "hostile: 15 malformed chains refused$"
	expect_ok "$T/$name.log" "hostile: device works after$"
	grep -q '^# hostile: 15 cases, 15 refused, 0 accepted' "$T/$name.log" ||
		{ cat "$T/$name.log"; fail "$name: not every case was refused"; }
	# The device said why, once per broken state, and nothing crashed.
	k=$(grep -c 'device needs a reset' "$T/$name.err" || true)
	[ "$k" -ge 10 ] || { cat "$T/$name.err"; fail "$name: chv-vmm logged $k device resets, expected >= 10"; }
	for why in 'is outside the queue' 'next [0-9]* is outside the table' '(a loop)' \
		'has length 0' 'is not in guest RAM' 'nested' 'not a nonzero multiple of 16' \
		'no device-writable status byte' 'more than the queue size'; do
		grep -q -- "$why" "$T/$name.err" ||
			{ cat "$T/$name.err"; fail "$name: chv-vmm's log does not say '$why'"; }
	done
	if grep -Eq 'AddressSanitizer|UndefinedBehaviorSanitizer|runtime error' "$T/$name.err"; then
		cat "$T/$name.err"; fail "$name: a sanitizer report in chv-vmm's log"
	fi
	[ "$(sha256sum <"$T/disk.img")" = "$before" ] || fail "$name: the image changed: a malformed write landed"
done

kinds=blk,ports,mmio,msix,queues,storm
for img in "$ELF" "$BZ"; do
	name=all-$(basename "$img")
	t0=$(date +%s%N)
	CHV_TIMEOUT=240 run_vmm st "$T/$name" --kernel "$img" --memory size=64M \
		--serial "file=$T/$name.log" --disk "path=$T/disk.img" \
		--cmdline "chv.checks=boot,cmos,hostile chv.hostile=$kinds chv.blk=64:$crc"
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	expect_status "$st" 0 "$name: hostile guest, every kind" "$T/$name"
	sed -i 's/\r$//' "$T/$name.log"
	guest_passed "$T/$name.log" 14
	grep -a '^# hostile: ' "$T/$name.log" | grep -av 'ports: skipping\|^# hostile: *[0-9]* '
	echo "$name: chv-vmm ran the hostile guest in $ms ms"
	expect_ok "$T/$name.log" "hostile: 15 malformed chains refused$"
	expect_ok "$T/$name.log" "hostile: queues: 13 of 13 bad layouts refused$"
	for l in "ports: serial and cmos work after" "mmio: garbage to every emulated region" \
		"mmio: the VM works after \(cmos, virtio-rng\)" "msix: garbage refused where it must be" \
		"msix: device works after" "queues: device works after" \
		"storm: interrupts nobody takes" "storm: VM responsive after"; do
		expect_ok "$T/$name.log" "hostile: $l"
	done
	[ "$(grep -c 'queue reads 0xffff, config reads 0xffff' "$T/$name.log")" = 4 ] ||
		fail "$name: an out-of-range MSI-X vector was taken"
	grep -q 'MSI-X: 4000 of 4000 requests' "$T/$name.log" || fail "$name: the MSI-X storm fell short"
	grep -q 'INTx: 4000 of 4000 requests' "$T/$name.log" || fail "$name: the INTx storm fell short"
	# chv says why it refused each bad queue layout.
	for why in 'is not a power of two' 'is not in guest RAM' 'is not 16-byte aligned' \
		'is not 2-byte aligned' 'is not 4-byte aligned'; do
		grep -q -- "$why" "$T/$name.err" ||
			{ tail -n 50 "$T/$name.err"; fail "$name: chv-vmm's log does not say '$why'"; }
	done
	if grep -Eq 'AddressSanitizer|UndefinedBehaviorSanitizer|runtime error' "$T/$name.err"; then
		cat "$T/$name.err"; fail "$name: a sanitizer report in chv-vmm's log"
	fi
	[ "$(sha256sum <"$T/disk.img")" = "$before" ] || fail "$name: the image changed"
done
echo PASS
