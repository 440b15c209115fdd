#!/usr/bin/env bash
# The main job: installs what it needs, builds chv, and boots the bundled
# test guest in a real KVM virtual machine with chv-vmm, its serial console
# on this terminal; the guest runs its checks and powers itself off.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)"
cmd=(build/bin/chv-vmm --kernel build/guest/chv-testguest.elf
     --cpus boot=2 --memory size=128M --serial tty -v
     --cmdline "chv.mem=128M chv.cpus=2 chv.tag=hello-from-chv")
echo "+ ${cmd[*]}"
set +e
"${cmd[@]}"
status=$?
set -e
echo "chv-vmm exited with status $status ($( [ $status = 0 ] && echo 'guest powered off' || echo 'see above'))"
exit $status
