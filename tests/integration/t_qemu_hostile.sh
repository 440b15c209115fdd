#!/usr/bin/env bash
# Hostile mode under QEMU q35 (TCG where there is no KVM), every kind:
# blk feeds QEMU's virtio-blk-pci every kind of malformed descriptor chain
# (QEMU marks the device broken on most; the guest resets it and goes on, then
# reads the disk back: the chv.blk CRC); ports, mmio, msix, queues and storm
# abuse the I/O ports, the MMIO regions, MSI-X, queue layouts and interrupts
# (docs/test-guest.md, "Hostile mode"). The image's sha256 must not change,
# QEMU must end with the guest's power-off, and within a bounded time.
. "$(dirname "$0")/lib.sh"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed"
head -c $((2048 * 512)) /dev/urandom >"$T/disk.img"
before=$(sha256sum <"$T/disk.img")
crc=$($PY -c 'import sys, zlib; print("%08x" % zlib.crc32(open(sys.argv[1], "rb").read()[:64 * 512]))' "$T/disk.img")
kinds=blk,ports,mmio,msix,queues,storm
st=0
t0=$(date +%s%N)
sh "$CHV_SOURCE_DIR/tests/guest/run-qemu.sh" -M q35 -c 1 -m 128M -t 120 -o "$T/q35.log" \
	-a "chv.checks=boot,cmos,hostile chv.hostile=$kinds chv.blk=64:$crc" "$ELF" -- \
	-drive "file=$T/disk.img,if=none,id=d0,format=raw" \
	-device virtio-blk-pci,drive=d0,disable-legacy=on \
	-device virtio-rng-pci,disable-legacy=on 2>"$T/qemu.err" || st=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
sed -i 's/\r$//' "$T/q35.log"
[ "$st" = 0 ] || { cat "$T/q35.log" "$T/qemu.err"; fail "the hostile check failed under QEMU q35"; }
guest_passed "$T/q35.log" 14
grep -a '^# hostile: ' "$T/q35.log" | grep -av '^# hostile: ports: skipping'
echo "QEMU ran the hostile guest in $ms ms"
# Bounded: the whole run (SeaBIOS included) takes about 2 s here.
[ "$ms" -lt 60000 ] || fail "the hostile guest took $ms ms under QEMU"
expect_ok "$T/q35.log" "hostile: [0-9]+ malformed chains refused"
expect_ok "$T/q35.log" "hostile: device works after$"
for l in "ports: garbage to every I/O port" "ports: serial and cmos work after" \
	"mmio: garbage to every emulated region" "mmio: the VM works after \(cmos, virtio-rng\)" \
	"msix: garbage refused where it must be" "msix: device works after" \
	"queues: [0-9]+ of 13 bad layouts refused" "queues: device works after" \
	"storm: interrupts nobody takes" "storm: VM responsive after"; do
	expect_ok "$T/q35.log" "hostile: $l"
done
# The port sweep really ran (every port, three widths, minus the skips).
grep -Eq '^# hostile: ports: 7[0-9]{5} accesses' "$T/q35.log" || fail "the port sweep is short"
# Every ECAM function was visited, both virtio functions abused.
grep -q 'functions absent, [0-9]* present; 2 virtio function' "$T/q35.log" ||
	fail "the mmio kind did not reach both virtio functions"
# Out-of-range MSI-X vectors read back NO_VECTOR, four of them.
[ "$(grep -c 'queue reads 0xffff, config reads 0xffff' "$T/q35.log")" = 4 ] || fail "MSI-X vectors"
# The storms completed every request.
grep -q 'MSI-X: 4000 of 4000 requests' "$T/q35.log" || fail "the MSI-X storm fell short"
grep -q 'INTx: 4000 of 4000 requests' "$T/q35.log" || fail "the INTx storm fell short"
# What QEMU 7.2 refuses outright (it carries out reads into unbacked memory,
# which the guest accepts as harmless): at least 13 of the 15 blk chains.
n=$(sed -n 's/^ok [0-9]* - hostile: \([0-9]*\) malformed chains refused.*/\1/p' "$T/q35.log")
[ "$n" -ge 13 ] || fail "QEMU refused only $n malformed chains"
# QEMU says why on stderr, one line per broken device.
k=$(grep -c 'qemu-system-x86_64: ' "$T/qemu.err" || true)
[ "$k" -ge 5 ] || { cat "$T/qemu.err"; fail "QEMU reported only $k virtio errors"; }
[ "$(sha256sum <"$T/disk.img")" = "$before" ] || fail "the image changed: a malformed write landed"
echo PASS
