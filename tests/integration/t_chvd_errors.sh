#!/usr/bin/env bash
# Every error status chvd gives, provoked and checked through chvctl (exit 1 and
# the status name on stderr) and through raw gRPC from Python (garbage, oversized,
# unknown, abandoned streams). chvd keeps serving, nothing is left behind. The
# errors of a VM's own lifecycle need KVM; the rest runs everywhere.
. "$(dirname "$0")/lib.sh"
need_chvd_leak_check
# Everything but the VMs' own lifecycle runs without KVM.
KVM=false
[ -r /dev/kvm ] && [ -w /dev/kvm ] && KVM=true
KERNEL=$ELF
[ -f "$KERNEL" ] || { KERNEL=$T/kernel; head -c 4096 /dev/zero >"$KERNEL"; }
start_chvd --max-vms 2
# expect_rpc_error STATUS REGEX CHVCTL-ARGS...
expect_rpc_error() {
	local want=$1 re=$2; shift 2
	set +e; "$CHVCTL" "$@" >"$T/out" 2>"$T/err"; local st=$?; set -e
	[ "$st" = 1 ] || { cat "$T/err"; fail "chvctl $*: status $st, expected 1"; }
	grep -q "$want" "$T/err" || { cat "$T/err"; fail "chvctl $*: no $want"; }
	grep -Eq -- "$re" "$T/err" || { cat "$T/err"; fail "chvctl $*: message does not match '$re'"; }
}
G=(--kernel "$KERNEL" --memory size=32M --serial tty --cmdline "chv.checks=boot chv.action=hang")
expect_rpc_error NOT_FOUND 'nope' info nope
expect_rpc_error INVALID_ARGUMENT 'kernel' create --id k --kernel "$T/missing.elf"
expect_rpc_error INVALID_ARGUMENT 'vm_id' create --id 'bad/id' "${G[@]}"
expect_rpc_error UNIMPLEMENTED 'Snapshot' snapshot e1 file:///tmp/snap
if $KVM && [ -f "$ELF" ]; then
	ctl ping | grep -q 'features: kvm$' || { ctl ping; fail "ping does not offer kvm"; }
	ctl create --id e1 "${G[@]}" >/dev/null
	expect_rpc_error ALREADY_EXISTS 'e1' create --id e1 "${G[@]}"
	expect_rpc_error FAILED_PRECONDITION 'Created' pause e1
	ctl boot e1 >/dev/null
	expect_rpc_error FAILED_PRECONDITION 'Running' boot e1
	expect_rpc_error FAILED_PRECONDITION 'Running' delete e1
	ctl create --id e2 "${G[@]}" >/dev/null
	expect_rpc_error RESOURCE_EXHAUSTED 'max-vms' create --id e3 "${G[@]}"
	ctl delete e1 --force >/dev/null
	ctl delete e2 >/dev/null
	head -c 50000 /dev/urandom >"$T/garbage"
	expect_rpc_error INVALID_ARGUMENT 'kernel' create --id g --kernel "$T/garbage" --memory size=32M
	expect_rpc_error NOT_FOUND 'g' info g
elif [ ! -e /dev/kvm ]; then
	echo "# no /dev/kvm: the VM lifecycle errors are not checked; Create fails as pinned"
	expect_rpc_error "$CHVD_NO_KVM_STATUS" "$CHVD_NO_KVM_DETAIL" create --id nk "${G[@]}"
	expect_rpc_error NOT_FOUND 'nk' info nk
	ls "$T/run/vms" 2>/dev/null | grep -q '^nk\.' && fail "a refused Create left files: $(ls "$T/run/vms")"
	# Ping tells a control plane this host cannot run VMs now.
	ctl ping | grep -q 'features: none$' || { ctl ping; fail "ping offers kvm without /dev/kvm"; }
else
	echo "# /dev/kvm is not usable or no test guest: the VM lifecycle errors are not checked"
fi

if gen_py_protos "$T/py"; then
	$PY "$CHV_SOURCE_DIR/tests/integration/abuse_client.py" "$T/py" "$SOCK" ||
		{ tail -n 30 "$T/chvd.log"; fail "abuse client failed"; }
fi
ctl ping >/dev/null
fds=$(ls /proc/"$CHVD_PID"/fd | wc -l)
[ "$fds" -lt 64 ] || { ls -l /proc/"$CHVD_PID"/fd; fail "chvd holds $fds fds after the abuse"; }
stop_chvd
pgrep -f -- "$T/run/vms" >/dev/null && fail "a worker was left running"

# A worker binary that cannot start: UNAVAILABLE, and no VM is left defined.
start_chvd --vmm /nonexistent/chv-vmm
expect_rpc_error UNAVAILABLE 'worker' create --id u "${G[@]}"
expect_rpc_error NOT_FOUND 'u' info u
stop_chvd
echo PASS
