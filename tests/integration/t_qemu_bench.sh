#!/usr/bin/env bash
# The test guest's benchmark mode (chv.bench=KIND:1) under QEMU q35 (TCG where
# there is no KVM), so its drivers are proven against a mature VMM wherever
# QEMU runs: the three blk kinds on a virtio-blk-pci disk, net-tx and net-rx
# over a tap in a private network namespace with bench/net_peer_bench.py as
# the host's end. Each must print its "# bench:" line with I/O done and no
# errors, and pass its TAP line; the writes must have reached the file, and
# the peer must have counted datagrams too. Figures are not judged here:
# under TCG they mean little (docs/performance.md).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netlib.sh"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed"
run=$CHV_SOURCE_DIR/tests/guest/run-qemu.sh
PEER_BENCH=$CHV_SOURCE_DIR/bench/net_peer_bench.py

# bench_line LOG KIND: the "# bench:" line is there, names KIND, and shows
# nonzero ops and bytes, no errors, and a passing TAP line.
bench_line() {
	local log=$1 kind=$2 line
	sed -i 's/\r$//' "$log"
	guest_passed "$log" 1
	expect_ok "$log" "bench $kind$"
	line=$(grep "^# bench: $kind " "$log") || { cat "$log"; fail "$kind: no '# bench: $kind' line"; }
	grep -Eq ' ops=[1-9][0-9]* bytes=[1-9][0-9]* seconds=[0-9]+\.[0-9]{3} iops=[0-9]+ mib_s=[0-9]+\.[0-9]{2} .* errors=0$' <<<"$line" ||
		fail "$kind: malformed or empty bench line: $line"
	echo "$line"
}

# 1. blk: a 64 MiB image with random content; the writes must change it.
head -c $((64 << 20)) /dev/urandom >"$T/disk.img"
cp "$T/disk.img" "$T/orig.img"
for kind in blk-randread blk-seqread blk-seqwrite; do
	sh "$run" -M q35 -c 1 -m 128M -t 120 -o "$T/$kind.log" -a "chv.checks=bench chv.bench=$kind:1" \
		"$ELF" -- -drive "file=$T/disk.img,if=none,id=d0,format=raw,cache=writeback" \
		-device virtio-blk-pci,drive=d0,disable-legacy=on ||
		{ cat "$T/$kind.log"; fail "$kind failed under QEMU"; }
	bench_line "$T/$kind.log" "$kind"
	if [ "$kind" = blk-seqwrite ]; then
		! cmp -s "$T/disk.img" "$T/orig.img" || fail "blk-seqwrite did not change the image"
	else
		cmp -s "$T/disk.img" "$T/orig.img" || fail "$kind changed the image"
	fi
done
# Malformed values fail the command line check.
for bad in blk-bogus blk-seqread:0 blk-seqread:601 "blk-seqread:" net-tx:x; do
	sh "$run" -c 1 -t 60 -o "$T/bad.log" -a "chv.checks=cmdline chv.bench=$bad" "$ELF" &&
		fail "chv.bench=$bad was accepted"
	grep -q "not ok 1 - command line # .*chv.bench=\"$bad\" is invalid" "$T/bad.log" ||
		{ cat "$T/bad.log"; fail "chv.bench=$bad: no cmdline diagnostic naming it"; }
done
# Without a disk the check fails, naming what is missing.
sh "$run" -M q35 -c 1 -t 60 -o "$T/nodisk.log" -a "chv.bench=blk-seqread:1" "$ELF" &&
	fail "a blk bench without a disk passed"
grep -q '^not ok [0-9]* - bench blk-seqread # .*no virtio device 2' "$T/nodisk.log" ||
	{ cat "$T/nodisk.log"; fail "a blk bench without a disk: no diagnostic"; }

# 2. net, over a tap in a namespace.
net_setup qbench
net_tap chvtap0 192.0.2.1/24
GUEST=192.0.2.2 PEER=192.0.2.1 PORT=7788
for kind in net-tx net-rx; do
	ip netns exec "$NETNS" "$PY" -u "$PEER_BENCH" "$GUEST" "$PEER" "$PORT" --timeout 90 \
		>"$T/$kind.peer" 2>&1 &
	PEER_PID=$!
	for _ in $(seq 100); do
		grep -q '^net_peer_bench: listening' "$T/$kind.peer" && break
		sleep 0.05
	done
	st=0
	ip netns exec "$NETNS" sh "$run" -M q35 -c 1 -m 128M -t 150 -o "$T/$kind.log" \
		-a "chv.bench=$kind:1 chv.net=$GUEST,$PEER,$PORT" "$ELF" -- \
		-netdev tap,id=n0,ifname=chvtap0,script=no,downscript=no,vhost=off \
		-device virtio-net-pci,netdev=n0,disable-legacy=on 2>"$T/$kind.err" || st=$?
	[ "$st" = 0 ] || { cat "$T/$kind.log" "$T/$kind.err"; echo "--- peer:"; cat "$T/$kind.peer";
		fail "$kind failed under QEMU"; }
	st=0
	wait "$PEER_PID" || st=$?
	PEER_PID=
	[ "$st" = 0 ] || { cat "$T/$kind.peer"; fail "$kind: net_peer_bench.py exited with status $st"; }
	bench_line "$T/$kind.log" "$kind"
	# Only a net bench ran: chv.net alone did not turn the net check on.
	! grep -q ' - net:' "$T/$kind.log" || { cat "$T/$kind.log"; fail "$kind: the net check ran too"; }
	cat "$T/$kind.peer"
	if [ "$kind" = net-tx ]; then
		grep -Eq '^net_peer_bench: received datagrams=[1-9][0-9]* bytes=[1-9][0-9]* .* guest: chv-bench end [1-9][0-9]* [1-9][0-9]*$' "$T/$kind.peer" ||
			fail "net-tx: the peer did not count datagrams and the guest's end"
	else
		grep -Eq '^net_peer_bench: sent datagrams=[1-9][0-9]* ' "$T/$kind.peer" ||
			fail "net-rx: the peer did not report what it sent"
	fi
done
echo PASS
