#!/usr/bin/env bash
# Two VMs under chvd: one hostile (every kind of chv.hostile, see
# docs/test-guest.md), one normal. The normal one finishes its checks, chvd
# answers Ping and Info throughout (polled while the hostile one runs), the
# hostile VM ends Shutdown (the guest's power-off) or Failed with a reason, no
# worker is left, and neither chvd's log nor the workers' have a sanitizer
# report.
. "$(dirname "$0")/lib.sh"
need_kvm
need_chvd_leak_check
head -c $((2048 * 512)) /dev/urandom >"$T/disk.img"
before=$(sha256sum <"$T/disk.img")
crc=$($PY -c 'import sys, zlib; print("%08x" % zlib.crc32(open(sys.argv[1], "rb").read()[:64 * 512]))' "$T/disk.img")
start_chvd
ctl create --id evil --kernel "$ELF" --memory size=64M --serial tty --disk "path=$T/disk.img" \
	--cmdline "chv.checks=boot,cmos,hostile chv.hostile=blk,ports,mmio,msix,queues,storm chv.blk=64:$crc" >/dev/null
ctl create --id good --kernel "$ELF" --memory size=64M --serial tty \
	--cmdline "chv.mem=64M chv.cpus=1 chv.tag=good chv.checks=boot,cmdline,mem,acpi,madt,cmos,pci,rng chv.pci=2" >/dev/null
evil_pid=
ctl boot evil >/dev/null
ctl boot good >/dev/null

# Poll chvd while the hostile VM runs: every Ping and Info must answer, and
# quickly (each call bounded by timeout).
polls=0 slow=0 state=
for _ in $(seq 2400); do
	t0=$(date +%s%N)
	timeout 5 "$CHVCTL" ping >/dev/null || fail "chvd did not answer Ping while the hostile VM ran"
	js=$(timeout 5 "$CHVCTL" --json info evil) || fail "chvd did not answer Info while the hostile VM ran"
	timeout 5 "$CHVCTL" info good >/dev/null || fail "chvd did not answer Info for the normal VM"
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	[ "$ms" -lt 1000 ] || slow=$((slow + 1))
	polls=$((polls + 1))
	[ -n "$evil_pid" ] || evil_pid=$(sed -nE 's/.*"workerPid": *([0-9]+).*/\1/p' <<<"$js")
	state=$(sed -nE 's/.*"state": *"VM_STATE_([A-Z]+)".*/\1/p' <<<"$js")
	case $state in SHUTDOWN | FAILED) break ;; esac
	sleep 0.1
done
echo "chvd answered $polls Ping+Info rounds while the hostile VM ran ($slow slower than 1 s); it ended $state"
[ "$slow" = 0 ] || fail "$slow poll rounds took more than a second"
case $state in
SHUTDOWN) ;;
FAILED)
	"$CHVCTL" --json info evil | grep -Eq '"failureReason": *"[^"]+' ||
		{ "$CHVCTL" --json info evil; fail "the hostile VM failed without a reason"; } ;;
*) "$CHVCTL" info evil || true; fail "the hostile VM did not end (state $state)" ;;
esac
ctl console evil --no-follow >"$T/evil.con"
sed -i 's/\r$//' "$T/evil.con"
grep -a '^ok\|^not ok\|took' "$T/evil.con" || true
[ "$state" != SHUTDOWN ] || guest_passed "$T/evil.con" 14

wait_state good SHUTDOWN 60
ctl console good --no-follow >"$T/good.con"
guest_passed "$T/good.con" 8
tr -d '\r' <"$T/good.con" | grep -qx '# tag: good' || fail "the normal VM has someone else's console"

# No worker left behind.
if [ -n "$evil_pid" ] && kill -0 "$evil_pid" 2>/dev/null; then
	fail "the hostile VM's worker (pid $evil_pid) is still running"
fi
ctl delete evil >/dev/null
ctl delete good >/dev/null
left=$(pgrep -P "$CHVD_PID" || true)
[ -z "$left" ] || { ps -fp $left || true; fail "chvd still has child processes: $left"; }
for f in "$T"/run/vms/*.log; do
	[ -e "$f" ] || continue
	if grep -Eq 'AddressSanitizer|UndefinedBehaviorSanitizer|runtime error' "$f"; then
		cat "$f"; fail "a sanitizer report in $(basename "$f")"
	fi
done
[ "$(sha256sum <"$T/disk.img")" = "$before" ] || fail "the image changed: a malformed write landed"
stop_chvd
echo PASS
