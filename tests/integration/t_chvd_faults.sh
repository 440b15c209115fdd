#!/usr/bin/env bash
# Faults stay contained: kill -9 or a crash of one worker fails only its VM, with the reason;
# kill -9 of chvd leaves the VMs running, and a new chvd re-adopts them.
. "$(dirname "$0")/lib.sh"
need_kvm
start_chvd
for v in a b c; do
	ctl create --id "$v" --kernel "$ELF" --memory size=32M --serial tty \
		--cmdline "chv.mem=32M chv.cpus=1 chv.checks=boot chv.action=hang" >/dev/null
	ctl boot "$v" >/dev/null
done
pid_of() { "$CHVCTL" --json info "$1" | sed -nE 's/.*"workerPid": *([0-9]+).*/\1/p'; }
pa=$(pid_of a); pb=$(pid_of b)
[ -n "$pa" ] && [ "$pa" -gt 0 ] || fail "no worker pid for a"
kill -9 "$pa"
wait_state a FAILED 10
ctl --json info a >"$T/a.json"
grep -q 'signal 9' "$T/a.json" || { cat "$T/a.json"; fail "the failure reason does not name signal 9"; }
wait_state b RUNNING 1
wait_state c RUNNING 1
# A failed VM can be booted again (a new worker).
ctl boot a >/dev/null
wait_state a RUNNING 10
# A worker that crashes (a segmentation fault, as a device bug would give;
# in the sanitized build ASan reports it and exits 1): Failed with a reason,
# the others untouched.
pa2=$(pid_of a)
kill -SEGV "$pa2"
wait_state a FAILED 10
ctl --json info a >"$T/a2.json"
grep -Eq 'signal 11|status 1' "$T/a2.json" || { cat "$T/a2.json"; fail "a's crash has no reason"; }
wait_state b RUNNING 1
ctl boot a >/dev/null
wait_state a RUNNING 10

# A guest the hypervisor cannot run: Failed with the reason (its worker stays up);
# Boot replaces the worker and runs it again.
ctl create --id m --kernel "$ELF" --memory size=32M --serial tty \
	--cmdline "chv.checks=boot chv.action=mmioexec" >/dev/null
ctl boot m >/dev/null
wait_state m FAILED 10
ctl --json info m >"$T/m.json"
grep -q 'internal error' "$T/m.json" || { cat "$T/m.json"; fail "m's failure reason lacks the internal error"; }
ctl boot m >/dev/null
for _ in $(seq 100); do ctl --json info m | grep -q '"bootCount": *2' && break; sleep 0.1; done
wait_state m FAILED 10
ctl --json info m | grep -q '"bootCount": *2' || fail "m was not booted a second time"
ctl delete m >/dev/null
wait_state b RUNNING 1

# chvd dies hard; the workers do not.
kill -9 "$CHVD_PID"; wait "$CHVD_PID" 2>/dev/null || true
kill -0 "$pb" || fail "worker of b died with chvd"
start_chvd
wait_state b RUNNING 10
wait_state c RUNNING 10
[ "$(pid_of b)" = "$pb" ] || fail "b's worker pid changed after re-adoption"
ctl pause b >/dev/null; wait_state b PAUSED 5
ctl resume b >/dev/null; wait_state b RUNNING 5
ctl shutdown c --force >/dev/null; wait_state c SHUTDOWN 5
ctl list >"$T/list"
grep -iE '^a +running' "$T/list" >/dev/null || { cat "$T/list"; fail "a not listed Running"; }
# SIGTERM leaves VMs running; --shutdown-vms-on-exit stops them.
stop_chvd
kill -0 "$pb" || fail "SIGTERM of chvd stopped b's worker"
start_chvd --shutdown-vms-on-exit
wait_state b RUNNING 10
stop_chvd
for _ in $(seq 50); do kill -0 "$pb" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pb" 2>/dev/null && fail "--shutdown-vms-on-exit left b's worker running"
echo PASS
