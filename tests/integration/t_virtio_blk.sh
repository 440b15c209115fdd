#!/usr/bin/env bash
# virtio-blk end to end: the host writes a random image, the guest reads it
# (CRC of the first sectors), writes its own pattern, flushes and reads it
# back; after power-off the host finds that pattern at the right place and
# nothing else changed. get-id answers --disk serial=; a read-only disk
# refuses writes and its file stays identical; a second chv-vmm on the same
# writable image is a configuration error naming --disk. The same under chvd
# (chvctl create --disk) and under QEMU q35 with its virtio-blk-pci.
. "$(dirname "$0")/lib.sh"
need_kvm

SECTORS=2048 # a 1 MiB image
head -c $((SECTORS * 512)) /dev/urandom >"$T/orig.img"
crc=$($PY -c 'import sys, zlib; print("%08x" % zlib.crc32(open(sys.argv[1], "rb").read()[:64 * 512]))' "$T/orig.img")

# expect_pattern IMG SECTOR COUNT SEED: the guest's pattern (word k of the
# region is SEED + k * 0x9e3779b1, little-endian) is at SECTOR, and every
# other byte is as in orig.img.
expect_pattern() {
	$PY - "$T/orig.img" "$@" <<'EOF' || fail "$1: the guest's write is not as expected"
import struct, sys
orig, img, sector, count, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5], 16)
a, b = open(orig, "rb").read(), open(img, "rb").read()
pat = b"".join(struct.pack("<I", (seed + k * 0x9E3779B1) & 0xFFFFFFFF) for k in range(count * 128))
lo, hi = sector * 512, (sector + count) * 512
if len(a) != len(b):
    sys.exit("size changed: %d -> %d" % (len(a), len(b)))
if b[lo:hi] != pat:
    sys.exit("the pattern is not at sector %d" % sector)
if a[:lo] != b[:lo] or a[hi:] != b[hi:]:
    sys.exit("bytes outside sectors %d..%d changed" % (sector, sector + count - 1))
EOF
}

# chv-vmm, PVH and bzImage; two disks, the check uses the first.
for img in "$ELF" "$BZ"; do
	name=$(basename "$img")
	cp "$T/orig.img" "$T/$name.img"
	cp "$T/orig.img" "$T/$name.second.img"
	run_vmm st "$T/$name" --kernel "$img" --memory size=64M --serial "file=$T/$name.log" \
		--disk "path=$T/$name.img,serial=chv-disk-0,id=d0" \
		--disk "path=$T/$name.second.img,readonly=on" \
		--cmdline "chv.checks=boot,pci,blk chv.pci=4 chv.blk=64:$crc chv.blkid=chv-disk-0 chv.blkw=100:20:1234abcd"
	expect_status "$st" 0 "$name" "$T/$name"
	guest_passed "$T/$name.log" 3
	expect_ok "$T/$name.log" "virtio-blk"
	tr -d '\r' <"$T/$name.log" | grep -q '^# virtio-blk: 00:02.0 1af4:1042, .* 2048 sectors$' ||
		{ cat "$T/$name.log"; fail "$name: virtio-blk not found at 00:02.0 with 2048 sectors"; }
	expect_pattern "$T/$name.img" 100 20 1234abcd
	cmp -s "$T/orig.img" "$T/$name.second.img" || fail "$name: the second disk changed"
done

# direct=on, queue options, and a write that ends at the last sector.
cp "$T/orig.img" "$T/direct.img"
run_vmm st "$T/direct" --kernel "$ELF" --memory size=64M --serial "file=$T/direct.log" \
	--cpus boot=2 --disk "path=$T/direct.img,direct=on,num_queues=2,queue_size=64" \
	--cmdline "chv.checks=blk chv.blk=128:$($PY -c 'import sys, zlib; print("%08x" % zlib.crc32(open(sys.argv[1], "rb").read()[:128 * 512]))' "$T/orig.img") chv.blkw=$((SECTORS - 128)):128:0"
expect_status "$st" 0 "direct=on" "$T/direct"
expect_ok "$T/direct.log" "virtio-blk"
expect_pattern "$T/direct.img" $((SECTORS - 128)) 128 0

# Read-only: the guest's write is refused (IOERR, RO offered), the file is
# identical; get-id with no serial is empty, so a wrong expectation fails.
cp "$T/orig.img" "$T/ro.img"
run_vmm st "$T/ro" --kernel "$ELF" --memory size=64M --serial "file=$T/ro.log" \
	--disk "path=$T/ro.img,readonly=on,serial=ro" --cmdline "chv.checks=blk chv.blkro=1 chv.blkid=ro chv.blk=1:$($PY -c 'import sys, zlib; print("%08x" % zlib.crc32(open(sys.argv[1], "rb").read()[:512]))' "$T/orig.img")"
expect_status "$st" 0 "readonly" "$T/ro"
expect_ok "$T/ro.log" "virtio-blk"
cmp -s "$T/orig.img" "$T/ro.img" || fail "a read-only disk's file changed"
run_vmm st "$T/id" --kernel "$ELF" --memory size=64M --serial "file=$T/id.log" \
	--disk "path=$T/ro.img,readonly=on,serial=other" --cmdline "chv.checks=blk chv.blkid=chv-disk-0"
expect_status "$st" 0 "wrong id" "$T/id"
grep -q '^not ok 1 - virtio-blk # get-id: "other", expected "chv-disk-0"' "$T/id.log" ||
	{ cat "$T/id.log"; fail "a wrong serial did not fail get-id"; }

# Image locking: a second VM on a writable image in use exits 2 naming --disk;
# two read-only users may share one.
cp "$T/orig.img" "$T/lock.img"
"$VMM" --kernel "$ELF" --memory size=64M --disk "path=$T/lock.img" \
	--cmdline "chv.checks=boot chv.action=hang" >"$T/holder.out" 2>&1 &
holder=$!
for _ in $(seq 100); do
	ls -l "/proc/$holder/fd" 2>/dev/null | grep -qF "$T/lock.img" && break
	sleep 0.05
done
run_vmm st "$T/second" --kernel "$ELF" --memory size=64M --disk "path=$T/lock.img" \
	--cmdline "chv.checks=boot"
expect_status "$st" 2 "a second VM on a locked image" "$T/second"
grep -q -- "--disk: path=$T/lock.img is in use" "$T/second.err" ||
	{ cat "$T/second.err"; fail "the lock error does not name --disk and the path"; }
run_vmm st "$T/second" --kernel "$ELF" --memory size=64M --disk "path=$T/lock.img,readonly=on" \
	--cmdline "chv.checks=boot"
expect_status "$st" 2 "a reader of an image open for writing" "$T/second"
kill -TERM "$holder"
wait "$holder" || true
cmp -s "$T/orig.img" "$T/lock.img" || fail "the locked image changed"

# Configuration errors: exit 2, naming --disk and the key.
for bad in "path=$T/missing.img" "path=$T" "path=$T/lock.img,queue_size=100" \
	"path=$T/lock.img,num_queues=2" "path=$T/lock.img,serial=123456789012345678901" \
	"file=$T/lock.img"; do
	run_vmm st "$T/bad" --kernel "$ELF" --disk "$bad"
	expect_status "$st" 2 "--disk $bad" "$T/bad"
	grep -q -- '--disk' "$T/bad.err" || { cat "$T/bad.err"; fail "--disk $bad: message does not name --disk"; }
done

# Under chvd: create with the same flags, boot, console, counters, file.
cp "$T/orig.img" "$T/chvd.img"
start_chvd
ctl create --id b1 --kernel "$ELF" --memory size=64M --serial tty \
	--disk "path=$T/chvd.img,serial=api-disk" \
	--cmdline "chv.checks=boot,blk chv.blk=64:$crc chv.blkid=api-disk chv.blkw=7:3:cafe chv.action=hang" >/dev/null
wait_state b1 CREATED 5
ctl --json info b1 >"$T/b1.json"
grep -q "$T/chvd.img" "$T/b1.json" || { cat "$T/b1.json"; fail "info does not show the disk"; }
ctl boot b1 >/dev/null
wait_state b1 RUNNING 5
for _ in $(seq 300); do
	ctl console b1 --no-follow >"$T/console" 2>/dev/null
	grep -q '^# chv-testguest:' "$T/console" && break
	sleep 0.1
done
guest_passed "$T/console" 2
expect_ok "$T/console" "virtio-blk"
ctl counters b1 >"$T/counters"
value() { awk -v k="$1" '$1 == k { print $2 }' "$T/counters"; }
[ "$(value virtio.blk0.writes)" = 1 ] || { cat "$T/counters"; fail "virtio.blk0.writes is not 1"; }
[ "$(value virtio.blk0.bytes_written)" = 1536 ] || { cat "$T/counters"; fail "virtio.blk0.bytes_written is not 1536"; }
[ "$(value virtio.blk0.get_ids)" = 1 ] || { cat "$T/counters"; fail "virtio.blk0.get_ids is not 1"; }
[ "$(value virtio.blk0.flushes)" = 1 ] || { cat "$T/counters"; fail "virtio.blk0.flushes is not 1"; }
r=$(value virtio.blk0.reads)
[ -n "$r" ] && [ "$r" -ge 5 ] || { cat "$T/counters"; fail "virtio.blk0.reads is '$r'"; }
k=$(value virtio.blk0.notifications)
[ -n "$k" ] && [ "$k" -ge 1 ] || { cat "$T/counters"; fail "no ioeventfd notifications"; }
[ "$(value virtio.blk0.errors)" = 0 ] || { cat "$T/counters"; fail "virtio.blk0.errors is not 0"; }
# The image is locked while the VM lives, for chv-vmm too.
run_vmm st "$T/second" --kernel "$ELF" --memory size=64M --disk "path=$T/chvd.img"
expect_status "$st" 2 "chv-vmm on an image a chvd VM holds" "$T/second"
ctl shutdown b1 --force >/dev/null
wait_state b1 SHUTDOWN 5
expect_pattern "$T/chvd.img" 7 3 cafe
set +e
"$CHVCTL" create --id b2 --kernel "$ELF" --disk "path=$T/chvd.img,queue_size=3" >"$T/b2.out" 2>"$T/b2.err"
st=$?
set -e
[ "$st" != 0 ] || fail "chvctl create with queue_size=3 succeeded"
grep -q "queue_size" "$T/b2.err" || { cat "$T/b2.err"; fail "the error does not name queue_size"; }
ctl delete b1 >/dev/null
stop_chvd

command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (chv parts passed)"
run=$CHV_SOURCE_DIR/tests/guest/run-qemu.sh
cp "$T/orig.img" "$T/q35.img"
sh "$run" -M q35 -c 1 -m 128M -o "$T/q35.log" \
	-a "chv.checks=boot,blk chv.blk=64:$crc chv.blkid=qemu-disk chv.blkw=100:20:1234abcd" "$ELF" \
	-- -drive "file=$T/q35.img,if=none,id=d0,format=raw" \
	-device virtio-blk-pci,drive=d0,disable-legacy=on,serial=qemu-disk,addr=0x3 ||
	{ cat "$T/q35.log"; fail "virtio-blk checks failed under QEMU q35"; }
expect_ok "$T/q35.log" "virtio-blk"
tr -d '\r' <"$T/q35.log" | grep -q '^# virtio-blk: 00:03.0 1af4:1042' ||
	{ cat "$T/q35.log"; fail "q35: the driver did not use 00:03.0 1af4:1042"; }
expect_pattern "$T/q35.img" 100 20 1234abcd
# QEMU's read-only drive refuses the write the same way (bzImage this time).
cp "$T/orig.img" "$T/q35ro.img"
sh "$run" -M q35 -c 1 -m 128M -o "$T/q35ro.log" -a "chv.checks=blk chv.blkro=1" "$BZ" \
	-- -drive "file=$T/q35ro.img,if=none,id=d0,format=raw,readonly=on" \
	-device virtio-blk-pci,drive=d0,disable-legacy=on,addr=0x3 ||
	{ cat "$T/q35ro.log"; fail "virtio-blk read-only check failed under QEMU q35"; }
cmp -s "$T/orig.img" "$T/q35ro.img" || fail "q35: the read-only image changed"
echo PASS
