#!/usr/bin/env bash
# chvd's own deny-list filter (daemon/sandbox.c): on every thread by default,
# denied calls fail with EPERM (the test probe: acct(NULL)), the API still
# works, workers started afterwards inherit it, chvd exits cleanly (and
# LeakSanitizer, which needs ptrace, still runs in the sanitized build);
# --seccomp log and false install nothing that refuses.
. "$(dirname "$0")/lib.sh"
need_chvd_leak_check
export CHV_TEST_SECCOMP_VIOLATION=chvd
# The socket exists before the filter is in: wait for this chvd's "serving".
serving() {
	for _ in $(seq 200); do
		tail -c +"$CHVD_LOG_FROM" "$T/chvd.log" | grep -q 'serving' && return 0
		sleep 0.05
	done
	fail "chvd did not report serving"
}
log_since() { tail -c +"$CHVD_LOG_FROM" "$T/chvd.log"; }

start_chvd --warm-workers 1
serving
for t in /proc/"$CHVD_PID"/task/*; do
	grep -q '^Seccomp:[[:space:]]*2$' "$t/status" || fail "chvd thread ${t##*/} has no filter"
done
log_since | grep -q 'seccomp probe: acct() = Operation not permitted' ||
	{ cat "$T/chvd.log"; fail "the denied call was not refused with EPERM"; }
ctl ping | grep -q "^chvd " || fail "ping failed under the filter"
ctl list >/dev/null
# A Create spawns (or takes) a worker: it must work or fail for the host's
# reason only (no /dev/kvm here), never because of chvd's filter.
head -c 4096 /dev/zero >"$T/kernel"
set +e
"$CHVCTL" create --id s1 --kernel "${ELF:-$T/kernel}" --memory size=32M >"$T/out" 2>"$T/err"
st=$?
set -e
if [ -c /dev/kvm ]; then
	[ "$st" = 0 ] || { cat "$T/err"; fail "Create failed under chvd's filter"; }
	ctl delete s1 >/dev/null
else
	grep -q "$CHVD_NO_KVM_STATUS" "$T/err" || { cat "$T/err"; fail "Create: unexpected answer"; }
fi
# The worker spawned to replace the one Create took carries chvd's filter
# under its own (two filters; the ones started before the filter have one).
stacked=false
for _ in $(seq 100); do
	for w in $(pgrep -f -- "$T/run/pool" || true); do
		n=$(awk '/^Seccomp_filters:/ {print $2}' /proc/"$w"/status 2>/dev/null || echo 0)
		[ "${n:-0}" -ge 2 ] && stacked=true
	done
	$stacked && break
	sleep 0.1
done
$stacked || fail "no worker spawned after the filter carries chvd's filter"
stop_chvd

start_chvd --seccomp log
serving
log_since | grep -q 'seccomp probe: acct() = 0' ||
	{ tail -n 5 "$T/chvd.log"; fail "--seccomp log refused the probe"; }
ctl ping >/dev/null
stop_chvd

start_chvd --seccomp false
serving
grep -q '^Seccomp:[[:space:]]*0$' /proc/"$CHVD_PID"/status || fail "--seccomp false installed a filter"
stop_chvd
echo PASS
