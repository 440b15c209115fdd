# Shared helpers for the integration tests (sourced, bash).
set -euo pipefail
: "${CHV_BUILD_DIR:?}" "${CHV_SOURCE_DIR:?}"
VMM=$CHV_BUILD_DIR/bin/chv-vmm
ELF=$CHV_BUILD_DIR/guest/chv-testguest.elf
BZ=$CHV_BUILD_DIR/guest/chv-testguest.bzImage
T=$(mktemp -d /tmp/chv-it.XXXXXX)
trap 'rm -rf "$T"' EXIT
# ASan: leaks are checked by the unit tests; a VMM killed by a test leaks by design.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
need_kvm() { [ -r /dev/kvm ] && [ -w /dev/kvm ] || skip "no usable /dev/kvm"; }

# run_vmm STATUS_VAR OUT_PREFIX ARGS...: runs chv-vmm with a time limit;
# stdout in $OUT_PREFIX.out, stderr in $OUT_PREFIX.err, exit status in STATUS_VAR.
run_vmm() {
	local -n _st=$1; local out=$2; shift 2
	set +e
	timeout -k 5 "${CHV_TIMEOUT:-120}" "$VMM" "$@" >"$out.out" 2>"$out.err" </dev/null
	_st=$?
	set -e
}

# expect_status GOT WANT WHAT
expect_status() {
	[ "$1" = "$2" ] || { echo "--- stderr:"; tail -n 30 "$4.err" 2>/dev/null || true;
		echo "--- stdout:"; tail -n 40 "$4.out" 2>/dev/null || true;
		fail "$3: exit status $1, expected $2"; }
}

# guest_passed FILE: the TAP summary says every check passed, and at least MIN ran.
guest_passed() {
	local f=$1 min=${2:-1}
	grep -q '^not ok' "$f" && { grep '^not ok' "$f"; fail "guest checks failed in $f"; }
	local line; line=$(grep -a '^# chv-testguest: ' "$f" | tail -n1)
	[ -n "$line" ] || { tail -n 40 "$f"; fail "no summary line in $f"; }
	local passed failed
	passed=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$line")
	failed=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$line")
	[ "$failed" = 0 ] || fail "guest: $line"
	[ "$passed" -ge "$min" ] || fail "guest: only $passed checks passed, expected >= $min"
}

# expect_ok FILE NAME-REGEX: a TAP line "ok N - <name>" is present.
expect_ok() {
	grep -Eq "^ok [0-9]+ - $2" "$1" || { cat "$1"; fail "no passing check matching '$2' in $1"; }
}

# ---- chvd ----
CHVD=$CHV_BUILD_DIR/bin/chvd
CHVCTL=$CHV_BUILD_DIR/bin/chvctl
PY=/usr/bin/python3   # Debian's, with python3-grpcio (not a virtualenv's)

# start_chvd [ARGS...]: a chvd on $T/chvd.sock with its own state and runtime dirs.
start_chvd() {
	mkdir -p "$T/state" "$T/run"
	SOCK=$T/run/chvd.sock
	export CHVD_SOCKET=$SOCK
	CHVD_LOG_FROM=$(( $(stat -c %s "$T/chvd.log" 2>/dev/null || echo 0) + 1 ))
	"$CHVD" -v --listen "$SOCK" --state-dir "$T/state" --runtime-dir "$T/run" "$@" \
		>>"$T/chvd.log" 2>&1 &
	CHVD_PID=$!
	for _ in $(seq 200); do [ -S "$SOCK" ] && return 0; sleep 0.05; done
	cat "$T/chvd.log"; fail "chvd did not start"
}

# stop_chvd: SIGTERM, and the exit status must be 0. A sanitizer report in
# what this chvd logged (LeakSanitizer runs at exit in the ASan build) fails
# the test too, whatever the exit status.
stop_chvd() {
	kill -TERM "$CHVD_PID" 2>/dev/null || true
	local st=0; wait "$CHVD_PID" || st=$?
	if tail -c +"${CHVD_LOG_FROM:-1}" "$T/chvd.log" |
		grep -Eq 'ERROR: (Leak|Address)Sanitizer|runtime error:'; then
		tail -c +"${CHVD_LOG_FROM:-1}" "$T/chvd.log" | grep -A 40 -E 'Sanitizer|runtime error:' | head -n 80
		fail "chvd's sanitizers reported errors (exit status $st)"
	fi
	[ "$st" = 0 ] || { tail -n 30 "$T/chvd.log"; fail "chvd exited with status $st on SIGTERM"; }
}

# What chvd answers to a valid Create on a host without /dev/kvm (the worker
# cannot open it; the VM is not defined, the worker is killed and reaped).
CHVD_NO_KVM_STATUS=FAILED_PRECONDITION
CHVD_NO_KVM_DETAIL='cannot open /dev/kvm'

# need_chvd_leak_check: makes sure LeakSanitizer runs when chvd exits (an
# ASAN_OPTIONS from the environment may have turned it off).
need_chvd_leak_check() {
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"
}

# gen_py_protos DIR: Python modules for the API (chv.v1, grpc.health.v1) in
# DIR; 1 when python3-grpcio, python3-protobuf or protoc is missing.
gen_py_protos() {
	$PY -c 'import grpc, google.protobuf' 2>/dev/null && command -v protoc >/dev/null || return 1
	mkdir -p "$1"
	protoc -I"$CHV_SOURCE_DIR/api" --python_out="$1" chv/v1/vm.proto grpc/health/v1/health.proto
}

# Kills every process this test started (workers included) when it ends.
cleanup_processes() {
	pkill -KILL -f -- "$T/" 2>/dev/null || true
	[ -n "${CHVD_PID:-}" ] && kill -KILL "$CHVD_PID" 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup_processes EXIT

# ctl ARGS...: chvctl, failing the test on a non-zero status.
ctl() { "$CHVCTL" "$@" || fail "chvctl $* failed with status $?"; }

# wait_state ID STATE [SECONDS]
wait_state() {
	local i
	for i in $(seq $(( ${3:-30} * 10 ))); do
		"$CHVCTL" --json info "$1" 2>/dev/null | grep -q "\"state\": *\"VM_STATE_$2\"" && return 0
		sleep 0.1
	done
	"$CHVCTL" info "$1" || true
	echo "--- worker log of $1:"; tail -n 30 "$T/run/vms/$1.log" 2>/dev/null || true
	echo "--- console of $1:"; "$CHVCTL" console "$1" --no-follow 2>/dev/null | tail -n 15 || true
	echo "--- chvd log:"; grep -- "$1" "$T/chvd.log" | tail -n 20 || true
	fail "VM $1 did not reach $2"
}

# ---- TLS ----
# make_test_pki DIR: a throwaway CA (ca.crt/.key) with a server certificate
# for 127.0.0.1 and localhost (server.*) and a client one, CN ops (client.*);
# a second CA (other.*) with its own client certificate (rogue.*). EC P-256,
# valid for two days. Skips the test when openssl is missing.
make_test_pki() {
	local d=$1 ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
	command -v openssl >/dev/null || skip "no openssl (apt-get install openssl)"
	mkdir -p "$d"
	_pki_ca() { openssl req -x509 "${ec[@]}" -days 2 -subj "/CN=$2" \
		-keyout "$d/$1.key" -out "$d/$1.crt" 2>>"$d/log"; }
	_pki_leaf() { # NAME SUBJECT CA EXTENSIONS
		openssl req "${ec[@]}" -subj "$2" -keyout "$d/$1.key" -out "$d/$1.csr" 2>>"$d/log"
		printf '%s\n' "$4" >"$d/$1.ext"
		openssl x509 -req -in "$d/$1.csr" -CA "$d/$3.crt" -CAkey "$d/$3.key" \
			-CAcreateserial -days 2 -extfile "$d/$1.ext" -out "$d/$1.crt" 2>>"$d/log"
	}
	_pki_ca ca "chv test CA" && _pki_ca other "other CA" &&
	_pki_leaf server /CN=chvd ca "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth" &&
	_pki_leaf client "/O=chv-test/CN=ops" ca "extendedKeyUsage=clientAuth" &&
	_pki_leaf rogue /CN=rogue other "extendedKeyUsage=clientAuth" ||
		{ cat "$d/log"; fail "openssl could not make the test certificates"; }
	chmod 600 "$d"/*.key
}

# chvd_tcp_port HOST: the port chvd logged for --listen-tcp HOST:0 (its
# latest start), waiting for the line.
chvd_tcp_port() {
	local p=
	for _ in $(seq 100); do
		p=$(sed -n "s/.*listening on tcp $1:\([0-9][0-9]*\).*/\1/p" "$T/chvd.log" | tail -n1)
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.05
	done
	cat "$T/chvd.log" >&2; fail "chvd logged no TCP port for $1"
}
