#!/usr/bin/env bash
# Seccomp on by default, with real VMs: chv-vmm boots the test guest with a
# disk, the rng and a console under its filters (every thread kind runs);
# --seccomp log and false also boot; a forbidden call kills chv-vmm with
# SIGSYS naming the call. Under chvd (--vm-user nobody): the VM's worker runs
# as nobody with no capability, every thread filtered; a worker that breaks
# its filter leaves its VM Failed with the call's name, and the other VMs and
# chvd carry on. The test-only trigger is CHV_TEST_SECCOMP_VIOLATION.
. "$(dirname "$0")/lib.sh"
need_kvm
field() { sed -nE "s/^$2:[[:space:]]+//p" "/proc/$1/status"; }

IMG=$T/disk.img
$PY -c 'import os, sys; open(sys.argv[1], "wb").write(os.urandom(1 << 20))' "$IMG"
CRC=$($PY -c 'import sys, zlib; print("%08x" % zlib.crc32(open(sys.argv[1], "rb").read()[:64 * 512]))' "$IMG")
for mode in default log false; do
	args=(); [ "$mode" = default ] || args=(--seccomp "$mode")
	run_vmm st "$T/$mode" "${args[@]}" --kernel "$ELF" --memory size=64M \
		--serial "file=$T/$mode.log" --disk "path=$IMG" --console "file=$T/$mode.con" \
		--cmdline "chv.checks=boot,pci,rng,blk,console chv.rng=1 chv.blk=64:$CRC chv.console=1"
	expect_status "$st" 0 "boot with --seccomp $mode" "$T/$mode"
	guest_passed "$T/$mode.log" 4
	grep -q 'seccomp' "$T/$mode.err" && { cat "$T/$mode.err"; fail "--seccomp $mode: seccomp messages"; }
done
# The io_uring-less path: the thread pool's workers under their filter.
run_vmm st "$T/tp" --kernel "$ELF" --memory size=64M --serial "file=$T/tp.log" \
	--disk "path=$IMG,direct=on" --cmdline "chv.checks=blk chv.blk=64:$CRC"
expect_status "$st" 0 "direct disk" "$T/tp"
guest_passed "$T/tp.log" 1

# A forbidden call in chv-vmm: SIGSYS (exit 128+31), the call named.
set +e
CHV_TEST_SECCOMP_VIOLATION=chv-vmm timeout 30 "$VMM" --kernel "$ELF" --memory size=32M \
	--serial off >"$T/kill.out" 2>"$T/kill.err"
st=$?
set -e
[ "$st" = 159 ] || { cat "$T/kill.err"; fail "violation: exit $st, expected 159 (SIGSYS)"; }
grep -q 'chv: seccomp: control thread made the forbidden system call ptrace (101)' "$T/kill.err" ||
	{ cat "$T/kill.err"; fail "the kill message does not name ptrace"; }

# ---- chvd ----
id nobody >/dev/null 2>&1 || skip "no user nobody for --vm-user"
chmod 755 "$T"
chown nobody "$IMG"
export CHV_TEST_SECCOMP_VIOLATION=bad
start_chvd --vm-user nobody
unset CHV_TEST_SECCOMP_VIOLATION
for v in good bad; do
	ctl create --id "$v" --kernel "$ELF" --memory size=32M --serial tty --disk "path=$IMG,readonly=on" \
		--cmdline "chv.mem=32M chv.cpus=1 chv.checks=boot chv.action=hang" >/dev/null
done
ctl boot good >/dev/null
wait_state good RUNNING 10
vpid=$("$CHVCTL" --json info good | sed -nE 's/.*"workerPid": *([0-9]+).*/\1/p')
[ "$(field "$vpid" Uid | awk '{print $1}')" = "$(id -u nobody)" ] || fail "good's worker is not uid nobody"
[ "$(field "$vpid" CapEff)" = 0000000000000000 ] || fail "good's worker kept capabilities"
[ "$(field "$vpid" NoNewPrivs)" = 1 ] || fail "good's worker: NoNewPrivs"
for st in /proc/"$vpid"/task/*/status; do
	grep -qE '^Seccomp:[[:space:]]+2' "$st" || fail "a thread of good's worker without a filter ($st)"
done
grep -Eq 'Landlock ABI [0-9]+|Landlock is not available' "$T/run/vms/good.log" ||
	fail "good's worker logged nothing about Landlock"
ctl boot bad >/dev/null || true
wait_state bad FAILED 10
ctl --json info bad >"$T/bad.json"
grep -q 'signal 31' "$T/bad.json" && grep -q 'forbidden system call ptrace' "$T/bad.json" ||
	{ cat "$T/bad.json"; fail "bad's failure reason does not name the call"; }
wait_state good RUNNING 1
ctl info good >/dev/null
ctl shutdown good --force >/dev/null
wait_state good SHUTDOWN 10
stop_chvd
echo PASS
