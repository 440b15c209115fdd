#!/usr/bin/env bash
# The test guest under QEMU (microvm and q35, KVM): proves its drivers against a
# mature VMM, with an initramfs and 2 vCPUs.
. "$(dirname "$0")/lib.sh"
need_kvm
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed"
head -c 1000003 /dev/urandom >"$T/initrd"
crc=$(python3 -c 'import sys, zlib; print("%08x" % zlib.crc32(open(sys.argv[1], "rb").read()))' "$T/initrd")
run=$CHV_SOURCE_DIR/tests/guest/run-qemu.sh
sh "$run" -c 2 -m 128M -i "$T/initrd" -o "$T/elf.log" \
	-a "chv.mem=128M chv.cpus=2 chv.initrd=1000003:$crc chv.tag=qemu" "$ELF" ||
	{ cat "$T/elf.log"; fail "PVH image failed under QEMU microvm"; }
guest_passed "$T/elf.log" 9
# QEMU enters the bzImage through its 16-bit code and gives it no memory map (see docs/test-guest.md).
sh "$run" -c 2 -m 128M -o "$T/bz.log" -a "chv.cpus=2" "$BZ" ||
	{ cat "$T/bz.log"; fail "bzImage failed under QEMU microvm"; }
guest_passed "$T/bz.log" 7
sh "$run" -M q35 -c 2 -m 128M -o "$T/q35.log" -a "chv.cpus=2" "$ELF" ||
	{ cat "$T/q35.log"; fail "PVH image failed under QEMU q35"; }
guest_passed "$T/q35.log" 7
echo PASS
