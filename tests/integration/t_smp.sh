#!/usr/bin/env bash
# 4 vCPUs started by the guest with INIT-SIPI-SIPI, for both images; and a
# topology with more possible vCPUs than boot vCPUs (the MADT lists 4 enabled of 8).
. "$(dirname "$0")/lib.sh"
need_kvm
for img in "$ELF" "$BZ"; do
	run_vmm st "$T/run" --kernel "$img" --cpus boot=4 --memory size=128M --serial tty \
		--cmdline "chv.mem=128M chv.cpus=4"
	expect_status "$st" 0 "4 vCPUs with $(basename "$img")" "$T/run"
	guest_passed "$T/run.out" 7
	expect_ok "$T/run.out" "madt"
	expect_ok "$T/run.out" "smp"
	grep -q 'checked in' "$T/run.out" || fail "no AP check-in line"
	[ "$(grep -c '^# smp: AP .* has APIC id' "$T/run.out")" = 3 ] || { cat "$T/run.out"; fail "expected 3 APs"; }
done
run_vmm st "$T/topo" --kernel "$ELF" --cpus boot=4,max=8,topology=2:2:1:2 --memory size=128M \
	--serial tty --cmdline "chv.mem=128M chv.cpus=4"
expect_status "$st" 0 "topology 2:2:1:2" "$T/topo"
guest_passed "$T/topo.out" 7
grep -q 'madt: .* 4 enabled of 8 entries' "$T/topo.out" || { grep madt "$T/topo.out"; fail "MADT should list 4 enabled of 8"; }
echo PASS
