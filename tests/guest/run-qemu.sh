#!/bin/sh
# Boots the chv test guest under QEMU and judges its TAP output.
# Exit status: 0 only when the guest printed exactly one summary line and it
# says 0 failed; 1 otherwise (2 for a usage error).
set -u

usage() {
	cat >&2 <<'USAGE'
usage: run-qemu.sh [options] IMAGE [-- QEMU-ARGS...]
  IMAGE            chv-testguest.elf (PVH) or chv-testguest.bzImage
  -a CMDLINE       kernel command line (chv.* keys, see docs/test-guest.md)
  -i FILE          initramfs
  -m SIZE          guest memory, QEMU syntax (default 128M)
  -c N             vCPUs (default 2)
  -M MACHINE       microvm (default) or q35
  -t SECONDS       timeout for the whole run (default 120)
  -o FILE          write the serial output to FILE instead of stdout
  -q PATH          the QEMU binary (default qemu-system-x86_64)
USAGE
	exit 2
}

append="" initrd="" mem=128M cpus=2 machine=microvm timeout_s=120 out="" qemu=qemu-system-x86_64
while getopts "a:i:m:c:M:t:o:q:h" opt; do
	case $opt in
	a) append=$OPTARG ;;
	i) initrd=$OPTARG ;;
	m) mem=$OPTARG ;;
	c) cpus=$OPTARG ;;
	M) machine=$OPTARG ;;
	t) timeout_s=$OPTARG ;;
	o) out=$OPTARG ;;
	q) qemu=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
image=$1
shift
[ "${1:-}" = "--" ] && shift
[ -r "$image" ] || { echo "run-qemu.sh: cannot read image $image" >&2; exit 2; }

case $machine in
# rtc=on: microvm has no RTC unless asked; acpi=on: the guest powers off
# through the FADT sleep control register.
microvm) mopt="microvm,acpi=on,rtc=on" ;;
q35) mopt="q35" ;;
*) echo "run-qemu.sh: unknown machine $machine" >&2; exit 2 ;;
esac

if [ -w /dev/kvm ]; then
	# -cpu host fails on hosts that refuse MSR 0x10a; qemu64 with invtsc
	# gives the guest the TSC frequency leaf (0x40000010).
	accel="-enable-kvm -cpu qemu64,-pni,+invtsc"
else
	accel="-accel tcg -cpu max"
fi

serial=$out
if [ -z "$serial" ]; then
	serial=$(mktemp /tmp/chv-testguest.XXXXXX) || exit 1
	trap 'rm -f "$serial"' EXIT
fi
: >"$serial"

set -- -M "$mopt" $accel -m "$mem" -smp "$cpus" -nodefaults -no-user-config \
	-display none -serial "file:$serial" -no-reboot -kernel "$image" -append "$append" \
	${initrd:+-initrd "$initrd"} "$@"
timeout "$timeout_s" "$qemu" "$@"
rc=$?

[ -n "$out" ] || tr -d '\r' <"$serial"

if [ $rc -eq 124 ]; then
	echo "run-qemu.sh: QEMU did not finish within ${timeout_s}s" >&2
	exit 1
fi
summaries=$(tr -d '\r' <"$serial" | grep -c '^# chv-testguest: [0-9]* passed, [0-9]* failed$')
if [ "$summaries" -ne 1 ]; then
	echo "run-qemu.sh: expected one summary line, found $summaries (QEMU exit status $rc)" >&2
	exit 1
fi
if ! tr -d '\r' <"$serial" | grep -q '^# chv-testguest: [0-9]* passed, 0 failed$'; then
	echo "run-qemu.sh: the guest reported failures" >&2
	exit 1
fi
exit 0
