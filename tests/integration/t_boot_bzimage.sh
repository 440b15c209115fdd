#!/usr/bin/env bash
# The bzImage of the same guest through the Linux boot protocol's 64-bit entry, 2 vCPUs.
. "$(dirname "$0")/lib.sh"
need_kvm
run_vmm st "$T/run" --kernel "$BZ" --cpus boot=2 --memory size=96M \
	--serial tty --cmdline "chv.mem=96M chv.cpus=2 chv.tag=bz-$$"
expect_status "$st" 0 "bzImage boot" "$T/run"
guest_passed "$T/run.out" 7
grep -q '^# boot: linux' "$T/run.out" || fail "guest did not see the Linux boot protocol"
tr -d "\r" <"$T/run.out" | grep -qx "# tag: bz-$$" || fail "command line tag not echoed"
expect_ok "$T/run.out" "smp"
echo PASS
