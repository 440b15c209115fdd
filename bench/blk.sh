#!/usr/bin/env bash
# virtio-blk throughput, in one run on one image file:
#   - the host's own rate on the file (bench/host_io: 4 KiB random reads, 16
#     in flight; 1 MiB sequential reads and writes, 4 in flight, writes ending
#     in one fdatasync), with O_DIRECT and through the page cache, each from
#     one thread with io_uring and from 4 or 16 threads; the better of the two
#     is the limit;
#   - the test guest's chv.bench (the same three, the same depths, from CPL3)
#     under chv-vmm (--disk path=...,direct=on, then direct=off);
#   - the same guest under QEMU q35 with virtio-blk-pci (cache=none,
#     aio=io_uring, then cache=writeback,aio=threads);
# then a table with the figures and the chv/QEMU and chv/host ratios.
# QEMU microvm is not run: the test guest finds virtio devices by PCI over
# the MCFG table, which QEMU's microvm does not provide (docs/test-guest.md).
#
# Without /dev/kvm chv cannot run: its column says so, QEMU runs under TCG
# (marked "TCG: not comparable"; the guest does not know its TSC rate there,
# so its figures are rescaled with the host's, measured by host_io tsc), and
# the script still exits 0. On a KVM host the same script gives the real
# comparison.
#   bench/blk.sh [SECONDS]   (default 5 per run)
#   BENCH_DISK_MIB  image size (default 1024)
#   BENCH_DIR       where the image is made (default /var/tmp; not a tmpfs,
#                   where O_DIRECT fails)
#   CHV_BUILD_DIR   build directory (default build, built in release mode);
#   CHV_BENCH_NO_BUILD=1 uses what is there as it is
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
B=${CHV_BUILD_DIR:-build}
MIB=${BENCH_DISK_MIB:-1024}
kvm=
[ -r /dev/kvm ] && [ -w /dev/kvm ] && kvm=1

if [ -z "${CHV_BENCH_NO_BUILD:-}" ]; then
	./scripts/deps.sh
	cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DCHV_SANITIZE=OFF >/dev/null
	cmake --build "$B" -j"$(nproc)" --target chv-testguest host_io ${kvm:+chv-vmm} >/dev/null
fi
ELF=$(realpath "$B/guest/chv-testguest.elf")
HOST_IO=$B/bin/host_io
tmp=$(mktemp -d "${BENCH_DIR:-/var/tmp}/chv-blkbench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
img=$tmp/disk.img

fail() { echo "blk.sh: $*" >&2; exit 1; }

echo "blk.sh: making a $MIB MiB image in $tmp" >&2
head -c $((MIB << 20)) /dev/urandom >"$img"
sync "$img"
host_khz=$("$HOST_IO" tsc | sed 's/.*tsc_khz=//')

# val LINE KEY: the value of KEY=... in a "bench:"/"host_io:" line.
val() { sed -nE "s/.* $2=([^ ]+).*/\1/p" <<<"$1"; }
warm() { cat "$img" >/dev/null; }

# figure LINE KIND: the figure a row shows (IOPS for randread, MiB/s else),
# from the raw counts; a guest that assumed its TSC rate is rescaled with
# the host's (under TCG the guest's TSC is the host's).
figure() {
	local line=$1 kind=$2 khz s
	khz=$(val "$line" tsc_khz)
	[ "$(val "$line" tsc)" = assumed ] && khz=$host_khz
	if [ -n "$(val "$line" cycles)" ]; then
		s=$(awk -v c="$(val "$line" cycles)" -v k="$khz" 'BEGIN { printf "%.6f", c / k / 1000 }')
	else
		s=$(val "$line" seconds)
	fi
	awk -v o="$(val "$line" ops)" -v b="$(val "$line" bytes)" -v s="$s" -v k="$kind" \
		'BEGIN { if (k == "randread") printf "%.0f", o / s; else printf "%.1f", b / s / 1048576 }'
}

# guest_run NAME LOG: checks the guest's log and prints its bench line.
guest_line() {
	local name=$1 log=$2 line
	line=$(tr -d '\r' <"$log" | grep '^# bench: ') || { cat "$log" >&2; fail "$name: no bench line"; }
	tr -d '\r' <"$log" | grep -q '^ok 1 - bench ' || { cat "$log" >&2; fail "$name: the bench failed"; }
	grep '^# bench: blk' <<<"$line"
}

# Under TCG the guest's seconds stretch by (4 GHz guess / host TSC): ask for
# fewer so a run takes about as long as asked.
tcg_secs=$(awk -v s="$secs" -v k="$host_khz" 'BEGIN { v = int(s * k / 4000000 + 0.5); print v < 1 ? 1 : v }')

declare -A R # R[mode,kind,column] = figure
for mode in direct cached; do
	for kind in randread seqread seqwrite; do
		best=
		for engine in io_uring threads; do
			[ "$mode" = cached ] && [ "$kind" != seqwrite ] && warm
			echo "blk.sh: host $kind $mode $engine" >&2
			depth=4
			[ "$kind" = randread ] && depth=16
			line=$("$HOST_IO" "$kind" "$img" "$secs" "$mode" $depth $engine) ||
				fail "host_io $kind $mode $engine failed"
			echo "  $line" >&2
			f=$(figure "$line" "$kind")
			if [ -z "$best" ] || awk -v a="$f" -v b="$best" 'BEGIN { exit !(a > b) }'; then
				best=$f
				R[$mode,$kind,host_engine]=$(val "$line" engine)
			fi
		done
		R[$mode,$kind,host]=$best
	done
	for kind in randread seqread seqwrite; do
		if [ -z "$kvm" ]; then
			R[$mode,$kind,chv]="no /dev/kvm"
			continue
		fi
		[ "$mode" = cached ] && [ "$kind" != seqwrite ] && warm
		echo "blk.sh: chv $kind $mode" >&2
		d=on
		[ "$mode" = cached ] && d=off
		timeout -k 5 $((secs + 60)) "$B/bin/chv-vmm" --kernel "$ELF" --memory size=128M \
			--cpus boot=1 --serial "file=$tmp/chv.log" --disk "path=$img,direct=$d" \
			--cmdline "chv.checks=bench chv.bench=blk-$kind:$secs" >"$tmp/chv.out" 2>&1 ||
			{ cat "$tmp/chv.out" "$tmp/chv.log" >&2; fail "chv-vmm blk-$kind direct=$d failed"; }
		line=$(guest_line "chv $kind" "$tmp/chv.log")
		echo "  $line" >&2
		R[$mode,$kind,chv]=$(figure "$line" "$kind")
	done
	for kind in randread seqread seqwrite; do
		[ "$mode" = cached ] && [ "$kind" != seqwrite ] && warm
		drive="cache=none,aio=io_uring"
		[ "$mode" = cached ] && drive="cache=writeback,aio=threads"
		s=$secs
		[ -z "$kvm" ] && s=$tcg_secs
		echo "blk.sh: QEMU $kind $drive" >&2
		sh tests/guest/run-qemu.sh -M q35 -c 1 -m 128M -t $((secs + 120)) -o "$tmp/qemu.log" \
			-a "chv.checks=bench chv.bench=blk-$kind:$s" "$ELF" -- \
			-drive "file=$img,if=none,id=d0,format=raw,$drive" \
			-device virtio-blk-pci,drive=d0,disable-legacy=on ||
			{ cat "$tmp/qemu.log" >&2; fail "QEMU blk-$kind $drive failed"; }
		line=$(guest_line "QEMU $kind" "$tmp/qemu.log")
		echo "  $line" >&2
		R[$mode,$kind,qemu]=$(figure "$line" "$kind")
	done
done

ratio() { # A B: A/B when both are numbers
	[[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]] && awk -v a="$1" -v b="$2" \
		'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }' || echo "-"
}
echo "host: $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cpus; TSC $host_khz kHz"
echo "image: $MIB MiB of random data on $(df --output=fstype,source "$tmp" | tail -n1 | xargs); $secs s per run"
echo "guest: chv-testguest chv.bench, 1 vCPU, 128 MiB; 4K randread 16 in flight, 1M seq 4 in flight"
if [ -n "$kvm" ]; then
	echo "QEMU: $(qemu-system-x86_64 --version | head -n1), q35 + KVM, virtio-blk-pci"
else
	echo "QEMU: $(qemu-system-x86_64 --version | head -n1), q35, TCG: not comparable (no /dev/kvm;"
	echo "      figures rescaled with the host's TSC rate, since TCG gives the guest none)"
fi
printf '%-30s %12s %14s %16s %9s %9s\n' "" host chv QEMU chv/QEMU chv/host
engines=
for mode in direct cached; do
	if [ "$mode" = direct ]; then
		echo "O_DIRECT (host_io direct; chv direct=on; QEMU cache=none,aio=io_uring)"
	else
		echo "page cache (host_io cached; chv direct=off; QEMU cache=writeback,aio=threads)"
	fi
	for kind in randread seqread seqwrite; do
		case $kind in
		randread) label="4 KiB random read (IOPS)" ;;
		seqread) label="1 MiB seq read (MiB/s)" ;;
		seqwrite) label="1 MiB seq write (MiB/s)" ;;
		esac
		h=${R[$mode,$kind,host]} c=${R[$mode,$kind,chv]} q=${R[$mode,$kind,qemu]}
		qshow=$q
		[ -z "$kvm" ] && qshow="$q (TCG)"
		cq=-
		[ -n "$kvm" ] && cq=$(ratio "$c" "$q")
		printf '  %-28s %12s %14s %16s %9s %9s\n' "$label" "$h" "$c" "$qshow" "$cq" "$(ratio "$c" "$h")"
		engines="$engines ${label%% (*}, $mode: ${R[$mode,$kind,host_engine]};"
	done
done
echo "host figure from (the better engine):${engines%;}"
if [ -n "$kvm" ]; then
	echo "targets (docs/performance.md): chv/host >= 0.80 and chv/QEMU > 1 on every row"
fi
