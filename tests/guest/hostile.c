/* Hostile mode, kind blk (chv.hostile=blk): malformed descriptor chains on the first
 * virtio-blk device, one at a time, each followed by a notify. After each the
 * guest waits (bounded) for a used entry or DEVICE_NEEDS_RESET; a device that
 * needs a reset (or did not answer) is reset and set up again. At the end one
 * valid read of the chv.blk sectors must come back with the host's CRC.
 *
 * Every malformed write carries a marker to sector 1, so a chain a device
 * wrongly carries out changes the image (the host compares its sha256) and
 * the final CRC. A chain is "refused" when the device needs a reset or
 * returns it with an error status (or no status written). The two cases whose
 * buffers lie outside RAM are reads: a device may give them back as done
 * (QEMU bounces accesses to unbacked addresses) without harm; that is
 * reported but not counted as a refusal. The chains are built and the device
 * polled at CPL3; only the set-up runs at CPL0. */
#include "guest.h"

#define VIRTIO_ID_BLK	 2
#define BLK_T_IN	 0
#define BLK_T_OUT	 1
#define BLK_S_OK	 0
#define SECTOR		 512u
#define TARGET		 1 /* the sector every malformed write aims at */
#define WAIT_MS		 2000
#define READ_TIMEOUT_MS	 5000
#define STATUS_UNTOUCHED 0xee

struct blk_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

static uint8_t ring_page[4096] __attribute__((aligned(4096)));
static uint8_t marker[2 * SECTOR] __attribute__((aligned(512)));
static uint8_t data[BLK_MAX_SECTORS * SECTOR] __attribute__((aligned(4096)));
static uint8_t target_before[SECTOR], target_now[SECTOR] __attribute__((aligned(512)));
static struct virtq_desc table1[4] __attribute__((aligned(16)));
static struct virtq_desc table2[2] __attribute__((aligned(16)));
static struct blk_hdr hdr __attribute__((aligned(16)));
static volatile uint8_t status_byte;

enum outcome {
	O_NEEDS_RESET, /* DEVICE_NEEDS_RESET set */
	O_ERROR,       /* returned with a status other than OK */
	O_UNWRITTEN,   /* returned without a status byte written */
	O_ACCEPTED,    /* returned with status OK */
	O_NO_ANSWER,   /* neither within WAIT_MS */
	O_COUNT
};

struct hostile_run {
	const struct options *o;
	struct virtio_dev v;
	struct virtq vq;
	uint64_t tsc_per_ms, capacity, ram_top;
	unsigned index; /* the case being run */
	/* what the case's wait saw */
	enum outcome out;
	uint8_t status, dev_status;
	uint32_t used_id, used_len;
	unsigned returned; /* used entries the case produced */
	bool snapshot;	   /* target_user: take the snapshot */
	/* the final read */
	uint32_t crc;
	bool read_ok;
	uint8_t read_status;
};

struct hcase {
	const char *what;
	/* A read into memory outside RAM: done without harm if a device accepts it. */
	bool harmless_read;
	/* Builds the chain and makes it available (no notify). */
	void (*build)(struct hostile_run *h);
};

static uint64_t pa(const volatile void *p)
{
	return (uint64_t)(uintptr_t)p;
}

static void set_desc(volatile struct virtq_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

/* desc[i] = the request header: type, sector. */
static void hdr_desc(struct hostile_run *h, unsigned i, uint32_t type, uint64_t sector,
		     uint16_t next)
{
	hdr = (struct blk_hdr){type, 0, sector};
	set_desc(&h->vq.desc[i], pa(&hdr), sizeof(hdr), VIRTQ_DESC_F_NEXT, next);
}

static void status_desc(struct hostile_run *h, unsigned i)
{
	set_desc(&h->vq.desc[i], pa(&status_byte), 1, VIRTQ_DESC_F_WRITE, 0);
}

/* The chains. Heads are 0 unless said otherwise. */
static void c_head_range(struct hostile_run *h)
{
	hdr_desc(h, 0, BLK_T_OUT, TARGET, 1);
	set_desc(&h->vq.desc[1], pa(marker), SECTOR, VIRTQ_DESC_F_NEXT, 2);
	status_desc(h, 2);
	virtq_publish(&h->vq, h->vq.size); /* one past the last descriptor */
}

static void c_next_range(struct hostile_run *h)
{
	hdr_desc(h, 0, BLK_T_OUT, TARGET, 1);
	set_desc(&h->vq.desc[1], pa(marker), SECTOR, VIRTQ_DESC_F_NEXT, (uint16_t)(h->vq.size + 3));
	status_desc(h, 2);
	virtq_publish(&h->vq, 0);
}

static void c_loop(struct hostile_run *h)
{
	hdr_desc(h, 0, BLK_T_OUT, TARGET, 1);
	set_desc(&h->vq.desc[1], pa(marker), SECTOR, VIRTQ_DESC_F_NEXT, 2);
	set_desc(&h->vq.desc[2], pa(marker), SECTOR, VIRTQ_DESC_F_NEXT, 1); /* back to 1 */
	virtq_publish(&h->vq, 0);
}

/* Every descriptor in turn and round again: more than the queue holds. */
static void c_too_long(struct hostile_run *h)
{
	uint16_t n = h->vq.size;
	hdr_desc(h, 0, BLK_T_OUT, TARGET, 1);
	for (uint16_t i = 1; i < n; i++)
		set_desc(&h->vq.desc[i], pa(marker), SECTOR, VIRTQ_DESC_F_NEXT,
			 (uint16_t)((i + 1) % n));
	virtq_publish(&h->vq, 0);
}

static void c_zero_len(struct hostile_run *h)
{
	hdr_desc(h, 0, BLK_T_OUT, TARGET, 1);
	set_desc(&h->vq.desc[1], pa(marker), 0, VIRTQ_DESC_F_NEXT, 2);
	status_desc(h, 2);
	virtq_publish(&h->vq, 0);
}

static void read_into(struct hostile_run *h, uint64_t buf)
{
	hdr_desc(h, 0, BLK_T_IN, TARGET, 1);
	set_desc(&h->vq.desc[1], buf, SECTOR, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	status_desc(h, 2);
	virtq_publish(&h->vq, 0);
}

static void c_beyond_ram(struct hostile_run *h)
{
	read_into(h, h->ram_top);
}

static void c_straddle_ram(struct hostile_run *h)
{
	read_into(h, h->ram_top - SECTOR / 2);
}

/* A valid write chain in table1: header, marker, status. */
static void fill_table1(void)
{
	hdr = (struct blk_hdr){BLK_T_OUT, 0, TARGET};
	set_desc(&table1[0], pa(&hdr), sizeof(hdr), VIRTQ_DESC_F_NEXT, 1);
	set_desc(&table1[1], pa(marker), SECTOR, VIRTQ_DESC_F_NEXT, 2);
	set_desc(&table1[2], pa(&status_byte), 1, VIRTQ_DESC_F_WRITE, 0);
}

static void c_indirect_len(struct hostile_run *h)
{
	fill_table1();
	set_desc(&h->vq.desc[0], pa(table1), 2 * sizeof(struct virtq_desc) + 8,
		 VIRTQ_DESC_F_INDIRECT, 0);
	virtq_publish(&h->vq, 0);
}

static void c_indirect_nested(struct hostile_run *h)
{
	fill_table1();
	set_desc(&table2[0], pa(marker), SECTOR, 0, 0);
	set_desc(&table1[1], pa(table2), sizeof(struct virtq_desc),
		 VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 2);
	set_desc(&h->vq.desc[0], pa(table1), 3 * sizeof(struct virtq_desc), VIRTQ_DESC_F_INDIRECT,
		 0);
	virtq_publish(&h->vq, 0);
}

static void c_indirect_outside(struct hostile_run *h)
{
	set_desc(&h->vq.desc[0], h->ram_top, 3 * sizeof(struct virtq_desc), VIRTQ_DESC_F_INDIRECT,
		 0);
	virtq_publish(&h->vq, 0);
}

/* 8 bytes of header (type and reserved, no sector) and nothing else to read. */
static void c_short_header(struct hostile_run *h)
{
	hdr = (struct blk_hdr){BLK_T_OUT, 0, TARGET};
	set_desc(&h->vq.desc[0], pa(&hdr), 8, VIRTQ_DESC_F_NEXT, 1);
	status_desc(h, 1);
	virtq_publish(&h->vq, 0);
}

static void c_status_readable(struct hostile_run *h)
{
	hdr_desc(h, 0, BLK_T_OUT, TARGET, 1);
	set_desc(&h->vq.desc[1], pa(marker), SECTOR, VIRTQ_DESC_F_NEXT, 2);
	set_desc(&h->vq.desc[2], pa(&status_byte), 1, 0, 0);
	virtq_publish(&h->vq, 0);
}

static void write_at(struct hostile_run *h, uint64_t sector, uint32_t len)
{
	hdr_desc(h, 0, BLK_T_OUT, sector, 1);
	set_desc(&h->vq.desc[1], pa(marker), len, VIRTQ_DESC_F_NEXT, 2);
	status_desc(h, 2);
	virtq_publish(&h->vq, 0);
}

static void c_past_end(struct hostile_run *h)
{
	write_at(h, h->capacity, SECTOR);
}

static void c_across_end(struct hostile_run *h)
{
	write_at(h, h->capacity - 1, 2 * SECTOR);
}

/* Valid chains in every ring entry, and an index size + 1 ahead. They are
 * reads: QEMU carries out the first size of them before it notices. */
static void c_avail_jump(struct hostile_run *h)
{
	struct virtq *vq = &h->vq;
	hdr_desc(h, 0, BLK_T_IN, TARGET, 1);
	set_desc(&vq->desc[1], pa(data), SECTOR, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	status_desc(h, 2);
	for (uint16_t i = 0; i < vq->size; i++)
		vq->avail[2 + i] = 0;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	vq->avail[1] = (uint16_t)(vq->avail_idx + vq->size + 1);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static const struct hcase cases[] = {
    {"head index >= queue size", false, c_head_range},
    {"next out of range", false, c_next_range},
    {"loop in the next chain", false, c_loop},
    {"chain longer than the queue", false, c_too_long},
    {"zero-length data descriptor", false, c_zero_len},
    {"buffer beyond the end of RAM (read)", true, c_beyond_ram},
    {"buffer straddling the end of RAM (read)", true, c_straddle_ram},
    {"indirect table length not a multiple of 16", false, c_indirect_len},
    {"nested indirect table", false, c_indirect_nested},
    {"indirect table outside RAM", false, c_indirect_outside},
    {"request header too short", false, c_short_header},
    {"status descriptor device-readable", false, c_status_readable},
    {"write past the end of the disk", false, c_past_end},
    {"write across the end of the disk", false, c_across_end},
    {"avail->idx ahead by more than the queue size (reads)", true, c_avail_jump},
};
#define NCASES ((unsigned)(sizeof(cases) / sizeof(cases[0])))

static const char *const outcome_names[O_COUNT] = {
    [O_NEEDS_RESET] = "needs reset",	   [O_ERROR] = "error status",
    [O_UNWRITTEN] = "returned, no status", [O_ACCEPTED] = "ACCEPTED (status OK)",
    [O_NO_ANSWER] = "NO ANSWER",
};

static enum outcome wait_outcome(struct hostile_run *h)
{
	uint64_t end = rdtsc() + WAIT_MS * h->tsc_per_ms;
	for (;;) {
		bool used = virtq_used_pop(&h->vq, &h->used_id, &h->used_len);
		h->dev_status = virtio_status(&h->v);
		h->returned += used;
		if (h->dev_status & VIRTIO_STATUS_NEEDS_RESET)
			return O_NEEDS_RESET;
		if (used) {
			h->status = status_byte;
			return h->status == STATUS_UNTOUCHED ? O_UNWRITTEN
			       : h->status == BLK_S_OK	     ? O_ACCEPTED
							     : O_ERROR;
		}
		if ((int64_t)(rdtsc() - end) > 0)
			return O_NO_ANSWER;
		__asm__ volatile("pause");
	}
}

/* One case at CPL3: build, notify, wait; then count what else came back. */
static uint64_t case_user(void *arg)
{
	struct hostile_run *h = arg;
	uint32_t id, len;
	status_byte = STATUS_UNTOUCHED;
	h->returned = 0;
	cases[h->index].build(h);
	virtq_kick(&h->vq);
	h->out = wait_outcome(h);
	while (virtq_used_pop(&h->vq, &id, &len))
		h->returned++;
	return 0;
}

/* A valid read of n sectors from sector into buf: 0, or the status byte
 * (STATUS_UNTOUCHED when the device did not answer). */
static unsigned blk_read(struct hostile_run *h, uint64_t sector, uint8_t *buf, uint32_t n)
{
	hdr = (struct blk_hdr){BLK_T_IN, 0, sector};
	status_byte = STATUS_UNTOUCHED;
	struct virtq_buf b[3] = {
	    {pa(&hdr), sizeof(hdr), false},
	    {pa(buf), n * SECTOR, true},
	    {pa(&status_byte), 1, true},
	};
	if (virtq_transact(&h->vq, b, 3, rdtsc() + READ_TIMEOUT_MS * h->tsc_per_ms) < 0)
		return STATUS_UNTOUCHED;
	return status_byte;
}

/* The final valid read of the chv.blk sectors, in 16-sector requests. */
static uint64_t read_user(void *arg)
{
	struct hostile_run *h = arg;
	uint32_t n = h->o->blk_sectors;
	memset(data, 0, n * SECTOR);
	for (uint32_t done = 0; done < n; done += 16) {
		uint32_t k = n - done < 16 ? n - done : 16;
		unsigned st = blk_read(h, done, data + done * SECTOR, k);
		if (st != BLK_S_OK) {
			h->read_status = (uint8_t)st;
			return 1;
		}
	}
	h->crc = crc32_ieee(data, (uint64_t)n * SECTOR);
	h->read_ok = true;
	return 0;
}

/* Reads the target sector (into target_before when h->snapshot is set):
 * 0; 2 when it differs from the snapshot; 0x100 | status when the read
 * failed. */
static uint64_t target_user(void *arg)
{
	struct hostile_run *h = arg;
	uint8_t *buf = h->snapshot ? target_before : target_now;
	memset(buf, 0, SECTOR);
	unsigned st = blk_read(h, TARGET, buf, 1);
	if (st != BLK_S_OK)
		return 0x100 | st;
	return !h->snapshot && memcmp(target_before, target_now, SECTOR) ? 2 : 0;
}

static uint64_t marker_user(void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < sizeof(marker); i++)
		marker[i] = (uint8_t)("chv hostile write, never on disk "[i % 33]);
	return 0;
}

/* Reset (when needed), features, queue 0, DRIVER_OK. */
static bool bring_up(struct hostile_run *h, char *why, size_t cap)
{
	if (!virtio_open(VIRTIO_ID_BLK, &h->v, why, cap) ||
	    !virtio_negotiate(&h->v, 1ull << VIRTIO_F_INDIRECT_DESC, why, cap) ||
	    !virtio_queue_setup(&h->v, 0, &h->vq, pa(ring_page), why, cap))
		return false;
	virtio_driver_ok(&h->v);
	volatile uint32_t *c = (volatile uint32_t *)(uintptr_t)h->v.device;
	h->capacity = c[0] | (uint64_t)c[1] << 32;
	return true;
}

/* The first byte after RAM: the end of the highest RAM entry, extended over
 * entries that follow it directly (firmware keeps its tables at the top of
 * RAM and marks them reserved). 0 without a memory map. */
static uint64_t ram_top(void)
{
	const struct boot_info *b = &g_boot;
	uint64_t top = 0;
	for (unsigned i = 0; i < b->n_e820; i++)
		if (b->e820[i].type == 1 && b->e820[i].addr + b->e820[i].size > top)
			top = b->e820[i].addr + b->e820[i].size;
	for (bool grew = top != 0; grew;) {
		grew = false;
		for (unsigned i = 0; i < b->n_e820; i++)
			if (b->e820[i].addr == top && b->e820[i].size && b->e820[i].type != 0) {
				top += b->e820[i].size;
				grew = true;
			}
	}
	return top;
}

static void hostile_blk(const struct options *o)
{
	static struct hostile_run h;
	char why[160];

	memset(&h, 0, sizeof(h));
	h.o = o;
	h.tsc_per_ms = tsc_khz(NULL);
	h.ram_top = ram_top();
	const char *setup_err = NULL;
	if (!o->blk_sectors)
		setup_err = "chv.hostile=blk needs chv.blk=N:CRC for the final read";
	else if (!h.ram_top)
		setup_err = "no memory map: the chains outside RAM need one";
	if (setup_err) {
		for (unsigned i = 0; i < HOSTILE_CHECK_LINES; i++)
			tap_fail("hostile", "%s", setup_err);
		return;
	}
	if (!bring_up(&h, why, sizeof(why))) {
		tap_fail("hostile: malformed chains refused", "%s", why);
		tap_fail("hostile: device works after", "no usable virtio-blk device");
		return;
	}
	tap_diag("hostile: virtio-blk %02x:%02x.%x, features 0x%lx, queue size %u, %lu sectors, "
		 "RAM ends at 0x%lx; every malformed write aims at sector %u",
		 h.v.pci.bus, h.v.pci.dev, h.v.pci.fn, h.v.features, h.vq.size, h.capacity,
		 h.ram_top, TARGET);
	user_call(marker_user, NULL);
	h.snapshot = true;
	uint64_t t = user_call(target_user, &h);
	h.snapshot = false;
	if (t) {
		tap_fail("hostile: malformed chains refused",
			 "reading sector %u first: status 0x%lx", TARGET, t & 0xff);
		tap_fail("hostile: device works after", "the device does not read");
		return;
	}

	unsigned refused = 0, accepted = 0, bad = 0, resets = 0;
	const char *first_bad = NULL;
	for (h.index = 0; h.index < NCASES; h.index++) {
		const struct hcase *c = &cases[h.index];
		user_call(case_user, &h);
		bool ok = h.out == O_NEEDS_RESET || h.out == O_ERROR || h.out == O_UNWRITTEN;
		bool harmless = h.out == O_ACCEPTED && c->harmless_read;
		if (h.out == O_NEEDS_RESET)
			tap_diag("hostile: %2u %s: needs reset (device status 0x%x), %u chain(s) "
				 "returned",
				 h.index + 1, c->what, h.dev_status, h.returned);
		else if (h.out == O_NO_ANSWER)
			tap_diag("hostile: %2u %s: NO ANSWER within %u ms (device status 0x%x)",
				 h.index + 1, c->what, WAIT_MS, h.dev_status);
		else
			tap_diag("hostile: %2u %s: %s%s (status %u, used id %u len %u)",
				 h.index + 1, c->what, outcome_names[h.out],
				 harmless ? ", a harmless read" : "", h.status, h.used_id,
				 h.used_len);
		/* A device that is broken, silent or fed a wild index starts over. */
		if (h.out == O_NEEDS_RESET || h.out == O_NO_ANSWER || c->build == c_avail_jump) {
			resets++;
			if (!bring_up(&h, why, sizeof(why))) {
				tap_fail("hostile: malformed chains refused",
					 "set-up after \"%s\" failed: %s", c->what, why);
				tap_fail("hostile: device works after", "no usable device");
				return;
			}
		}
		/* Whatever the device answered, the marker must not be on the disk. */
		t = user_call(target_user, &h);
		if (t == 2)
			tap_diag("hostile: %2u %s: the write LANDED on sector %u", h.index + 1,
				 c->what, TARGET);
		else if (t)
			tap_diag("hostile: %2u %s: reading sector %u afterwards: status 0x%lx",
				 h.index + 1, c->what, TARGET, t & 0xff);
		if (t)
			ok = harmless = false;
		refused += ok;
		accepted += harmless;
		if (!ok && !harmless) {
			bad++;
			if (!first_bad)
				first_bad = c->what;
		}
	}
	char name[96];
	if (accepted)
		ksnprintf(name, sizeof(name),
			  "hostile: %u malformed chains refused, %u harmless reads accepted",
			  refused, accepted);
	else
		ksnprintf(name, sizeof(name), "hostile: %u malformed chains refused", refused);
	tap_diag("hostile: %u cases, %u refused, %u accepted as harmless reads, %u resets", NCASES,
		 refused, accepted, resets);
	if (bad)
		tap_fail(name, "%u chain(s) neither refused nor harmless, first: %s", bad,
			 first_bad);
	else
		tap_ok(name);

	uint64_t rc = user_call(read_user, &h);
	uint8_t st = virtio_status(&h.v);
	virtio_reset(&h.v);
	if (rc || !h.read_ok)
		tap_fail("hostile: device works after",
			 "reading %u sectors: status 0x%x, device "
			 "status 0x%x",
			 o->blk_sectors, h.read_status, st);
	else if (st & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED))
		tap_fail("hostile: device works after", "device status 0x%x after the read", st);
	else if (h.crc != o->blk_crc)
		tap_fail("hostile: device works after",
			 "the first %u sectors: crc %08x, not %08x (a malformed write landed?)",
			 o->blk_sectors, h.crc, o->blk_crc);
	else
		tap_ok("hostile: device works after");
	tap_diag("hostile: the first %u sectors read back with crc %08x", o->blk_sectors, h.crc);
}

const char *const hostile_kind_names[HOSTILE_KINDS] = {
    [HOSTILE_BLK] = "blk",   [HOSTILE_PORTS] = "ports",	  [HOSTILE_MMIO] = "mmio",
    [HOSTILE_MSIX] = "msix", [HOSTILE_QUEUES] = "queues", [HOSTILE_STORM] = "storm",
};

unsigned hostile_lines(const struct options *o)
{
	unsigned n = 0;
	for (unsigned k = 0; k < HOSTILE_KINDS; k++)
		n += o->hostile >> k & 1;
	return n ? n * HOSTILE_CHECK_LINES : HOSTILE_CHECK_LINES;
}

/* The kinds in enum order (blk first: the platform kinds leave devices reset
 * and the interrupt controllers masked, which blk does not mind either). */
void check_hostile(const struct options *o)
{
	if (!o->hostile) {
		for (unsigned i = 0; i < HOSTILE_CHECK_LINES; i++)
			tap_fail("hostile", "no chv.hostile=KIND given");
		return;
	}
	uint64_t khz = tsc_khz(NULL), t0 = rdtsc();
	if (o->hostile & ~(1u << HOSTILE_BLK))
		hostile_hw_init();
	for (unsigned k = 0; k < HOSTILE_KINDS; k++) {
		if (!(o->hostile >> k & 1))
			continue;
		uint64_t t = rdtsc();
		if (k == HOSTILE_BLK)
			hostile_blk(o);
		else
			hostile_hw_run(k);
		tap_diag("hostile: %s took %lu ms", hostile_kind_names[k], (rdtsc() - t) / khz);
	}
	tap_diag("hostile: all kinds took %lu ms", (rdtsc() - t0) / khz);
}
