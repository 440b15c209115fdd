/* virtio-console alone, without a transport: a fake driver with both rings in
 * a real struct vm_mem, the device kicked through the generic glue. Output in
 * order (segments, many requests, ring wrap, indirect tables), input delivered
 * or held until buffers come, the bounded input buffer, size changes and the
 * emergency write, every malformed chain, reset mid-stream, and a driver
 * that writes garbage everywhere. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "virtio/console.h"

#define RAM   (4ull << 20)
#define BUF   0x100000ull
#define QSIZE 8u
#define F_V1  (1ull << VIRTIO_F_VERSION_1)
#define F_ALL                                                                                      \
	(F_V1 | 1ull << VIRTIO_CONSOLE_F_SIZE | 1ull << VIRTIO_CONSOLE_F_EMERG_WRITE |             \
	 1ull << VIRTIO_RING_F_INDIRECT_DESC | 1ull << VIRTIO_RING_F_EVENT_IDX)

/* The rings of queue q: descriptors, available and used ring, 4 KiB apart. */
#define DESC(q)	 (0x10000ull + 0x10000ull * (q))
#define AVAIL(q) (DESC(q) + 0x1000)
#define USED(q)	 (DESC(q) + 0x2000)

#define OUT_MAX (1u << 20)

struct t {
	struct vm_mem m;
	struct virtio_console c;
	uint16_t avail_idx[2];
	unsigned queue_irqs[2], config_irqs;
	uint8_t *out;
	size_t out_len;
	uint64_t out_total;
	unsigned out_calls;
};

static void on_signal(void *ctx, enum virtio_irq kind, uint16_t q)
{
	struct t *t = ctx;
	/* Atomic: the concurrency test signals from two threads. */
	if (kind == VIRTIO_IRQ_QUEUE) {
		assert_true(q < 2);
		__atomic_add_fetch(&t->queue_irqs[q], 1, __ATOMIC_RELAXED);
	} else {
		__atomic_add_fetch(&t->config_irqs, 1, __ATOMIC_RELAXED);
	}
}

static void on_output(void *ctx, const uint8_t *buf, size_t n)
{
	struct t *t = ctx;
	assert_true(n > 0);
	assert_true(t->out_len + n <= OUT_MAX);
	memcpy(t->out + t->out_len, buf, n);
	t->out_len += n;
	t->out_total += n;
	t->out_calls++;
}

static uint8_t *host(struct t *t, uint64_t gpa)
{
	return vm_mem_ptr(&t->m, gpa, 1);
}

static void desc_at(struct t *t, uint64_t table, uint32_t i, uint64_t addr, uint32_t len,
		    uint16_t flags, uint16_t next)
{
	uint8_t *p = host(t, table + 16ull * i);
	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

static void desc(struct t *t, unsigned q, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	desc_at(t, DESC(q), i, addr, len, flags, next);
}

static void publish(struct t *t, unsigned q, uint16_t head)
{
	uint8_t *a = host(t, AVAIL(q));
	memcpy(a + 4 + 2 * (t->avail_idx[q] % QSIZE), &head, 2);
	t->avail_idx[q]++;
	memcpy(a + 2, &t->avail_idx[q], 2);
}

static uint16_t used_idx(struct t *t, unsigned q)
{
	uint16_t v;
	memcpy(&v, host(t, USED(q) + 2), 2);
	return v;
}

static uint32_t used_id(struct t *t, unsigned q, uint16_t n)
{
	uint32_t v;
	memcpy(&v, host(t, USED(q) + 4 + 8ull * (n % QSIZE)), 4);
	return v;
}

static uint32_t used_len(struct t *t, unsigned q, uint16_t n)
{
	uint32_t v;
	memcpy(&v, host(t, USED(q) + 4 + 8ull * (n % QSIZE) + 4), 4);
	return v;
}

static bool needs_reset(struct t *t)
{
	return virtio_dev_status(&t->c.vdev) & VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

static struct virtio_console_stats stats(struct t *t)
{
	struct virtio_console_stats s;
	virtio_console_get_stats(&t->c, &s);
	return s;
}

/* What a transport does for a driver that set both queues up; DRIVER_OK and
 * activation only when live. */
static void set_up(struct t *t, uint64_t features, bool live)
{
	struct virtio_dev *d = &t->c.vdev;
	struct chv_err err = {0};
	const struct virtio_transport tr = {.signal = on_signal, .ctx = t};

	virtio_dev_set_transport(d, &tr);
	for (unsigned q = 0; q < 2; q++) {
		memset(host(t, DESC(q)), 0, 0x3000);
		t->avail_idx[q] = 0;
	}
	d->driver_features = features;
	d->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
	for (unsigned q = 0; q < 2; q++) {
		assert_int_equal(vq_set_size(&d->vqs[q], QSIZE, &err), 0);
		assert_int_equal(vq_set_addrs(&d->vqs[q], DESC(q), AVAIL(q), USED(q), &err), 0);
		assert_int_equal(vq_enable(&d->vqs[q], features, &err), 0);
	}
	if (live) {
		d->status |= VIRTIO_STATUS_DRIVER_OK;
		virtio_dev_activate(d);
	}
}

static void go_live(struct t *t)
{
	set_up(t,
	       F_V1 | 1ull << VIRTIO_CONSOLE_F_SIZE | 1ull << VIRTIO_CONSOLE_F_EMERG_WRITE |
		   1ull << VIRTIO_RING_F_INDIRECT_DESC,
	       true);
}

static void driver_ok(struct t *t)
{
	t->c.vdev.status |= VIRTIO_STATUS_DRIVER_OK;
	virtio_dev_activate(&t->c.vdev);
}

static int setup_with(void **state, bool with_out)
{
	struct t *t = calloc(1, sizeof(*t));
	struct mem_layout l;
	struct chv_err err = {0};
	if (!t)
		return -1;
	t->out = malloc(OUT_MAX);
	layout_compute(RAM, &l);
	if (!t->out || vm_mem_create(&t->m, &l, false, false, &err)) {
		free(t->out);
		free(t);
		return -1;
	}
	const struct out_sink out = {.write = on_output, .ctx = t};
	if (virtio_console_init(&t->c, &t->m, with_out ? &out : NULL, 80, 25, &err)) {
		vm_mem_destroy(&t->m);
		free(t->out);
		free(t);
		return -1;
	}
	go_live(t);
	*state = t;
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, true);
}

static int setup_no_out(void **state)
{
	return setup_with(state, false);
}

static int teardown(void **state)
{
	struct t *t = *state;
	virtio_console_destroy(&t->c);
	vm_mem_destroy(&t->m);
	free(t->out);
	free(t);
	return 0;
}

static void kick(struct t *t, uint16_t q)
{
	virtio_dev_kick(&t->c.vdev, q);
}

static void put(struct t *t, uint64_t gpa, const char *s)
{
	memcpy(host(t, gpa), s, strlen(s));
}

static uint32_t cfg_read(struct t *t, uint32_t off, uint32_t len)
{
	uint8_t b[8];
	memset(b, 0xee, sizeof(b));
	t->c.vdev.ops->config_read(&t->c.vdev, off, b, len);
	uint32_t v = 0;
	for (uint32_t i = 0; i < len && i < 4; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

static void cfg_write(struct t *t, uint32_t off, uint32_t v, uint32_t len)
{
	uint8_t b[8] = {0};
	memcpy(b, &v, 4);
	t->c.vdev.ops->config_write(&t->c.vdev, off, b, len);
}

/* ---- the device ---- */

static void test_describes_itself(void **state)
{
	struct t *t = *state;
	struct virtio_dev *d = &t->c.vdev;
	assert_int_equal(d->device_id, VIRTIO_ID_CONSOLE);
	assert_int_equal(d->features, F_ALL);
	assert_false(d->features & 1ull << VIRTIO_CONSOLE_F_MULTIPORT);
	assert_int_equal(d->num_queues, 2);
	assert_int_equal(d->config_size, VIRTIO_CONSOLE_CONFIG_SIZE);
	assert_int_equal(d->vqs[0].max_size, VIRTIO_CONSOLE_QUEUE_SIZE);
	assert_string_equal(d->name, "virtio-console");

	assert_int_equal(cfg_read(t, VIRTIO_CONSOLE_CFG_COLS, 2), 80);
	assert_int_equal(cfg_read(t, VIRTIO_CONSOLE_CFG_ROWS, 2), 25);
	assert_int_equal(cfg_read(t, 0, 4), 80 | 25 << 16);
	assert_int_equal(cfg_read(t, 1, 1), 0);
	assert_int_equal(cfg_read(t, VIRTIO_CONSOLE_CFG_MAX_NR_PORTS, 4), 1);
	assert_int_equal(cfg_read(t, VIRTIO_CONSOLE_CFG_EMERG_WR, 4), 0);
	/* Outside the structure: zeros, never stale buffer contents. */
	assert_int_equal(cfg_read(t, 10, 4), 0);
	assert_int_equal(cfg_read(t, 12, 4), 0);
	assert_int_equal(cfg_read(t, 0xffffffffu, 4), 0);
	/* Writes to read-only fields change nothing. */
	cfg_write(t, 0, 0x12345678, 4);
	cfg_write(t, 4, 7, 4);
	assert_int_equal(cfg_read(t, 0, 4), 80 | 25 << 16);
	assert_int_equal(t->out_len, 0);
}

/* ---- transmit ---- */

static void test_tx_segments_in_order(void **state)
{
	struct t *t = *state;
	put(t, BUF, "Hello");
	put(t, BUF + 0x3000, ", ");
	put(t, BUF + 0x100, "world\n");
	desc(t, 1, 0, BUF, 5, VIRTQ_DESC_F_NEXT, 5);
	desc(t, 1, 5, BUF + 0x3000, 2, VIRTQ_DESC_F_NEXT, 2);
	desc(t, 1, 2, BUF + 0x100, 6, 0, 0);
	publish(t, 1, 0);
	kick(t, 1);
	assert_int_equal(t->out_len, 13);
	assert_memory_equal(t->out, "Hello, world\n", 13);
	assert_int_equal(used_idx(t, 1), 1);
	assert_int_equal(used_id(t, 1, 0), 0);
	assert_int_equal(used_len(t, 1, 0), 0);
	assert_int_equal(t->queue_irqs[1], 1);
	assert_int_equal(t->queue_irqs[0], 0);
	struct virtio_console_stats s = stats(t);
	assert_int_equal(s.tx_requests, 1);
	assert_int_equal(s.tx_bytes, 13);
	assert_int_equal(s.tx_dropped, 0);
	assert_int_equal(s.errors, 0);
	/* A kick with nothing new does nothing. */
	kick(t, 1);
	assert_int_equal(t->out_len, 13);
	assert_int_equal(t->queue_irqs[1], 1);
}

static void test_tx_many_requests_ring_wrap(void **state)
{
	struct t *t = *state;
	char want[1024];
	size_t want_len = 0, total = 0;
	unsigned seq = 0;

	/* 40 rounds of 1..4 requests of 1..2 segments: the available and used
	 * rings wrap several times, and each round's output is checked whole. */
	for (unsigned round = 0; round < 40; round++) {
		unsigned nreq = round % 4 + 1;
		uint16_t d = 0;
		for (unsigned r = 0; r < nreq; r++) {
			unsigned nseg = (round + r) % 2 + 1;
			uint16_t head = d;
			for (unsigned s = 0; s < nseg; s++, d++) {
				char piece[16];
				int len = snprintf(piece, sizeof(piece), "<%u>", seq++);
				uint64_t gpa = BUF + 0x40ull * d + 0x1000ull * (round % 4);
				memcpy(host(t, gpa), piece, (size_t)len);
				memcpy(want + want_len, piece, (size_t)len);
				want_len += (size_t)len;
				desc(t, 1, d, gpa, (uint32_t)len,
				     s + 1 < nseg ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(d + 1));
			}
			publish(t, 1, head);
		}
		kick(t, 1);
		assert_int_equal(t->out_len, want_len);
		assert_memory_equal(t->out, want, want_len);
		assert_int_equal(used_idx(t, 1), t->avail_idx[1]);
		total += want_len;
		want_len = 0;
		t->out_len = 0;
	}
	assert_true(t->avail_idx[1] > 8 * QSIZE);
	struct virtio_console_stats s = stats(t);
	assert_int_equal(s.tx_requests, t->avail_idx[1]);
	assert_int_equal(s.tx_bytes, total);
	assert_int_equal(s.errors, 0);
	assert_false(needs_reset(t));
}

static void test_tx_indirect(void **state)
{
	struct t *t = *state;
	const uint64_t table = BUF + 0x8000;
	put(t, BUF, "ind");
	put(t, BUF + 0x10, "irect");
	desc_at(t, table, 0, BUF, 3, VIRTQ_DESC_F_NEXT, 1);
	desc_at(t, table, 1, BUF + 0x10, 5, 0, 0);
	desc(t, 1, 3, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
	publish(t, 1, 3);
	kick(t, 1);
	assert_int_equal(t->out_len, 8);
	assert_memory_equal(t->out, "indirect", 8);
	assert_int_equal(used_id(t, 1, 0), 3);
}

static void test_tx_writable_segments_dropped(void **state)
{
	struct t *t = *state;
	put(t, BUF, "ab");
	memset(host(t, BUF + 0x100), 0x5a, 16);
	desc(t, 1, 0, BUF, 2, VIRTQ_DESC_F_NEXT, 1);
	desc(t, 1, 1, BUF + 0x100, 16, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 1, 0);
	desc(t, 1, 2, BUF + 0x200, 7, VIRTQ_DESC_F_WRITE, 0); /* only writable */
	publish(t, 1, 2);
	put(t, BUF + 0x300, "cd");
	desc(t, 1, 3, BUF + 0x300, 2, 0, 0);
	publish(t, 1, 3);
	kick(t, 1);
	assert_int_equal(t->out_len, 4);
	assert_memory_equal(t->out, "abcd", 4);
	assert_int_equal(used_idx(t, 1), 3);
	for (uint16_t i = 0; i < 3; i++)
		assert_int_equal(used_len(t, 1, i), 0);
	/* The device wrote nothing into the writable buffer. */
	for (unsigned i = 0; i < 16; i++)
		assert_int_equal(host(t, BUF + 0x100)[i], 0x5a);
	struct virtio_console_stats s = stats(t);
	assert_int_equal(s.tx_requests, 3);
	assert_int_equal(s.tx_bytes, 4);
	assert_int_equal(s.tx_dropped, 23);
	assert_int_equal(s.errors, 2);
	assert_false(needs_reset(t));
}

static void test_tx_without_output(void **state)
{
	struct t *t = *state;
	put(t, BUF, "lost");
	desc(t, 1, 0, BUF, 4, 0, 0);
	publish(t, 1, 0);
	kick(t, 1);
	assert_int_equal(used_idx(t, 1), 1);
	struct virtio_console_stats s = stats(t);
	assert_int_equal(s.tx_requests, 1);
	assert_int_equal(s.tx_bytes, 0);
	assert_int_equal(s.tx_dropped, 4);
	cfg_write(t, VIRTIO_CONSOLE_CFG_EMERG_WR, 'x', 4);
	assert_int_equal(stats(t).tx_dropped, 5);
	virtio_console_input(&t->c, (const uint8_t *)"in", 2);
	assert_int_equal(stats(t).rx_dropped, 0); /* input is independent */
}

static void test_emergency_write(void **state)
{
	struct t *t = *state;
	cfg_write(t, VIRTIO_CONSOLE_CFG_EMERG_WR, 'A', 4);
	cfg_write(t, VIRTIO_CONSOLE_CFG_EMERG_WR, 'B', 1);
	cfg_write(t, VIRTIO_CONSOLE_CFG_EMERG_WR + 1, 'C', 1); /* not the field's start */
	cfg_write(t, VIRTIO_CONSOLE_CFG_EMERG_WR, 'D', 0);
	assert_int_equal(t->out_len, 2);
	assert_memory_equal(t->out, "AB", 2);
	assert_int_equal(stats(t).tx_bytes, 2);
	assert_int_equal(cfg_read(t, VIRTIO_CONSOLE_CFG_EMERG_WR, 4), 0);

	/* Not negotiated: ignored. */
	virtio_dev_reset(&t->c.vdev);
	set_up(t, F_V1, true);
	cfg_write(t, VIRTIO_CONSOLE_CFG_EMERG_WR, 'E', 4);
	assert_int_equal(t->out_len, 2);
}

/* ---- receive ---- */

static void post_rx(struct t *t, uint16_t id, uint64_t gpa, uint32_t len)
{
	desc(t, 0, id, gpa, len, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 0, id);
}

static void test_rx_delivered(void **state)
{
	struct t *t = *state;
	memset(host(t, BUF), 0, 64);
	post_rx(t, 0, BUF, 64);
	virtio_console_input(&t->c, (const uint8_t *)"hello", 5);
	assert_int_equal(used_idx(t, 0), 1);
	assert_int_equal(used_id(t, 0, 0), 0);
	assert_int_equal(used_len(t, 0, 0), 5);
	assert_memory_equal(host(t, BUF), "hello", 5);
	assert_int_equal(host(t, BUF)[5], 0);
	assert_int_equal(t->queue_irqs[0], 1);
	/* Empty input takes no buffer. */
	post_rx(t, 1, BUF + 64, 64);
	virtio_console_input(&t->c, NULL, 0);
	assert_int_equal(used_idx(t, 0), 1);
	virtio_console_sink_input(&t->c, (const uint8_t *)"x", 1);
	assert_int_equal(used_idx(t, 0), 2);
	assert_int_equal(used_len(t, 0, 1), 1);
	struct virtio_console_stats s = stats(t);
	assert_int_equal(s.rx_requests, 2);
	assert_int_equal(s.rx_bytes, 6);
	assert_int_equal(s.rx_dropped, 0);
}

static void test_rx_buffered_until_buffers_come(void **state)
{
	struct t *t = *state;
	virtio_console_input(&t->c, (const uint8_t *)"abcdefgh", 8);
	virtio_console_input(&t->c, (const uint8_t *)"ijk", 3);
	assert_int_equal(used_idx(t, 0), 0);
	assert_int_equal(t->queue_irqs[0], 0);
	/* Small buffers, one of them a two-segment chain: the input is split in
	 * order across them, and a kick delivers it. */
	desc(t, 0, 0, BUF, 3, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 0, 0);
	desc(t, 0, 1, BUF + 0x10, 2, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
	desc(t, 0, 2, BUF + 0x20, 2, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 0, 1);
	kick(t, 0);
	assert_int_equal(used_idx(t, 0), 2);
	assert_int_equal(used_len(t, 0, 0), 3);
	assert_int_equal(used_len(t, 0, 1), 4);
	assert_memory_equal(host(t, BUF), "abc", 3);
	assert_memory_equal(host(t, BUF + 0x10), "de", 2);
	assert_memory_equal(host(t, BUF + 0x20), "fg", 2);
	assert_int_equal(t->queue_irqs[0], 1);
	/* New input goes behind what still waits. */
	virtio_console_input(&t->c, (const uint8_t *)"lm", 2);
	assert_int_equal(used_idx(t, 0), 2);
	post_rx(t, 3, BUF + 0x40, 64);
	kick(t, 0);
	assert_int_equal(used_idx(t, 0), 3);
	assert_int_equal(used_len(t, 0, 2), 6);
	assert_memory_equal(host(t, BUF + 0x40), "hijklm", 6);
	/* Nothing waits: a kick with a fresh buffer takes nothing. */
	post_rx(t, 4, BUF + 0x80, 64);
	kick(t, 0);
	assert_int_equal(used_idx(t, 0), 3);
	assert_int_equal(stats(t).rx_bytes, 13);
}

static void test_rx_before_driver_ok(void **state)
{
	struct t *t = *state;
	virtio_dev_reset(&t->c.vdev);
	set_up(t, F_V1, false);
	virtio_console_input(&t->c, (const uint8_t *)"early", 5);
	post_rx(t, 0, BUF, 16);
	kick(t, 0); /* ignored before DRIVER_OK */
	assert_int_equal(used_idx(t, 0), 0);
	driver_ok(t);
	assert_int_equal(used_idx(t, 0), 1);
	assert_int_equal(used_len(t, 0, 0), 5);
	assert_memory_equal(host(t, BUF), "early", 5);
	assert_int_equal(t->queue_irqs[0], 1);
}

static void test_rx_bounded_buffer(void **state)
{
	struct t *t = *state;
	const size_t cap = VIRTIO_CONSOLE_RX_BUFFER;
	uint8_t *in = malloc(cap + 300), *want = malloc(cap + 10);
	assert_non_null(in);
	assert_non_null(want);
	for (size_t i = 0; i < cap + 300; i++)
		in[i] = (uint8_t)(i * 31 + i / 251);
	virtio_console_input(&t->c, in, 100);
	virtio_console_input(&t->c, in + 100, cap); /* 100 over */
	virtio_console_input(&t->c, in + 100 + cap, 200);
	assert_int_equal(stats(t).rx_dropped, 300);
	assert_int_equal(used_idx(t, 0), 0);
	/* What arrives: the first cap bytes, then 10 typed during the drain. */
	memcpy(want, in, cap);
	memcpy(want + cap, in + 1000, 10);

	/* Buffers of 8 KiB + 1 make the internal ring wrap. */
	const uint32_t blen = 8193;
	size_t got = 0;
	uint16_t id = 0;
	while (got < cap + 10) {
		uint64_t gpa = BUF + 0x10000ull * (id % QSIZE);
		post_rx(t, id % QSIZE, gpa, blen);
		kick(t, 0);
		assert_int_equal(used_idx(t, 0), id + 1);
		uint32_t n = used_len(t, 0, id);
		size_t left = cap + 10 - got;
		assert_int_equal(n, left < blen ? left : blen);
		assert_memory_equal(host(t, gpa), want + got, n);
		got += n;
		id++;
		if (id == 2) {
			virtio_console_input(&t->c, in + 1000, 10);
			assert_int_equal(stats(t).rx_dropped, 300);
		}
	}
	struct virtio_console_stats s = stats(t);
	assert_int_equal(s.rx_bytes, cap + 10);
	assert_int_equal(s.rx_requests, id);
	/* Drained: a new buffer stays unused. */
	post_rx(t, id % QSIZE, BUF, 64);
	kick(t, 0);
	assert_int_equal(used_idx(t, 0), id);
	free(in);
	free(want);
}

static void test_rx_large_input_with_buffers(void **state)
{
	struct t *t = *state;
	/* More than the internal buffer in one call, with enough guest buffers:
	 * nothing is dropped. */
	size_t n = VIRTIO_CONSOLE_RX_BUFFER + 5000;
	uint8_t *in = malloc(n);
	assert_non_null(in);
	for (size_t i = 0; i < n; i++)
		in[i] = (uint8_t)(i ^ (i >> 8));
	for (uint16_t i = 0; i < 2; i++)
		post_rx(t, i, BUF + 0x40000ull * i, 0x40000);
	virtio_console_input(&t->c, in, n);
	assert_int_equal(stats(t).rx_dropped, 0);
	assert_int_equal(used_idx(t, 0), 2);
	uint32_t a = used_len(t, 0, 0), b = used_len(t, 0, 1);
	assert_int_equal(a + b, n);
	assert_memory_equal(host(t, BUF), in, a);
	assert_memory_equal(host(t, BUF + 0x40000), in + a, b);
	free(in);
}

static void test_rx_odd_chains(void **state)
{
	struct t *t = *state;
	/* A readable segment before the writable one: skipped, counted. */
	memset(host(t, BUF), 0x77, 8);
	desc(t, 0, 0, BUF, 8, VIRTQ_DESC_F_NEXT, 1);
	desc(t, 0, 1, BUF + 0x100, 4, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 0, 0);
	/* Nothing writable at all: returned empty, counted. */
	desc(t, 0, 2, BUF + 0x200, 4, 0, 0);
	publish(t, 0, 2);
	post_rx(t, 3, BUF + 0x300, 16);
	virtio_console_input(&t->c, (const uint8_t *)"123456", 6);
	assert_int_equal(used_idx(t, 0), 3);
	assert_int_equal(used_len(t, 0, 0), 4);
	assert_int_equal(used_len(t, 0, 1), 0);
	assert_int_equal(used_len(t, 0, 2), 2);
	assert_memory_equal(host(t, BUF + 0x100), "1234", 4);
	assert_memory_equal(host(t, BUF + 0x300), "56", 2);
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(host(t, BUF)[i], 0x77);
	assert_int_equal(stats(t).errors, 2);
	assert_false(needs_reset(t));
}

static void test_rx_queue_disabled(void **state)
{
	struct t *t = *state;
	/* A driver that never enabled the receive queue: input waits. */
	virtio_dev_reset(&t->c.vdev);
	struct virtio_dev *d = &t->c.vdev;
	struct chv_err err = {0};
	const struct virtio_transport tr = {.signal = on_signal, .ctx = t};
	virtio_dev_set_transport(d, &tr);
	d->driver_features = F_V1;
	assert_int_equal(vq_set_size(&d->vqs[1], QSIZE, &err), 0);
	assert_int_equal(vq_set_addrs(&d->vqs[1], DESC(1), AVAIL(1), USED(1), &err), 0);
	assert_int_equal(vq_enable(&d->vqs[1], F_V1, &err), 0);
	driver_ok(t);
	virtio_console_input(&t->c, (const uint8_t *)"zz", 2);
	kick(t, 0);
	assert_int_equal(stats(t).rx_requests, 0);
	assert_int_equal(stats(t).rx_dropped, 0);
	assert_int_equal(t->queue_irqs[0], 0);
}

/* ---- input on another thread ---- */

#define TYPED (VIRTIO_CONSOLE_RX_BUFFER - 1000)

static uint8_t typed_byte(size_t i)
{
	return (uint8_t)(i * 7 + i / 256);
}

static void *typist(void *arg)
{
	struct t *t = arg;
	uint8_t chunk[97];
	for (size_t i = 0; i < TYPED;) {
		size_t n = TYPED - i < sizeof(chunk) ? TYPED - i : sizeof(chunk);
		for (size_t k = 0; k < n; k++)
			chunk[k] = typed_byte(i + k);
		virtio_console_sink_input(&t->c, chunk, n);
		i += n;
	}
	return NULL;
}

/* The sink's thread types while the driver (this thread) recycles small
 * buffers and kicks: every byte arrives once, in order. Less than the
 * device's buffer is typed, so nothing may be dropped whatever the timing. */
static void test_rx_concurrent_input(void **state)
{
	struct t *t = *state;
	const uint32_t blen = 100;
	uint8_t *got = malloc(TYPED);
	size_t ngot = 0;
	uint16_t seen = 0;
	assert_non_null(got);
	for (uint16_t i = 0; i < QSIZE; i++)
		post_rx(t, i, BUF + 0x1000ull * i, blen);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, typist, t), 0);
	while (ngot < TYPED) {
		uint16_t u = __atomic_load_n((uint16_t *)host(t, USED(0) + 2), __ATOMIC_ACQUIRE);
		for (; seen != u; seen++) {
			uint32_t id = used_id(t, 0, seen), len = used_len(t, 0, seen);
			assert_true(id < QSIZE && len <= blen && ngot + len <= TYPED);
			memcpy(got + ngot, host(t, BUF + 0x1000ull * id), len);
			ngot += len;
			desc(t, 0, id, BUF + 0x1000ull * id, blen, VIRTQ_DESC_F_WRITE, 0);
			uint8_t *a = host(t, AVAIL(0));
			uint16_t head = (uint16_t)id;
			memcpy(a + 4 + 2 * (t->avail_idx[0] % QSIZE), &head, 2);
			t->avail_idx[0]++;
			__atomic_store_n((uint16_t *)(a + 2), t->avail_idx[0], __ATOMIC_RELEASE);
		}
		kick(t, 0);
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	for (size_t i = 0; i < TYPED; i++)
		if (got[i] != typed_byte(i))
			fail_msg("byte %zu: 0x%02x, want 0x%02x", i, got[i], typed_byte(i));
	struct virtio_console_stats s = stats(t);
	assert_int_equal(s.rx_bytes, TYPED);
	assert_int_equal(s.rx_dropped, 0);
	assert_int_equal(s.errors, 0);
	assert_false(needs_reset(t));
	free(got);
}

/* ---- size ---- */

static void test_size_change(void **state)
{
	struct t *t = *state;
	struct virtio_dev *d = &t->c.vdev;
	uint8_t gen = d->config_generation;
	virtio_console_set_size(&t->c, 132, 43);
	assert_int_equal(t->config_irqs, 1);
	assert_int_equal(d->config_generation, (uint8_t)(gen + 1));
	assert_int_equal(cfg_read(t, VIRTIO_CONSOLE_CFG_COLS, 2), 132);
	assert_int_equal(cfg_read(t, VIRTIO_CONSOLE_CFG_ROWS, 2), 43);
	/* The same size again is no change. */
	virtio_console_set_size(&t->c, 132, 43);
	assert_int_equal(t->config_irqs, 1);
	virtio_console_set_size(&t->c, 132, 44);
	virtio_console_set_size(&t->c, 0xffff, 44);
	assert_int_equal(t->config_irqs, 3);
	assert_int_equal(cfg_read(t, 0, 4), 0xffffu | 44u << 16);
	assert_int_equal(stats(t).config_changes, 3);

	/* Before DRIVER_OK the driver reads the new size when it gets there. */
	virtio_dev_reset(d);
	set_up(t, F_V1 | 1ull << VIRTIO_CONSOLE_F_SIZE, false);
	virtio_console_set_size(&t->c, 100, 30);
	assert_int_equal(t->config_irqs, 3);
	assert_int_equal(cfg_read(t, 0, 4), 100u | 30u << 16);
	driver_ok(t);
	virtio_console_set_size(&t->c, 101, 30);
	assert_int_equal(t->config_irqs, 4);

	/* A driver without F_SIZE is not told. */
	virtio_dev_reset(d);
	set_up(t, F_V1, true);
	virtio_console_set_size(&t->c, 1, 1);
	assert_int_equal(t->config_irqs, 4);
	assert_int_equal(cfg_read(t, 0, 4), 1u | 1u << 16);
}

/* ---- malformed chains ---- */

struct bad_chain {
	const char *what;
	void (*build)(struct t *t, unsigned q);
};

static void bad_past_ram(struct t *t, unsigned q)
{
	desc(t, q, 0, RAM - 8, 64, q == 0 ? VIRTQ_DESC_F_WRITE : 0, 0);
	publish(t, q, 0);
}

static void bad_loop(struct t *t, unsigned q)
{
	uint16_t w = q == 0 ? VIRTQ_DESC_F_WRITE : 0;
	desc(t, q, 0, BUF, 4, w | VIRTQ_DESC_F_NEXT, 1);
	desc(t, q, 1, BUF + 4, 4, w | VIRTQ_DESC_F_NEXT, 0);
	publish(t, q, 0);
}

static void bad_self_loop(struct t *t, unsigned q)
{
	desc(t, q, 3, BUF, 4, (q == 0 ? VIRTQ_DESC_F_WRITE : 0) | VIRTQ_DESC_F_NEXT, 3);
	publish(t, q, 3);
}

static void bad_next_out_of_table(struct t *t, unsigned q)
{
	desc(t, q, 0, BUF, 4, (q == 0 ? VIRTQ_DESC_F_WRITE : 0) | VIRTQ_DESC_F_NEXT, QSIZE);
	publish(t, q, 0);
}

static void bad_head_out_of_table(struct t *t, unsigned q)
{
	desc(t, q, 0, BUF, 4, q == 0 ? VIRTQ_DESC_F_WRITE : 0, 0);
	publish(t, q, 0xffff);
}

static void bad_zero_length(struct t *t, unsigned q)
{
	desc(t, q, 0, BUF, 0, q == 0 ? VIRTQ_DESC_F_WRITE : 0, 0);
	publish(t, q, 0);
}

static void bad_readable_after_writable(struct t *t, unsigned q)
{
	desc(t, q, 0, BUF, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	desc(t, q, 1, BUF + 8, 4, 0, 0);
	publish(t, q, 0);
}

static void bad_avail_idx_jump(struct t *t, unsigned q)
{
	desc(t, q, 0, BUF, 4, q == 0 ? VIRTQ_DESC_F_WRITE : 0, 0);
	uint16_t idx = QSIZE + 1;
	memcpy(host(t, AVAIL(q) + 2), &idx, 2);
}

static void bad_indirect_not_negotiated(struct t *t, unsigned q)
{
	/* go_live() negotiated it; this driver pretends it did not. */
	t->c.vdev.vqs[q].indirect = false;
	desc_at(t, BUF + 0x8000, 0, BUF, 4, q == 0 ? VIRTQ_DESC_F_WRITE : 0, 0);
	desc(t, q, 0, BUF + 0x8000, 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(t, q, 0);
}

static void bad_indirect_odd_length(struct t *t, unsigned q)
{
	desc(t, q, 0, BUF + 0x8000, 15, VIRTQ_DESC_F_INDIRECT, 0);
	publish(t, q, 0);
}

static void bad_indirect_and_next(struct t *t, unsigned q)
{
	desc_at(t, BUF + 0x8000, 0, BUF, 4, q == 0 ? VIRTQ_DESC_F_WRITE : 0, 0);
	desc(t, q, 0, BUF + 0x8000, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	desc(t, q, 1, BUF, 4, q == 0 ? VIRTQ_DESC_F_WRITE : 0, 0);
	publish(t, q, 0);
}

static void bad_indirect_loop(struct t *t, unsigned q)
{
	uint16_t w = q == 0 ? VIRTQ_DESC_F_WRITE : 0;
	desc_at(t, BUF + 0x8000, 0, BUF, 4, w | VIRTQ_DESC_F_NEXT, 1);
	desc_at(t, BUF + 0x8000, 1, BUF, 4, w | VIRTQ_DESC_F_NEXT, 0);
	desc(t, q, 0, BUF + 0x8000, 32, VIRTQ_DESC_F_INDIRECT, 0);
	publish(t, q, 0);
}

static void bad_wrapping_address(struct t *t, unsigned q)
{
	desc(t, q, 0, UINT64_MAX - 2, 16, q == 0 ? VIRTQ_DESC_F_WRITE : 0, 0);
	publish(t, q, 0);
}

static const struct bad_chain bad_chains[] = {
    {"buffer past guest RAM", bad_past_ram},
    {"two-descriptor loop", bad_loop},
    {"descriptor pointing at itself", bad_self_loop},
    {"next outside the table", bad_next_out_of_table},
    {"head outside the table", bad_head_out_of_table},
    {"zero-length descriptor", bad_zero_length},
    {"readable after writable", bad_readable_after_writable},
    {"available index too far ahead", bad_avail_idx_jump},
    {"indirect without the feature", bad_indirect_not_negotiated},
    {"indirect table of odd length", bad_indirect_odd_length},
    {"indirect with NEXT", bad_indirect_and_next},
    {"loop inside an indirect table", bad_indirect_loop},
    {"address that wraps", bad_wrapping_address},
};

static void test_malformed_chains(void **state)
{
	struct t *t = *state;
	struct virtio_dev *d = &t->c.vdev;
	for (size_t i = 0; i < sizeof(bad_chains) / sizeof(bad_chains[0]); i++) {
		for (unsigned q = 0; q < 2; q++) {
			virtio_dev_reset(d);
			go_live(t);
			t->config_irqs = 0;
			t->out_len = 0;
			uint64_t written = stats(t).rx_bytes;
			bad_chains[i].build(t, q);
			if (q == 0)
				virtio_console_input(&t->c, (const uint8_t *)"data", 4);
			else
				kick(t, 1);
			if (!needs_reset(t))
				fail_msg("%s on queue %u: not refused", bad_chains[i].what, q);
			assert_int_equal(t->config_irqs, 1);
			assert_int_equal(used_idx(t, q), 0);
			assert_int_equal(t->out_len, 0);
			assert_int_equal(stats(t).rx_bytes, written);
			assert_non_null(
			    strstr(d->reset_reason.msg, q == 0 ? "queue 0" : "queue 1"));
			/* The device stays quiet until reset. */
			virtio_console_input(&t->c, (const uint8_t *)"more", 4);
			kick(t, 0);
			kick(t, 1);
			assert_int_equal(t->config_irqs, 1);
			assert_int_equal(t->out_len, 0);

			/* After a reset the device works again. */
			virtio_dev_reset(d);
			assert_false(needs_reset(t));
			go_live(t);
			put(t, BUF, "ok");
			desc(t, 1, 0, BUF, 2, 0, 0);
			publish(t, 1, 0);
			kick(t, 1);
			assert_int_equal(t->out_len, 2);
			post_rx(t, 0, BUF + 0x100, 8);
			virtio_console_input(&t->c, (const uint8_t *)"!", 1);
			assert_int_equal(used_len(t, 0, 0), 1);
		}
	}
}

/* ---- reset ---- */

static void test_reset_mid_stream(void **state)
{
	struct t *t = *state;
	struct virtio_dev *d = &t->c.vdev;
	put(t, BUF, "before");
	desc(t, 1, 0, BUF, 6, 0, 0);
	publish(t, 1, 0);
	desc(t, 1, 1, BUF, 6, 0, 0);
	publish(t, 1, 1); /* made available, never kicked */
	virtio_console_input(&t->c, (const uint8_t *)"typed", 5);
	virtio_console_set_size(&t->c, 90, 30);
	unsigned cfg = t->config_irqs;

	virtio_dev_reset(d);
	assert_int_equal(virtio_dev_status(d), 0);
	assert_false(d->vqs[0].enabled);
	assert_false(d->vqs[1].enabled);
	assert_int_equal(stats(t).rx_dropped, 5);
	/* A reset device neither delivers input nor signals size changes. */
	virtio_console_input(&t->c, (const uint8_t *)"x", 1);
	virtio_console_set_size(&t->c, 91, 30);
	kick(t, 0);
	kick(t, 1);
	assert_int_equal(t->config_irqs, cfg);
	assert_int_equal(t->out_len, 0);

	/* The fresh driver sees nothing stale, except the size (host state);
	 * its queues are not used before it sets DRIVER_OK again. */
	set_up(t, F_V1 | 1ull << VIRTIO_CONSOLE_F_SIZE, false);
	assert_int_equal(cfg_read(t, 0, 4), 91u | 30u << 16);
	post_rx(t, 0, BUF + 0x100, 16);
	virtio_console_input(&t->c, (const uint8_t *)"y", 1);
	assert_int_equal(used_idx(t, 0), 0);
	driver_ok(t);
	/* "x" and "y", typed after the reset, in one buffer. */
	assert_int_equal(used_idx(t, 0), 1);
	assert_int_equal(used_len(t, 0, 0), 2);
	assert_memory_equal(host(t, BUF + 0x100), "xy", 2);
	virtio_console_input(&t->c, (const uint8_t *)"after", 5);
	post_rx(t, 1, BUF + 0x200, 16);
	kick(t, 0);
	assert_int_equal(used_idx(t, 0), 2);
	assert_memory_equal(host(t, BUF + 0x200), "after", 5);
	put(t, BUF, "fresh");
	desc(t, 1, 0, BUF, 5, 0, 0);
	publish(t, 1, 0);
	kick(t, 1);
	assert_int_equal(t->out_len, 5);
	assert_memory_equal(t->out, "fresh", 5);
	assert_int_equal(used_idx(t, 1), 1);
}

/* ---- a hostile driver ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static uint64_t rnd_addr(void)
{
	switch (rnd() % 6) {
	case 0:
		return rnd();
	case 1:
		return RAM - rnd() % 64;
	case 2:
		return DESC(rnd() % 2) + rnd() % 0x3000; /* the rings themselves */
	default:
		return BUF + rnd() % 0x80000;
	}
}

static void test_hostile_driver(void **state)
{
	struct t *t = *state;
	struct virtio_dev *d = &t->c.vdev;
	unsigned resets = 0;
	uint64_t typed = 0;
	for (unsigned iter = 0; iter < 20000; iter++) {
		unsigned q = rnd() % 2;
		switch (rnd() % 8) {
		case 0:
		case 1: {
			uint16_t flags = (uint16_t)(rnd() % 8);
			if (rnd() % 2)
				flags &= (uint16_t)~VIRTQ_DESC_F_INDIRECT;
			desc(t, q, (uint32_t)(rnd() % QSIZE), rnd_addr(),
			     (uint32_t)(rnd() % 3 ? rnd() % 300 : rnd()), flags,
			     (uint16_t)(rnd() % 4 ? rnd() % QSIZE : rnd()));
			break;
		}
		case 2:
			desc_at(t, BUF + 0x8000, (uint32_t)(rnd() % 8), rnd_addr(),
				(uint32_t)(rnd() % 100), (uint16_t)(rnd() % 8),
				(uint16_t)(rnd() % 9));
			break;
		case 3:
			if (rnd() % 8)
				publish(t, q, (uint16_t)(rnd() % 16 ? rnd() % QSIZE : rnd()));
			else
				t->avail_idx[q] = (uint16_t)rnd();
			break;
		case 4:
			kick(t, (uint16_t)(rnd() % 3));
			break;
		case 5: {
			uint8_t in[300];
			size_t n = rnd() % sizeof(in);
			for (size_t i = 0; i < n; i++)
				in[i] = (uint8_t)rnd();
			virtio_console_input(&t->c, in, n);
			typed += n;
			break;
		}
		case 6:
			if (rnd() % 4 == 0)
				virtio_console_set_size(&t->c, (uint16_t)rnd(), (uint16_t)rnd());
			else
				cfg_write(t, (uint32_t)(rnd() % 16), (uint32_t)rnd(),
					  (uint32_t)(1u << rnd() % 4));
			break;
		default:
			if (needs_reset(t) || rnd() % 64 == 0) {
				virtio_dev_reset(d);
				if (rnd() % 2)
					go_live(t);
				else
					set_up(t, F_ALL, true);
				resets++;
			}
			break;
		}
		if (t->out_len > OUT_MAX / 2)
			t->out_len = 0;
	}
	struct virtio_console_stats s = stats(t);
	assert_true(resets > 0);
	assert_true(s.tx_requests > 0 && s.rx_requests > 0);
	/* Every byte the output saw is counted, and nothing went out twice. */
	assert_int_equal(s.tx_bytes, t->out_total);
	/* Every typed byte was delivered, dropped, or still waits. */
	assert_true(s.rx_bytes + s.rx_dropped <= typed);
	assert_true(typed - s.rx_bytes - s.rx_dropped <= VIRTIO_CONSOLE_RX_BUFFER);
	/* The device is still usable after all that. */
	virtio_dev_reset(d);
	go_live(t);
	t->out_len = 0;
	put(t, BUF, "alive");
	desc(t, 1, 0, BUF, 5, 0, 0);
	publish(t, 1, 0);
	kick(t, 1);
	assert_int_equal(t->out_len, 5);
	assert_memory_equal(t->out, "alive", 5);
}

/* ---- life cycle ---- */

static void test_init_and_destroy(void **state)
{
	(void)state;
	struct virtio_console *c = calloc(1, sizeof(*c));
	struct vm_mem m;
	struct mem_layout l;
	struct chv_err err = {0};
	assert_non_null(c);
	layout_compute(RAM, &l);
	assert_int_equal(vm_mem_create(&m, &l, false, false, &err), 0);

	/* A zeroed or destroyed device ignores everything and frees nothing twice. */
	virtio_console_destroy(c);
	virtio_console_input(c, (const uint8_t *)"a", 1);
	struct virtio_console_stats s;
	memset(&s, 0xff, sizeof(s));
	virtio_console_get_stats(c, &s);
	assert_int_equal(s.tx_bytes, 0);

	assert_int_equal(virtio_console_init(c, NULL, NULL, 80, 24, &err), -EINVAL);
	virtio_console_destroy(c);
	virtio_console_destroy(c);
	assert_int_equal(virtio_console_init(c, &m, NULL, 80, 24, &err), 0);
	assert_int_equal(c->vdev.device_id, VIRTIO_ID_CONSOLE);
	/* Input before any driver waits in the device. */
	virtio_console_input(c, (const uint8_t *)"abc", 3);
	virtio_console_get_stats(c, &s);
	assert_int_equal(s.rx_dropped, 0);
	virtio_console_destroy(c);
	virtio_console_input(c, (const uint8_t *)"a", 1);
	virtio_console_destroy(c);
	vm_mem_destroy(&m);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_describes_itself, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_segments_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_many_requests_ring_wrap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_indirect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_writable_segments_dropped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_without_output, setup_no_out, teardown),
	    cmocka_unit_test_setup_teardown(test_emergency_write, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_delivered, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_buffered_until_buffers_come, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_before_driver_ok, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_bounded_buffer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_large_input_with_buffers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_odd_chains, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_queue_disabled, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_concurrent_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_size_change, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_malformed_chains, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_mid_stream, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_driver, setup, teardown),
	    cmocka_unit_test(test_init_and_destroy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
