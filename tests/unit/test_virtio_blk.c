/* virtio-blk without a transport: a real temporary image, rings in a real
 * struct vm_mem, a fake driver posting requests and kicking through the
 * generic glue, and the image checked with pread/pwrite from the host side.
 * The data-path tests run over io_uring and over the thread pool. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "virtio/blk.h"

#define RAM	  (32ull << 20)
#define QSIZE	  256u
#define NQ_MAX	  4u
#define RING(q)	  (0x100000ull + 0x10000ull * (q))
#define DESC(q)	  RING(q)
#define AVAIL(q)  (RING(q) + 0x4000)
#define USED(q)	  (RING(q) + 0x8000)
#define HDRS	  0x200000ull /* 32 bytes per header slot */
#define STATUS	  0x300000ull /* one byte per slot */
#define BUF	  0x400000ull
#define BUF_SIZE  (8ull << 20)
#define IMG_SECT  2048u /* 1 MiB image */
#define IMG_BYTES (IMG_SECT * 512ull)
#define F_V1	  (1ull << VIRTIO_F_VERSION_1)
#define F_DRIVER                                                                                   \
	(F_V1 | 1ull << VIRTIO_BLK_F_FLUSH | 1ull << VIRTIO_BLK_F_DISCARD |                        \
	 1ull << VIRTIO_BLK_F_WRITE_ZEROES | 1ull << VIRTIO_BLK_F_MQ | 1ull << VIRTIO_BLK_F_RO |   \
	 1ull << VIRTIO_BLK_F_SEG_MAX | 1ull << VIRTIO_BLK_F_BLK_SIZE)
#define W VIRTQ_DESC_F_WRITE

struct seg {
	uint64_t gpa;
	uint32_t len;
	uint16_t flags;
};

struct t {
	struct vm_mem m;
	struct virtio_blk b;
	struct virtio_blk_opts o;
	char path[64];
	int fd; /* the test's own view of the image */
	uint64_t features;
	uint16_t avail_idx[NQ_MAX];
	uint16_t dcur[NQ_MAX];
	unsigned slot;
	unsigned queue_irqs, config_irqs; /* __atomic: completion threads */
};

static bool force_pool; /* set by the group running over the thread pool */

static void on_signal(void *ctx, enum virtio_irq kind, uint16_t q)
{
	struct t *t = ctx;
	(void)q;
	__atomic_add_fetch(kind == VIRTIO_IRQ_QUEUE ? &t->queue_irqs : &t->config_irqs, 1,
			   __ATOMIC_RELAXED);
}

static uint8_t *host(struct t *t, uint64_t gpa)
{
	return vm_mem_ptr(&t->m, gpa, 1);
}

static void desc(struct t *t, uint16_t q, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	uint8_t *p = host(t, DESC(q) + 16ull * i);
	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

static void publish(struct t *t, uint16_t q, uint16_t head)
{
	uint8_t *a = host(t, AVAIL(q));
	memcpy(a + 4 + 2 * (t->avail_idx[q] % QSIZE), &head, 2);
	t->avail_idx[q]++;
	memcpy(a + 2, &t->avail_idx[q], 2);
}

/* Posts a chain of n segments; returns its head. */
static uint16_t post(struct t *t, uint16_t q, const struct seg *s, unsigned n)
{
	uint16_t head = t->dcur[q] % QSIZE;
	for (unsigned i = 0; i < n; i++) {
		uint16_t d = (uint16_t)((head + i) % QSIZE);
		desc(t, q, d, s[i].gpa, s[i].len, (uint16_t)(s[i].flags | (i + 1 < n ? 1 : 0)),
		     (uint16_t)((d + 1) % QSIZE));
	}
	t->dcur[q] = (uint16_t)(t->dcur[q] + n);
	publish(t, q, head);
	return head;
}

static uint16_t used_idx(struct t *t, uint16_t q)
{
	uint16_t v;
	memcpy(&v, host(t, USED(q) + 2), 2);
	return v;
}

static void used_entry(struct t *t, uint16_t q, uint16_t n, uint32_t *id, uint32_t *len)
{
	memcpy(id, host(t, USED(q) + 4 + 8ull * (n % QSIZE)), 4);
	memcpy(len, host(t, USED(q) + 8 + 8ull * (n % QSIZE)), 4);
}

static uint64_t hdr_gpa(unsigned slot)
{
	return HDRS + 32ull * slot;
}

static void put_hdr(struct t *t, unsigned slot, uint32_t type, uint64_t sector)
{
	uint8_t *p = host(t, hdr_gpa(slot));
	memset(p, 0, 16);
	memcpy(p, &type, 4);
	memcpy(p + 8, &sector, 8);
}

static uint8_t status(struct t *t, unsigned slot)
{
	return *host(t, STATUS + slot);
}

static unsigned new_slot(struct t *t)
{
	unsigned s = t->slot++ % 4096;
	*host(t, STATUS + s) = 0xee;
	return s;
}

static void kick(struct t *t, uint16_t q)
{
	virtio_dev_kick(&t->b.vdev, q);
	virtio_blk_drain(&t->b);
}

/* One request: header, one data segment (device-writable for IN and
 * GET_ID), status. Returns the status byte; *len gets the used length. */
static uint8_t request(struct t *t, uint16_t q, uint32_t type, uint64_t sector, uint64_t buf,
		       uint32_t len, uint32_t *used_len)
{
	unsigned s = new_slot(t);
	put_hdr(t, s, type, sector);
	uint16_t dflags = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID ? W : 0;
	struct seg segs[3] = {{hdr_gpa(s), 16, 0}, {buf, len, dflags}, {STATUS + s, 1, W}};
	struct seg nodata[2] = {{hdr_gpa(s), 16, 0}, {STATUS + s, 1, W}};
	uint16_t before = used_idx(t, q);
	uint16_t head = len ? post(t, q, segs, 3) : post(t, q, nodata, 2);
	kick(t, q);
	assert_int_equal(used_idx(t, q), (uint16_t)(before + 1));
	uint32_t id, l;
	used_entry(t, q, before, &id, &l);
	assert_int_equal(id, head);
	if (used_len)
		*used_len = l;
	return status(t, s);
}

static void go_live(struct t *t)
{
	struct virtio_dev *d = &t->b.vdev;
	struct chv_err err = {0};
	const struct virtio_transport tr = {.signal = on_signal, .ctx = t};
	virtio_dev_set_transport(d, &tr);
	d->driver_features = d->features & t->features;
	for (uint16_t q = 0; q < d->num_queues; q++) {
		memset(host(t, RING(q)), 0, 0x10000);
		t->avail_idx[q] = 0;
		t->dcur[q] = 0;
		uint32_t size = d->vqs[q].max_size < QSIZE ? d->vqs[q].max_size : QSIZE;
		assert_int_equal(vq_set_size(&d->vqs[q], size, &err), 0);
		assert_int_equal(vq_set_addrs(&d->vqs[q], DESC(q), AVAIL(q), USED(q), &err), 0);
		assert_int_equal(vq_enable(&d->vqs[q], d->driver_features, &err), 0);
	}
	d->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
		    VIRTIO_STATUS_DRIVER_OK;
	virtio_dev_activate(d);
}

static uint8_t pattern_byte(uint64_t off, uint8_t seed)
{
	return (uint8_t)(off * 131 + (off >> 9) * 7 + seed);
}

static void fill_image(struct t *t, uint8_t seed)
{
	static uint8_t buf[IMG_BYTES];
	for (uint64_t i = 0; i < IMG_BYTES; i++)
		buf[i] = pattern_byte(i, seed);
	assert_int_equal(pwrite(t->fd, buf, IMG_BYTES, 0), (ssize_t)IMG_BYTES);
}

static void read_image(struct t *t, uint64_t off, void *dst, size_t len)
{
	assert_int_equal(pread(t->fd, dst, len, (off_t)off), (ssize_t)len);
}

static int open_dev(struct t *t)
{
	struct chv_err err = {0};
	int rc = virtio_blk_init(&t->b, &t->m, &t->o, &err);
	if (rc) {
		print_error("virtio_blk_init: %s\n", err.msg);
		return rc;
	}
	go_live(t);
	return 0;
}

static struct t *make(void)
{
	struct t *t = calloc(1, sizeof(*t));
	struct mem_layout l;
	struct chv_err err = {0};
	if (!t)
		return NULL;
	layout_compute(RAM, &l);
	if (vm_mem_create(&t->m, &l, false, false, &err)) {
		free(t);
		return NULL;
	}
	snprintf(t->path, sizeof(t->path), "/tmp/chv-blk-test-XXXXXX");
	t->fd = mkstemp(t->path);
	if (t->fd < 0 || ftruncate(t->fd, (off_t)IMG_BYTES)) {
		vm_mem_destroy(&t->m);
		free(t);
		return NULL;
	}
	t->o.path = t->path;
	t->o.serial = "chv-serial-0001";
	t->o.no_uring = force_pool;
	t->features = F_DRIVER;
	fill_image(t, 0);
	return t;
}

static void unmake(struct t *t)
{
	virtio_blk_destroy(&t->b);
	close(t->fd);
	unlink(t->path);
	vm_mem_destroy(&t->m);
	free(t);
}

static int setup(void **state)
{
	struct t *t = make();
	if (!t || open_dev(t)) {
		if (t)
			unmake(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	unmake(*state);
	return 0;
}

/* Re-opens the device of t with changed options. */
static void reopen(struct t *t)
{
	virtio_blk_destroy(&t->b);
	assert_int_equal(open_dev(t), 0);
}

static uint32_t cfg32(struct t *t, uint32_t off)
{
	uint8_t v[4];
	t->b.vdev.ops->config_read(&t->b.vdev, off, v, 4);
	return (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24;
}

static uint64_t cfg64(struct t *t, uint32_t off)
{
	return cfg32(t, off) | (uint64_t)cfg32(t, off + 4) << 32;
}

static bool has(struct t *t, unsigned bit)
{
	return t->b.vdev.features >> bit & 1;
}

static bool needs_reset(struct t *t)
{
	return virtio_dev_status(&t->b.vdev) & VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

static void image_equals(struct t *t, const uint8_t *shadow)
{
	static uint8_t now[IMG_BYTES];
	read_image(t, 0, now, IMG_BYTES);
	for (uint64_t i = 0; i < IMG_BYTES; i++)
		if (now[i] != shadow[i])
			fail_msg("image differs at byte %llu: %#x, expected %#x",
				 (unsigned long long)i, now[i], shadow[i]);
}

static void image_untouched(struct t *t, uint8_t seed)
{
	static uint8_t shadow[IMG_BYTES];
	for (uint64_t i = 0; i < IMG_BYTES; i++)
		shadow[i] = pattern_byte(i, seed);
	image_equals(t, shadow);
}

static void skip_without_uring(struct t *t)
{
	if (!force_pool && !blk_io_uses_uring(&t->b.io)) {
		print_message("io_uring is not available here: skipped\n");
		skip();
	}
}

/* ---- tests ---- */

static void test_describes_itself(void **state)
{
	struct t *t = *state;
	struct virtio_dev *d = &t->b.vdev;
	assert_int_equal(d->device_id, VIRTIO_ID_BLOCK);
	assert_string_equal(d->name, "virtio-blk");
	assert_int_equal(d->config_size, VIRTIO_BLK_CONFIG_SIZE);
	assert_true(has(t, VIRTIO_BLK_F_FLUSH) && has(t, VIRTIO_BLK_F_DISCARD) &&
		    has(t, VIRTIO_BLK_F_WRITE_ZEROES) && has(t, VIRTIO_BLK_F_SEG_MAX) &&
		    has(t, VIRTIO_BLK_F_SIZE_MAX) && has(t, VIRTIO_BLK_F_BLK_SIZE) &&
		    has(t, VIRTIO_RING_F_INDIRECT_DESC) && has(t, VIRTIO_RING_F_EVENT_IDX) &&
		    has(t, VIRTIO_F_VERSION_1));
	assert_false(has(t, VIRTIO_BLK_F_RO) || has(t, VIRTIO_BLK_F_MQ) ||
		     has(t, VIRTIO_BLK_F_CONFIG_WCE));
	assert_int_equal(cfg64(t, VIRTIO_BLK_CFG_CAPACITY), IMG_SECT);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_BLK_SIZE), 512);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_SEG_MAX), QSIZE - 2);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_SIZE_MAX), VIRTIO_BLK_SIZE_MAX);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_NUM_QUEUES) & 0xffff, 1);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_MAX_DISCARD_SEC), VIRTIO_BLK_MAX_DWZ_SECTORS);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_MAX_DISCARD_SEG), VIRTIO_BLK_MAX_DWZ_SEG);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_DISCARD_ALIGN), 1);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_MAX_WZ_SEC), VIRTIO_BLK_MAX_DWZ_SECTORS);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_MAX_WZ_SEG), VIRTIO_BLK_MAX_DWZ_SEG);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_WZ_MAY_UNMAP) & 0xff, 1);
	assert_int_equal(d->vqs[0].max_size, QSIZE);
	assert_int_equal(blk_io_uses_uring(&t->b.io), !force_pool);

	/* 4096-byte blocks, a small queue, read-only, several queues. */
	t->o.blk_size = 4096;
	t->o.queue_size = 16;
	t->o.readonly = true;
	t->o.num_queues = 3;
	reopen(t);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_BLK_SIZE), 4096);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_SEG_MAX), 14);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_NUM_QUEUES) & 0xffff, 3);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_MAX_DISCARD_SEC), 0);
	assert_true(has(t, VIRTIO_BLK_F_RO) && has(t, VIRTIO_BLK_F_MQ));
	assert_false(has(t, VIRTIO_BLK_F_DISCARD) || has(t, VIRTIO_BLK_F_WRITE_ZEROES));
	assert_int_equal(d->num_queues, 3);
	assert_int_equal(d->vqs[2].max_size, 16);
	/* Reads past the structure give zeros. */
	uint8_t v[8];
	memset(v, 0xff, sizeof(v));
	d->ops->config_read(d, VIRTIO_BLK_CONFIG_SIZE - 4, v, 8);
	assert_int_equal(v[4] | v[5] | v[6] | v[7], 0);
}

static void test_read_host_pattern(void **state)
{
	struct t *t = *state;
	skip_without_uring(t);
	uint32_t len;
	memset(host(t, BUF), 0, 65536);
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_IN, 10, BUF, 8192, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 8192 + 1);
	for (uint64_t i = 0; i < 8192; i++)
		assert_int_equal(host(t, BUF)[i], pattern_byte(10 * 512 + i, 0));
	/* The last sector of the disk. */
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_IN, IMG_SECT - 1, BUF, 512, NULL),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(host(t, BUF)[511], pattern_byte(IMG_BYTES - 1, 0));

	/* Scattered over three segments, the header sharing nothing. */
	unsigned s = new_slot(t);
	put_hdr(t, s, VIRTIO_BLK_T_IN, 100);
	struct seg segs[] = {{hdr_gpa(s), 16, 0},
			     {BUF + 0x10000, 512, W},
			     {BUF + 0x20000, 1024, W},
			     {BUF + 0x30000, 512, W},
			     {STATUS + s, 1, W}};
	post(t, 0, segs, 5);
	kick(t, 0);
	assert_int_equal(status(t, s), VIRTIO_BLK_S_OK);
	assert_int_equal(host(t, BUF + 0x10000)[0], pattern_byte(100 * 512, 0));
	assert_int_equal(host(t, BUF + 0x20000)[1023], pattern_byte(100 * 512 + 1535, 0));
	assert_int_equal(host(t, BUF + 0x30000)[511], pattern_byte(100 * 512 + 2047, 0));

	struct virtio_blk_counters c;
	virtio_blk_get_counters(&t->b, &c);
	assert_int_equal(c.reads, 3);
	assert_int_equal(c.bytes_read, 8192 + 512 + 2048);
	assert_int_equal(c.errors, 0);
	assert_true(t->queue_irqs >= 3);
}

static void test_write_guest_pattern(void **state)
{
	struct t *t = *state;
	skip_without_uring(t);
	uint8_t *p = host(t, BUF);
	for (unsigned i = 0; i < 4096; i++)
		p[i] = (uint8_t)(i ^ 0x5a);
	uint32_t len;
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_OUT, 7, BUF, 4096, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 1);
	uint8_t back[4096];
	read_image(t, 7 * 512, back, sizeof(back));
	assert_memory_equal(back, p, 4096);
	/* Neighbours are untouched. */
	read_image(t, 7 * 512 - 1, back, 1);
	assert_int_equal(back[0], pattern_byte(7 * 512 - 1, 0));
	read_image(t, 7 * 512 + 4096, back, 1);
	assert_int_equal(back[0], pattern_byte(7 * 512 + 4096, 0));

	/* Any layout: header and data in one descriptor, and for a read the
	 * data and status in one. */
	unsigned s = new_slot(t);
	uint8_t *one = host(t, BUF + 0x10000);
	uint32_t type = VIRTIO_BLK_T_OUT;
	uint64_t sector = 200;
	memset(one, 0, 16);
	memcpy(one, &type, 4);
	memcpy(one + 8, &sector, 8);
	memset(one + 16, 0xc3, 512);
	struct seg segs[] = {{BUF + 0x10000, 16 + 512, 0}, {STATUS + s, 1, W}};
	post(t, 0, segs, 2);
	kick(t, 0);
	assert_int_equal(status(t, s), VIRTIO_BLK_S_OK);
	read_image(t, 200 * 512, back, 512);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(back[i], 0xc3);

	s = new_slot(t);
	put_hdr(t, s, VIRTIO_BLK_T_IN, 200);
	uint8_t *inbuf = host(t, BUF + 0x20000);
	memset(inbuf, 0, 513);
	inbuf[512] = 0xee;
	struct seg rsegs[] = {{hdr_gpa(s), 8, 0}, {hdr_gpa(s) + 8, 8, 0}, {BUF + 0x20000, 513, W}};
	post(t, 0, rsegs, 3);
	kick(t, 0);
	assert_int_equal(inbuf[512], VIRTIO_BLK_S_OK);
	assert_int_equal(inbuf[0], 0xc3);
	assert_int_equal(inbuf[511], 0xc3);

	struct virtio_blk_counters c;
	virtio_blk_get_counters(&t->b, &c);
	assert_int_equal(c.writes, 2);
	assert_int_equal(c.bytes_written, 4096 + 512);
	assert_int_equal(c.reads, 1);
}

static void test_flush(void **state)
{
	struct t *t = *state;
	skip_without_uring(t);
	uint32_t len;
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 1);
	/* The sector field of a flush is ignored. */
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_FLUSH, 12345678, 0, 0, NULL), VIRTIO_BLK_S_OK);
	struct virtio_blk_counters c;
	virtio_blk_get_counters(&t->b, &c);
	assert_int_equal(c.flushes, 2);
}

static void test_get_id(void **state)
{
	struct t *t = *state;
	uint32_t len;
	uint8_t want[20] = "chv-serial-0001";
	memset(host(t, BUF), 0xaa, 64);
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_GET_ID, 0, BUF, 20, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 21);
	assert_memory_equal(host(t, BUF), want, 20);
	assert_int_equal(host(t, BUF)[20], 0xaa);
	/* A shorter buffer gets what fits. */
	memset(host(t, BUF), 0xaa, 64);
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_GET_ID, 0, BUF, 4, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 5);
	assert_memory_equal(host(t, BUF), "chv-", 4);
	assert_int_equal(host(t, BUF)[4], 0xaa);
	/* A longer one gets exactly 20 bytes. */
	memset(host(t, BUF), 0xaa, 64);
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_GET_ID, 0, BUF, 512, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 21);
	assert_int_equal(host(t, BUF)[20], 0xaa);

	/* Exactly 20 bytes of serial, then none at all. */
	t->o.serial = "abcdefghijklmnopqrst";
	reopen(t);
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_GET_ID, 0, BUF, 20, NULL), VIRTIO_BLK_S_OK);
	assert_memory_equal(host(t, BUF), "abcdefghijklmnopqrst", 20);
	t->o.serial = NULL;
	reopen(t);
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_GET_ID, 0, BUF, 20, NULL), VIRTIO_BLK_S_OK);
	memset(want, 0, sizeof(want));
	assert_memory_equal(host(t, BUF), want, 20);
	struct virtio_blk_counters c;
	virtio_blk_get_counters(&t->b, &c);
	assert_int_equal(c.get_ids, 1);
}

static void test_readonly(void **state)
{
	struct t *t = *state;
	t->o.readonly = true;
	reopen(t);
	memset(host(t, BUF), 0x11, 4096);
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_OUT, 0, BUF, 4096, NULL), VIRTIO_BLK_S_IOERR);
	/* Discard and write-zeroes are not offered: unsupported. */
	uint8_t *seg = host(t, BUF + 0x1000);
	uint64_t sector = 0;
	uint32_t num = 8, flags = 0;
	memcpy(seg, &sector, 8);
	memcpy(seg + 8, &num, 4);
	memcpy(seg + 12, &flags, 4);
	unsigned s = new_slot(t);
	put_hdr(t, s, VIRTIO_BLK_T_DISCARD, 0);
	struct seg segs[] = {{hdr_gpa(s), 16, 0}, {BUF + 0x1000, 16, 0}, {STATUS + s, 1, W}};
	post(t, 0, segs, 3);
	kick(t, 0);
	assert_int_equal(status(t, s), VIRTIO_BLK_S_UNSUPP);
	s = new_slot(t);
	put_hdr(t, s, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	segs[0].gpa = hdr_gpa(s);
	segs[2].gpa = STATUS + s;
	post(t, 0, segs, 3);
	kick(t, 0);
	assert_int_equal(status(t, s), VIRTIO_BLK_S_UNSUPP);
	image_untouched(t, 0);
	/* Reads and flushes work. */
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_IN, 1, BUF, 512, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(host(t, BUF)[0], pattern_byte(512, 0));
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_OK);
	struct virtio_blk_counters c;
	virtio_blk_get_counters(&t->b, &c);
	assert_int_equal(c.errors, 3);
	assert_int_equal(c.writes, 0);
	/* The backend refuses writes by itself too. */
	struct iovec iov = {host(t, BUF), 512};
	struct blk_io_op op = {.kind = BLK_IO_WRITE, .len = 512, .iov = &iov, .iovcnt = 1};
	assert_int_equal(blk_io_submit(&t->b.io, &op), -EBADF);
	op.kind = BLK_IO_DISCARD;
	assert_int_equal(blk_io_submit(&t->b.io, &op), -EBADF);
}

/* Posts one discard/write-zeroes request of n segments {sector, num, flags}. */
static uint8_t dwz(struct t *t, uint32_t type, const uint32_t (*segs)[3], unsigned n)
{
	unsigned s = new_slot(t);
	put_hdr(t, s, type, 0);
	uint8_t *p = host(t, BUF + 0x100000);
	for (unsigned i = 0; i < n; i++) {
		uint64_t sector = segs[i][0];
		memcpy(p + 16 * i, &sector, 8);
		memcpy(p + 16 * i + 8, &segs[i][1], 4);
		memcpy(p + 16 * i + 12, &segs[i][2], 4);
	}
	struct seg c[] = {{hdr_gpa(s), 16, 0}, {BUF + 0x100000, 16 * n, 0}, {STATUS + s, 1, W}};
	post(t, 0, c, 3);
	kick(t, 0);
	return status(t, s);
}

static bool zeroed(struct t *t, uint64_t sector, uint64_t n)
{
	uint8_t buf[512];
	for (uint64_t i = 0; i < n; i++) {
		read_image(t, (sector + i) * 512, buf, 512);
		for (unsigned j = 0; j < 512; j++)
			if (buf[j])
				return false;
	}
	return true;
}

static bool intact(struct t *t, uint64_t sector, uint64_t n)
{
	uint8_t buf[512];
	for (uint64_t i = 0; i < n; i++) {
		read_image(t, (sector + i) * 512, buf, 512);
		for (unsigned j = 0; j < 512; j++)
			if (buf[j] != pattern_byte((sector + i) * 512 + j, 0))
				return false;
	}
	return true;
}

static void test_discard_and_write_zeroes(void **state)
{
	struct t *t = *state;
	skip_without_uring(t);
	struct stat st;
	static const uint32_t one[][3] = {{16, 16, 0}};
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, one, 1), VIRTIO_BLK_S_OK);
	assert_true(zeroed(t, 16, 16));
	assert_true(intact(t, 15, 1) && intact(t, 32, 1));
	assert_int_equal(fstat(t->fd, &st), 0);
	assert_int_equal(st.st_size, IMG_BYTES);

	static const uint32_t two[][3] = {{100, 3, 0}, {200, 5, VIRTIO_BLK_DWZ_FLAG_UNMAP}};
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, two, 2), VIRTIO_BLK_S_OK);
	assert_true(zeroed(t, 100, 3) && zeroed(t, 200, 5));
	assert_true(intact(t, 99, 1) && intact(t, 103, 1) && intact(t, 199, 1) &&
		    intact(t, 205, 1));
	assert_int_equal(fstat(t->fd, &st), 0);
	assert_int_equal(st.st_size, IMG_BYTES);

	/* Refusals leave the image as it was. */
	static const uint32_t unmap[][3] = {{300, 1, VIRTIO_BLK_DWZ_FLAG_UNMAP}};
	static const uint32_t unknown[][3] = {{300, 1, 2}};
	static const uint32_t beyond[][3] = {{IMG_SECT - 1, 2, 0}};
	static const uint32_t huge[][3] = {{300, VIRTIO_BLK_MAX_DWZ_SECTORS + 1, 0}};
	static const uint32_t partly_bad[][3] = {{300, 1, 0}, {IMG_SECT, 1, 0}};
	static const uint32_t many[17][3] = {{300, 1, 0}};
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, unmap, 1), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, unknown, 1), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, unknown, 1), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, beyond, 1), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, huge, 1), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, partly_bad, 2), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, many, 17), VIRTIO_BLK_S_IOERR);
	assert_true(intact(t, 300, 1) && intact(t, IMG_SECT - 1, 1));
	/* A segment list cut in the middle of a segment. */
	unsigned s = new_slot(t);
	put_hdr(t, s, VIRTIO_BLK_T_DISCARD, 0);
	struct seg c[] = {{hdr_gpa(s), 16, 0}, {BUF + 0x100000, 12, 0}, {STATUS + s, 1, W}};
	post(t, 0, c, 3);
	kick(t, 0);
	assert_int_equal(status(t, s), VIRTIO_BLK_S_IOERR);
	/* Zero sectors: nothing to do, and fine. */
	static const uint32_t none[][3] = {{0, 0, 0}};
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, none, 1), VIRTIO_BLK_S_OK);
	assert_true(intact(t, 0, 1));

	struct virtio_blk_counters cnt;
	virtio_blk_get_counters(&t->b, &cnt);
	assert_int_equal(cnt.discards, 2);
	assert_int_equal(cnt.write_zeroes, 1);
	assert_int_equal(cnt.errors, 8);

	/* Not negotiated: unsupported. */
	t->features &= ~(1ull << VIRTIO_BLK_F_DISCARD);
	virtio_dev_reset(&t->b.vdev);
	go_live(t);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, one, 1), VIRTIO_BLK_S_UNSUPP);
}

static void test_out_of_range(void **state)
{
	struct t *t = *state;
	memset(host(t, BUF), 0x77, 8192);
	static const uint64_t bad[] = {IMG_SECT,   IMG_SECT - 1,   IMG_SECT + 100,
				       UINT64_MAX, UINT64_MAX - 1, (UINT64_MAX / 512) + 1,
				       1ull << 63};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint32_t len = 0;
		assert_int_equal(request(t, 0, VIRTIO_BLK_T_OUT, bad[i], BUF, 1024, &len),
				 VIRTIO_BLK_S_IOERR);
		assert_int_equal(len, 1);
		assert_int_equal(request(t, 0, VIRTIO_BLK_T_IN, bad[i], BUF, 1024, NULL),
				 VIRTIO_BLK_S_IOERR);
	}
	/* The read buffer was not written either. */
	assert_int_equal(host(t, BUF)[0], 0x77);
	image_untouched(t, 0);
	struct virtio_blk_counters c;
	virtio_blk_get_counters(&t->b, &c);
	assert_int_equal(c.errors, 2 * sizeof(bad) / sizeof(bad[0]));
	assert_int_equal(c.reads + c.writes, 0);
}

/* ---- malformed requests ---- */

enum expect { E_OK, E_IOERR, E_UNSUPP, E_RESET };

struct bad_case {
	const char *what;
	uint32_t type;
	uint64_t sector;
	/* Segments; gpa 0 means the header slot, 1 the status slot, 2 a data
	 * buffer; anything else as given. */
	struct seg segs[4];
	unsigned n;
	enum expect expect;
};

#define H  0
#define ST 1
#define D  2

static const struct bad_case bad_cases[] = {
    {"header of 8 bytes", VIRTIO_BLK_T_IN, 0, {{H, 8, 0}, {D, 512, W}, {ST, 1, W}}, 3, E_IOERR},
    {"header of 15 bytes, write", VIRTIO_BLK_T_OUT, 0, {{H, 15, 0}, {ST, 1, W}}, 2, E_IOERR},
    {"device-writable header",
     VIRTIO_BLK_T_OUT,
     0,
     {{H, 16, W}, {D, 512, W}, {ST, 1, W}},
     3,
     E_IOERR},
    {"read with readable data",
     VIRTIO_BLK_T_IN,
     0,
     {{H, 16, 0}, {D, 512, 0}, {ST, 1, W}},
     3,
     E_IOERR},
    {"write with writable data",
     VIRTIO_BLK_T_OUT,
     0,
     {{H, 16, 0}, {D, 512, W}, {ST, 1, W}},
     3,
     E_IOERR},
    {"write with data both ways",
     VIRTIO_BLK_T_OUT,
     0,
     {{H, 16, 0}, {D, 512, 0}, {D, 512, W}, {ST, 1, W}},
     4,
     E_IOERR},
    {"read of 100 bytes", VIRTIO_BLK_T_IN, 0, {{H, 16, 0}, {D, 100, W}, {ST, 1, W}}, 3, E_IOERR},
    {"write of 513 bytes", VIRTIO_BLK_T_OUT, 0, {{H, 16, 0}, {D, 513, 0}, {ST, 1, W}}, 3, E_IOERR},
    {"read of nothing", VIRTIO_BLK_T_IN, 0, {{H, 16, 0}, {ST, 1, W}}, 2, E_IOERR},
    {"write of nothing", VIRTIO_BLK_T_OUT, 0, {{H, 16, 0}, {ST, 1, W}}, 2, E_IOERR},
    {"flush with data", VIRTIO_BLK_T_FLUSH, 0, {{H, 16, 0}, {D, 512, 0}, {ST, 1, W}}, 3, E_IOERR},
    {"flush with room", VIRTIO_BLK_T_FLUSH, 0, {{H, 16, 0}, {D, 512, W}, {ST, 1, W}}, 3, E_IOERR},
    {"get-id with readable data",
     VIRTIO_BLK_T_GET_ID,
     0,
     {{H, 16, 0}, {D, 20, 0}, {ST, 1, W}},
     3,
     E_IOERR},
    {"get-id without room", VIRTIO_BLK_T_GET_ID, 0, {{H, 16, 0}, {ST, 1, W}}, 2, E_IOERR},
    {"discard with no segment", VIRTIO_BLK_T_DISCARD, 0, {{H, 16, 0}, {ST, 1, W}}, 2, E_IOERR},
    {"discard with writable data",
     VIRTIO_BLK_T_DISCARD,
     0,
     {{H, 16, 0}, {D, 16, W}, {ST, 1, W}},
     3,
     E_IOERR},
    {"unknown type 99", 99, 0, {{H, 16, 0}, {D, 512, 0}, {ST, 1, W}}, 3, E_UNSUPP},
    {"get-lifetime (not offered)", 10, 0, {{H, 16, 0}, {D, 16, W}, {ST, 1, W}}, 3, E_UNSUPP},
    {"secure erase (not offered)", 14, 0, {{H, 16, 0}, {D, 16, 0}, {ST, 1, W}}, 3, E_UNSUPP},
    {"type with high bits", 0x80000001u, 0, {{H, 16, 0}, {D, 512, 0}, {ST, 1, W}}, 3, E_UNSUPP},
    {"no status byte", VIRTIO_BLK_T_OUT, 0, {{H, 16, 0}, {D, 512, 0}}, 2, E_RESET},
    {"header only", VIRTIO_BLK_T_FLUSH, 0, {{H, 16, 0}}, 1, E_RESET},
    {"descriptor beyond RAM",
     VIRTIO_BLK_T_OUT,
     0,
     {{H, 16, 0}, {RAM - 256, 512, 0}, {ST, 1, W}},
     3,
     E_RESET},
    {"zero-length descriptor",
     VIRTIO_BLK_T_OUT,
     0,
     {{H, 16, 0}, {D, 0, 0}, {ST, 1, W}},
     3,
     E_RESET},
    {"readable after writable",
     VIRTIO_BLK_T_OUT,
     0,
     {{H, 16, 0}, {ST, 1, W}, {D, 512, 0}},
     3,
     E_RESET},
    /* Shapes that look odd but are valid. */
    {"header split in two",
     VIRTIO_BLK_T_OUT,
     5,
     {{H, 4, 0}, {H + 4, 12, 0}, {D, 512, 0}, {ST, 1, W}},
     4,
     E_OK},
    {"status inside a larger buffer", VIRTIO_BLK_T_FLUSH, 0, {{H, 16, 0}, {D, 4, W}}, 2, E_IOERR},
};

static void test_malformed_table(void **state)
{
	struct t *t = *state;
	static uint8_t shadow[IMG_BYTES];
	for (uint64_t i = 0; i < IMG_BYTES; i++)
		shadow[i] = pattern_byte(i, 0);
	for (unsigned k = 0; k < sizeof(bad_cases) / sizeof(bad_cases[0]); k++) {
		const struct bad_case *bc = &bad_cases[k];
		unsigned s = new_slot(t);
		put_hdr(t, s, bc->type, bc->sector);
		memset(host(t, BUF), 0x99, 0x5000);
		struct seg segs[4];
		uint64_t status_gpa = STATUS + s;
		for (unsigned i = 0; i < bc->n; i++) {
			segs[i] = bc->segs[i];
			if (segs[i].gpa == ST) {
				segs[i].gpa = STATUS + s;
			} else if (segs[i].gpa == D) {
				segs[i].gpa = BUF + 0x1000 * i;
				status_gpa = segs[i].gpa + segs[i].len - 1;
			} else if (segs[i].gpa < 16) {
				segs[i].gpa += hdr_gpa(s);
			}
			if (segs[i].gpa == STATUS + s)
				status_gpa = STATUS + s;
		}
		uint16_t before = used_idx(t, 0);
		unsigned irqs = t->config_irqs;
		post(t, 0, segs, bc->n);
		kick(t, 0);
		if (bc->expect == E_RESET) {
			if (!needs_reset(t))
				fail_msg("%s: the device should need a reset", bc->what);
			assert_int_equal(used_idx(t, 0), before);
			assert_int_equal(t->config_irqs, irqs + 1);
			virtio_dev_reset(&t->b.vdev);
			go_live(t);
		} else {
			static const uint8_t want[] = {VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR,
						       VIRTIO_BLK_S_UNSUPP};
			if (needs_reset(t))
				fail_msg("%s: the device failed: %s", bc->what,
					 t->b.vdev.reset_reason.msg);
			assert_int_equal(used_idx(t, 0), (uint16_t)(before + 1));
			if (*host(t, status_gpa) != want[bc->expect])
				fail_msg("%s: status %u, expected %u", bc->what,
					 *host(t, status_gpa), want[bc->expect]);
			if (bc->expect == E_OK && bc->type == VIRTIO_BLK_T_OUT)
				memset(shadow + bc->sector * 512, 0x99, 512);
		}
		image_equals(t, shadow);
	}
	/* The device still works. */
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_IN, 5, BUF, 512, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(host(t, BUF)[0], 0x99);
}

/* One read through an indirect table of three descriptors at BUF + 0x8000. */
static uint8_t indirect_read(struct t *t, uint64_t sector)
{
	unsigned s = new_slot(t);
	put_hdr(t, s, VIRTIO_BLK_T_IN, sector);
	struct {
		uint64_t addr;
		uint32_t len;
		uint16_t flags, next;
	} d[3] = {{hdr_gpa(s), 16, 1, 1}, {BUF, 512, W | 1, 2}, {STATUS + s, 1, W, 0}};
	memcpy(host(t, BUF + 0x8000), d, sizeof(d));
	desc(t, 0, 0, BUF + 0x8000, sizeof(d), VIRTQ_DESC_F_INDIRECT, 0);
	publish(t, 0, 0);
	kick(t, 0);
	return status(t, s);
}

static void set_used_event(struct t *t, uint16_t v)
{
	memcpy(host(t, AVAIL(0) + 4 + 2 * QSIZE), &v, 2);
}

static void test_indirect_and_event_idx(void **state)
{
	struct t *t = *state;
	t->features |= 1ull << VIRTIO_RING_F_INDIRECT_DESC | 1ull << VIRTIO_RING_F_EVENT_IDX;
	virtio_dev_reset(&t->b.vdev);
	go_live(t);
	set_used_event(t, 0);
	assert_int_equal(indirect_read(t, 3), VIRTIO_BLK_S_OK);
	assert_int_equal(host(t, BUF)[0], pattern_byte(3 * 512, 0));
	unsigned base = t->queue_irqs;
	/* The driver wants an interrupt only once the used index passes 2. */
	set_used_event(t, 2);
	assert_int_equal(indirect_read(t, 4), VIRTIO_BLK_S_OK);
	assert_int_equal(host(t, BUF)[0], pattern_byte(4 * 512, 0));
	assert_int_equal(t->queue_irqs, base);
	assert_int_equal(indirect_read(t, 5), VIRTIO_BLK_S_OK);
	assert_int_equal(used_idx(t, 0), 3);
	assert_int_equal(t->queue_irqs, base + 1);
	/* avail_event follows what the device consumed. */
	uint16_t ae;
	memcpy(&ae, host(t, USED(0) + 4 + 8 * QSIZE), 2);
	assert_int_equal(ae, 3);
}

static void test_direct_unaligned(void **state)
{
	struct t *t = *state;
	t->o.direct = true;
	virtio_blk_destroy(&t->b);
	struct chv_err err = {0};
	int rc = virtio_blk_init(&t->b, &t->m, &t->o, &err);
	if (rc == -EINVAL) {
		print_message("O_DIRECT is not supported for %s: skipped (%s)\n", t->path, err.msg);
		skip();
	}
	assert_int_equal(rc, 0);
	go_live(t);
	skip_without_uring(t);
	struct blk_io_counters c0, c1;
	uint32_t a = t->b.io.off_align;
	blk_io_get_counters(&t->b.io, &c0);
	/* Aligned everything: straight through. */
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_IN, 0, BUF, 8192, NULL), VIRTIO_BLK_S_OK);
	blk_io_get_counters(&t->b.io, &c1);
	assert_int_equal(c1.bounced, c0.bounced);
	assert_int_equal(c1.buffered, c0.buffered);
	assert_int_equal(host(t, BUF)[8191], pattern_byte(8191, 0));

	/* An unaligned guest buffer at an aligned offset: bounced, both ways. */
	uint8_t *p = host(t, BUF + 0x10001);
	for (unsigned i = 0; i < 8192; i++)
		p[i] = (uint8_t)(i * 3 + 1);
	uint64_t sector = 2 * a / 512;
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_OUT, sector, BUF + 0x10001, 8192, NULL),
			 VIRTIO_BLK_S_OK);
	uint8_t back[8192];
	read_image(t, sector * 512, back, sizeof(back));
	assert_memory_equal(back, p, 8192);
	memset(host(t, BUF + 0x20003), 0, 8192);
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_IN, sector, BUF + 0x20003, 8192, NULL),
			 VIRTIO_BLK_S_OK);
	assert_memory_equal(host(t, BUF + 0x20003), p, 8192);
	blk_io_get_counters(&t->b.io, &c1);
	assert_int_equal(c1.bounced, c0.bounced + 2);

	/* Several segments, one of them unaligned in length. */
	unsigned s = new_slot(t);
	put_hdr(t, s, VIRTIO_BLK_T_IN, sector);
	struct seg segs[] = {{hdr_gpa(s), 16, 0},
			     {BUF + 0x30000, 1000, W},
			     {BUF + 0x40000, 8192 - 1000, W},
			     {STATUS + s, 1, W}};
	post(t, 0, segs, 4);
	kick(t, 0);
	assert_int_equal(status(t, s), VIRTIO_BLK_S_OK);
	assert_memory_equal(host(t, BUF + 0x30000), p, 1000);
	assert_memory_equal(host(t, BUF + 0x40000), p + 1000, 8192 - 1000);

	/* A sector offset the file system cannot take directly. */
	if (a > 512) {
		memset(host(t, BUF), 0x42, 512);
		assert_int_equal(request(t, 0, VIRTIO_BLK_T_OUT, 1, BUF, 512, NULL),
				 VIRTIO_BLK_S_OK);
		read_image(t, 512, back, 512);
		for (unsigned i = 0; i < 512; i++)
			assert_int_equal(back[i], 0x42);
		blk_io_get_counters(&t->b.io, &c1);
		assert_true(c1.buffered > c0.buffered);
	}
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_OK);
	static const uint32_t z[][3] = {{64, 8, 0}};
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, z, 1), VIRTIO_BLK_S_OK);
	assert_true(zeroed(t, 64, 8));
}

static void test_locking(void **state)
{
	struct t *t = *state;
	struct virtio_blk other;
	struct chv_err err = {0};
	struct virtio_blk_opts o = t->o;
	/* A second writable open, and a read-only one, are refused. */
	assert_int_equal(virtio_blk_init(&other, &t->m, &o, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "--disk"));
	assert_non_null(strstr(err.msg, t->path));
	virtio_blk_destroy(&other);
	o.readonly = true;
	memset(&err, 0, sizeof(err));
	assert_int_equal(virtio_blk_init(&other, &t->m, &o, &err), -EBUSY);
	assert_non_null(strstr(err.msg, t->path));
	virtio_blk_destroy(&other);

	/* Two read-only opens share the image; a writer is kept out. */
	t->o.readonly = true;
	reopen(t);
	assert_int_equal(virtio_blk_init(&other, &t->m, &o, &err), 0);
	struct virtio_blk third;
	o.readonly = false;
	assert_int_equal(virtio_blk_init(&third, &t->m, &o, &err), -EBUSY);
	virtio_blk_destroy(&third);
	virtio_blk_destroy(&other);
	virtio_blk_destroy(&t->b);
	/* All closed: a writer gets in again. */
	assert_int_equal(virtio_blk_init(&other, &t->m, &o, &err), 0);
	virtio_blk_destroy(&other);
	t->o.readonly = false;
	assert_int_equal(open_dev(t), 0);
}

static void test_multiqueue(void **state)
{
	struct t *t = *state;
	t->o.num_queues = NQ_MAX;
	reopen(t);
	assert_true(has(t, VIRTIO_BLK_F_MQ));
	/* Each queue reads and writes its own region, all kicked at once. */
	for (uint16_t q = 0; q < NQ_MAX; q++) {
		for (unsigned r = 0; r < 8; r++) {
			unsigned s = q * 8 + r;
			*host(t, STATUS + s) = 0xee;
			put_hdr(t, s, r % 2 ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT, q * 64 + r * 2);
			uint64_t buf = BUF + 0x1000ull * s;
			memset(host(t, buf), (int)(s + 1), 1024);
			struct seg segs[] = {
			    {hdr_gpa(s), 16, 0}, {buf, 1024, r % 2 ? W : 0}, {STATUS + s, 1, W}};
			post(t, q, segs, 3);
		}
	}
	for (uint16_t q = 0; q < NQ_MAX; q++)
		virtio_dev_kick(&t->b.vdev, q);
	virtio_blk_drain(&t->b);
	for (uint16_t q = 0; q < NQ_MAX; q++) {
		assert_int_equal(used_idx(t, q), 8);
		for (unsigned r = 0; r < 8; r++) {
			unsigned s = q * 8 + r;
			assert_int_equal(status(t, s), VIRTIO_BLK_S_OK);
			uint8_t b[1024];
			read_image(t, (q * 64 + r * 2) * 512ull, b, sizeof(b));
			if (r % 2 == 0) {
				for (unsigned i = 0; i < sizeof(b); i++)
					assert_int_equal(b[i], s + 1);
			} else {
				assert_memory_equal(host(t, BUF + 0x1000ull * s), b, sizeof(b));
			}
		}
	}
	/* A kick on one queue leaves the others alone. */
	unsigned s = 100;
	*host(t, STATUS + s) = 0xee;
	put_hdr(t, s, VIRTIO_BLK_T_FLUSH, 0);
	struct seg segs[] = {{hdr_gpa(s), 16, 0}, {STATUS + s, 1, W}};
	post(t, 2, segs, 2);
	kick(t, 1);
	assert_int_equal(status(t, s), 0xee);
	kick(t, 2);
	assert_int_equal(status(t, s), VIRTIO_BLK_S_OK);
	assert_int_equal(used_idx(t, 2), 9);
	assert_int_equal(used_idx(t, 1), 8);
}

static uint64_t rnd_state;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* A driver that sends random chains: random types, sectors, lengths,
 * directions and addresses, valid or not. Writes the device accepts are
 * mirrored in a shadow copy; the image must always equal the shadow. */
static void test_hostile_driver(void **state)
{
	struct t *t = *state;
	static uint8_t shadow[IMG_BYTES];
	static const uint32_t types[] = {VIRTIO_BLK_T_IN,
					 VIRTIO_BLK_T_OUT,
					 VIRTIO_BLK_T_FLUSH,
					 VIRTIO_BLK_T_GET_ID,
					 VIRTIO_BLK_T_DISCARD,
					 VIRTIO_BLK_T_WRITE_ZEROES,
					 3,
					 0xffffffffu};
	for (uint64_t i = 0; i < IMG_BYTES; i++)
		shadow[i] = pattern_byte(i, 0);
	rnd_state = 0x9e3779b97f4a7c15ull;
	unsigned resets = 0, oks = 0;
	for (unsigned iter = 0; iter < 400; iter++) {
		unsigned s = new_slot(t);
		uint32_t type = types[rnd() % 8];
		uint64_t sector = rnd() % 4 == 0 ? rnd() : rnd() % (IMG_SECT + 8);
		put_hdr(t, s, type, sector);
		struct seg segs[6];
		unsigned n = 0;
		if (rnd() % 8)
			segs[n++] =
			    (struct seg){hdr_gpa(s), (uint32_t)(rnd() % 8 ? 16 : rnd() % 20),
					 (uint16_t)(rnd() % 16 ? 0 : W)};
		unsigned nd = (unsigned)(rnd() % 4);
		for (unsigned k = 0; k < nd; k++) {
			uint32_t len =
			    rnd() % 3 ? (uint32_t)(rnd() % 8 + 1) * 512 : (uint32_t)(rnd() % 5000);
			uint64_t gpa = BUF + 0x10000ull * k + (rnd() % 4 ? 0 : rnd() % 4096);
			if (rnd() % 50 == 0)
				gpa = rnd();
			bool w = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
			if (rnd() % 10 == 0)
				w = !w;
			for (uint32_t b = 0; b < len && gpa >= BUF && gpa + len < BUF + BUF_SIZE;
			     b++)
				*host(t, gpa + b) = (uint8_t)rnd();
			if ((type == VIRTIO_BLK_T_DISCARD || type == VIRTIO_BLK_T_WRITE_ZEROES) &&
			    gpa >= BUF && gpa + 16 < BUF + BUF_SIZE && len >= 16) {
				uint64_t ss = rnd() % (IMG_SECT + 4);
				uint32_t nn = (uint32_t)(rnd() % 64),
					 ff = (uint32_t)(rnd() % 4 == 0);
				memcpy(host(t, gpa), &ss, 8);
				memcpy(host(t, gpa + 8), &nn, 4);
				memcpy(host(t, gpa + 12), &ff, 4);
			}
			segs[n++] = (struct seg){gpa, len, (uint16_t)(w ? W : 0)};
		}
		if (rnd() % 10)
			segs[n++] = (struct seg){STATUS + s, 1, W};
		if (n == 0)
			continue;
		uint16_t before = used_idx(t, 0);
		post(t, 0, segs, n);
		kick(t, 0);
		if (needs_reset(t)) {
			resets++;
			virtio_dev_reset(&t->b.vdev);
			go_live(t);
			image_equals(t, shadow);
			continue;
		}
		assert_int_equal(used_idx(t, 0), (uint16_t)(before + 1));
		uint8_t st = status(t, s);
		bool framed = n >= 2 && segs[0].gpa == hdr_gpa(s) && segs[0].len == 16 &&
			      segs[0].flags == 0 && segs[n - 1].gpa == STATUS + s;
		if (st == VIRTIO_BLK_S_OK && framed) {
			oks++;
			/* Mirror what the device accepted. */
			if (type == VIRTIO_BLK_T_OUT) {
				uint64_t off = sector * 512;
				for (unsigned k = 1; k + 1 < n; k++) {
					memcpy(shadow + off, host(t, segs[k].gpa), segs[k].len);
					off += segs[k].len;
				}
			} else if (type == VIRTIO_BLK_T_DISCARD ||
				   type == VIRTIO_BLK_T_WRITE_ZEROES) {
				static uint8_t list[4 * 5000];
				size_t len = 0;
				for (unsigned k = 1; k + 1 < n; k++) {
					memcpy(list + len, host(t, segs[k].gpa), segs[k].len);
					len += segs[k].len;
				}
				for (size_t o = 0; o + 16 <= len; o += 16) {
					uint64_t ss;
					uint32_t nn;
					memcpy(&ss, list + o, 8);
					memcpy(&nn, list + o + 8, 4);
					memset(shadow + ss * 512, 0, nn * 512ull);
				}
			}
		} else if (st == VIRTIO_BLK_S_OK) {
			/* Odd framing the device accepted: only reads, flushes and
			 * get-id may be among those; none changes the image. */
			assert_true(type != VIRTIO_BLK_T_OUT && type != VIRTIO_BLK_T_DISCARD &&
				    type != VIRTIO_BLK_T_WRITE_ZEROES);
		}
		image_equals(t, shadow);
	}
	print_message("hostile driver: %u accepted, %u device resets\n", oks, resets);
	assert_true(oks > 10);
	assert_true(resets > 0);
}

static void test_reset_drops_and_recovers(void **state)
{
	struct t *t = *state;
	/* Requests in flight across a reset: the device comes back clean
	 * whether or not they completed before it. */
	for (unsigned r = 0; r < 16; r++) {
		unsigned s = new_slot(t);
		put_hdr(t, s, VIRTIO_BLK_T_IN, r);
		struct seg segs[] = {
		    {hdr_gpa(s), 16, 0}, {BUF + 0x1000ull * r, 512, W}, {STATUS + s, 1, W}};
		post(t, 0, segs, 3);
	}
	unsigned first = t->slot - 16;
	virtio_dev_kick(&t->b.vdev, 0);
	virtio_dev_reset(&t->b.vdev);
	virtio_blk_drain(&t->b);
	assert_false(t->b.vdev.vqs[0].enabled);
	/* Those that completed after the reset were dropped: no status, no
	 * push into the disabled queue (which would have broken it). */
	assert_false(needs_reset(t));
	unsigned answered = 0;
	for (unsigned r = 0; r < 16; r++)
		answered += status(t, first + r) != 0xee;
	assert_int_equal(answered, used_idx(t, 0));
	print_message("%u of 16 completed before the reset\n", answered);
	go_live(t);
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_IN, 9, BUF, 512, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(host(t, BUF)[0], pattern_byte(9 * 512, 0));
}

static void test_init_errors(void **state)
{
	(void)state;
	struct t *t = make();
	assert_non_null(t);
	struct virtio_blk b;
	struct chv_err err = {0};
	struct virtio_blk_opts o = t->o;
	static const struct {
		uint32_t blk_size;
		uint16_t nq;
		uint32_t qs;
		const char *serial;
		const char *needle;
	} bad[] = {
	    {1024, 0, 0, NULL, "block_size=1024"},
	    {0, VIRTIO_MAX_QUEUES + 1, 0, NULL, "num_queues=257"},
	    {0, 0, 100, NULL, "queue_size=100"},
	    {0, 0, VQ_MAX_SIZE * 2, NULL, "queue_size=65536"},
	    {0, 0, 0, "123456789012345678901", "serial=123456789012345678901"},
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o.blk_size = bad[i].blk_size;
		o.num_queues = bad[i].nq;
		o.queue_size = bad[i].qs;
		o.serial = bad[i].serial;
		assert_int_equal(virtio_blk_init(&b, &t->m, &o, &err), -EINVAL);
		if (!strstr(err.msg, bad[i].needle) || !strstr(err.msg, "--disk"))
			fail_msg("message '%s' does not name '%s'", err.msg, bad[i].needle);
		virtio_blk_destroy(&b);
	}
	o = t->o;
	o.path = NULL;
	assert_int_equal(virtio_blk_init(&b, &t->m, &o, &err), -EINVAL);
	virtio_blk_destroy(&b);
	o.path = "";
	assert_int_equal(virtio_blk_init(&b, &t->m, &o, &err), -EINVAL);
	virtio_blk_destroy(&b);
	assert_int_equal(virtio_blk_init(&b, &t->m, NULL, &err), -EINVAL);
	virtio_blk_destroy(&b);
	o.path = "/nonexistent/disk.img";
	assert_int_equal(virtio_blk_init(&b, &t->m, &o, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "path=/nonexistent/disk.img"));
	virtio_blk_destroy(&b);
	o.path = "/tmp";
	assert_int_equal(virtio_blk_init(&b, &t->m, &o, &err), -EISDIR);
	virtio_blk_destroy(&b);
	o.path = "/dev/null";
	assert_int_equal(virtio_blk_init(&b, &t->m, &o, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not a file"));
	virtio_blk_destroy(&b);
	/* A zeroed device owns nothing: fd 0 stays open. */
	memset(&b, 0, sizeof(b));
	int fd0 = fcntl(0, F_GETFD);
	virtio_blk_destroy(&b);
	assert_int_equal(fcntl(0, F_GETFD), fd0);
	/* A good one after all that, and an empty image. */
	o = t->o;
	assert_int_equal(virtio_blk_init(&b, &t->m, &o, &err), 0);
	virtio_blk_destroy(&b);
	assert_int_equal(ftruncate(t->fd, 0), 0);
	assert_int_equal(virtio_blk_init(&b, &t->m, &o, &err), 0);
	assert_int_equal(b.capacity, 0);
	virtio_blk_destroy(&b);
	/* The backend alone. */
	struct blk_io io;
	struct blk_io_opts bo = {0};
	assert_int_equal(blk_io_open(&io, &bo, &err), -EINVAL);
	blk_io_close(&io);
	blk_io_close(&io);
	unmake(t);
}

/* ---- rate limiting ---- */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct ratelimit *limiter(uint64_t bw, uint64_t bw_ms, uint64_t ops, uint64_t ops_ms)
{
	const struct rl_config c = {.bw = {bw, 0, bw_ms}, .ops = {ops, 0, ops_ms}};
	struct ratelimit *rl;
	struct chv_err err = {0};
	if (ratelimit_create(&rl, &c, &err))
		fail_msg("ratelimit_create: %s", err.msg);
	return rl;
}

/* The device of t over limiter rl (NULL: none). */
static void limit(struct t *t, struct ratelimit *rl)
{
	t->o.rl = rl;
	reopen(t);
}

/* Request slot k of queue q: its own three descriptors (3k..3k+2), header
 * and status slot q * 64 + k, and data buffer. */
static unsigned rslot(uint16_t q, unsigned k)
{
	return q * 64u + k;
}

static uint64_t rbuf(uint16_t q, unsigned k, uint32_t len)
{
	return BUF + (uint64_t)rslot(q, k) * len;
}

static void post_slot(struct t *t, uint16_t q, unsigned k, uint32_t type, uint64_t sector,
		      uint32_t len)
{
	unsigned s = rslot(q, k);
	uint16_t d = (uint16_t)(3 * k);
	put_hdr(t, s, type, sector);
	*host(t, STATUS + s) = 0xee;
	desc(t, q, d, hdr_gpa(s), 16, VIRTQ_DESC_F_NEXT, d + 1);
	desc(t, q, d + 1, rbuf(q, k, len), len,
	     (uint16_t)(VIRTQ_DESC_F_NEXT | (type == VIRTIO_BLK_T_IN ? W : 0)), d + 2);
	desc(t, q, d + 2, STATUS + s, 1, W, 0);
	publish(t, q, d);
}

static uint16_t used_now(struct t *t, uint16_t q)
{
	return __atomic_load_n((uint16_t *)(void *)host(t, USED(q) + 2), __ATOMIC_ACQUIRE);
}

/* What the driver loop saw. */
struct rate {
	double reads_per_s, bytes_per_s;
	uint64_t done;
};

#define SLOTS 32u

/* A driver keeping SLOTS reads of len bytes in flight for secs seconds,
 * and running the event loop's part: ratelimit_fd readable ->
 * ratelimit_fire(). The rate is measured after the first `warm` seconds,
 * once the bucket's initial contents are spent. */
static struct rate drive_reads(struct t *t, struct ratelimit *rl, uint32_t len, double secs,
			       double warm)
{
	const uint64_t per_image = IMG_BYTES / len;
	uint64_t next = 0;
	uint16_t seen = used_now(t, 0);
	struct rate r = {0};
	for (unsigned k = 0; k < SLOTS; k++, next++)
		post_slot(t, 0, k, VIRTIO_BLK_T_IN, (next % per_image) * (len / 512), len);
	virtio_dev_kick(&t->b.vdev, 0);
	double t0 = now_s(), tw = 0, now;
	struct virtio_blk_counters c0 = {0}, c1;
	bool warmed = false;
	while ((now = now_s()) < t0 + secs) {
		if (!warmed && now >= t0 + warm) {
			virtio_blk_get_counters(&t->b, &c0);
			tw = now;
			warmed = true;
		}
		if (rl) {
			struct pollfd p = {.fd = ratelimit_fd(rl), .events = POLLIN};
			if (poll(&p, 1, 1) > 0)
				ratelimit_fire(rl);
		}
		uint16_t u = used_now(t, 0);
		bool any = false;
		for (; seen != u; seen++) {
			uint32_t id, l;
			used_entry(t, 0, seen, &id, &l);
			unsigned k = id / 3;
			assert_true(id % 3 == 0 && k < SLOTS);
			assert_int_equal(l, len + 1);
			assert_int_equal(status(t, rslot(0, k)), VIRTIO_BLK_S_OK);
			uint64_t sector;
			memcpy(&sector, host(t, hdr_gpa(rslot(0, k)) + 8), 8);
			assert_int_equal(host(t, rbuf(0, k, len))[len - 1],
					 pattern_byte(sector * 512 + len - 1, 0));
			post_slot(t, 0, k, VIRTIO_BLK_T_IN, (next++ % per_image) * (len / 512),
				  len);
			r.done++;
			any = true;
		}
		if (any)
			virtio_dev_kick(&t->b.vdev, 0);
	}
	virtio_blk_get_counters(&t->b, &c1);
	r.reads_per_s = (double)(c1.reads - c0.reads) / (now - tw);
	r.bytes_per_s = (double)(c1.bytes_read - c0.bytes_read) / (now - tw);
	/* What is still throttled stays in the ring; the device goes next. */
	virtio_blk_drain(&t->b);
	return r;
}

static void within(double got, double want, const char *what)
{
	print_message("%s: %.3f, limit %.3f (%+.2f%%)\n", what, got, want,
		      (got - want) * 100 / want);
	if (got < want * 0.9 || got > want * 1.1)
		fail_msg("%s: %.1f is not within 10%% of %.1f", what, got, want);
}

/* 4 MiB/s: a 512 KiB bucket refilled every 125 ms; 64 KiB reads. */
static void test_rate_bandwidth(void **state)
{
	struct t *t = *state;
	struct rate r = drive_reads(t, NULL, 65536, 0.3, 0.05);
	print_message("unlimited: %.1f MiB/s\n", r.bytes_per_s / (1 << 20));
	double unlimited = r.bytes_per_s;
	struct ratelimit *rl = limiter(512 << 10, 125, 0, 0);
	limit(t, rl);
	r = drive_reads(t, rl, 65536, 1.8, 0.3);
	within(r.bytes_per_s / (1 << 20), 4.0, "bandwidth, MiB/s");
	assert_true(unlimited > 3 * r.bytes_per_s);
	struct virtio_blk_counters c;
	virtio_blk_get_counters(&t->b, &c);
	struct ratelimit_counters k;
	ratelimit_get_counters(rl, &k);
	print_message("%" PRIu64 " reads, %" PRIu64 " refused, %" PRIu64 " wake-ups\n", c.reads,
		      c.throttled, k.wakeups);
	assert_int_equal(c.throttled, k.throttled);
	assert_true(c.throttled > 10 && k.wakeups > 10);
	assert_int_equal(c.errors, 0);
	limit(t, NULL);
	ratelimit_destroy(rl);
}

/* 2000 requests/s: a bucket of 200 refilled every 100 ms; 512-byte reads. */
static void test_rate_ops(void **state)
{
	struct t *t = *state;
	struct rate r = drive_reads(t, NULL, 512, 0.3, 0.05);
	print_message("unlimited: %.0f reads/s\n", r.reads_per_s);
	double unlimited = r.reads_per_s;
	struct ratelimit *rl = limiter(0, 0, 200, 100);
	limit(t, rl);
	r = drive_reads(t, rl, 512, 1.8, 0.3);
	within(r.reads_per_s, 2000, "operations, reads/s");
	assert_true(unlimited > 3 * r.reads_per_s);
	limit(t, NULL);
	ratelimit_destroy(rl);
}

struct kicker {
	struct t *t;
	uint16_t nq;
	bool stop; /* __atomic */
};

/* Kicks every queue from another thread, as a vCPU would, while the main
 * thread runs the limiter's wake-ups. */
static void *kicker_main(void *arg)
{
	struct kicker *k = arg;
	while (!__atomic_load_n(&k->stop, __ATOMIC_ACQUIRE)) {
		for (uint16_t q = 0; q < k->nq; q++)
			virtio_dev_kick(&k->t->b.vdev, q);
		usleep(300);
	}
	return NULL;
}

/* Four queues, 64 requests each (writes on even queues, reads on odd),
 * pushed through a tight ops limit while a second thread kicks: every
 * request is answered exactly once, with the right data. */
static void test_rate_nothing_lost_or_doubled(void **state)
{
	struct t *t = *state;
	const uint16_t nq = NQ_MAX;
	const unsigned per_q = 64;
	t->o.num_queues = nq;
	struct ratelimit *rl = limiter(0, 0, 16, 20); /* 800/s, 16 at once */
	limit(t, rl);
	for (uint16_t q = 0; q < nq; q++)
		for (unsigned k = 0; k < per_q; k++) {
			unsigned s = rslot(q, k);
			uint32_t type = q % 2 ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
			if (type == VIRTIO_BLK_T_OUT)
				memset(host(t, rbuf(q, k, 512)), (int)(s % 251 + 1), 512);
			post_slot(t, q, k, type, 2ull * s, 512);
		}
	struct kicker k = {.t = t, .nq = nq};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, kicker_main, &k), 0);
	double t0 = now_s();
	bool all = false;
	while (!all && now_s() < t0 + 10) {
		struct pollfd p = {.fd = ratelimit_fd(rl), .events = POLLIN};
		if (poll(&p, 1, 5) > 0)
			ratelimit_fire(rl);
		all = true;
		for (uint16_t q = 0; q < nq; q++)
			all = all && used_now(t, q) == per_q;
	}
	double took = now_s() - t0;
	__atomic_store_n(&k.stop, true, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	virtio_blk_drain(&t->b);
	print_message("%u requests in %.3f s (limit 800/s after 16)\n", nq * per_q, took);
	assert_false(needs_reset(t));
	for (uint16_t q = 0; q < nq; q++) {
		assert_int_equal(used_now(t, q), per_q);
		bool seen[64] = {false};
		for (uint16_t n = 0; n < per_q; n++) {
			uint32_t id, l;
			used_entry(t, q, n, &id, &l);
			assert_true(id % 3 == 0 && id / 3 < per_q);
			assert_false(seen[id / 3]);
			seen[id / 3] = true;
			unsigned s = rslot(q, id / 3);
			assert_int_equal(status(t, s), VIRTIO_BLK_S_OK);
			uint8_t img[512];
			read_image(t, 2ull * s * 512, img, sizeof(img));
			if (q % 2 == 0) {
				for (unsigned i = 0; i < 512; i++)
					assert_int_equal(img[i], s % 251 + 1);
			} else {
				assert_memory_equal(host(t, rbuf(q, id / 3, 512)), img, 512);
			}
		}
	}
	struct virtio_blk_counters c;
	virtio_blk_get_counters(&t->b, &c);
	assert_int_equal(c.reads + c.writes, nq * per_q);
	assert_true(c.throttled > 0);
	/* 256 requests at 800/s after 16 free: at least 0.3 s. */
	assert_true(took > 0.25);
	limit(t, NULL);
	ratelimit_destroy(rl);
}

/* A queue waiting on the limiter across a reset: the wake-up leaves the
 * reset rings alone, and the fresh driver's requests pass. */
static void test_rate_throttled_across_reset(void **state)
{
	struct t *t = *state;
	struct ratelimit *rl = limiter(0, 0, 2, 200); /* 10/s, 2 at once */
	limit(t, rl);
	for (unsigned k = 0; k < 4; k++)
		post_slot(t, 0, k, VIRTIO_BLK_T_IN, k, 512);
	kick(t, 0);
	assert_int_equal(used_now(t, 0), 2);
	assert_int_equal(t->b.vdev.vqs[0].last_avail_idx, 2); /* the third went back */
	kick(t, 0); /* throttled: a kick changes nothing */
	assert_int_equal(used_now(t, 0), 2);
	virtio_dev_reset(&t->b.vdev);
	struct pollfd p = {.fd = ratelimit_fd(rl), .events = POLLIN};
	assert_int_equal(poll(&p, 1, 1000), 1);
	ratelimit_fire(rl);
	assert_false(t->b.vdev.vqs[0].enabled);
	assert_int_equal(t->b.vdev.vqs[0].last_avail_idx, 0);
	go_live(t);
	post_slot(t, 0, 0, VIRTIO_BLK_T_IN, 7, 512);
	kick(t, 0);
	double t0 = now_s();
	while (used_now(t, 0) != 1 && now_s() < t0 + 2) {
		if (poll(&p, 1, 10) > 0)
			ratelimit_fire(rl);
	}
	virtio_blk_drain(&t->b);
	assert_int_equal(used_now(t, 0), 1);
	assert_int_equal(status(t, rslot(0, 0)), VIRTIO_BLK_S_OK);
	assert_int_equal(host(t, rbuf(0, 0, 512))[0], pattern_byte(7 * 512, 0));
	assert_false(needs_reset(t));
	limit(t, NULL);
	ratelimit_destroy(rl);
}

/* A flush and a get-id cost an op and no bytes; a read its data length. */
static void test_rate_costs(void **state)
{
	struct t *t = *state;
	struct ratelimit *rl = limiter(4096, 60000, 3, 60000); /* no refill to speak of */
	limit(t, rl);
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_GET_ID, 0, BUF, 20, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_IN, 0, BUF, 4096, NULL), VIRTIO_BLK_S_OK);
	/* Out of ops now; the bytes were all spent too. */
	post_slot(t, 0, 5, VIRTIO_BLK_T_IN, 0, 512);
	kick(t, 0);
	assert_int_equal(used_now(t, 0), 3);
	assert_int_equal(status(t, rslot(0, 5)), 0xee);
	struct virtio_blk_counters c;
	virtio_blk_get_counters(&t->b, &c);
	assert_int_equal(c.throttled, 1);
	limit(t, NULL);
	ratelimit_destroy(rl);
	/* 4096 bytes but ops to spare: the 4097th byte is refused. */
	rl = limiter(4096, 60000, 100, 60000);
	limit(t, rl);
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_IN, 0, BUF, 3584, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(request(t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), VIRTIO_BLK_S_OK);
	post_slot(t, 0, 5, VIRTIO_BLK_T_OUT, 0, 1024);
	kick(t, 0);
	assert_int_equal(used_now(t, 0), 2);
	assert_int_equal(status(t, rslot(0, 5)), 0xee);
	limit(t, NULL);
	ratelimit_destroy(rl);
}

#define BOTH(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest data[] = {
	    BOTH(test_describes_itself),
	    BOTH(test_read_host_pattern),
	    BOTH(test_write_guest_pattern),
	    BOTH(test_flush),
	    BOTH(test_discard_and_write_zeroes),
	    BOTH(test_direct_unaligned),
	    BOTH(test_multiqueue),
	    BOTH(test_hostile_driver),
	    BOTH(test_reset_drops_and_recovers),
	};
	const struct CMUnitTest once[] = {
	    BOTH(test_get_id),
	    BOTH(test_readonly),
	    BOTH(test_out_of_range),
	    BOTH(test_malformed_table),
	    BOTH(test_indirect_and_event_idx),
	    BOTH(test_locking),
	    cmocka_unit_test(test_init_errors),
	    BOTH(test_rate_costs),
	    BOTH(test_rate_throttled_across_reset),
	    BOTH(test_rate_nothing_lost_or_doubled),
	    BOTH(test_rate_bandwidth),
	    BOTH(test_rate_ops),
	};
	int failed = cmocka_run_group_tests_name("io_uring", data, NULL, NULL);
	force_pool = true;
	failed += cmocka_run_group_tests_name("thread pool", data, NULL, NULL);
	force_pool = false;
	failed += cmocka_run_group_tests_name("requests", once, NULL, NULL);
	return failed;
}
