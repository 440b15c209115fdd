#!/usr/bin/env bash
# Start-up benchmark: chv-vmm start -> test-guest power-off, wall time and
# peak RSS, side by side with QEMU microvm running the same PVH image with the
# same command line, and the raw KVM floor (create VM + memslot + vCPU + first
# exit), all in one run on this host.
#   bench/startup.sh [iterations]      (default 10; needs a release build in build/)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}
./scripts/deps.sh
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
ELF=build/guest/chv-testguest.elf
MEM=128M
CMDLINE="chv.checks=boot"   # the trivial guest: enter, check the boot protocol, power off
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# one_run NAME CMD...: appends "wall_ms rss_kib" to $out/NAME
one_run() {
	local name=$1; shift
	local t0 t1
	t0=$(date +%s%N)
	/usr/bin/time -f '%M' -o "$out/rss" "$@" >"$out/serial" 2>"$out/err" </dev/null || {
		echo "$name failed:"; cat "$out/err" "$out/serial"; exit 1; }
	t1=$(date +%s%N)
	grep -q "^# chv-testguest: 1 passed, 0 failed" "$out/serial" || { echo "$name: no summary line"; cat "$out/serial"; exit 1; }
	echo "$(( (t1 - t0) / 1000 )) $(tail -n1 "$out/rss")" >>"$out/$name"
}

div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

# median FILE COLUMN
median() { sort -n -k"$2" "$1" | awk -v c="$2" '{v[NR]=$c} END {print v[int((NR+1)/2)]}'; }

for _ in $(seq "$n"); do
	one_run chv build/bin/chv-vmm --kernel "$ELF" --memory size=$MEM --cpus boot=1 \
		--serial tty --cmdline "$CMDLINE"
	one_run qemu qemu-system-x86_64 -M microvm,acpi=on,rtc=on -enable-kvm \
		-cpu qemu64,-pni,+invtsc -m $MEM -smp 1 -nodefaults -no-user-config -nographic -serial stdio \
		-no-reboot -kernel "$ELF" -append "$CMDLINE"
done
floor=$(build/bin/kvm_floor "$((n * 5))" "${MEM%M}")
floor_us=$(sed -E 's/.*median ([0-9.]+).*/\1/' <<<"$floor")

chv_wall=$(median "$out/chv" 1); chv_rss=$(median "$out/chv" 2)
qemu_wall=$(median "$out/qemu" 1); qemu_rss=$(median "$out/qemu" 2)
echo "host: $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cpus"
echo "iterations: $n (medians); guest: $ELF, $MEM, 1 vCPU, cmdline \"$CMDLINE\""
printf '%-34s %12s %14s\n' "" "wall (ms)" "peak RSS (MiB)"
printf '%-34s %12.2f %14.1f\n' "chv-vmm start -> guest power-off" "$(div $chv_wall 1000)" "$(div $chv_rss 1024)"
printf '%-34s %12.2f %14.1f\n' "QEMU microvm, same guest" "$(div $qemu_wall 1000)" "$(div $qemu_rss 1024)"
printf '%-34s %12.2f\n' "raw KVM floor (VM+slot+vCPU+exit)" "$(div $floor_us 1000)"
printf 'ratios: wall chv/QEMU %.3f (target <= 0.25), RSS chv/QEMU %.3f (target <= 0.125)\n' \
	"$(div $chv_wall $qemu_wall)" "$(div $chv_rss $qemu_rss)"
