#!/usr/bin/env bash
# Installs the Debian 12 packages chv needs to build, test and benchmark
# (clang and libclang-rt-14-dev, which holds libFuzzer: scripts/fuzz.sh).
# Idempotent and quick when everything is already there.
set -euo pipefail
pkgs=(gcc make cmake binutils libc6-dev pkg-config libcmocka-dev acpica-tools
      qemu-system-x86 python3 iproute2 iputils-ping procps time
      libprotobuf-c-dev protobuf-c-compiler libgrpc-dev libsystemd-dev python3-grpcio
      python3-protobuf protobuf-compiler systemd openssl liburing-dev libseccomp-dev
      clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "chv: missing packages: ${missing[*]} (run as root to install them)" >&2
		exit 1
	fi
	echo "chv: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
