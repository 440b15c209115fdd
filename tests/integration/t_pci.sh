#!/usr/bin/env bash
# The guest's pci check: ECAM from the MCFG, a walk of bus 0, BAR sizing and
# placement. Under chv-vmm (PVH and bzImage) the host bridge and virtio-rng
# (always present, 00:01.0); under QEMU q35 (microvm 7.2 has no MCFG, see
# docs/test-guest.md) with a virtio-rng-pci device, so BARs are sized for
# real. A wrong expectation fails.
. "$(dirname "$0")/lib.sh"
need_kvm
for img in "$ELF" "$BZ"; do
	name=$(basename "$img")
	run_vmm st "$T/$name" --kernel "$img" --memory size=64M --serial "file=$T/$name.log" \
		--cmdline "chv.checks=boot,acpi,pci chv.pci=2"
	expect_status "$st" 0 "$name" "$T/$name"
	guest_passed "$T/$name.log" 3
	expect_ok "$T/$name.log" "pci"
	tr -d '\r' <"$T/$name.log" | grep -qx '# pci: 00:00.0 8086:0d57 class 060000' ||
		{ cat "$T/$name.log"; fail "$name: host bridge line missing"; }
	tr -d '\r' <"$T/$name.log" | grep -qx '# pci: ECAM at 0xe8000000, segment 0, buses 0-255' ||
		fail "$name: ECAM line missing"
done
# The check can fail: three functions expected, two there.
run_vmm st "$T/neg" --kernel "$ELF" --memory size=64M --serial "file=$T/neg.log" \
	--cmdline "chv.checks=pci chv.pci=3"
grep -q '^not ok 1 - pci # 2 functions, expected 3' "$T/neg.log" ||
	{ cat "$T/neg.log"; fail "a wrong chv.pci= did not fail the check"; }

command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (chv-vmm part passed)"
run=$CHV_SOURCE_DIR/tests/guest/run-qemu.sh
# q35 -nodefaults: host bridge, LPC (1f.0), SATA (1f.2), SMBus (1f.3), and the rng.
sh "$run" -M q35 -c 1 -m 128M -o "$T/q35.log" -a "chv.checks=boot,acpi,pci chv.pci=5" "$ELF" \
	-- -device virtio-rng-pci,addr=0x3 ||
	{ cat "$T/q35.log"; fail "pci check failed under QEMU q35"; }
expect_ok "$T/q35.log" "pci"
tr -d '\r' <"$T/q35.log" | grep -q '^# pci: 00:03.0 1af4:1005 ' || fail "q35: virtio-rng not listed"
tr -d '\r' <"$T/q35.log" | grep -q '^# pci: 00:03.0 BAR[0-9] mem' || fail "q35: no memory BAR sized"
echo PASS
