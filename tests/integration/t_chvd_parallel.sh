#!/usr/bin/env bash
# 20 VMs created and booted by parallel clients; each reaches power-off with its
# own console output.
. "$(dirname "$0")/lib.sh"
need_kvm
start_chvd
N=20
pids=()
for i in $(seq $N); do
	( "$CHVCTL" create --id "p$i" --kernel "$ELF" --memory size=32M --serial tty \
		--cmdline "chv.mem=32M chv.cpus=1 chv.tag=vm-$i chv.checks=boot,cmdline,mem,acpi" >/dev/null &&
	  "$CHVCTL" boot "p$i" >/dev/null ) >"$T/c$i.log" 2>&1 &
	pids+=($!)
done
wait "${pids[@]}"
for i in $(seq $N); do
	[ ! -s "$T/c$i.log" ] || { cat "$T/c$i.log"; fail "client $i failed"; }
done
for i in $(seq $N); do
	wait_state "p$i" SHUTDOWN 60
	ctl console "p$i" --no-follow >"$T/con$i"
	guest_passed "$T/con$i" 4
	tr -d '\r' <"$T/con$i" | grep -qx "# tag: vm-$i" || fail "p$i has someone else's console"
done
ctl list >"$T/list"
[ "$(grep -ic ' shutdown ' "$T/list")" = $N ] || { cat "$T/list"; fail "not all $N VMs are Shutdown"; }
for i in $(seq $N); do ctl delete "p$i" >/dev/null; done
stop_chvd
echo PASS
