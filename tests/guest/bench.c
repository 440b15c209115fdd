/* chv.bench=KIND[:SECONDS]: I/O benchmarks from inside the guest, one TAP
 * line. The blk kinds run here (the net kinds in bench_net.c):
 *   blk-randread  4 KiB reads at random 4 KiB-aligned offsets, 16 in flight;
 *   blk-seqread   1 MiB reads in order (wrapping at the end), 4 in flight;
 *   blk-seqwrite  1 MiB writes in order, 4 in flight, then one flush, all
 *                 timed together (as fio's end_fsync).
 * Requests keep being issued until SECONDS have passed; those in flight then
 * are waited for and counted, and the time runs to the last completion, so a
 * rate limiter's bucket sees every byte the figures count.
 *
 * Each request is one ring descriptor pointing at an indirect table (header,
 * data, status) when the device offers VIRTIO_F_INDIRECT_DESC, so the
 * 16-entry ring holds 16 requests; without it each request is a direct chain
 * and fewer fit. Data buffers sit at BENCH_BUF_PA, outside the image (1 MiB
 * requests do not belong in .bss, which is cleared at emulated CPL0).
 *
 * Time is the TSC. Where the guest does not know its frequency (QEMU's TCG
 * publishes none) the figures use the 4 GHz guess and the line says
 * tsc=assumed: a host script can rescale them with the raw cycles= it also
 * prints. The data path runs at CPL3. */
#include "guest.h"

#define VIRTIO_ID_BLK	 2
#define BLK_F_SIZE_MAX	 1
#define BLK_F_SEG_MAX	 2
#define BLK_F_FLUSH	 9
#define BLK_T_IN	 0
#define BLK_T_OUT	 1
#define BLK_T_FLUSH	 4
#define BLK_S_OK	 0
#define BLK_CFG_SIZE_MAX 8
#define BLK_CFG_SEG_MAX	 12
#define BLK_SECTOR	 512u
#define BLK_STALL_MS	 5000 /* no completion for this long: the run fails */
#define BENCH_SLOTS	 VIRTQ_MAX
#define BENCH_SEGS	 16 /* data descriptors per request at most */
#define STATUS_PENDING	 0xff

static const char *const kind_names[] = {
    [BENCH_BLK_RANDREAD] = "blk-randread",
    [BENCH_BLK_SEQREAD] = "blk-seqread",
    [BENCH_BLK_SEQWRITE] = "blk-seqwrite",
    [BENCH_NET_TX] = "net-tx",
    [BENCH_NET_RX] = "net-rx",
};

const char *bench_kind_name(unsigned kind)
{
	return kind >= BENCH_BLK_RANDREAD && kind <= BENCH_NET_RX ? kind_names[kind] : "?";
}

bool bench_parse(struct options *o, const char *v, size_t n)
{
	size_t k = 0;
	while (k < n && v[k] != ':')
		k++;
	unsigned kind;
	for (kind = BENCH_BLK_RANDREAD; kind <= BENCH_NET_RX; kind++)
		if (k == strlen(kind_names[kind]) && !memcmp(v, kind_names[kind], k))
			break;
	if (kind > BENCH_NET_RX)
		return false;
	uint64_t s = BENCH_DEFAULT_SECONDS;
	if (k < n && (!parse_size(v + k + 1, n - k - 1, &s) || s < 1 || s > BENCH_MAX_SECONDS))
		return false;
	o->have_bench = true;
	o->bench_kind = (uint8_t)kind;
	o->bench_seconds = (uint32_t)s;
	return true;
}

bool bench_is_net(const struct options *o)
{
	return o->have_bench && (o->bench_kind == BENCH_NET_TX || o->bench_kind == BENCH_NET_RX);
}

static void bench_report(const struct options *o, const struct bench_result *r)
{
	const char *src;
	uint64_t khz = tsc_khz(&src);
	bool assumed = str_eq(src, "assumed");
	uint64_t us = r->cycles * 1000 / khz;
	if (!us)
		us = 1;
	uint64_t iops = r->ops * 1000000 / us;
	/* MiB/s with two decimals, in integers: KiB first keeps it in 64 bits. */
	uint64_t kib_s = (r->bytes >> 10) * 1000000 / us, mib100 = kib_s * 100 / 1024;
	if (assumed)
		tap_diag("bench: the TSC frequency is unknown (TCG publishes none): seconds and "
			 "rates below assume %lu kHz; rescale with cycles= and the host's TSC rate",
			 khz);
	kprintf("# bench: %s ops=%lu bytes=%lu seconds=%lu.%03lu iops=%lu mib_s=%lu.%02lu "
		"cycles=%lu tsc_khz=%lu tsc=%s depth=%u errors=%lu\n",
		bench_kind_name(o->bench_kind), r->ops, r->bytes, us / 1000000, us / 1000 % 1000,
		iops, mib100 / 100, mib100 % 100, r->cycles, khz, assumed ? "assumed" : "known",
		r->depth, r->errors);
	char name[40];
	ksnprintf(name, sizeof(name), "bench %s", bench_kind_name(o->bench_kind));
	if (r->why[0])
		tap_fail(name, "%s", r->why);
	else if (r->errors)
		tap_fail(name, "%lu errors", r->errors);
	else if (!r->ops)
		tap_fail(name, "no I/O completed in %u s", o->bench_seconds);
	else
		tap_ok(name);
}

/* ---- virtio-blk ---- */

struct blk_hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

static uint8_t ring_page[4096] __attribute__((aligned(4096)));
static struct virtq_desc tables[BENCH_SLOTS][BENCH_SEGS + 2] __attribute__((aligned(16)));
static struct blk_hdr hdrs[BENCH_SLOTS] __attribute__((aligned(16)));
static volatile uint8_t statuses[BENCH_SLOTS];

struct blk_bench {
	unsigned kind;
	struct virtq *vq;
	uint64_t tsc_per_ms, seconds;
	uint64_t capacity; /* sectors */
	uint64_t buf_pa;   /* depth * req_bytes of RAM */
	uint32_t req_bytes, seg_bytes, nsegs;
	unsigned depth;
	bool indirect, flush;
	uint64_t rng, next_sector, span; /* span: sectors the requests cover */
	struct bench_result res;
};

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* The descriptors of request slot i: data segments between header and status. */
static void fill(volatile struct virtq_desc *d, unsigned first, struct blk_bench *b, unsigned i,
		 bool device_writes, uint32_t data_len)
{
	unsigned n = 0;
	d[n] = (struct virtq_desc){(uint64_t)(uintptr_t)&hdrs[i], sizeof(hdrs[i]),
				   VIRTQ_DESC_F_NEXT, (uint16_t)(first + 1)};
	n++;
	uint64_t pa = b->buf_pa + (uint64_t)i * b->req_bytes;
	for (uint32_t off = 0; off < data_len; off += b->seg_bytes, n++) {
		uint32_t len = data_len - off < b->seg_bytes ? data_len - off : b->seg_bytes;
		d[n] = (struct virtq_desc){
		    pa + off, len,
		    (uint16_t)(VIRTQ_DESC_F_NEXT | (device_writes ? VIRTQ_DESC_F_WRITE : 0)),
		    (uint16_t)(first + n + 1)};
	}
	d[n] = (struct virtq_desc){(uint64_t)(uintptr_t)&statuses[i], 1, VIRTQ_DESC_F_WRITE, 0};
}

/* Makes request slot i available: a read or write at the next offset, or
 * (flush) a flush. */
static void submit(struct blk_bench *b, unsigned i, bool flush)
{
	uint32_t sectors = b->req_bytes / BLK_SECTOR;
	uint64_t sector;
	if (b->kind == BENCH_BLK_RANDREAD) {
		sector = xorshift(&b->rng) % (b->span / sectors) * sectors;
	} else {
		sector = b->next_sector;
		b->next_sector += sectors;
		if (b->next_sector + sectors > b->span)
			b->next_sector = 0;
	}
	uint32_t type = flush ? BLK_T_FLUSH : b->kind == BENCH_BLK_SEQWRITE ? BLK_T_OUT : BLK_T_IN;
	hdrs[i] = (struct blk_hdr){type, 0, flush ? 0 : sector};
	statuses[i] = STATUS_PENDING;
	uint32_t data_len = flush ? 0 : b->req_bytes;
	bool dw = type == BLK_T_IN;
	uint16_t head;
	if (b->indirect) {
		unsigned n = 2 + (data_len + b->seg_bytes - 1) / b->seg_bytes;
		fill(tables[i], 0, b, i, dw, data_len);
		head = (uint16_t)i;
		b->vq->desc[head] = (struct virtq_desc){(uint64_t)(uintptr_t)tables[i],
							(uint32_t)(n * sizeof(struct virtq_desc)),
							VIRTQ_DESC_F_INDIRECT, 0};
	} else {
		head = (uint16_t)(i * (b->nsegs + 2));
		fill(b->vq->desc + head, head, b, i, dw, data_len);
	}
	virtq_publish(b->vq, head);
}

static void set_why(struct bench_result *r, const char *fmt, unsigned a, unsigned c)
{
	if (!r->why[0])
		ksnprintf(r->why, sizeof(r->why), fmt, a, c);
}

/* Takes completions until none is left in flight (and, while issuing, keeps
 * every slot busy until the deadline). Returns false on a stall. */
static bool blk_loop(struct blk_bench *b, uint64_t start, unsigned inflight, bool issue)
{
	uint64_t end = start + b->seconds * 1000 * b->tsc_per_ms;
	uint64_t last = rdtsc();
	while (inflight) {
		uint32_t id, len;
		bool any = false;
		while (virtq_used_pop(b->vq, &id, &len)) {
			unsigned slot = b->indirect ? id : id / (b->nsegs + 2);
			if (slot >= b->depth || (!b->indirect && id % (b->nsegs + 2))) {
				set_why(&b->res, "the used ring returned descriptor %u (depth %u)",
					id, b->depth);
				b->res.errors++;
				return false;
			}
			uint8_t st = statuses[slot];
			last = rdtsc();
			inflight--;
			if (st != BLK_S_OK) {
				set_why(&b->res, "a request came back with status %u (slot %u)", st,
					slot);
				b->res.errors++;
			} else if (hdrs[slot].type != BLK_T_FLUSH) {
				b->res.ops++;
				b->res.bytes += b->req_bytes;
			}
			b->res.cycles = last - start;
			if (issue && !b->res.errors && (int64_t)(last - end) < 0) {
				submit(b, slot, false);
				inflight++;
				any = true;
			}
		}
		if (any)
			virtq_kick(b->vq);
		if ((int64_t)(rdtsc() - last) > (int64_t)(BLK_STALL_MS * b->tsc_per_ms)) {
			set_why(&b->res, "no completion for %u ms, %u requests in flight",
				BLK_STALL_MS, inflight);
			return false;
		}
		__asm__ volatile("pause");
	}
	return true;
}

static uint64_t blk_user(void *arg)
{
	struct blk_bench *b = arg;
	b->rng = 0x9e3779b97f4a7c15ull;
	uint64_t start = rdtsc();
	for (unsigned i = 0; i < b->depth; i++)
		submit(b, i, false);
	virtq_kick(b->vq);
	if (!blk_loop(b, start, b->depth, true) || b->res.errors)
		return 1;
	if (b->kind == BENCH_BLK_SEQWRITE && b->flush) {
		submit(b, 0, true);
		virtq_kick(b->vq);
		if (!blk_loop(b, start, 1, false))
			return 1;
	}
	return 0;
}

/* Where the data buffers go: RAM from BENCH_BUF_PA, per the memory map. */
static bool buffers(uint64_t len, char *why, size_t cap)
{
	const struct boot_info *bi = &g_boot;
	if (!bi->n_e820) {
		tap_diag("bench: no memory map from the loader; assuming RAM at 0x%x+%lu",
			 BENCH_BUF_PA, len);
		return true;
	}
	for (unsigned i = 0; i < bi->n_e820; i++) {
		const struct e820e *e = &bi->e820[i];
		if (e->type == 1 && e->addr <= BENCH_BUF_PA &&
		    e->addr + e->size >= BENCH_BUF_PA + len)
			return true;
	}
	ksnprintf(why, cap, "no RAM at 0x%x+%lu for the buffers (give the guest more memory)",
		  BENCH_BUF_PA, len);
	return false;
}

static void bench_blk(const struct options *o, struct bench_result *res)
{
	static struct virtio_dev v;
	static struct virtq vq;
	static struct blk_bench b;
	char *why = res->why;
	size_t cap = sizeof(res->why);

	memset(&b, 0, sizeof(b));
	b.kind = o->bench_kind;
	b.seconds = o->bench_seconds;
	b.tsc_per_ms = tsc_khz(NULL);
	b.req_bytes = b.kind == BENCH_BLK_RANDREAD ? 4096 : 1u << 20;
	if (!virtio_open(VIRTIO_ID_BLK, &v, why, cap) ||
	    !virtio_negotiate(&v,
			      1ull << BLK_F_SIZE_MAX | 1ull << BLK_F_SEG_MAX | 1ull << BLK_F_FLUSH |
				  1ull << VIRTIO_F_INDIRECT_DESC,
			      why, cap) ||
	    !virtio_queue_setup(&v, 0, &vq, (uint64_t)(uintptr_t)ring_page, why, cap))
		return;
	b.vq = &vq;
	b.capacity = rd32(v.device) | (uint64_t)rd32(v.device + 4) << 32;
	b.indirect = v.features >> VIRTIO_F_INDIRECT_DESC & 1;
	b.flush = v.features >> BLK_F_FLUSH & 1;
	uint32_t size_max =
	    v.features >> BLK_F_SIZE_MAX & 1 ? rd32(v.device + BLK_CFG_SIZE_MAX) : 0;
	uint32_t seg_max = v.features >> BLK_F_SEG_MAX & 1 ? rd32(v.device + BLK_CFG_SEG_MAX) : 0;
	/* Segments of at most size_max bytes, whole sectors. */
	b.seg_bytes = b.req_bytes;
	if (size_max && size_max < b.seg_bytes)
		b.seg_bytes = size_max / BLK_SECTOR * BLK_SECTOR;
	if (!b.seg_bytes) {
		ksnprintf(why, cap, "size_max %u is under one sector", size_max);
		return;
	}
	b.nsegs = (b.req_bytes + b.seg_bytes - 1) / b.seg_bytes;
	unsigned limit = b.indirect ? BENCH_SEGS : (unsigned)vq.size - 2;
	if (b.nsegs > limit || (seg_max && b.nsegs > seg_max)) {
		ksnprintf(why, cap, "a %u-byte request needs %u segments (size_max %u, seg_max %u)",
			  b.req_bytes, b.nsegs, size_max, seg_max);
		return;
	}
	unsigned want = b.kind == BENCH_BLK_RANDREAD ? BENCH_SLOTS : 4;
	b.depth = b.indirect ? vq.size : vq.size / (b.nsegs + 2);
	if (b.depth > want)
		b.depth = want;
	b.span = b.capacity / (b.req_bytes / BLK_SECTOR) * (b.req_bytes / BLK_SECTOR);
	if (!b.span) {
		ksnprintf(why, cap, "the disk has %lu sectors, less than one %u-byte request",
			  b.capacity, b.req_bytes);
		return;
	}
	b.buf_pa = BENCH_BUF_PA;
	if (!buffers((uint64_t)b.depth * b.req_bytes, why, cap))
		return;
	virtio_driver_ok(&v);
	tap_diag("bench: virtio-blk %02x:%02x.%x %04x:%04x, features 0x%lx, %lu sectors, "
		 "%u-byte requests in %u segment(s), %u in flight (%s descriptors), %u s",
		 v.pci.bus, v.pci.dev, v.pci.fn, v.pci.vendor, v.pci.device, v.features, b.capacity,
		 b.req_bytes, b.nsegs, b.depth, b.indirect ? "indirect" : "direct",
		 o->bench_seconds);
	user_call(blk_user, &b);
	uint8_t st = virtio_status(&v);
	virtio_reset(&v);
	*res = b.res;
	res->depth = b.depth;
	if (!res->why[0] && st & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED))
		ksnprintf(res->why, sizeof(res->why), "device status 0x%x after the run", st);
}

void check_bench(const struct options *o)
{
	static struct bench_result r;

	memset(&r, 0, sizeof(r));
	if (!o->have_bench) {
		tap_fail("bench", "no chv.bench=KIND[:SECONDS] given");
		return;
	}
	if (bench_is_net(o))
		bench_net(o, &r);
	else
		bench_blk(o, &r);
	bench_report(o, &r);
}
