#!/usr/bin/env bash
# Daemon benchmarks (issue 3), in one run against a temporary chvd:
#   1. API Create+Boot -> the guest's first instruction (its first debug-port
#      write), against the raw KVM floor (bench/kvm_floor, same memory size)
#      and the floor of this guest's own start (kvm_floor running the same
#      guest image to the same port write); once with pre-started workers
#      (--warm-workers, default WARM=2) and once without (--warm-workers 0);
#   2. worker memory overhead: worker RSS minus the guest pages it touched;
#   3. Info latency with 8 concurrent clients on a daemon holding VMs;
#   4. how many VMs one daemon holds running at once, and the create+boot rate;
#      then all deleted and no worker left.
#   bench/api.sh [boot-iterations]   (default 30; CHV_BUILD_DIR: build dir, default build;
#   CHV_BENCH_GAP_MS: pause after each measured VM's Delete, default 0;
#   the sizes below may be overridden from the environment for a quick try)
# Needs root (or /dev/kvm access), builds a release build (no sanitizers).
set -euo pipefail
cd "$(dirname "$0")/.."
n_boot=${1:-30}
B=${CHV_BUILD_DIR:-build}
BOOT_MIB=${BOOT_MIB:-64}   # figure 1 and the floor
HOLD_VMS=${HOLD_VMS:-10}   # figures 2 and 3
HOLD_MIB=${HOLD_MIB:-64}
CLIENTS=${CLIENTS:-8}
CALLS=${CALLS:-2000}
RAMP_VMS=${RAMP_VMS:-500}  # figure 4
RAMP_MIB=${RAMP_MIB:-32}
RAMP_THREADS=${RAMP_THREADS:-8}
WARM=${WARM:-2}            # --warm-workers of the daemon for every phase but the cold one

# CHV_BENCH_NO_BUILD=1: use what is in $B as it is (a tree with unrelated
# half-finished changes need not build).
if [ -z "${CHV_BENCH_NO_BUILD:-}" ]; then
	./scripts/deps.sh
	cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DCHV_SANITIZE=OFF >/dev/null
	cmake --build "$B" -j"$(nproc)" --target chvd chv-vmm chv-testguest kvm_floor api_bench >/dev/null
fi
ELF=$(realpath "$B/guest/chv-testguest.elf")

tmp=$(mktemp -d /tmp/chv-apibench.XXXXXX)
chvd_pid=
# Every process whose command line names our directory is ours: chvd and its workers.
our_pids() {
	local p
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[ "$p" = "$$" ] && continue
		tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -qF -- "$tmp/" && echo "$p"
	done
	return 0
}
cleanup() {
	set +e
	if [ -n "$chvd_pid" ] && kill -0 "$chvd_pid" 2>/dev/null; then
		kill -TERM "$chvd_pid"
		for _ in $(seq 50); do kill -0 "$chvd_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$chvd_pid" 2>/dev/null
		wait "$chvd_pid" 2>/dev/null
	fi
	local p
	for p in $(our_pids); do kill -KILL "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
	echo "api.sh: $*" >&2
	echo "--- chvd log (last 30 lines) ---" >&2
	tail -n 30 "$tmp/chvd.log" >&2 || true
	exit 1
}

# 500 workers: a socket and a pidfd each in chvd, and gRPC's own.
ulimit -n 16384
sock=$tmp/chvd.sock
# start_daemon WARM-WORKERS
start_daemon() {
	"$B/bin/chvd" --listen "$sock" --state-dir "$tmp/state" --runtime-dir "$tmp/run" \
		--vmm "$(realpath "$B/bin/chv-vmm")" --max-vms 1024 --shutdown-vms-on-exit \
		--warm-workers "$1" >>"$tmp/chvd.log" 2>&1 &
	chvd_pid=$!
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
	[ -S "$sock" ] || fail "chvd did not create $sock within 10 s"
	# The pool is filled in the background: let it settle before measuring.
	for _ in $(seq 100); do
		[ "$(find "$tmp/run/pool" -name '*.sock' 2>/dev/null | wc -l)" -ge "$1" ] && break
		sleep 0.05
	done
	sleep 0.2
}
stop_daemon() {
	kill -TERM "$chvd_pid"
	wait "$chvd_pid" || fail "chvd exited with status $? on SIGTERM"
	chvd_pid=
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
bench() { "$B/bin/api_bench" "$sock" "$ELF" "$@"; }
val() { awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print "nan" }' "$2"; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN {
	ok = (op == "<=") ? v <= t : v >= t; print ok ? "met" : "NOT met" }'; }

echo "api.sh: 1/4 Create+Boot -> first instruction ($n_boot VMs, pool of 0 and $WARM) and the KVM floors" >&2
floor=$("$B/bin/kvm_floor" "$n_boot" "$BOOT_MIB")
floor_us=$(sed -E 's/.*median ([0-9.]+).*/\1/' <<<"$floor")
gfloor=$("$B/bin/kvm_floor" "$n_boot" "$BOOT_MIB" "$ELF")
gfloor_us=$(sed -E 's/.*median ([0-9.]+).*/\1/' <<<"$gfloor")
start_daemon 0
bench boot "$n_boot" "$BOOT_MIB" >"$tmp/boot-cold.out" || fail "boot phase (no pool) failed"
stop_daemon
start_daemon "$WARM"
bench boot "$n_boot" "$BOOT_MIB" >"$tmp/boot.out" || fail "boot phase failed"
echo "api.sh: 2-3/4 worker RSS ($HOLD_VMS VMs) and Info latency ($CLIENTS x $CALLS)" >&2
bench hold "$HOLD_VMS" "$HOLD_MIB" "$CLIENTS" "$CALLS" >"$tmp/hold.out" || fail "hold phase failed"
echo "api.sh: 4/4 ramp to $RAMP_VMS VMs ($RAMP_THREADS threads)" >&2
bench ramp "$RAMP_VMS" "$RAMP_MIB" "$RAMP_THREADS" >"$tmp/ramp.out" || fail "ramp phase failed"

# What chvd and the kernel say is left, besides api_bench's own checks.
# Idle pool workers are chvd's own, not VMs left behind: a worker is idle
# while the pool socket its command line names is still there.
idle_pool() {
	local p c
	for p in $(our_pids); do
		c=$(tr '\0' '\n' 2>/dev/null <"/proc/$p/cmdline" | grep -A1 -x -- --control | tail -n1)
		case $c in "$tmp/run/pool/"*) [ -S "$c" ] && echo "$p" ;; esac
	done
	return 0
}
left_procs=$(our_pids | { grep -vxF -e "$chvd_pid" $(idle_pool | sed 's/^/-e /') || true; } | wc -l)
left_socks=$(find "$tmp/run/vms" -name '*.sock' 2>/dev/null | wc -l)

b=$tmp/boot.out bc=$tmp/boot-cold.out h=$tmp/hold.out r=$tmp/ramp.out
first50=$(val first_io_p50_us "$b")
ratio=$(div "$first50" "$floor_us")
gratio=$(div "$first50" "$gfloor_us")
cfirst50=$(val first_io_p50_us "$bc")
rss_mean=$(val rss_overhead_mean_kb "$h")
rss_max=$(val rss_overhead_max_kb "$h")
info99=$(val info_p99_us "$h")
created=$(val ramp_created "$r")
rate=$(val ramp_rate_per_s "$r")

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
echo "host: $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cpus, $(free -g | awk '/^Mem:/ {print $2}') GiB; load average $load_before before, $load_after after"
echo "guest: $ELF, 1 vCPU, cmdline \"chv.checks=boot chv.action=hang\", serial off"
echo
echo "1. API Create+Boot -> first guest instruction ($n_boot VMs of $BOOT_MIB MiB, each deleted after; us)"
printf '   %-32s %10s %10s %10s\n' "" p50 p90 max
for f in "$bc:--warm-workers 0" "$b:--warm-workers $WARM"; do
	echo "   ${f#*:}"
	for k in create boot first_io; do
		printf '     %-30s %10s %10s %10s\n' "$k" "$(val ${k}_p50_us "${f%%:*}")" \
			"$(val ${k}_p90_us "${f%%:*}")" "$(val ${k}_max_us "${f%%:*}")"
	done
done
printf '   %-32s %10s\n' "raw KVM floor (median)" "$floor_us"
printf '   %-32s %10s\n' "guest start floor (median)" "$gfloor_us"
echo "   ratio first_io p50 / floor: $ratio with the pool, $(div "$cfirst50" "$floor_us") without (target <= 1.5: $(verdict "$ratio" '<=' 1.5))"
echo "   ratio first_io p50 / guest start floor: $gratio with the pool, $(div "$cfirst50" "$gfloor_us") without"
echo "   first_io p50 with the pool: $first50 us (target < 1000 us with a pre-warmed worker: $(verdict "$first50" '<=' 1000))"
echo
echo "2. Worker memory overhead ($HOLD_VMS running VMs of $HOLD_MIB MiB; RSS minus the guest-memory mapping)"
printf '   mean %.2f MiB, max %.2f MiB (target <= 2 MiB: %s)\n' "$(div "$rss_mean" 1024)" \
	"$(div "$rss_max" 1024)" "$(verdict "$rss_max" '<=' 2048)"
printf '   same, as PSS %.2f MiB, private %.2f MiB; guest pages touched %.2f MiB\n' \
	"$(div "$(val rss_pss_mean_kb "$h")" 1024)" "$(div "$(val rss_private_mean_kb "$h")" 1024)" \
	"$(div "$(val rss_guest_mean_kb "$h")" 1024)"
echo "   largest mappings of one worker (RSS KiB):"
awk '$1 == "rss_map" { printf "     %6d  %s\n", $2, substr($0, index($0, $3)) }' "$h"
echo
echo "3. Info latency ($CLIENTS clients, own connection each, $CALLS calls each, $HOLD_VMS VMs held; us)"
printf '   p50 %s, p90 %s, p99 %s, max %s; %s calls/s (target p99 <= 1000 us: %s)\n' \
	"$(val info_p50_us "$h")" "$(val info_p90_us "$h")" "$info99" "$(val info_max_us "$h")" \
	"$(val info_calls_per_s "$h")" "$(verdict "$info99" '<=' 1000)"
echo
echo "4. VMs per daemon (up to $RAMP_VMS of $RAMP_MIB MiB, $RAMP_THREADS client threads)"
echo "   created and booted: $created (target $RAMP_VMS: $(verdict "$created" '>=' "$RAMP_VMS")); first failure: $(sed -n 's/^ramp_failure //p' "$r")"
echo "   running per List: $(val ramp_running_listed "$r"), guests that reached their first instruction: $(val ramp_guests_started "$r")"
echo "   create+boot rate: $rate VMs/s over $(val ramp_seconds "$r") s (target >= 200: $(verdict "$rate" '>=' 200))"
echo "   delete all: $(val delete_seconds "$r") s, $(val delete_failed "$r") failed; workers left: $(val workers_left "$r") ($(val workers_zombie "$r") zombies), other processes left: $left_procs, worker sockets left: $left_socks"
