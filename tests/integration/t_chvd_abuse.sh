#!/usr/bin/env bash
# 10,000 API calls on chvd's unix socket from 16 concurrent client processes
# (tests/integration/chvd_load.py): valid calls mixed with malformed,
# oversized, out-of-order and cancelled ones, every answer's status checked.
# Afterwards chvd answers Ping, holds no more fds than before (a small fixed
# slack), has no worker or worker socket left, its RSS grew by a bounded
# amount, and it exits cleanly with no LeakSanitizer report. Without KVM a
# valid Create must fail as pinned below; with KVM the clients also create,
# boot, shut down and delete real VMs.
. "$(dirname "$0")/lib.sh"
need_chvd_leak_check
# ASan parks freed memory in a quarantine of up to 256 MiB, which would look
# like growth: 16 MiB keeps the RSS check meaningful.
export ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=16"
gen_py_protos "$T/py" || skip "needs python3-grpcio, python3-protobuf and protoc"
CALLS=${CHV_ABUSE_CALLS:-10000}
CLIENTS=16
FD_SLACK=4          # see below
RSS_GROWTH_MAX_KB=$((48 * 1024))

head -c 4096 /dev/zero >"$T/kernel" # a regular file: enough for chvd's checks
if [ -r /dev/kvm ] && [ -w /dev/kvm ] && [ -f "$ELF" ]; then
	MODE=(--kvm --kernel "$ELF")
elif [ ! -e /dev/kvm ]; then
	MODE=(--kernel "$T/kernel" --create-status "$CHVD_NO_KVM_STATUS" --create-detail "$CHVD_NO_KVM_DETAIL")
else
	echo "# /dev/kvm is there but not usable, or no test guest: valid Creates left out"
	MODE=(--kernel "$T/kernel" --create-weight 0)
fi
load() { timeout -k 5 "$1" "$PY" "$CHV_SOURCE_DIR/tests/integration/chvd_load.py" "$T/py" "$SOCK" \
	--clients "$CLIENTS" "${MODE[@]}" "${@:2}"; }

start_chvd
WARM=2 # chvd's default --warm-workers
fd_count() { find /proc/"$CHVD_PID"/fd -mindepth 1 | wc -l; }
rss_kb() { awk '/^VmRSS:/ {print $2}' /proc/"$CHVD_PID"/status; }
# settle: client connections closed and the worker pool refilled, i.e. the
# fd count the same three times in a row, 0.3 s apart (10 s at most).
settle() {
	local prev=-1 same=0
	for _ in $(seq 33); do
		local n; n=$(fd_count)
		if [ "$n" = "$prev" ] && [ "$(find "$T/run/pool" -name '*.sock' | wc -l)" = "$WARM" ]; then
			same=$((same + 1)); [ "$same" -ge 2 ] && return 0
		else
			same=0
		fi
		prev=$n; sleep 0.3
	done
}
fd_list() { for f in /proc/"$CHVD_PID"/fd/*; do readlink "$f"; done | sed 's/\[[0-9]*\]/[]/' | sort | uniq -c; }

# Warm-up: gRPC makes some of its fds and caches on first use; the baseline
# is taken after it.
load 60 --calls 800 --seed 7 >"$T/warmup.json" ||
	{ cat "$T/warmup.json"; tail -n 20 "$T/chvd.log"; fail "the warm-up load failed"; }
settle
FD0=$(fd_count); RSS0=$(rss_kb); fd_list >"$T/fds0"

START=$(date +%s)
load 110 --calls "$CALLS" --seed 1 >"$T/load.json" ||
	{ $PY -m json.tool "$T/load.json" || cat "$T/load.json"; tail -n 20 "$T/chvd.log"
	  fail "the load client saw unexpected answers (or failed)"; }
echo "# $(( $(date +%s) - START )) s: $($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["calls"], "calls,", d["mismatches"], "mismatches,", len(d["kinds"]), "kinds")' "$T/load.json")"
kill -0 "$CHVD_PID" 2>/dev/null || { tail -n 30 "$T/chvd.log"; fail "chvd died under the load"; }
"$CHVCTL" ping >"$T/ping" || fail "chvd does not answer Ping after the load"
grep -q ' 0 VMs' "$T/ping" || { cat "$T/ping"; fail "VMs are left defined after the load"; }

settle
FD1=$(fd_count); RSS1=$(rss_kb); fd_list >"$T/fds1"
echo "# chvd: fds $FD0 -> $FD1, RSS $RSS0 -> $RSS1 KiB"
# The slack: a worker being replaced in the pool holds a connection for a
# moment, and gRPC may open a wakeup fd for an extra poller thread; neither
# grows with the number of calls (10,000 calls over ~250 reconnections would
# leak hundreds).
[ "$FD1" -le $((FD0 + FD_SLACK)) ] ||
	{ diff "$T/fds0" "$T/fds1" || true; fail "chvd holds $FD1 fds after the load, $FD0 before"; }
[ $((RSS1 - RSS0)) -le "$RSS_GROWTH_MAX_KB" ] ||
	fail "chvd's RSS grew from $RSS0 to $RSS1 KiB (more than $RSS_GROWTH_MAX_KB KiB)"
# No worker beyond the idle pool (a stopped VM's worker may take a moment
# to be reaped), and no VM socket.
for _ in $(seq 50); do
	kids=$(pgrep -c -P "$CHVD_PID" || true)
	[ "$kids" = "$WARM" ] && break
	sleep 0.1
done
[ "$kids" = "$WARM" ] || { ps -o pid,args --ppid "$CHVD_PID"; fail "chvd has $kids child processes, expected the $WARM idle workers"; }
left=$(find "$T/run/vms" -name '*.sock' | wc -l)
[ "$left" = 0 ] || { ls -l "$T/run/vms"; fail "$left worker sockets left in $T/run/vms"; }

stop_chvd
pgrep -f -- "$T/run/" >/dev/null && { pgrep -af -- "$T/run/"; fail "workers outlived chvd"; }
echo PASS
