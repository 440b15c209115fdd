#!/usr/bin/env bash
# Hostile mode under QEMU q35 (TCG where there is no KVM): the test guest
# feeds QEMU's virtio-blk-pci every kind of malformed descriptor chain
# (chv.hostile=blk). QEMU marks the device broken on most of them; the guest
# resets it and goes on, then reads the disk back (chv.blk CRC). The image's
# sha256 must not change: no malformed write may reach it.
. "$(dirname "$0")/lib.sh"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed"
head -c $((2048 * 512)) /dev/urandom >"$T/disk.img"
before=$(sha256sum <"$T/disk.img")
crc=$($PY -c 'import sys, zlib; print("%08x" % zlib.crc32(open(sys.argv[1], "rb").read()[:64 * 512]))' "$T/disk.img")
st=0
sh "$CHV_SOURCE_DIR/tests/guest/run-qemu.sh" -M q35 -c 1 -m 128M -t 120 -o "$T/q35.log" \
	-a "chv.checks=boot,hostile chv.hostile=blk chv.blk=64:$crc" "$ELF" -- \
	-drive "file=$T/disk.img,if=none,id=d0,format=raw" \
	-device virtio-blk-pci,drive=d0,disable-legacy=on 2>"$T/qemu.err" || st=$?
sed -i 's/\r$//' "$T/q35.log"
[ "$st" = 0 ] || { cat "$T/q35.log" "$T/qemu.err"; fail "the hostile check failed under QEMU q35"; }
guest_passed "$T/q35.log" 3
expect_ok "$T/q35.log" "hostile: [0-9]+ malformed chains refused"
expect_ok "$T/q35.log" "hostile: device works after$"
grep '^# hostile: ' "$T/q35.log"
# What QEMU 7.2 refuses outright (it carries out reads into unbacked memory,
# which the guest accepts as harmless): at least the 13 others.
n=$(sed -n 's/^ok [0-9]* - hostile: \([0-9]*\) malformed chains refused.*/\1/p' "$T/q35.log")
[ "$n" -ge 13 ] || fail "QEMU refused only $n malformed chains"
# QEMU says why on stderr, one line per broken device.
k=$(grep -c 'qemu-system-x86_64: ' "$T/qemu.err" || true)
[ "$k" -ge 5 ] || { cat "$T/qemu.err"; fail "QEMU reported only $k virtio errors"; }
[ "$(sha256sum <"$T/disk.img")" = "$before" ] || fail "the image changed: a malformed write landed"
echo PASS
