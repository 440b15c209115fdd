#!/usr/bin/env bash
# Guest resets: with --no-reboot, the ACPI reset register and a triple fault end
# chv-vmm with status 3; without it, the VM is rebuilt and boots again.
. "$(dirname "$0")/lib.sh"
need_kvm
for action in reset triplefault; do
	run_vmm st "$T/$action" --kernel "$ELF" --memory size=64M --serial tty --no-reboot \
		--cmdline "chv.mem=64M chv.cpus=1 chv.action=$action"
	expect_status "$st" 3 "chv.action=$action with --no-reboot" "$T/$action"
	guest_passed "$T/$action.out"
done
grep -q 'triple fault' "$T/triplefault.err" || fail "triple fault not logged"

"$VMM" --kernel "$ELF" --memory size=64M --serial "file=$T/reboots" -v \
	--cmdline "chv.mem=64M chv.cpus=2 chv.action=reset" --cpus boot=2 >/dev/null 2>"$T/reboot.err" &
pid=$!
for _ in $(seq 300); do
	[ "$(grep -c '^# chv-testguest:' "$T/reboots" 2>/dev/null || true)" -ge 3 ] && break
	sleep 0.1
done
kill -TERM "$pid"
set +e; wait "$pid"; st=$?; set -e
n=$(grep -c '^# chv-testguest: .* 0 failed' "$T/reboots")
[ "$n" -ge 3 ] || { cat "$T/reboot.err"; fail "expected >= 3 complete boots after resets, saw $n"; }
grep -q 'rebooting' "$T/reboot.err" || fail "no reboot in the log"
expect_status "$st" 5 "SIGTERM during reboots" "$T/reboot"
echo PASS
