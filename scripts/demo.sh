#!/usr/bin/env bash
# The main job: installs what it needs, builds chv, starts a temporary chvd,
# and through chvctl creates and boots the bundled test guest in a real KVM
# virtual machine, shows its serial console (the guest's checks, in TAP form,
# until it powers itself off) and its state, then cleans everything up.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
if [ ! -c /dev/kvm ]; then
	echo "chv: this machine has no /dev/kvm (no hardware virtualization, or the kvm module is" >&2
	echo "chv: not loaded); chv runs guests only on KVM. The test suite still runs here." >&2
	exit 2
fi
tmp=$(mktemp -d /tmp/chv-demo.XXXXXX)
chvd_pid=
cleanup() {
	[ -n "$chvd_pid" ] && kill -TERM "$chvd_pid" 2>/dev/null && wait "$chvd_pid" 2>/dev/null
	pkill -KILL -f -- "$tmp/" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
export CHVD_SOCKET=$tmp/chvd.sock
build/bin/chvd --listen "$CHVD_SOCKET" --state-dir "$tmp/state" --runtime-dir "$tmp" 2>"$tmp/chvd.log" &
chvd_pid=$!
for _ in $(seq 100); do [ -S "$CHVD_SOCKET" ] && break; sleep 0.05; done
run() { echo "+ chvctl $*"; build/bin/chvctl "$@"; }
run ping
run create --id demo --kernel build/guest/chv-testguest.elf --cpus boot=2 --memory size=128M \
	--serial tty --cmdline "chv.mem=128M chv.cpus=2 chv.tag=hello-from-chv"
run boot demo
run console demo          # follows the serial console until the guest powers off
run info demo
run list
run delete demo
echo "+ chvd log:"; sed 's/^/  /' "$tmp/chvd.log"
