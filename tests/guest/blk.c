/* The virtio-blk check, on the first virtio-blk function, one polled queue:
 *   chv.blk=N:CRC     the first N sectors (written by the host) have this CRC;
 *   chv.blkid=S       GET_ID answers S (NUL-terminated if under 20 bytes);
 *   chv.blkro=1       the disk is read-only: a write is answered IOERR;
 *   chv.blkw=S:N:SEED N sectors from S get the pattern of SEED, then a
 *                     flush, then they are read back and compared.
 * The host checks the written pattern in its file afterwards, so the pattern
 * is simple to make there too: little-endian 32-bit word k of the region is
 * SEED + k * 0x9e3779b1. Every request and byte loop runs at CPL3. */
#include "guest.h"

#define VIRTIO_ID_BLK	      2
#define BLK_F_RO	      5
#define BLK_F_BLK_SIZE	      6
#define BLK_F_FLUSH	      9
#define BLK_T_IN	      0
#define BLK_T_OUT	      1
#define BLK_T_FLUSH	      4
#define BLK_T_GET_ID	      8
#define BLK_S_OK	      0
#define BLK_S_IOERR	      1
#define BLK_SECTOR	      512u
#define BLK_ID_BYTES	      20u
#define BLK_REQ_SECTORS	      16u /* per request: 8 KiB */
#define BLK_TIMEOUT_MS	      5000
#define BLK_PATTERN_STEP      0x9e3779b1u
#define BLK_STATUS_UNANSWERED 0xff

struct blk_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

static uint8_t ring_page[4096] __attribute__((aligned(4096)));
static uint8_t data[BLK_MAX_SECTORS * BLK_SECTOR] __attribute__((aligned(4096)));
static struct blk_hdr hdr __attribute__((aligned(16)));
static volatile uint8_t status_byte;

struct blk_run {
	const struct options *o;
	struct virtq *vq;
	uint64_t tsc_per_ms, capacity;
	bool ro_offered;
	/* results: the first failure, as text */
	bool failed;
	char why[160];
	uint32_t crc;
	uint8_t id[BLK_ID_BYTES + 1];
};

/* One request: header, optional data, status. Returns the status, or
 * BLK_STATUS_UNANSWERED when the device did not return the chain in time. */
static unsigned blk_req(struct blk_run *r, uint32_t type, uint64_t sector, void *buf, uint32_t len,
			bool device_writes)
{
	hdr = (struct blk_hdr){type, 0, sector};
	status_byte = BLK_STATUS_UNANSWERED;
	struct virtq_buf b[3];
	unsigned n = 0;
	b[n++] = (struct virtq_buf){(uint64_t)(uintptr_t)&hdr, sizeof(hdr), false};
	if (len)
		b[n++] = (struct virtq_buf){(uint64_t)(uintptr_t)buf, len, device_writes};
	b[n++] = (struct virtq_buf){(uint64_t)(uintptr_t)&status_byte, 1, true};
	if (virtq_transact(r->vq, b, n, rdtsc() + BLK_TIMEOUT_MS * r->tsc_per_ms) < 0)
		return BLK_STATUS_UNANSWERED;
	return status_byte;
}

static bool fail(struct blk_run *r, const char *what, unsigned st)
{
	r->failed = true;
	if (st == BLK_STATUS_UNANSWERED)
		ksnprintf(r->why, sizeof(r->why), "%s: no answer within %u ms", what,
			  BLK_TIMEOUT_MS);
	else
		ksnprintf(r->why, sizeof(r->why), "%s: status %u", what, st);
	return false;
}

/* Sectors [sector, sector + count) to or from data, in BLK_REQ_SECTORS pieces. */
static bool blk_rw(struct blk_run *r, uint32_t type, uint64_t sector, uint32_t count,
		   const char *what)
{
	for (uint32_t done = 0; done < count; done += BLK_REQ_SECTORS) {
		uint32_t n = count - done < BLK_REQ_SECTORS ? count - done : BLK_REQ_SECTORS;
		unsigned st = blk_req(r, type, sector + done, data + done * BLK_SECTOR,
				      n * BLK_SECTOR, type == BLK_T_IN);
		if (st != BLK_S_OK)
			return fail(r, what, st);
	}
	return true;
}

static void pattern(uint32_t seed, uint32_t count)
{
	for (uint32_t k = 0; k < count * BLK_SECTOR / 4; k++) {
		uint32_t w = seed + k * BLK_PATTERN_STEP;
		memcpy(data + 4 * k, &w, 4);
	}
}

static bool check_id(struct blk_run *r)
{
	memset(data, 0xee, BLK_ID_BYTES);
	unsigned st = blk_req(r, BLK_T_GET_ID, 0, data, BLK_ID_BYTES, true);
	if (st != BLK_S_OK)
		return fail(r, "get-id", st);
	memcpy(r->id, data, BLK_ID_BYTES);
	r->id[BLK_ID_BYTES] = 0;
	/* A string of up to 20 bytes, NUL-terminated when shorter: what
	 * follows the NUL is not the device's to define (QEMU leaves it). */
	size_t n = strlen(r->o->blkid);
	for (size_t i = 0; i < BLK_ID_BYTES; i++)
		if (!r->id[i]) {
			memset(r->id + i, 0, BLK_ID_BYTES - i);
			break;
		}
	if (memcmp(r->o->blkid, data, n) || (n < BLK_ID_BYTES && data[n])) {
		r->failed = true;
		ksnprintf(r->why, sizeof(r->why), "get-id: \"%s\", expected \"%s\"", r->id,
			  r->o->blkid);
		return false;
	}
	return true;
}

/* A read-only disk must refuse a write of sector 0 (the host checks that
 * its file did not change). */
static bool check_ro(struct blk_run *r)
{
	pattern(0x5eedf00d, 1);
	unsigned st = blk_req(r, BLK_T_OUT, 0, data, BLK_SECTOR, false);
	if (st != BLK_S_IOERR) {
		r->failed = true;
		ksnprintf(r->why, sizeof(r->why), "a write to a read-only disk: status %u, not %u",
			  st, BLK_S_IOERR);
		return false;
	}
	return true;
}

static bool check_write(struct blk_run *r)
{
	const struct options *o = r->o;
	if (o->blkw_sector + o->blkw_count > r->capacity) {
		r->failed = true;
		ksnprintf(r->why, sizeof(r->why), "blkw: sectors %lu+%u beyond the capacity %lu",
			  o->blkw_sector, o->blkw_count, r->capacity);
		return false;
	}
	pattern(o->blkw_seed, o->blkw_count);
	if (!blk_rw(r, BLK_T_OUT, o->blkw_sector, o->blkw_count, "write"))
		return false;
	unsigned st = blk_req(r, BLK_T_FLUSH, 0, NULL, 0, false);
	if (st != BLK_S_OK)
		return fail(r, "flush", st);
	memset(data, 0, o->blkw_count * BLK_SECTOR);
	if (!blk_rw(r, BLK_T_IN, o->blkw_sector, o->blkw_count, "read back"))
		return false;
	for (uint32_t k = 0; k < o->blkw_count * BLK_SECTOR / 4; k++) {
		uint32_t w;
		memcpy(&w, data + 4 * k, 4);
		if (w != o->blkw_seed + k * BLK_PATTERN_STEP) {
			r->failed = true;
			ksnprintf(r->why, sizeof(r->why),
				  "read back: word %u of the written region is 0x%x, not 0x%x", k,
				  w, o->blkw_seed + k * BLK_PATTERN_STEP);
			return false;
		}
	}
	return true;
}

static uint64_t blk_user(void *arg)
{
	struct blk_run *r = arg;
	const struct options *o = r->o;
	if (o->blk_sectors) {
		if (o->blk_sectors > r->capacity) {
			r->failed = true;
			ksnprintf(r->why, sizeof(r->why), "blk: %u sectors, the disk has %lu",
				  o->blk_sectors, r->capacity);
			return 1;
		}
		memset(data, 0, o->blk_sectors * BLK_SECTOR);
		if (!blk_rw(r, BLK_T_IN, 0, o->blk_sectors, "read"))
			return 1;
		r->crc = crc32_ieee(data, (uint64_t)o->blk_sectors * BLK_SECTOR);
		if (r->crc != o->blk_crc) {
			r->failed = true;
			ksnprintf(r->why, sizeof(r->why),
				  "the first %u sectors: crc %08x, not %08x", o->blk_sectors,
				  r->crc, o->blk_crc);
			return 1;
		}
	}
	if (o->have_blkid && !check_id(r))
		return 1;
	if (o->blk_ro && !check_ro(r))
		return 1;
	if (o->have_blkw && !check_write(r))
		return 1;
	return 0;
}

void check_blk(const struct options *o)
{
	static struct virtio_dev v;
	static struct virtq vq;
	char why[160];

	if (!o->have_blk) {
		tap_fail("virtio-blk", "no chv.blk, chv.blkw, chv.blkid or chv.blkro given");
		return;
	}
	if (!virtio_open(VIRTIO_ID_BLK, &v, why, sizeof(why)) ||
	    !virtio_negotiate(&v, 1ull << BLK_F_RO | 1ull << BLK_F_FLUSH, why, sizeof(why)) ||
	    !virtio_queue_setup(&v, 0, &vq, (uint64_t)(uintptr_t)ring_page, why, sizeof(why))) {
		tap_fail("virtio-blk", "%s", why);
		return;
	}
	virtio_driver_ok(&v);
	struct blk_run r = {.o = o, .vq = &vq, .tsc_per_ms = tsc_khz(NULL)};
	/* capacity, le64 at offset 0 of the device configuration */
	volatile uint32_t *cap = (volatile uint32_t *)(uintptr_t)v.device;
	r.capacity = cap[0] | (uint64_t)cap[1] << 32;
	r.ro_offered = v.features >> BLK_F_RO & 1;
	tap_diag("virtio-blk: %02x:%02x.%x %04x:%04x, BAR%u at 0x%lx, features 0x%lx, queue "
		 "size %u, %lu sectors%s",
		 v.pci.bus, v.pci.dev, v.pci.fn, v.pci.vendor, v.pci.device, v.bar, v.bar_pa,
		 v.features, vq.size, r.capacity, r.ro_offered ? ", read-only" : "");

	uint64_t rc = user_call(blk_user, &r);
	uint8_t st = virtio_status(&v);
	if (o->blk_sectors)
		tap_diag("virtio-blk: the first %u sectors: crc %08x", o->blk_sectors, r.crc);
	if (o->have_blkid)
		tap_diag("virtio-blk: get-id \"%s\"", r.id);
	virtio_reset(&v);
	if (r.failed)
		tap_fail("virtio-blk", "%s", r.why);
	else if (rc || st & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED))
		tap_fail("virtio-blk", "status 0x%x after the requests", st);
	else if (o->blk_ro && !r.ro_offered)
		tap_fail("virtio-blk", "chv.blkro=1 but the device does not offer VIRTIO_BLK_F_RO");
	else
		tap_ok("virtio-blk");
}
