#!/usr/bin/env bash
# The whole lifecycle of the test guest through chvctl and a real chvd: create,
# boot, console history, pause/resume, guest power-off, boot again, shutdown,
# delete; events seen by a follower; chvctl's errors and exit statuses.
. "$(dirname "$0")/lib.sh"
need_kvm
start_chvd
ctl ping >"$T/ping"
grep -q "$("$CHVD" --version | cut -d' ' -f2)" "$T/ping" || fail "ping does not show the version"
"$CHVCTL" events --follow >"$T/events" 2>&1 &
EV=$!
sleep 0.3

ctl create --id one --kernel "$ELF" --cpus boot=2 --memory size=64M --serial tty \
	--cmdline "chv.mem=64M chv.cpus=2 chv.tag=one chv.action=hang" >/dev/null
wait_state one CREATED 5
ctl boot one >/dev/null
wait_state one RUNNING 5
for _ in $(seq 100); do ctl console one --no-follow >"$T/console" 2>/dev/null; grep -q '^# chv-testguest:' "$T/console" && break; sleep 0.1; done
guest_passed "$T/console" 7
tr -d '\r' <"$T/console" | grep -qx '# tag: one' || fail "console history lacks the tag"

ctl pause one >/dev/null; wait_state one PAUSED 5
ctl resume one >/dev/null; wait_state one RUNNING 5
ctl counters one >"$T/counters"
grep -q 'console.output_bytes' "$T/counters" || { cat "$T/counters"; fail "no console counter"; }
ctl list >"$T/list"
grep -iE '^one +running' "$T/list" >/dev/null || { cat "$T/list"; fail "list does not show one Running"; }
ctl shutdown one --force >/dev/null
wait_state one SHUTDOWN 5

# A guest that powers itself off: Shutdown, and Boot starts it again.
ctl create --id two --kernel "$ELF" --memory size=64M --serial tty \
	--cmdline "chv.mem=64M chv.cpus=1 chv.tag=two" >/dev/null
ctl boot two >/dev/null
wait_state two SHUTDOWN 30
ctl boot two >/dev/null
wait_state two SHUTDOWN 30
ctl --json info two >"$T/two.json"
grep -q '"bootCount": *2' "$T/two.json" || { cat "$T/two.json"; fail "boot count should be 2"; }

ctl delete one >/dev/null
ctl delete two >/dev/null
set +e
"$CHVCTL" info one >"$T/out" 2>"$T/err"; st=$?
set -e
[ "$st" = 1 ] || fail "info of a deleted VM: status $st, expected 1"
grep -q 'NOT_FOUND' "$T/err" || { cat "$T/err"; fail "no NOT_FOUND on stderr"; }
sleep 0.3
kill "$EV" 2>/dev/null || true

for k in CREATED BOOTED PAUSED RESUMED SHUTDOWN DELETED; do
	grep -qi " $k" "$T/events" || { cat "$T/events"; fail "no $k event"; }
done
stop_chvd
echo PASS
