#!/usr/bin/env bash
# An initramfs reaches the guest intact (size and CRC-32 checked by the guest, at CPL3),
# through PVH's module list and through the zero page.
. "$(dirname "$0")/lib.sh"
need_kvm
head -c 3145739 /dev/urandom >"$T/initrd"   # 3 MiB + 11 bytes: not page-sized on purpose
size=$(stat -c %s "$T/initrd")
crc=$(python3 -c 'import sys, zlib; print("%08x" % zlib.crc32(open(sys.argv[1], "rb").read()))' "$T/initrd")
for img in "$ELF" "$BZ"; do
	run_vmm st "$T/run" --kernel "$img" --initramfs "$T/initrd" --memory size=64M --serial tty \
		--cmdline "chv.mem=64M chv.cpus=1 chv.initrd=$size:$crc"
	expect_status "$st" 0 "initramfs with $(basename "$img")" "$T/run"
	guest_passed "$T/run.out" 7
	expect_ok "$T/run.out" "initramfs"
done
# The guest really checks: a wrong CRC must fail its check.
run_vmm st "$T/bad" --kernel "$ELF" --initramfs "$T/initrd" --memory size=64M --serial tty \
	--cmdline "chv.mem=64M chv.cpus=1 chv.initrd=$size:deadbeef"
grep -Eq '^not ok [0-9]+ - initramfs' "$T/bad.out" || { cat "$T/bad.out"; fail "a wrong CRC was not detected"; }
echo PASS
