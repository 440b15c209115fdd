#!/usr/bin/env bash
# Packaging: the systemd units pass `systemd-analyze verify` (with ExecStart
# pointing at the built chvd), `cmake --install` puts the three programs and
# the two units where packaging/README.md says, with ExecStart rewritten for
# the prefix, and the installed chvd serves and finds the installed chv-vmm.
. "$(dirname "$0")/lib.sh"
UNITS=(chvd.service chvd.socket)
PROGRAMS=(chvd chv-vmm chvctl)

# verify_units DIR WHAT: systemd-analyze verify on DIR's units; any message
# about them (the unit names or the directory) fails the test.
verify_units() {
	local dir=$1 what=$2 out
	out=$(cd "$dir" && systemd-analyze verify "./chvd.socket" "./chvd.service" 2>&1) || true
	if grep -E "chvd\.(service|socket)|$dir" <<<"$out"; then
		fail "systemd-analyze verify complains about the $what units"
	fi
}

if command -v systemd-analyze >/dev/null; then
	mkdir -p "$T/units"
	for u in "${UNITS[@]}"; do cp "$CHV_SOURCE_DIR/packaging/$u" "$T/units/"; done
	grep -qx 'ExecStart=/usr/bin/chvd' "$T/units/chvd.service" ||
		fail "chvd.service: no ExecStart=/usr/bin/chvd line to substitute"
	sed -i "s|^ExecStart=/usr/bin/chvd|ExecStart=$CHV_BUILD_DIR/bin/chvd|" "$T/units/chvd.service"
	verify_units "$T/units" "source"
	# The check must be able to fail: a unit with an unknown key and a
	# missing binary is reported.
	mkdir -p "$T/bad"
	cp "$T/units/"* "$T/bad/"
	sed -i "s|^ExecStart=.*|ExecStart=$T/bad/no-such-chvd|; s|^KillMode=|KillMod=|" \
		"$T/bad/chvd.service"
	bad=$(cd "$T/bad" && systemd-analyze verify ./chvd.socket ./chvd.service 2>&1) || true
	grep -q "KillMod" <<<"$bad" && grep -q "no-such-chvd" <<<"$bad" ||
		{ echo "$bad"; fail "systemd-analyze verify did not report a broken unit"; }
else
	echo "# systemd-analyze not installed: unit verification skipped"
	verified=no
fi

# What the units promise (docs/api.md, packaging/README.md): workers outlive
# the daemon, their sockets outlive its runtime directory, notify + watchdog.
svc=$CHV_SOURCE_DIR/packaging/chvd.service sock=$CHV_SOURCE_DIR/packaging/chvd.socket
for line in Type=notify KillMode=process RuntimeDirectory=chvd RuntimeDirectoryPreserve=yes \
	StateDirectory=chvd DevicePolicy=closed 'DeviceAllow=/dev/kvm rw' \
	'DeviceAllow=/dev/net/tun rw' Restart=on-failure; do
	grep -qxF "$line" "$svc" || fail "chvd.service lacks \"$line\""
done
grep -q '^WatchdogSec=' "$svc" || fail "chvd.service has no WatchdogSec="
for line in ListenStream=/run/chvd/chvd.sock SocketMode=0660 SocketGroup=chvd Accept=no \
	FileDescriptorName=api; do
	grep -qxF "$line" "$sock" || fail "chvd.socket lacks \"$line\""
done

# cmake --install into a temporary prefix. A build configured without the
# units (-DCHV_INSTALL_SYSTEMD=OFF) must install none.
units_on=yes
grep -q '^CHV_INSTALL_SYSTEMD:BOOL=OFF$' "$CHV_BUILD_DIR/CMakeCache.txt" 2>/dev/null && units_on=no
cmake --install "$CHV_BUILD_DIR" --prefix "$T/prefix" >"$T/install.log" 2>&1 ||
	{ cat "$T/install.log"; fail "cmake --install --prefix $T/prefix failed"; }
for p in "${PROGRAMS[@]}"; do
	[ -x "$T/prefix/bin/$p" ] || { cat "$T/install.log"; fail "$p was not installed in bin/"; }
done
if [ "$units_on" = no ]; then
	[ ! -e "$T/prefix/lib/systemd/system/chvd.service" ] ||
		fail "CHV_INSTALL_SYSTEMD=OFF, but chvd.service was installed"
	echo "# the build has CHV_INSTALL_SYSTEMD=OFF: unit installation not checked"
else
	for u in "${UNITS[@]}"; do
		[ -f "$T/prefix/lib/systemd/system/$u" ] ||
			{ cat "$T/install.log"; fail "$u was not installed in lib/systemd/system/"; }
	done
	grep -qx "ExecStart=$T/prefix/bin/chvd" "$T/prefix/lib/systemd/system/chvd.service" ||
		fail "the installed chvd.service does not start $T/prefix/bin/chvd"
	if [ "${verified:-yes}" = yes ]; then
		verify_units "$T/prefix/lib/systemd/system" "installed"
	fi
fi

# A package build: DESTDIR plus --prefix /usr gives units that name /usr/bin.
DESTDIR=$T/root cmake --install "$CHV_BUILD_DIR" --prefix /usr >"$T/install2.log" 2>&1 ||
	{ cat "$T/install2.log"; fail "DESTDIR=... cmake --install --prefix /usr failed"; }
for p in "${PROGRAMS[@]}"; do
	[ -x "$T/root/usr/bin/$p" ] || fail "DESTDIR install: usr/bin/$p missing"
done
if [ "$units_on" = yes ]; then
	grep -qx 'ExecStart=/usr/bin/chvd' "$T/root/usr/lib/systemd/system/chvd.service" ||
		fail "DESTDIR install: chvd.service does not start /usr/bin/chvd"
	for u in "${UNITS[@]}"; do
		cmp -s "$CHV_SOURCE_DIR/packaging/$u" "$T/root/usr/lib/systemd/system/$u" ||
			fail "DESTDIR install with prefix /usr changed $u"
	done
fi

# The installed programs run from their new place: chvd serves, and spawns
# the chv-vmm installed next to it (not the build tree's).
CHVD=$T/prefix/bin/chvd
CHVCTL=$T/prefix/bin/chvctl
start_chvd
"$CHVCTL" ping >"$T/ping" || { cat "$T/chvd.log"; fail "installed chvctl cannot ping installed chvd"; }
grep -q '^chvd ' "$T/ping" || { cat "$T/ping"; fail "unexpected ping output"; }
if [ -r /dev/kvm ] && [ -w /dev/kvm ] && [ -f "$ELF" ]; then
	ctl create --id pkg --kernel "$ELF" --memory size=16M --serial tty >/dev/null
	pid=$("$CHVCTL" --json info pkg | sed -nE 's/.*"workerPid": *([0-9]+).*/\1/p')
	[ -n "$pid" ] && [ "$pid" != 0 ] || { "$CHVCTL" info pkg; fail "VM pkg has no worker"; }
	exe=$(readlink "/proc/$pid/exe")
	[ "$exe" = "$T/prefix/bin/chv-vmm" ] ||
		fail "the worker runs $exe, not the installed $T/prefix/bin/chv-vmm"
	ctl delete --force pkg
else
	echo "# no usable /dev/kvm or test guest: worker placement not checked"
fi
stop_chvd
echo PASS
