#!/usr/bin/env bash
# virtio-net end to end on KVM: the test guest's net check (ARP both ways,
# UDP hello/ack/done with net_peer.py, three pings answered) over a tap in a
# private network namespace.
#   1. chv-vmm --net tap=NAME on a tap the test made;
#   2. chv-vmm creating its own tap (ip=, mask=, two queue pairs): the
#      address appears on it, and the tap goes when chv-vmm ends;
#   3. chvd + chvctl create --net (in the namespace): info shows the device,
#      the Counters RPC its traffic; a VM whose tap cannot be opened is
#      refused naming --net and leaves no VM and no worker behind;
#   4. bad --net values: exit 2 naming --net and the key.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netlib.sh"
need_kvm
command -v ping >/dev/null || skip "no ping (iputils-ping)"
net_setup vnet
GUEST=192.0.2.2 PEER=192.0.2.1 PORT=7777
NETCHECK="chv.checks=boot,net chv.net=$GUEST,$PEER,$PORT"

# in_ns_vmm STATUS_VAR OUT_PREFIX ARGS...: chv-vmm inside the namespace.
in_ns_vmm() {
	local -n _s=$1; local out=$2; shift 2
	set +e
	timeout -k 5 150 ip netns exec "$NETNS" "$VMM" "$@" >"$out.out" 2>"$out.err" </dev/null
	_s=$?
	set -e
}

# check_guest NAME LOG MAC: the guest's net check and the peer both passed.
check_guest() {
	local name=$1 log=$2 mac=$3
	sed -i 's/\r$//' "$log"
	guest_passed "$log" 5
	expect_ok "$log" "net: device found, mac $mac$"
	expect_ok "$log" "net: udp round trip with host$"
	expect_ok "$log" "net: answered [1-9][0-9]* echo requests$"
	expect_ok "$log" "net: host peer finished$"
	grep -q "^net_peer: hello from $GUEST:$PORT: chv-net hello $mac$" "$T/peer.log" ||
		{ cat "$T/peer.log"; fail "$name: the peer did not get the hello with the MAC $mac"; }
	grep -q '3 packets transmitted, 3 received' "$T/peer.log" ||
		{ cat "$T/peer.log"; fail "$name: not every ping was answered"; }
	grep '^# net: ' "$log"
}

# 1. An existing tap. rng is at 00:01.0, so the net function is 00:02.0.
net_tap chvtap0 "$PEER/24"
MAC=52:54:00:c4:77:02
net_peer_start "$GUEST" "$PEER" "$PORT" 90
in_ns_vmm st "$T/vmm1" --kernel "$ELF" --memory size=64M --serial "file=$T/vmm1.log" \
	--net "tap=chvtap0,mac=$MAC" --cmdline "$NETCHECK"
expect_status "$st" 0 "chv-vmm --net tap=chvtap0" "$T/vmm1"
net_peer_wait
check_guest vmm1 "$T/vmm1.log" "$MAC"
grep -q '^# net: 00:02.0 1af4:1041, ' "$T/vmm1.log" ||
	{ cat "$T/vmm1.log"; fail "virtio-net is not the modern function at 00:02.0"; }
ip -n "$NETNS" link show chvtap0 >/dev/null || fail "chv-vmm removed a tap it did not create"
ip -n "$NETNS" link del chvtap0

# 2. chv-vmm's own tap, configured from --net; gone with chv-vmm.
MAC=52:54:00:c4:77:03
set +e
timeout -k 5 150 ip netns exec "$NETNS" "$VMM" --kernel "$ELF" --memory size=64M --cpus boot=2 \
	--serial "file=$T/vmm2.log" --cmdline "$NETCHECK" \
	--net "tap=chvtap1,ip=$PEER,mask=255.255.255.0,mac=$MAC,num_queues=4,mtu=1500" \
	>"$T/vmm2.out" 2>"$T/vmm2.err" </dev/null &
vmm=$!
set -e
for _ in $(seq 100); do
	ip -n "$NETNS" -4 addr show dev chvtap1 2>/dev/null | grep -q "inet $PEER/24" && break
	sleep 0.05
done
ip -n "$NETNS" -4 addr show dev chvtap1 | grep -q "inet $PEER/24" ||
	{ cat "$T/vmm2.err"; fail "chv-vmm's tap did not get ip=$PEER mask=255.255.255.0"; }
ip -n "$NETNS" link show chvtap1 | grep -Eq '[<,]UP[,>].* mtu 1500 ' ||
	{ ip -n "$NETNS" link show chvtap1; fail "chv-vmm's tap is not up with mtu 1500"; }
net_peer_start "$GUEST" "$PEER" "$PORT" 90
st=0
wait "$vmm" || st=$?
expect_status "$st" 0 "chv-vmm creating its tap" "$T/vmm2"
net_peer_wait
check_guest vmm2 "$T/vmm2.log" "$MAC"
! ip -n "$NETNS" link show chvtap1 >/dev/null 2>&1 || fail "the tap chv-vmm created outlived it"

# 3. Under chvd, started in the namespace so its workers open taps there.
printf '#!/bin/sh\nexec ip netns exec "%s" "%s" "$@"\n' "$NETNS" "$CHVD" >"$T/chvd-ns"
chmod +x "$T/chvd-ns"
CHVD=$T/chvd-ns
start_chvd --warm-workers 0
net_tap chvtap2 "$PEER/24"
MAC=52:54:00:c4:77:04
net_peer_start "$GUEST" "$PEER" "$PORT" 90
ctl create --id n1 --kernel "$ELF" --memory size=64M --serial tty \
	--net "tap=chvtap2,mac=$MAC,id=eth0" --cmdline "$NETCHECK chv.action=hang" >/dev/null
wait_state n1 CREATED 5
ctl --json info n1 >"$T/n1.json"
grep -q '"tap": *"chvtap2"' "$T/n1.json" && grep -q "\"mac\": *\"$MAC\"" "$T/n1.json" ||
	{ cat "$T/n1.json"; fail "info does not show the net device"; }
ctl boot n1 >/dev/null
wait_state n1 RUNNING 5
for _ in $(seq 600); do
	ctl console n1 --no-follow >"$T/n1.console" 2>/dev/null
	grep -q '^# chv-testguest:' "$T/n1.console" && break
	sleep 0.1
done
net_peer_wait
check_guest n1 "$T/n1.console" "$MAC"
ctl counters n1 >"$T/counters"
value() { awk -v k="$1" '$1 == k { print $2 }' "$T/counters"; }
for c in rx_packets tx_packets rx_bytes tx_bytes notifications interrupts; do
	v=$(value "virtio.net0.$c")
	[ -n "$v" ] && [ "$v" -ge 1 ] || { cat "$T/counters"; fail "virtio.net0.$c is '$v'"; }
done
for c in rx_errors tx_errors; do
	[ "$(value "virtio.net0.$c")" = 0 ] || { cat "$T/counters"; fail "virtio.net0.$c is not 0"; }
done
# The guest answered three pings and sent its hello: at least 4 frames out.
[ "$(value virtio.net0.tx_packets)" -ge 4 ] || { cat "$T/counters"; fail "too few frames sent"; }

# A second VM on the same (single-queue) tap cannot attach: refused, named,
# and nothing is left of it.
workers=$(pgrep -c -f -- "$VMM" || true)
set +e
"$CHVCTL" create --id n2 --kernel "$ELF" --net tap=chvtap2 >"$T/n2.out" 2>"$T/n2.err"
st=$?
set -e
[ "$st" != 0 ] || fail "a second VM attached to a tap in use"
grep -q -- '--net: tap=chvtap2' "$T/n2.err" || { cat "$T/n2.err"; fail "the error does not name --net"; }
! "$CHVCTL" info n2 >/dev/null 2>&1 || fail "the refused VM n2 exists"
for f in "$T/run/vms/n2".*; do
	[ -e "$f" ] && fail "the refused VM left $f behind"
done
for _ in $(seq 50); do [ "$(pgrep -c -f -- "$VMM" || true)" = "$workers" ] && break; sleep 0.1; done
[ "$(pgrep -c -f -- "$VMM" || true)" = "$workers" ] || fail "the refused VM's worker is still running"
# Values chvctl refuses itself, naming the key.
set +e
"$CHVCTL" create --id n3 --kernel "$ELF" --net "tap=chvtap2,num_queues=3" >"$T/n3.out" 2>"$T/n3.err"
st=$?
set -e
[ "$st" != 0 ] && grep -q 'num_queues=3' "$T/n3.err" || { cat "$T/n3.err"; fail "num_queues=3 was not refused"; }
ctl shutdown n1 --force >/dev/null
wait_state n1 SHUTDOWN 5
ctl delete n1 >/dev/null
stop_chvd

# 4. Configuration errors: exit 2, naming --net and the key.
for bad in "tap=chvtap2,mac=01:00:5e:00:00:01" "tap=chvtap2,num_queues=3" "queue_size=100" \
	"tap=chvtap2,fd=3" "mtu=10" "ip=10.0.0" "tap=chvtap2,rate_limit_group=nope" "tap=x/y"; do
	in_ns_vmm st "$T/bad" --kernel "$ELF" --net "$bad"
	expect_status "$st" 2 "--net $bad" "$T/bad"
	key=${bad##*,}
	key=${key%%=*}
	grep -q -- "--net: .*$key" "$T/bad.err" || { cat "$T/bad.err"; fail "--net $bad: message does not name --net and $key"; }
done
echo PASS
