#!/usr/bin/env bash
# chvd's pool of pre-started workers (--warm-workers): idle workers wait in
# <runtime>/pool; Create takes one (its socket moves to <runtime>/vms/<id>.sock)
# and the pool refills; a killed idle worker is replaced and never handed out;
# a chvd restart kills the idle workers it finds and re-adopts the VMs; SIGTERM
# leaves no idle worker; --warm-workers 0 starts a worker per Create.
. "$(dirname "$0")/lib.sh"
need_kvm
POOL=$T/run/pool

# Pids of the live processes whose command line names PATTERN (a fixed string).
pids_with() {
	local p
	for p in /proc/[0-9]*; do
		tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "$1" && echo "${p#/proc/}"
	done
	return 0
}
# Idle workers: started for the pool, and their socket is still there (a
# worker taken by a VM keeps its command line but moved its socket).
idle_pids() {
	local p c
	for p in $(pids_with "--control $POOL/"); do
		c=$(tr '\0' '\n' 2>/dev/null <"/proc/$p/cmdline" | grep -A1 -x -- --control | tail -n1)
		[ -S "$c" ] && echo "$p"
	done | sort -n
	return 0
}
nsocks() { find "$POOL" -name '*.sock' 2>/dev/null | wc -l; }
# wait_pool N: N idle workers, each with its socket, and no other socket.
wait_pool() {
	for _ in $(seq 100); do
		[ "$(idle_pids | wc -l)" = "$1" ] && [ "$(nsocks)" = "$1" ] && return 0
		sleep 0.05
	done
	ls -l "$POOL" || true; tail -n 20 "$T/chvd.log"
	fail "the pool did not settle at $1 idle workers (have $(idle_pids | wc -l) processes, $(nsocks) sockets)"
}
pid_of() { "$CHVCTL" --json info "$1" | sed -nE 's/.*"workerPid": *([0-9]+).*/\1/p'; }
mk() {
	ctl create --id "$1" --kernel "$ELF" --memory size=32M --serial tty \
		--cmdline "chv.mem=32M chv.cpus=1 chv.checks=boot chv.action=hang chv.tag=$1" >/dev/null
}
booted_ok() {
	local i
	for i in $(seq 100); do
		ctl console "$1" --no-follow >"$T/$1.console" 2>/dev/null
		grep -q '^# chv-testguest:' "$T/$1.console" && break
		sleep 0.1
	done
	guest_passed "$T/$1.console" 1
}

# Option errors name the option and the value.
for bad in x -1 65 ''; do
	set +e
	"$CHVD" --listen "$T/x.sock" --state-dir "$T/xs" --warm-workers "$bad" >"$T/out" 2>&1
	st=$?
	set -e
	[ "$st" = 2 ] || fail "--warm-workers '$bad': status $st, expected 2"
	grep -q -- "--warm-workers: \"$bad\"" "$T/out" || { cat "$T/out"; fail "no error naming --warm-workers '$bad'"; }
done

start_chvd --warm-workers 2
wait_pool 2
before=$(idle_pids)

# Create takes an idle worker: the VM's worker is one of them, its socket
# and log moved into vms/, and the pool refills with a new process.
mk a
pa=$(pid_of a)
grep -qx "$pa" <<<"$before" || fail "a's worker $pa was not one of the idle workers ($before)"
[ -S "$T/run/vms/a.sock" ] || fail "a's control socket is not at vms/a.sock"
[ -f "$T/run/vms/a.log" ] || fail "a's worker log is not at vms/a.log"
wait_pool 2
idle_pids | grep -qx "$pa" && fail "a's worker is still counted as idle"
ctl boot a >/dev/null
wait_state a RUNNING 5
booted_ok a
ctl pause a >/dev/null; wait_state a PAUSED 5
ctl resume a >/dev/null; wait_state a RUNNING 5

# A killed idle worker is replaced, not handed out.
victim=$(idle_pids | head -n1)
kill -9 "$victim"
for _ in $(seq 100); do idle_pids | grep -qx "$victim" || break; sleep 0.05; done
wait_pool 2
idle_pids | grep -qx "$victim" && fail "the killed idle worker $victim is still listed"
mk b
pb=$(pid_of b)
[ "$pb" != "$victim" ] || fail "b got the killed idle worker"
kill -0 "$pb" || fail "b's worker $pb is not alive"
ctl boot b >/dev/null
booted_ok b

# Every idle worker killed just before a Create: the Create still works.
wait_pool 2
kill -9 $(idle_pids)
mk c
ctl boot c >/dev/null
wait_state c RUNNING 5
booted_ok c
wait_pool 2

# chvd dies hard: the idle workers outlive it; a new chvd kills them, starts
# its own, and re-adopts the VMs (their sockets are in vms/, not the pool).
old_idle=$(idle_pids)
kill -9 "$CHVD_PID"; wait "$CHVD_PID" 2>/dev/null || true
for p in $old_idle; do kill -0 "$p" || fail "idle worker $p died with chvd"; done
start_chvd --warm-workers 2
wait_state a RUNNING 10
wait_state b RUNNING 10
wait_state c RUNNING 10
[ "$(pid_of a)" = "$pa" ] || fail "a's worker pid changed after re-adoption"
for p in $old_idle; do
	for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$p" 2>/dev/null && fail "idle worker $p of the old chvd was not killed"
done
wait_pool 2
grep -q 'killing idle worker' "$T/chvd.log" || fail "chvd did not log the idle workers it killed"
ctl shutdown a --force >/dev/null; wait_state a SHUTDOWN 5
# Boot of a stopped VM also takes from the pool.
idle=$(idle_pids)
ctl boot a >/dev/null; wait_state a RUNNING 5
grep -qx "$(pid_of a)" <<<"$idle" || fail "Boot of a stopped VM did not use an idle worker"
ctl delete c --force >/dev/null
[ -e "$T/run/vms/c.sock" ] && fail "c's socket is left after Delete"
wait_pool 2

# SIGTERM: VMs keep running, idle workers go, with their sockets.
idle=$(idle_pids)
stop_chvd
for p in $idle; do kill -0 "$p" 2>/dev/null && fail "idle worker $p outlived chvd's SIGTERM"; done
[ "$(nsocks)" = 0 ] || { ls -l "$POOL"; fail "sockets left in the pool after SIGTERM"; }
kill -0 "$pb" || fail "SIGTERM of chvd stopped b's worker"

# No pool: each Create starts its own worker, at its VM's socket path.
start_chvd --warm-workers 0
wait_state b RUNNING 10
sleep 0.3
[ "$(idle_pids | wc -l)" = 0 ] || fail "--warm-workers 0 started idle workers"
mk d
pd=$(pid_of d)
tr '\0' ' ' <"/proc/$pd/cmdline" | grep -qF -- "--control $T/run/vms/d.sock" ||
	fail "d's worker was not started for d"
ctl boot d >/dev/null
booted_ok d
for v in a b d; do ctl delete "$v" --force >/dev/null; done
stop_chvd
[ "$(pids_with "$T/run/" | wc -l)" = 0 ] || fail "workers left after deleting every VM"
echo PASS
