#!/usr/bin/env bash
# The test guest under QEMU (microvm, KVM): proves its drivers against a mature VMM.
. "$(dirname "$0")/lib.sh"
need_kvm
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed"
bash "$CHV_SOURCE_DIR/tests/guest/run-qemu.sh" "$ELF" "$T/qemu.log" 2 128M || { cat "$T/qemu.log"; fail "guest failed under QEMU"; }
guest_passed "$T/qemu.log" 6
echo PASS
