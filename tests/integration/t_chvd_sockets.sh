#!/usr/bin/env bash
# chvd's API sockets, without KVM: mode 0660 and --socket-group; a user
# outside the group refused by the file permission, a member let in; a
# directory every user can write refused; the read-only socket (--listen-ro,
# and the fd named "ro" under socket activation) answers Ping, List, Info,
# WatchEvents and health checks and refuses the rest with PERMISSION_DENIED;
# the audit lines name the caller's pid, uid and gid and the VM.
. "$(dirname "$0")/lib.sh"
need_chvd_leak_check
[ "$(id -u)" = 0 ] || skip "needs root (runs clients as nobody, gives the sockets a group)"
command -v setpriv >/dev/null || skip "setpriv (util-linux) not installed"
NOBODY=$(id -u nobody 2>/dev/null) || skip "no user nobody"
NAMED_GROUP=$(id -gn nobody)   # an existing group, to check name lookup
NAMED_GID=$(id -g nobody)
SG=61999                       # a gid no one has: only our clients get it
getent group "$SG" >/dev/null && skip "gid $SG is in use here"

# nobody must reach the sockets through $T; only the sockets' mode stops it.
chmod 0755 "$T"
mkdir -p "$T/bin" "$T/run"
install -m 0755 "$CHVCTL" "$T/bin/chvctl"
# setpriv execs its command: a background one's $! is the client's pid.
as_member=(setpriv --reuid="$NOBODY" --regid="$SG" --clear-groups)
as_other=(setpriv --reuid="$NOBODY" --regid="$NOBODY" --clear-groups)
KERNEL=$ELF
[ -f "$KERNEL" ] || { KERNEL=$T/kernel; head -c 4096 /dev/zero >"$KERNEL"; }
chmod 0755 "$T/run"

# expect_fail STATUS-NAME REGEX CMD...: exit 1, the status and the message on stderr.
expect_fail() {
	local want=$1 re=$2; shift 2
	set +e; "$@" >"$T/out" 2>"$T/err"; local st=$?; set -e
	[ "$st" = 1 ] || { cat "$T/err"; fail "$*: status $st, expected 1"; }
	grep -q "$want" "$T/err" || { cat "$T/err"; fail "$*: no $want"; }
	grep -Eq -- "$re" "$T/err" || { cat "$T/err"; fail "$*: message does not match '$re'"; }
}
# expect_refusal STATUS REGEX CHVD-ARGS...: chvd refuses to start with STATUS.
expect_refusal() {
	local want=$1 re=$2; shift 2
	set +e; timeout 10 "$CHVD" --state-dir "$T/xstate" --runtime-dir "$T/xrun" "$@" >"$T/out" 2>&1
	local st=$?; set -e
	[ "$st" = "$want" ] || { cat "$T/out"; fail "chvd $*: status $st, expected $want"; }
	grep -Eq -- "$re" "$T/out" || { cat "$T/out"; fail "chvd $*: message does not match '$re'"; }
}

# ---- refusals at start-up ----
expect_refusal 2 '--socket-group: there is no group "no-such-group-chv"' \
	--listen "$T/x/a.sock" --socket-group no-such-group-chv
expect_refusal 2 '--socket-group: "99999999999" is not a valid gid' \
	--listen "$T/x/a.sock" --socket-group 99999999999
expect_refusal 2 '--listen-ro: .*a.sock is the read-write socket' \
	--listen "$T/x/a.sock" --listen-ro "$T/x/a.sock"
mkdir -p "$T/ww" && chmod 1777 "$T/ww"
expect_refusal 1 "--listen: $T/ww is writable by every user \(mode 1777\)" --listen "$T/ww/a.sock"
expect_refusal 1 "--listen-ro: $T/ww is writable by every user" \
	--listen "$T/x/a.sock" --listen-ro "$T/ww/ro.sock"
[ ! -e "$T/ww/a.sock" ] || fail "chvd left a socket in the world-writable directory"
# A start that fails after the read-write socket is made (the read-only path
# is a regular file): chvd removes that socket and stops its idle workers,
# and leaves the file it did not make.
mkdir -p "$T/f" && : >"$T/f/ro.sock"
expect_refusal 1 "--listen-ro: $T/f/ro.sock exists and is not a socket" \
	--listen "$T/f/a.sock" --listen-ro "$T/f/ro.sock" --warm-workers 2
[ ! -e "$T/f/a.sock" ] || fail "a failed start left its socket $T/f/a.sock"
[ -f "$T/f/ro.sock" ] || fail "a failed start removed $T/f/ro.sock, which it did not make"
pgrep -f -- "--control $T/xrun/" && fail "a failed start left idle workers running"

# A directory chvd makes itself: 0755 (members must reach the socket; the
# socket's own mode keeps the others out), the socket 0660 in the named group.
"$CHVD" --listen "$T/new/dir/api.sock" --state-dir "$T/nstate" --runtime-dir "$T/nrun" \
	--warm-workers 0 --socket-group "$NAMED_GROUP" >"$T/new.log" 2>&1 &
NP=$!
for _ in $(seq 100); do [ -S "$T/new/dir/api.sock" ] && break; sleep 0.05; done
[ "$(stat -c %a "$T/new/dir")" = 755 ] || fail "chvd made $T/new/dir mode $(stat -c %a "$T/new/dir"), expected 755"
[ "$(stat -c '%a %g' "$T/new/dir/api.sock")" = "660 $NAMED_GID" ] ||
	fail "socket: mode and gid $(stat -c '%a %g' "$T/new/dir/api.sock"), expected 660 $NAMED_GID ($NAMED_GROUP)"
kill -TERM "$NP"; wait "$NP" || { cat "$T/new.log"; fail "chvd (named group) exited non-zero"; }
[ ! -e "$T/new/dir/api.sock" ] || fail "chvd did not remove its socket on exit"

# ---- the daemon under test: both sockets, the numeric group ----
RO=$T/run/ro.sock
start_chvd --listen-ro "$RO" --socket-group "$SG" --warm-workers 0
for _ in $(seq 100); do [ -S "$RO" ] && break; sleep 0.05; done
for s in "$SOCK" "$RO"; do
	[ "$(stat -c '%a %g' "$s")" = "660 $SG" ] ||
		fail "$s: mode and gid $(stat -c '%a %g' "$s"), expected 660 $SG"
done

# A user outside the group: the kernel refuses the connection (EACCES).
for s in "$SOCK" "$RO"; do
	"${as_other[@]}" "$PY" -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except PermissionError:
    sys.exit(0)
sys.exit("connected to " + sys.argv[1])' "$s" || fail "a user outside group $SG could connect to $s"
	set +e; "${as_other[@]}" "$T/bin/chvctl" --socket "$s" --timeout 3000 ping >"$T/out" 2>"$T/err"; st=$?; set -e
	[ "$st" != 0 ] || fail "chvctl as a user outside the group pinged through $s"
	grep -qi 'permission denied' "$T/err" || { cat "$T/err"; fail "chvctl outside the group: no 'Permission denied'"; }
done

# A member: both sockets answer.
"${as_member[@]}" "$T/bin/chvctl" --socket "$SOCK" ping >/dev/null || fail "a member of $SG cannot ping"
"${as_member[@]}" "$T/bin/chvctl" --socket "$RO" ping >/dev/null || fail "a member of $SG cannot ping the read-only socket"
"${as_member[@]}" "$T/bin/chvctl" --socket "$RO" list >/dev/null || fail "List on the read-only socket failed"

# ---- the read-only socket refuses what changes anything ----
RE='/chv.v1.Vm/Create is not allowed on chvd.s read-only socket \(it serves Vmm/Ping, Vm/Info, Vm/List'
"${as_member[@]}" "$T/bin/chvctl" --socket "$RO" create --id ro1 --kernel "$KERNEL" --memory size=32M \
	>"$T/out" 2>"$T/err" &
P_DENIED=$!
set +e; wait "$P_DENIED"; st=$?; set -e
[ "$st" = 1 ] || { cat "$T/err"; fail "Create on the read-only socket: status $st"; }
grep -q PERMISSION_DENIED "$T/err" && grep -Eq "$RE" "$T/err" ||
	{ cat "$T/err"; fail "Create on the read-only socket: not the PERMISSION_DENIED expected"; }
expect_fail PERMISSION_DENIED '/chv.v1.Vm/Delete is not allowed on .*read-only socket' \
	"$T/bin/chvctl" --socket "$RO" delete ro1
expect_fail PERMISSION_DENIED 'Vm/Boot is not allowed' "$T/bin/chvctl" --socket "$RO" boot ro1
expect_fail PERMISSION_DENIED 'Vmm/Shutdown is not allowed' "$T/bin/chvctl" --socket "$RO" shutdown-vmm
expect_fail NOT_FOUND 'ro1' "$T/bin/chvctl" --socket "$RO" info ro1
"$T/bin/chvctl" --socket "$SOCK" ping >/dev/null || fail "chvd stopped serving after Shutdown on the read-only socket"

if gen_py_protos "$T/py"; then
	$PY - "$T/py" "$RO" <<'PY' || { tail -n 20 "$T/chvd.log"; fail "read-only socket: the gRPC checks failed"; }
import importlib.util, sys
import grpc
sys.path.insert(0, sys.argv[1])
from chv.v1 import vm_pb2 as pb
spec = importlib.util.spec_from_file_location("h", sys.argv[1] + "/grpc/health/v1/health_pb2.py")
h = importlib.util.module_from_spec(spec); spec.loader.exec_module(h)
ch = grpc.insecure_channel("unix:" + sys.argv[2])
ser = lambda m: m if isinstance(m, bytes) else m.SerializeToString()
def code(method, req, resp=lambda b: b, stream=False):
    try:
        if stream:
            list(ch.unary_stream(method, request_serializer=ser, response_deserializer=resp)(req, timeout=0.3))
            return grpc.StatusCode.OK
        ch.unary_unary(method, request_serializer=ser, response_deserializer=resp)(req, timeout=10)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()
C = grpc.StatusCode
checks = [
    # allowed: the answer is the call's own
    (code("/grpc.health.v1.Health/Check", h.HealthCheckRequest(service="chv.v1.Vm")), C.OK),
    (code("/chv.v1.Vm/Counters", pb.VmRequest(vm_id="ghost")), C.NOT_FOUND),
    (code("/chv.v1.Vm/WatchEvents", pb.WatchEventsRequest(), stream=True), C.DEADLINE_EXCEEDED),
    (code("/chv.v1.Vm/Info", b"\x08\x01"), C.INVALID_ARGUMENT),
    # refused, before the bytes are even decoded
    (code("/chv.v1.Vm/Create", b"\xff\xff\xff"), C.PERMISSION_DENIED),
    (code("/chv.v1.Vm/Pause", pb.VmRequest(vm_id="ghost")), C.PERMISSION_DENIED),
    (code("/chv.v1.Vm/Snapshot", pb.SnapshotRequest(vm_id="ghost")), C.PERMISSION_DENIED),
    (code("/chv.v1.Vm/Explode", b""), C.UNIMPLEMENTED),
]
con = ch.stream_stream("/chv.v1.Vm/Console", request_serializer=ser, response_deserializer=lambda b: b)
try:
    list(con(iter([pb.ConsoleInput(vm_id="ghost")]), timeout=10))
    checks.append((C.OK, C.PERMISSION_DENIED))
except grpc.RpcError as e:
    checks.append((e.code(), C.PERMISSION_DENIED))
bad = [(i, got, want) for i, (got, want) in enumerate(checks) if got != want]
if bad:
    sys.exit(f"unexpected statuses (check, got, expected): {bad}")
PY
fi

# ---- audit ----
"${as_member[@]}" "$T/bin/chvctl" --socket "$SOCK" create --id audit1 --kernel "$KERNEL" --memory size=32M \
	>"$T/out" 2>"$T/err" &
P_CREATE=$!
wait "$P_CREATE" || true   # without KVM Create fails; audited all the same
"${as_member[@]}" "$T/bin/chvctl" --socket "$SOCK" delete audit1 --force >/dev/null 2>&1 &
P_DELETE=$!
wait "$P_DELETE" || true
log=$T/chvd.log
audit() { grep -Eq -- "$1" "$log" || { tail -n 30 "$log"; fail "no audit line matching '$1'"; }; }
audit "notice: connection fd [0-9]+ from pid $P_CREATE uid $NOBODY gid $SG\$"
audit "notice: connection fd [0-9]+ from pid $P_DENIED uid $NOBODY gid $SG on the read-only socket\$"
audit "notice: vm audit1: /chv.v1.Vm/Create from pid $P_CREATE uid $NOBODY gid $SG\$"
audit "notice: vm audit1: /chv.v1.Vm/Delete from pid $P_DELETE uid $NOBODY gid $SG\$"
audit "notice: refused /chv.v1.Vm/Create from pid $P_DENIED uid $NOBODY gid $SG: read-only socket"
# Read-only calls are logged at debug level only.
! grep -Eq '(info|notice): .*(Vmm/Ping|Vm/List) from pid' "$log" || fail "read-only calls were logged above debug"
stop_chvd
[ ! -e "$SOCK" ] && [ ! -e "$RO" ] || fail "chvd left its sockets behind"

# ---- socket activation: the fd named "ro" is the read-only socket ----
if command -v systemd-socket-activate >/dev/null; then
	mkdir -p "$T/sa"
	CHVD_LOG_FROM=$(( $(stat -c %s "$T/chvd.log") + 1 ))
	systemd-socket-activate -l "$T/sa/api.sock" -l "$T/sa/ro.sock" --fdname=api:ro \
		-E ASAN_OPTIONS="$ASAN_OPTIONS" "$CHVD" -v --listen "$T/sa/api.sock" \
		--state-dir "$T/sastate" --runtime-dir "$T/sarun" --warm-workers 0 >>"$T/chvd.log" 2>&1 &
	CHVD_PID=$!
	for _ in $(seq 100); do [ -S "$T/sa/ro.sock" ] && break; sleep 0.05; done
	"$CHVCTL" --socket "$T/sa/ro.sock" --timeout 20000 ping >/dev/null ||
		{ cat "$T/chvd.log"; fail "ping through the activated read-only socket failed"; }
	expect_fail PERMISSION_DENIED 'Vm/Delete is not allowed on chvd.s read-only socket' \
		"$CHVCTL" --socket "$T/sa/ro.sock" delete x
	expect_fail NOT_FOUND '"x" not found' "$CHVCTL" --socket "$T/sa/api.sock" delete x
	grep -q 'serving the read-only socket systemd passed (fd 4, name ro)' "$T/chvd.log" ||
		{ cat "$T/chvd.log"; fail "chvd did not take the fd named ro as the read-only socket"; }
	stop_chvd
else
	echo "# systemd-socket-activate not installed: socket activation not checked"
fi
echo PASS
