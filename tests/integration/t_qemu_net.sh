#!/usr/bin/env bash
# virtio-net under QEMU q35 (TCG where there is no KVM): the test guest's
# driver against QEMU's virtio-net-pci on a tap in a private network
# namespace, with net_peer.py as the host's end: ARP both ways, UDP
# hello/ack/done and three pings, all answered. Once with the PVH image and a
# modern-only device, once with the bzImage and QEMU's transitional default.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netlib.sh"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed"
command -v ping >/dev/null || skip "no ping (iputils-ping)"
net_setup qnet
net_tap chvtap0 192.0.2.1/24
GUEST=192.0.2.2 PEER=192.0.2.1 PORT=7777
run=$CHV_SOURCE_DIR/tests/guest/run-qemu.sh

# qemu_net NAME IMAGE MAC DEVICE-OPTS: one VM and one peer; both must pass.
qemu_net() {
	local name=$1 image=$2 mac=$3 devopts=$4 st=0
	net_peer_start "$GUEST" "$PEER" "$PORT" 90
	ip netns exec "$NETNS" sh "$run" -M q35 -c 1 -m 128M -t 150 -o "$T/$name.log" \
		-a "chv.checks=boot,net chv.net=$GUEST,$PEER,$PORT chv.tag=$name" "$image" -- \
		-netdev tap,id=n0,ifname=chvtap0,script=no,downscript=no,vhost=off \
		-device "virtio-net-pci,netdev=n0,mac=$mac$devopts" 2>"$T/$name.err" || st=$?
	[ "$st" = 0 ] || { cat "$T/$name.log" "$T/$name.err"; echo "--- net_peer.py:";
		cat "$T/peer.log"; fail "$name: the guest's net check failed under QEMU q35"; }
	net_peer_wait
	sed -i 's/\r$//' "$T/$name.log"
	guest_passed "$T/$name.log" 5
	expect_ok "$T/$name.log" "net: device found, mac $mac$"
	expect_ok "$T/$name.log" "net: udp round trip with host$"
	expect_ok "$T/$name.log" "net: answered [1-9][0-9]* echo requests$"
	expect_ok "$T/$name.log" "net: host peer finished$"
	grep -q "^net_peer: hello from $GUEST:$PORT: chv-net hello $mac$" "$T/peer.log" ||
		{ cat "$T/peer.log"; fail "$name: the peer did not get the hello with the MAC $mac"; }
	grep -q '3 packets transmitted, 3 received' "$T/peer.log" ||
		{ cat "$T/peer.log"; fail "$name: not every ping was answered"; }
	grep -Eq '^# net: rx .* arp: [0-9]+ requests sent, [1-9][0-9]* answered;' "$T/$name.log" ||
		{ cat "$T/$name.log"; fail "$name: the guest answered no ARP request"; }
	grep '^# net: ' "$T/$name.log"
}

qemu_net elf "$ELF" 52:54:00:c4:76:02 ",disable-legacy=on"
grep -q '^# net: 00:0[0-9a-f].0 1af4:1041, ' "$T/elf.log" ||
	{ cat "$T/elf.log"; fail "elf: the driver did not use a modern 1af4:1041 function"; }
qemu_net bz "$BZ" 52:54:00:c4:76:03 ""
grep -q '^# net: 00:0[0-9a-f].0 1af4:1000, ' "$T/bz.log" ||
	{ cat "$T/bz.log"; fail "bz: the driver did not use the transitional 1af4:1000 function"; }
echo PASS
