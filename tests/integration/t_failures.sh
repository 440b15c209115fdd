#!/usr/bin/env bash
# Bad input fails fast with status 2 and a message naming the option and the value;
# nothing is left running.
. "$(dirname "$0")/lib.sh"
need_kvm
# expect_config_error NAME REGEX ARGS...
expect_config_error() {
	local name=$1 re=$2; shift 2
	run_vmm st "$T/e" "$@"
	expect_status "$st" 2 "$name" "$T/e"
	grep -Eq -- "$re" "$T/e.err" || { cat "$T/e.err"; fail "$name: message does not match '$re'"; }
}
expect_config_error "missing kernel" "--kernel.*$T/nope" --kernel "$T/nope"
expect_config_error "no kernel" "--kernel is required" --memory size=64M
head -c 100000 /dev/urandom >"$T/garbage"
expect_config_error "garbage kernel" "--kernel.*not a PVH ELF.*nor a bzImage" --kernel "$T/garbage"
head -c 3000 "$ELF" >"$T/truncated.elf"
expect_config_error "truncated ELF" "--kernel" --kernel "$T/truncated.elf"
: >"$T/empty"
expect_config_error "empty kernel" "--kernel" --kernel "$T/empty"
expect_config_error "memory too small" "--memory.*size" --kernel "$ELF" --memory size=1M
head -c $((12 << 20)) /dev/zero >"$T/big-initrd"
expect_config_error "initramfs larger than memory" "--initramfs" \
	--kernel "$ELF" --memory size=8M --initramfs "$T/big-initrd"
expect_config_error "unknown option" 'unknown option.*--kernl' --kernl "$ELF"
expect_config_error "bad cpus" '--cpus.*boot=0' --kernel "$ELF" --cpus boot=0
expect_config_error "boot > max" '--cpus' --kernel "$ELF" --cpus boot=4,max=2
expect_config_error "bad serial" '--serial.*bogus' --kernel "$ELF" --serial bogus
expect_config_error "bad size" '--memory.*12Q' --kernel "$ELF" --memory size=12Q
# The smallest memory that holds the guest still boots.
run_vmm st "$T/small" --kernel "$ELF" --memory size=4M --serial tty --cmdline "chv.mem=4M chv.cpus=1"
expect_status "$st" 0 "4 MiB of memory" "$T/small"
guest_passed "$T/small.out"
# A guest the hypervisor cannot run (instruction fetch from MMIO): status 4, a log
# line with the reason and a register dump, no crash.
run_vmm st "$T/bad" --kernel "$ELF" --memory size=64M --serial tty --cmdline "chv.checks=boot chv.action=mmioexec"
expect_status "$st" 4 "instruction fetch from MMIO" "$T/bad"
grep -q 'internal error' "$T/bad.err" || { cat "$T/bad.err"; fail "no internal error in the log"; }
grep -q 'rip=0xd0000000' "$T/bad.err" || { cat "$T/bad.err"; fail "the register dump lacks rip=0xd0000000"; }
pgrep -f "chv-vmm.*$T" >/dev/null && fail "a chv-vmm is still running"
echo PASS
