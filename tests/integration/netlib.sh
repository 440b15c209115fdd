# Network namespaces, taps and the host-side peer for the virtio-net tests.
# Sourced after lib.sh (bash). Everything happens inside a namespace made for
# the test run, so no traffic or address reaches the host's own network.
#
#   net_setup NAME            a new netns chvt-<pid>-NAME, exported as NETNS, lo up;
#                             skips (77) without /dev/net/tun or when netns are not permitted
#   net_tap TAP IP/PREFIX [multi_queue]
#                             a persistent tap TAP in $NETNS (vnet_hdr; multi_queue
#                             only when asked: the flag must match how the VMM opens
#                             it), the address on it, link up, IPv6 off
#   net_peer_start GUEST_IP PEER_IP PORT [TIMEOUT_S]
#                             net_peer.py in $NETNS, in the background (PEER_PID,
#                             output in $T/peer.log); waits until it is bound
#   net_peer_wait             its exit status must be 0 (prints its log otherwise)
#   net_cleanup               kills what runs in $NETNS, deletes it (on EXIT)
#
# The VMM runs inside the namespace too (ip netns exec "$NETNS" ...), so that
# it can open the tap.
NET_PEER_PY=$CHV_SOURCE_DIR/tests/integration/net_peer.py
NETNS=
PEER_PID=

net_cleanup() {
	[ -n "$NETNS" ] || return 0
	if [ -n "$PEER_PID" ]; then kill -KILL "$PEER_PID" 2>/dev/null || true; fi
	# Only this test's processes live in its namespace.
	local pid
	for pid in $(ip netns pids "$NETNS" 2>/dev/null); do
		kill -KILL "$pid" 2>/dev/null || true
	done
	ip netns del "$NETNS" 2>/dev/null || true
	NETNS=
}

net_setup() {
	[ -c /dev/net/tun ] || skip "no /dev/net/tun"
	command -v ip >/dev/null || skip "no ip command (iproute2)"
	local ns=chvt-$$-$1
	ip netns add "$ns" 2>"$T/netns.err" ||
		skip "cannot create a network namespace: $(cat "$T/netns.err")"
	NETNS=$ns
	export NETNS
	# lib.sh's trap removes $T; the namespace goes first.
	trap 'net_cleanup; cleanup_processes' EXIT
	ip -n "$NETNS" link set lo up || fail "cannot set lo up in $NETNS"
}

net_tap() {
	local tap=$1 addr=$2 mq=${3:-}
	[ -n "$NETNS" ] || fail "net_tap before net_setup"
	[ -z "$mq" ] || [ "$mq" = multi_queue ] || fail "net_tap: third argument '$mq' is not multi_queue"
	ip -n "$NETNS" tuntap add dev "$tap" mode tap vnet_hdr ${mq:+"$mq"} 2>"$T/tap.err" || {
		grep -qi "not permitted\|no such device\|operation not supported" "$T/tap.err" &&
			skip "cannot create a tap: $(cat "$T/tap.err")"
		fail "cannot create tap $tap in $NETNS: $(cat "$T/tap.err")"
	}
	# Router solicitations and the like would only be noise for the guest.
	ip netns exec "$NETNS" sysctl -qw "net.ipv6.conf.$tap.disable_ipv6=1" 2>/dev/null || true
	ip -n "$NETNS" addr add "$addr" dev "$tap" || fail "cannot put $addr on $tap"
	ip -n "$NETNS" link set "$tap" up || fail "cannot set $tap up"
}

net_peer_start() {
	local guest=$1 peer=$2 port=$3 timeout_s=${4:-60}
	[ -n "$NETNS" ] || fail "net_peer_start before net_setup"
	: >"$T/peer.log"
	ip netns exec "$NETNS" "$PY" -u "$NET_PEER_PY" "$guest" "$peer" "$port" \
		--timeout "$timeout_s" >"$T/peer.log" 2>&1 &
	PEER_PID=$!
	local _
	for _ in $(seq 100); do
		grep -q '^net_peer: listening' "$T/peer.log" && return 0
		kill -0 "$PEER_PID" 2>/dev/null || break
		sleep 0.05
	done
	cat "$T/peer.log"
	fail "net_peer.py did not start listening on $peer:$port"
}

net_peer_wait() {
	local st=0
	[ -n "$PEER_PID" ] || fail "net_peer_wait without net_peer_start"
	wait "$PEER_PID" || st=$?
	PEER_PID=
	[ "$st" = 0 ] || { echo "--- net_peer.py:"; cat "$T/peer.log"; fail "net_peer.py exited with status $st"; }
}
