#!/usr/bin/env bash
# Hostile mode under chv-vmm: the test guest feeds chv's virtio-blk every
# kind of malformed descriptor chain (chv.hostile=blk, see docs/test-guest.md).
# chv must refuse every one of them (DEVICE_NEEDS_RESET, or an error status
# for the well-formed but wrong requests), say why in its log, keep running,
# work again after the guest's reset (the final read has the host's CRC), and
# end with a normal power-off. No malformed write may reach the image.
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
echo PASS
