#!/usr/bin/env bash
# The test guest under QEMU (microvm and q35; KVM when /dev/kvm is usable,
# TCG otherwise, as run-qemu.sh picks): proves its drivers against a mature
# VMM, with an initramfs and 2 vCPUs.
. "$(dirname "$0")/lib.sh"
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
# Malformed chv.net and chv.hostile values fail the cmdline check, each named;
# the net and hostile checks named without their keys fail every line they plan.
st=0
sh "$run" -c 1 -m 128M -o "$T/bad.log" -a "chv.checks=boot,cmdline,net,hostile chv.net=192.0.2.300,192.0.2.1,7777 chv.net=192.0.2.2,192.0.2.2,7777 chv.net=192.0.2.2,192.0.2.1,0 chv.hostile=net" "$ELF" 2>"$T/bad.err" || st=$?
sed -i 's/\r$//' "$T/bad.log"
[ "$st" = 1 ] || { cat "$T/bad.log"; fail "bad chv.net/chv.hostile values: run-qemu.sh exit $st, expected 1"; }
for want in '^1\.\.8$' '^ok 1 - boot protocol$' \
	'^not ok 2 - command line # 4 malformed chv\.\* option\(s\), first: chv\.net="192\.0\.2\.300,192\.0\.2\.1,7777" is invalid$' \
	'^# cmdline error: chv\.net="192\.0\.2\.2,192\.0\.2\.2,7777" is invalid$' \
	'^# cmdline error: chv\.net="192\.0\.2\.2,192\.0\.2\.1,0" is invalid$' \
	'^# cmdline error: chv\.hostile="net" is invalid$' \
	'^not ok 6 - net # no chv\.net=GUEST_IP,PEER_IP,PORT given$' \
	'^not ok 8 - hostile # no chv\.hostile=KIND given$' '^# chv-testguest: 1 passed, 7 failed$'; do
	grep -Eq "$want" "$T/bad.log" || { cat "$T/bad.log"; fail "bad keys: no line matching $want"; }
done
echo PASS
