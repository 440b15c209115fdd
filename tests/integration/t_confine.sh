#!/usr/bin/env bash
# Worker confinement (vm/confine.c) and the workers' seccomp filters, seen from
# outside: chvd's idle workers have no_new_privs, a seccomp filter, only the
# capability a tap may need, none of chvd's fds, their own cgroup; one that
# breaks its filter dies of SIGSYS and chvd logs the call; --seccomp log lets
# it through. Runs without KVM; the VM parts (uid switch, Landlock, no
# capability left after Create) are in t_seccomp.sh, which needs KVM.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root (capabilities, cgroups, --vm-user)"

# The idle workers of the chvd started last, once ready (socket listening,
# confined, filtered): chvd logs each at debug level.
pool_pids() {
	local want=${1:-2} p
	for _ in $(seq 200); do
		p=$(sed -nE 's/.*idle worker [0-9]+ ready \(pid ([0-9]+)\).*/\1/p' "$T/chvd.log")
		[ "$(wc -w <<<"$p")" -ge "$want" ] && { echo $p; return 0; }
		sleep 0.05
	done
	cat "$T/chvd.log"; fail "fewer than $want idle workers started"
}
field() { sed -nE "s/^$2:[[:space:]]+//p" "/proc/$1/status"; }

# A cgroup of its own for this chvd, so the workers' cgroups land below it.
CG=
CG2=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
if [ -n "$CG2" ] && mkdir "$CG2/chv-it-$$" 2>/dev/null; then CG=$CG2/chv-it-$$; fi
cleanup_cg() {
	cleanup_processes
	[ -n "$CG" ] || return 0
	for _ in $(seq 50); do
		for d in "$CG"/chv-worker-*; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
		rmdir "$CG" 2>/dev/null && return 0
		[ -s "$CG/cgroup.procs" ] && cat "$CG/cgroup.procs" | xargs -r kill -KILL 2>/dev/null
		sleep 0.1
	done
}
trap cleanup_cg EXIT

# start_chvd_cg [ARGS...]: start_chvd, in $CG when there is one.
start_chvd_cg() {
	: >"$T/chvd.log"
	mkdir -p "$T/state" "$T/run"
	SOCK=$T/run/chvd.sock
	export CHVD_SOCKET=$SOCK
	if [ -n "$CG" ]; then
		bash -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' _ "$CG" \
			"$CHVD" -vv --listen "$SOCK" --state-dir "$T/state" --runtime-dir "$T/run" "$@" \
			>>"$T/chvd.log" 2>&1 &
	else
		"$CHVD" -vv --listen "$SOCK" --state-dir "$T/state" --runtime-dir "$T/run" "$@" \
			>>"$T/chvd.log" 2>&1 &
	fi
	CHVD_PID=$!
	for _ in $(seq 200); do [ -S "$SOCK" ] && return 0; sleep 0.05; done
	cat "$T/chvd.log"; fail "chvd did not start"
}

# ---- the default: --seccomp true, no --vm-user ----
start_chvd_cg --warm-workers 2
for pid in $(pool_pids 2); do
	[ "$(field "$pid" NoNewPrivs)" = 1 ] || fail "worker $pid: NoNewPrivs is not 1"
	[ "$(field "$pid" Seccomp)" = 2 ] || fail "worker $pid: Seccomp is not 2 (filter)"
	# CAP_NET_ADMIN (bit 12) only: a VM's tap needs it; Create drops it otherwise.
	[ "$(field "$pid" CapEff)" = 0000000000001000 ] ||
		fail "worker $pid: CapEff $(field "$pid" CapEff), expected only CAP_NET_ADMIN"
	[ "$(field "$pid" CapPrm)" = 0000000000001000 ] || fail "worker $pid: CapPrm $(field "$pid" CapPrm)"
	[ "$(field "$pid" CapBnd)" = 0000000000001000 ] || fail "worker $pid: CapBnd $(field "$pid" CapBnd)"
	[ "$(field "$pid" CapAmb)" = 0000000000000000 ] || fail "worker $pid: CapAmb $(field "$pid" CapAmb)"
	grep -q -- '--seccomp true' <(tr '\0' ' ' <"/proc/$pid/cmdline") ||
		fail "worker $pid was not started with --seccomp true"
	# Its fds: stdio, and what it made itself (epoll, timer, eventfd,
	# signalfd, its sockets); nothing of chvd's (lock, state, API socket).
	for fd in /proc/"$pid"/fd/*; do
		n=${fd##*/}; l=$(readlink "$fd")
		[ "$n" -le 2 ] && continue
		case "$l" in
		anon_inode:*|socket:*) ;;
		*) ls -l /proc/"$pid"/fd; fail "worker $pid holds fd $n -> $l" ;;
		esac
	done
	# Every thread is filtered (the sanitizer build may add none of its own).
	for st in /proc/"$pid"/task/*/status; do
		grep -qE '^Seccomp:[[:space:]]+2' "$st" || fail "worker $pid: a thread without a filter ($st)"
	done
	if [ -n "$CG" ]; then
		want="0::/chv-it-$$/chv-worker-$pid"
		grep -qx -- "$want" "/proc/$pid/cgroup" ||
			{ cat "/proc/$pid/cgroup"; fail "worker $pid is not in its cgroup ($want)"; }
	fi
done
stop_chvd
if [ -n "$CG" ]; then # chvd killed its idle workers and removed their cgroups
	for _ in $(seq 50); do ls -d "$CG"/chv-worker-* >/dev/null 2>&1 || break; sleep 0.1; done
	ls -d "$CG"/chv-worker-* 2>/dev/null && fail "chvd left worker cgroups behind"
fi

# ---- a worker that breaks its filter dies of SIGSYS; chvd says which call ----
CHV_TEST_SECCOMP_VIOLATION=worker-start start_chvd_cg --warm-workers 1
for _ in $(seq 100); do grep -q 'idle worker .* died' "$T/chvd.log" && break; sleep 0.1; done
grep -E 'idle worker [0-9]+ died \(worker process [0-9]+ killed by signal 31 \(Bad system call\): chv: seccomp: control thread made the forbidden system call ptrace \(101\)\)' "$T/chvd.log" >/dev/null ||
	{ grep -i 'worker' "$T/chvd.log" | tail; fail "chvd did not report the seccomp kill with the call's name"; }
kill -0 "$CHVD_PID" || fail "chvd died with its worker"
ctl list >/dev/null # chvd still serves
stop_chvd

# ---- --seccomp log: the same call is let through (and logged by the kernel) ----
rm -f "$T/run/pool/"*.log
: >"$T/chvd.log"
CHV_TEST_SECCOMP_VIOLATION=worker-start start_chvd_cg --warm-workers 1 --seccomp log
pid=$(pool_pids 1)
for _ in $(seq 100); do grep -qs 'no filter stopped it' "$T"/run/pool/*.log && break; sleep 0.05; done
grep -qs 'no filter stopped it' "$T"/run/pool/*.log || { cat "$T"/run/pool/*.log; fail "--seccomp log: the call did not go through"; }
kill -0 "$pid" || fail "--seccomp log: the worker died"
[ "$(field "$pid" Seccomp)" = 2 ] || fail "--seccomp log: no filter installed"
grep -q 'died' "$T/chvd.log" && fail "--seccomp log: a worker died"
stop_chvd

# ---- --seccomp false: no filter; --vm-user keeps CAP_SETUID/SETGID for Create ----
id nobody >/dev/null 2>&1 || skip "no user nobody for --vm-user"
start_chvd_cg --warm-workers 1 --seccomp false --vm-user nobody
pid=$(pool_pids 1)
[ "$(field "$pid" Seccomp)" = 0 ] || fail "--seccomp false: a filter is installed"
[ "$(field "$pid" NoNewPrivs)" = 1 ] || fail "--seccomp false: NoNewPrivs is not 1"
[ "$(field "$pid" CapEff)" = 00000000000010c0 ] ||
	fail "--vm-user: CapEff $(field "$pid" CapEff), expected CAP_NET_ADMIN|CAP_SETUID|CAP_SETGID"
grep -q -- '--vm-user nobody' <(tr '\0' ' ' <"/proc/$pid/cmdline") || fail "worker lacks --vm-user nobody"
stop_chvd
"$CHVD" --vm-user root --listen "$T/x.sock" 2>"$T/root.err" && fail "--vm-user root accepted"
grep -q 'not an unprivileged user' "$T/root.err" || fail "--vm-user root: $(cat "$T/root.err")"
"$CHVD" --seccomp maybe --listen "$T/x.sock" 2>"$T/m.err" && fail "--seccomp maybe accepted"
grep -q -- '--seccomp: unknown value "maybe"' "$T/m.err" || fail "--seccomp maybe: $(cat "$T/m.err")"

echo PASS
