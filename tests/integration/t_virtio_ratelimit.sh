#!/usr/bin/env bash
# virtio-blk rate limits, measured by a real guest: the test guest's
# chv.bench under chv-vmm on a disk with
#   1. bw_size=4194304,bw_refill_time=1000 (4 MiB/s), 1 MiB sequential reads;
#   2. ops_size=100,ops_refill_time=1000 (100 requests/s), 4 KiB random reads;
#   3. the same bandwidth limit through --rate-limit-group and
#      rate_limit_group=;
# each for SECS seconds, and the achieved rate must be within 10% of the limit.
# The same guest without a limit must go well above it (otherwise the
# comparison would prove nothing).
#
# A bucket starts full (ratelimit.h): the first bw_size bytes (ops_size
# requests) go through at once, and from then on the rate is the limit. So the
# rate compared is (bytes - bw_size) / seconds (and (ops - ops_size) / seconds).
# The guest's time runs from its first request to its last completion,
# including the requests still in flight at the deadline (it waits for them),
# so every byte counted was admitted by the limiter within the time measured,
# and the last completion lands on a refill: the figure does not depend on
# where the deadline falls between two admissions.
#
# The guest's figures use its TSC rate; where the guest does not know it
# (tsc=assumed: no CPUID leaf gives it on this host) they are recomputed from
# cycles= with the host's TSC rate (bench/host_io tsc), which is the guest's
# under KVM without TSC scaling.
. "$(dirname "$0")/lib.sh"
need_kvm
SECS=3
MIB=$((1 << 20))
head -c $((64 * MIB)) /dev/urandom >"$T/disk.img"
HOST_IO=$CHV_BUILD_DIR/bin/host_io
[ -x "$HOST_IO" ] || fail "$HOST_IO is not built"
host_khz=$("$HOST_IO" tsc | sed 's/.*tsc_khz=//')

# bench NAME KIND SECONDS DISK-OPTIONS [chv-vmm args...]: runs the guest's
# bench; sets OPS, BYTES and SECONDS (from the raw cycles).
bench() {
	local name=$1 kind=$2 secs=$3 disk=$4 line khz
	shift 4
	run_vmm st "$T/$name" --kernel "$ELF" --memory size=64M --cpus boot=1 \
		--serial "file=$T/$name.log" --disk "path=$T/disk.img,$disk" "$@" \
		--cmdline "chv.checks=bench chv.bench=$kind:$secs"
	expect_status "$st" 0 "$name" "$T/$name"
	sed -i 's/\r$//' "$T/$name.log"
	guest_passed "$T/$name.log" 1
	expect_ok "$T/$name.log" "bench $kind$"
	line=$(grep "^# bench: $kind " "$T/$name.log") || { cat "$T/$name.log"; fail "$name: no bench line"; }
	echo "$name: $line"
	val() { sed -nE "s/.* $1=([^ ]+).*/\1/p" <<<"$line"; }
	[ "$(val errors)" = 0 ] || fail "$name: errors in $line"
	OPS=$(val ops) BYTES=$(val bytes)
	khz=$(val tsc_khz)
	[ "$(val tsc)" = assumed ] && khz=$host_khz
	SECONDS_=$(awk -v c="$(val cycles)" -v k="$khz" 'BEGIN { printf "%.6f", c / k / 1000 }')
}

# within NAME GOT WANT: GOT is within 10% of WANT.
within() {
	awk -v g="$2" -v w="$3" 'BEGIN { exit !(g >= 0.9 * w && g <= 1.1 * w) }' ||
		fail "$1: $2 is not within 10% of $3"
	echo "$1: $2 (limit $3, within 10%)"
}

# Without a limit: well above both limits.
bench free-seq blk-seqread 1 direct=off
free_bw=$(awk -v b="$BYTES" -v s="$SECONDS_" 'BEGIN { printf "%.0f", b / s }')
[ "$free_bw" -gt $((3 * 4 * MIB)) ] || fail "unlimited: $free_bw bytes/s, not above 3 x 4 MiB/s"
bench free-rand blk-randread 1 direct=off
free_iops=$(awk -v o="$OPS" -v s="$SECONDS_" 'BEGIN { printf "%.0f", o / s }')
[ "$free_iops" -gt 300 ] || fail "unlimited: $free_iops requests/s, not above 3 x 100"

# 1. Bandwidth: 4 MiB/s.
bench bw blk-seqread $SECS "bw_size=$((4 * MIB)),bw_refill_time=1000"
within "bw: (bytes - bw_size) / s" \
	"$(awk -v b="$BYTES" -v s="$SECONDS_" -v z=$((4 * MIB)) 'BEGIN { printf "%.0f", (b - z) / s }')" \
	$((4 * MIB))
# Not a figure that happens to fit: at least SECS seconds of refills were needed.
[ "$BYTES" -ge $(((4 + 4 * SECS) * MIB)) ] ||
	fail "bw: only $BYTES bytes in $SECS s: less than the bucket plus $SECS s at the limit"

# 2. Operations: 100/s (the bandwidth is unlimited).
bench ops blk-randread $SECS "ops_size=100,ops_refill_time=1000"
within "ops: (ops - ops_size) / s" \
	"$(awk -v o="$OPS" -v s="$SECONDS_" 'BEGIN { printf "%.1f", (o - 100) / s }')" 100
[ "$OPS" -ge $((100 + 100 * SECS)) ] ||
	fail "ops: only $OPS requests in $SECS s: less than the bucket plus $SECS s at the limit"

# 3. The bandwidth limit through a group, with a half-size bucket refilled
# twice as often: the same 4 MiB/s.
bench group blk-seqread $SECS rate_limit_group=g0 \
	--rate-limit-group "id=g0,bw_size=$((2 * MIB)),bw_refill_time=500"
within "group: (bytes - bw_size) / s" \
	"$(awk -v b="$BYTES" -v s="$SECONDS_" -v z=$((2 * MIB)) 'BEGIN { printf "%.0f", (b - z) / s }')" \
	$((4 * MIB))
echo PASS
