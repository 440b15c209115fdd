#!/usr/bin/env bash
# virtio-net throughput over a tap, chv against QEMU, in one run: the test
# guest's chv.bench=net-tx (guest -> host) and net-rx (host -> guest), UDP
# datagrams of the link's 1500-byte MTU, with bench/net_peer_bench.py as the
# host's end, everything in a private network namespace (netlib.sh).
# chv-vmm: --net tap=...; QEMU q35: -netdev tap (vhost=on where KVM and
# /dev/vhost-net are there, else off) with virtio-net-pci.
#
# Without /dev/kvm chv cannot run (its column says so) and QEMU runs under TCG
# ("TCG: not comparable"; the guest's figures rescaled with the host's TSC
# rate, as in blk.sh); the script still exits 0. On a KVM host it gives the
# real comparison.
#   bench/net.sh [SECONDS]   (default 5 per run; needs root for the namespace)
#   CHV_BUILD_DIR (default build, release), CHV_BENCH_NO_BUILD=1 as in blk.sh
# Figures: MiB/s of UDP payload and datagrams/s as the guest counted them;
# for net-tx also what the host received (its own clock), for net-rx what
# it offered (a Python sender: on a fast host it may be the limit, which its
# own figure shows).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
B=${CHV_BUILD_DIR:-build}
kvm=
[ -r /dev/kvm ] && [ -w /dev/kvm ] && kvm=1
if [ -z "${CHV_BENCH_NO_BUILD:-}" ]; then
	./scripts/deps.sh
	cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DCHV_SANITIZE=OFF >/dev/null
	cmake --build "$B" -j"$(nproc)" --target chv-testguest host_io ${kvm:+chv-vmm} >/dev/null
fi
CHV_BUILD_DIR=$(realpath "$B")
CHV_SOURCE_DIR=$(pwd)
export CHV_BUILD_DIR CHV_SOURCE_DIR
. tests/integration/lib.sh
. tests/integration/netlib.sh
fail() { echo "net.sh: $*" >&2; exit 1; }

GUEST=192.0.2.2 PEER=192.0.2.1 PORT=7799 TAP=chvbench0
MAC=52:54:00:c4:78:02
net_setup bench
net_tap "$TAP" "$PEER/24"
host_khz=$("$CHV_BUILD_DIR/bin/host_io" tsc | sed 's/.*tsc_khz=//')
tcg_secs=$(awk -v s="$secs" -v k="$host_khz" 'BEGIN { v = int(s * k / 4000000 + 0.5); print v < 1 ? 1 : v }')
vhost=off
[ -n "$kvm" ] && [ -c /dev/vhost-net ] && vhost=on

val() { sed -nE "s/.* $2=([^ ]+).*/\1/p" <<<"$1"; }
# rate LINE: "MiB/s datagrams/s" from the guest's raw counts (rescaled
# when it assumed its TSC rate).
rate() {
	local khz
	khz=$(val "$1" tsc_khz)
	[ "$(val "$1" tsc)" = assumed ] && khz=$host_khz
	awk -v o="$(val "$1" ops)" -v b="$(val "$1" bytes)" -v c="$(val "$1" cycles)" -v k="$khz" \
		'BEGIN { s = c / k / 1000; printf "%.1f %.0f", b / s / 1048576, o / s }'
}

# one VMM KIND: runs the peer and a VM; sets LINE (the guest's bench line)
# and PEERLINE (the peer's figure line).
one() {
	local vmm=$1 kind=$2 s=$secs st=0
	ip netns exec "$NETNS" "$PY" -u bench/net_peer_bench.py "$GUEST" "$PEER" "$PORT" \
		--timeout 120 >"$T/peer.log" 2>&1 &
	PEER_PID=$!
	for _ in $(seq 100); do
		grep -q '^net_peer_bench: listening' "$T/peer.log" && break
		sleep 0.05
	done
	echo "net.sh: $vmm $kind" >&2
	if [ "$vmm" = chv ]; then
		timeout -k 5 $((secs + 90)) ip netns exec "$NETNS" "$CHV_BUILD_DIR/bin/chv-vmm" \
			--kernel "$ELF" --memory size=128M --cpus boot=1 --serial "file=$T/vm.log" \
			--net "tap=$TAP,mac=$MAC" \
			--cmdline "chv.bench=$kind:$s chv.net=$GUEST,$PEER,$PORT" >"$T/vm.out" 2>&1 || st=$?
	else
		[ -z "$kvm" ] && s=$tcg_secs
		ip netns exec "$NETNS" sh tests/guest/run-qemu.sh -M q35 -c 1 -m 128M \
			-t $((secs + 120)) -o "$T/vm.log" \
			-a "chv.bench=$kind:$s chv.net=$GUEST,$PEER,$PORT" "$ELF" -- \
			-netdev "tap,id=n0,ifname=$TAP,script=no,downscript=no,vhost=$vhost" \
			-device "virtio-net-pci,netdev=n0,mac=$MAC,disable-legacy=on" >"$T/vm.out" 2>&1 ||
			st=$?
	fi
	local pst=0
	wait "$PEER_PID" || pst=$?
	PEER_PID=
	[ "$st" = 0 ] && [ "$pst" = 0 ] || { cat "$T/vm.out" "$T/vm.log" "$T/peer.log" >&2;
		fail "$vmm $kind failed (VM status $st, peer status $pst)"; }
	LINE=$(tr -d '\r' <"$T/vm.log" | grep "^# bench: $kind ") || fail "$vmm $kind: no bench line"
	PEERLINE=$(grep -E '^net_peer_bench: (received|sent) ' "$T/peer.log") ||
		fail "$vmm $kind: no figure line from the peer"
	echo "  $LINE" >&2
	echo "  $PEERLINE" >&2
}

declare -A R
for kind in net-tx net-rx; do
	for vmm in chv qemu; do
		if [ "$vmm" = chv ] && [ -z "$kvm" ]; then
			R[$kind,chv]="no /dev/kvm"
			R[$kind,chv,peer]="-"
			continue
		fi
		one "$vmm" "$kind"
		R[$kind,$vmm]=$(rate "$LINE")
		R[$kind,$vmm,peer]=$(val "$PEERLINE" mib_s)
	done
done

echo "host: $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cpus; TSC $host_khz kHz"
echo "guest: chv-testguest chv.bench, 1 vCPU, 128 MiB; tap in a network namespace; UDP, 1472-byte payloads; $secs s per run"
if [ -n "$kvm" ]; then
	echo "QEMU: $(qemu-system-x86_64 --version | head -n1), q35 + KVM, virtio-net-pci, vhost=$vhost"
else
	echo "QEMU: $(qemu-system-x86_64 --version | head -n1), q35, vhost=off, TCG: not comparable"
	echo "      (no /dev/kvm; guest figures rescaled with the host's TSC rate)"
fi
printf '%-26s %24s %30s %9s\n' "" "chv (MiB/s, dgram/s)" "QEMU (MiB/s, dgram/s)" chv/QEMU
for kind in net-tx net-rx; do
	c=${R[$kind,chv]} q=${R[$kind,qemu]}
	label="guest -> host (net-tx)"
	[ "$kind" = net-rx ] && label="host -> guest (net-rx)"
	qshow="$q"
	[ -z "$kvm" ] && qshow="$q (TCG)"
	cq=-
	[ -n "$kvm" ] && cq=$(awk -v a="${c%% *}" -v b="${q%% *}" 'BEGIN { printf "%.2f", a / b }')
	printf '%-26s %24s %30s %9s\n' "$label" "$c" "$qshow" "$cq"
	what="received by the host"
	[ "$kind" = net-rx ] && what="offered by the host"
	printf '  %-24s %24s %30s\n' "$what (MiB/s)" "${R[$kind,chv,peer]}" "${R[$kind,qemu,peer]}"
done
[ -n "$kvm" ] && echo "target (docs/performance.md): chv/QEMU > 1 both ways"
exit 0
