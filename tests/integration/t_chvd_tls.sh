#!/usr/bin/env bash
# chvd's TCP listener: mutual TLS with a throwaway CA (the right client
# certificate works for ping and a VM's create/boot/info/delete; no
# certificate, one from another CA, or no TLS at all is refused), and
# --insecure, which chvd accepts on loopback only.
. "$(dirname "$0")/lib.sh"
need_kvm
P=$T/pki
make_test_pki "$P"

# expect_refused WHAT ARGS...: chvctl exits 1 with a gRPC status on stderr.
expect_refused() {
	local what=$1 st=0; shift
	timeout 30 "$CHVCTL" "$@" >"$T/out" 2>"$T/err" || st=$?
	[ "$st" = 1 ] || { cat "$T/err"; fail "$what: chvctl exit status $st, expected 1"; }
	grep -Eq 'UNAVAILABLE|UNAUTHENTICATED|handshake' "$T/err" ||
		{ cat "$T/err"; fail "$what: no TLS or UNAVAILABLE error"; }
}

# --insecure anywhere but loopback: chvd refuses to start, naming the option.
for addr in 0.0.0.0:0 '[::]:0' 192.0.2.1:0; do
	st=0
	timeout 10 "$CHVD" --listen "$T/x.sock" --state-dir "$T/xstate" --runtime-dir "$T/xrun" \
		--listen-tcp "$addr" --insecure >"$T/out" 2>"$T/err" || st=$?
	[ "$st" = 2 ] || { cat "$T/err"; fail "--listen-tcp $addr --insecure: status $st, expected 2"; }
	grep -q -- '--insecure' "$T/err" && grep -q 'loopback' "$T/err" ||
		{ cat "$T/err"; fail "--listen-tcp $addr --insecure: the error names neither the option nor loopback"; }
done
[ ! -e "$T/x.sock" ] || fail "a refused chvd created its socket"
# TLS options that are missing or unreadable are named too.
st=0
"$CHVD" --listen "$T/x.sock" --state-dir "$T/xstate" --runtime-dir "$T/xrun" \
	--listen-tcp 127.0.0.1:0 --tls-cert "$P/server.crt" --tls-key "$P/server.key" \
	>"$T/out" 2>"$T/err" || st=$?
[ "$st" = 2 ] && grep -q -- '--tls-client-ca' "$T/err" || { cat "$T/err"; fail "missing --tls-client-ca: status $st"; }
st=0
"$CHVD" --listen "$T/x.sock" --state-dir "$T/xstate" --runtime-dir "$T/xrun" \
	--listen-tcp 127.0.0.1:0 --tls-cert "$P/nonexistent.crt" --tls-key "$P/server.key" \
	--tls-client-ca "$P/ca.crt" >"$T/out" 2>"$T/err" || st=$?
[ "$st" = 1 ] && grep -q -- "--tls-cert: cannot open $P/nonexistent.crt" "$T/err" ||
	{ cat "$T/err"; fail "unreadable --tls-cert: status $st"; }

# ---- mutual TLS ----
start_chvd -v --listen-tcp 127.0.0.1:0 --tls-cert "$P/server.crt" --tls-key "$P/server.key" \
	--tls-client-ca "$P/ca.crt"
PORT=$(chvd_tcp_port 127.0.0.1)
TCP=tcp://127.0.0.1:$PORT
tctl() { ctl --socket "$TCP" --tls-ca "$P/ca.crt" --tls-cert "$P/client.crt" \
	--tls-key "$P/client.key" "$@"; }

tctl ping >"$T/ping"
grep -q "^chvd .*pid $CHVD_PID" "$T/ping" || { cat "$T/ping"; fail "ping over TLS"; }
ctl --socket "tcp://localhost:$PORT" --tls-ca "$P/ca.crt" --tls-cert "$P/client.crt" \
	--tls-key "$P/client.key" ping >/dev/null
grep -q 'Ping from ipv4:127.0.0.1:[0-9]*, client certificate "CN=ops,O=chv-test"' "$T/chvd.log" ||
	{ tail -n 20 "$T/chvd.log"; fail "chvd did not log the caller's certificate"; }

tctl create --id tls1 --kernel "$ELF" --memory size=64M --serial tty \
	--cmdline "chv.mem=64M chv.cpus=1 chv.tag=tls1 chv.action=hang" >"$T/id"
[ "$(cat "$T/id")" = tls1 ] || fail "create over TLS printed $(cat "$T/id")"
tctl boot tls1 >/dev/null
wait_state tls1 RUNNING 10 # over the unix socket: both listeners serve one registry
tctl --json info tls1 >"$T/info.json"
grep -q '"state": *"VM_STATE_RUNNING"' "$T/info.json" || { cat "$T/info.json"; fail "info over TLS"; }
tctl delete tls1 --force >/dev/null
st=0; "$CHVCTL" info tls1 >/dev/null 2>&1 || st=$?
[ "$st" = 1 ] || fail "tls1 still there after delete over TLS (status $st)"

# Refused: no client certificate, one from another CA, no TLS at all; and
# our client refuses a server that its CA did not sign.
expect_refused "no client certificate" --socket "$TCP" --tls-ca "$P/ca.crt" ping
expect_refused "certificate from another CA" --socket "$TCP" --tls-ca "$P/ca.crt" \
	--tls-cert "$P/rogue.crt" --tls-key "$P/rogue.key" ping
expect_refused "plain HTTP/2 to the TLS port" --socket "$TCP" --insecure ping
expect_refused "server from another CA" --socket "$TCP" --tls-ca "$P/other.crt" \
	--tls-cert "$P/client.crt" --tls-key "$P/client.key" ping
grep -q 'client certificate "CN=rogue"' "$T/chvd.log" && fail "a rogue client's call reached a handler"
# chvctl's own checks are usage errors (2).
st=0; "$CHVCTL" --socket "$TCP" ping 2>"$T/err" || st=$?
[ "$st" = 2 ] && grep -q -- '--insecure' "$T/err" || { cat "$T/err"; fail "tcp:// without TLS options: status $st"; }
st=0; "$CHVCTL" --socket "$TCP" --tls-ca "$P/ca.crt" --tls-cert "$P/client.crt" ping 2>"$T/err" || st=$?
[ "$st" = 2 ] && grep -q -- '--tls-key' "$T/err" || { cat "$T/err"; fail "--tls-cert without --tls-key: status $st"; }
stop_chvd

# ---- --insecure on loopback ----
mv "$T/chvd.log" "$T/chvd-tls.log"
start_chvd --listen-tcp 127.0.0.1:0 --insecure
PORT=$(chvd_tcp_port 127.0.0.1)
grep -q 'WITHOUT TLS' "$T/chvd.log" || { cat "$T/chvd.log"; fail "no warning about --insecure"; }
ctl --socket "tcp://127.0.0.1:$PORT" --insecure ping >/dev/null
expect_refused "TLS client to the insecure port" --socket "tcp://127.0.0.1:$PORT" \
	--tls-ca "$P/ca.crt" --tls-cert "$P/client.crt" --tls-key "$P/client.key" ping
stop_chvd
echo PASS
