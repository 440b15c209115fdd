#!/usr/bin/env bash
# The PVH image with 1 vCPU: every check passes, the guest powers off, chv-vmm exits 0;
# the serial console goes to a file, the debug port's codes reach the log.
. "$(dirname "$0")/lib.sh"
need_kvm
run_vmm st "$T/run" --kernel "$ELF" --cpus boot=1 --memory size=64M -v \
	--serial "file=$T/console" --cmdline "chv.mem=64M chv.cpus=1 chv.tag=pvh-$$"
expect_status "$st" 0 "PVH boot" "$T/run"
guest_passed "$T/console" 7
tr -d "\r" <"$T/console" | grep -qx "# tag: pvh-$$" || fail "command line tag not echoed"
grep -q '^# boot: pvh' "$T/console" || fail "guest did not see the PVH protocol"
expect_ok "$T/console" "memory map"
expect_ok "$T/console" "acpi tables"
expect_ok "$T/console" "cpl3"
grep -q 'debug port: kernel code 0x40' "$T/run.err" || fail "no debug-port line for code 0x40 in the log"
grep -q 'guest powered off' "$T/run.err" || fail "no power-off line in the log"
[ ! -s "$T/run.out" ] || fail "stdout should be empty with --serial file"
echo PASS
