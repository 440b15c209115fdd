/* Split virtqueues against a tiny guest driver written here: rings in a real
 * struct vm_mem, good chains of every shape, index wrap-around, the used ring,
 * notification suppression both ways, a table of malformed chains (each must
 * break the queue with -EINVAL and a message, and hand out no pointer outside
 * guest RAM), memory leaving under the rings, and randomised hostile drivers,
 * one of them racing the device from another thread. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "virtio/virtqueue.h"

#define MiB	  (1ULL << 20)
#define GiB	  (1ULL << 30)
#define RAM	  (4 * MiB)
#define AVAIL_GPA 0x10000ULL
#define USED_GPA  0x20000ULL
#define DESC_GPA  0x30000ULL /* highest ring, so the unplug test can drop it alone */
#define IND_GPA	  0x80000ULL /* indirect tables, 16 KiB apart */
#define IND2_GPA  0x84000ULL
#define BUF_GPA	  0x100000ULL
#define QSIZE	  8u

#define F_INDIRECT (1ull << VIRTIO_RING_F_INDIRECT_DESC)
#define F_EVENT	   (1ull << VIRTIO_RING_F_EVENT_IDX)

/* The guest: its memory, its view of the rings, and the device's queue. */
struct drv {
	struct vm_mem m;
	struct vq vq;
	uint32_t size;
	uint16_t avail_idx;
	struct vq_chain c;
};

static void w16(struct drv *d, uint64_t gpa, uint16_t v)
{
	uint16_t le = htole16(v);
	assert_int_equal(vm_mem_write(&d->m, gpa, &le, 2), 0);
}

static uint16_t r16(struct drv *d, uint64_t gpa)
{
	uint16_t le;
	assert_int_equal(vm_mem_read(&d->m, gpa, &le, 2), 0);
	return le16toh(le);
}

static uint32_t r32(struct drv *d, uint64_t gpa)
{
	uint32_t le;
	assert_int_equal(vm_mem_read(&d->m, gpa, &le, 4), 0);
	return le32toh(le);
}

static void desc_at(struct drv *d, uint64_t table, uint32_t i, uint64_t addr, uint32_t len,
		    uint16_t flags, uint16_t next)
{
	uint8_t raw[16];
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t f = htole16(flags), n = htole16(next);

	memcpy(raw, &a, 8);
	memcpy(raw + 8, &l, 4);
	memcpy(raw + 12, &f, 2);
	memcpy(raw + 14, &n, 2);
	assert_int_equal(vm_mem_write(&d->m, table + 16ull * i, raw, 16), 0);
}

static void desc(struct drv *d, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	desc_at(d, DESC_GPA, i, addr, len, flags, next);
}

/* Puts head in the next available slot and publishes it. */
static void publish(struct drv *d, uint16_t head)
{
	w16(d, AVAIL_GPA + 4 + 2ull * (d->avail_idx % d->size), head);
	d->avail_idx++;
	w16(d, AVAIL_GPA + 2, d->avail_idx);
}

static uint16_t used_idx(struct drv *d)
{
	return r16(d, USED_GPA + 2);
}

static void used_elem(struct drv *d, uint16_t n, uint32_t *id, uint32_t *len)
{
	uint64_t e = USED_GPA + 4 + 8ull * (n % d->size);

	*id = r32(d, e);
	*len = r32(d, e + 4);
}

static uint8_t *host(struct drv *d, uint64_t gpa)
{
	return vm_mem_ptr(&d->m, gpa, 1);
}

/* Fresh rings, zeroed as a driver would leave them, and an enabled queue. */
static void start(struct drv *d, uint32_t size, uint64_t features)
{
	struct chv_err err = {0};

	memset(host(d, 0), 0, 0x40000);
	d->size = size;
	d->avail_idx = 0;
	assert_int_equal(vq_init(&d->vq, &d->m, 3, 256, &err), 0);
	assert_int_equal(vq_set_size(&d->vq, size, &err), 0);
	assert_int_equal(vq_set_addrs(&d->vq, DESC_GPA, AVAIL_GPA, USED_GPA, &err), 0);
	assert_int_equal(vq_enable(&d->vq, features, &err), 0);
}

static int setup(void **state)
{
	struct drv *d = calloc(1, sizeof(*d));
	struct mem_layout l;
	struct chv_err err = {0};

	if (!d)
		return -1;
	layout_compute(RAM, &l);
	if (vm_mem_create(&d->m, &l, false, false, &err)) {
		free(d);
		return -1;
	}
	start(d, QSIZE, 0);
	*state = d;
	return 0;
}

static int teardown(void **state)
{
	struct drv *d = *state;

	vm_mem_destroy(&d->m);
	free(d);
	return 0;
}

static void assert_in_ram(struct drv *d, const struct iovec *v)
{
	const uint8_t *p = v->iov_base;

	assert_true(v->iov_len > 0);
	assert_true(p >= d->m.map && p < d->m.map + d->m.map_size);
	assert_true(v->iov_len <= (size_t)(d->m.map + d->m.map_size - p));
}

/* ---- set-up ---------------------------------------------------------------- */

static void test_init_and_sizes(void **state)
{
	struct drv *d = *state;
	struct chv_err err = {0};
	struct vq q;
	const uint32_t bad[] = {0, 3, 100, 32769, 65536, 1u << 20, UINT32_MAX};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		assert_int_equal(vq_init(&q, &d->m, 1, bad[i], &err), -EINVAL);
		assert_int_equal(err.code, -EINVAL);
		assert_non_null(strstr(err.msg, "queue_size="));
	}
	assert_int_equal(vq_init(&q, NULL, 1, 8, &err), -EINVAL);
	assert_int_equal(vq_init(&q, &d->m, 1, VQ_MAX_SIZE, &err), 0);
	assert_int_equal(q.size, VQ_MAX_SIZE);
	assert_int_equal(vq_init(&q, &d->m, 1, 1, &err), 0);
	assert_int_equal(vq_init(&q, &d->m, 1, 256, &err), 0);
	assert_false(q.enabled);
	assert_int_equal(q.max_segs, VQ_MAX_SEGS);
	assert_int_equal(q.max_len, VQ_DEFAULT_MAX_LEN);

	assert_int_equal(vq_set_size(&q, 0, &err), -EINVAL);
	assert_int_equal(vq_set_size(&q, 12, &err), -EINVAL);
	assert_int_equal(vq_set_size(&q, 512, &err), -EINVAL); /* above max_size */
	assert_non_null(strstr(err.msg, "512"));
	assert_int_equal(vq_set_size(&q, 16, &err), 0);
	assert_int_equal(q.size, 16);

	assert_int_equal(vq_set_limits(&q, 0, 100, &err), -EINVAL);
	assert_int_equal(vq_set_limits(&q, VQ_MAX_SEGS + 1, 100, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "max_segs=1025"));
	assert_int_equal(vq_set_limits(&q, 4, 0, &err), -EINVAL);
	assert_int_equal(vq_set_limits(&q, 4, 1ull << 32, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "max_len="));
	assert_int_equal(vq_set_limits(&q, 4, 4096, &err), 0);

	/* Reset keeps the limits and forgets the driver's choices. */
	vq_reset(&q);
	assert_int_equal(q.size, 256);
	assert_int_equal(q.max_segs, 4);
	assert_int_equal(q.max_len, 4096);
}

static void test_ring_addresses(void **state)
{
	struct drv *d = *state;
	struct chv_err err = {0};
	struct vq q;
	uint64_t a_end;

	assert_int_equal(vq_init(&q, &d->m, 0, 256, &err), 0);
	/* Alignment: 16, 2, 4. */
	assert_int_equal(vq_set_addrs(&q, DESC_GPA + 8, AVAIL_GPA, USED_GPA, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "descriptor table address 0x30008"));
	assert_int_equal(vq_set_addrs(&q, DESC_GPA, AVAIL_GPA + 1, USED_GPA, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "available ring address"));
	assert_int_equal(vq_set_addrs(&q, DESC_GPA, AVAIL_GPA, USED_GPA + 2, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "used ring address"));
	/* Rings past the end of RAM, in the hole, or wrapping. */
	assert_int_equal(vq_set_addrs(&q, RAM - 16 * 255, AVAIL_GPA, USED_GPA, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "descriptor table"));
	assert_int_equal(vq_set_addrs(&q, DESC_GPA, RAM - 4, USED_GPA, &err), -EINVAL);
	assert_int_equal(vq_set_addrs(&q, DESC_GPA, AVAIL_GPA, 0xfffffffffffff000ull, &err),
			 -EINVAL);
	assert_int_equal(vq_set_addrs(&q, LAYOUT_RAM64_START, AVAIL_GPA, USED_GPA, &err), -EINVAL);
	assert_int_equal(q.desc_gpa, 0); /* nothing stored on failure */

	/* An available ring that ends exactly at the end of RAM is fine without
	 * EVENT_IDX and refused with it (used_event would lie outside). */
	a_end = RAM - (4 + 2 * 256);
	assert_int_equal(vq_set_addrs(&q, DESC_GPA, a_end, USED_GPA, &err), 0);
	assert_int_equal(vq_enable(&q, F_EVENT, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "available ring"));
	assert_false(q.enabled);
	assert_int_equal(vq_enable(&q, 0, &err), 0);
	assert_true(q.enabled);
	assert_int_equal(vq_enable(&q, 0, &err), -EBUSY);
	assert_int_equal(vq_set_addrs(&q, DESC_GPA, AVAIL_GPA, USED_GPA, &err), -EBUSY);
	assert_int_equal(vq_set_size(&q, 64, &err), -EBUSY);

	/* The same for the used ring and avail_event. */
	vq_reset(&q);
	assert_int_equal(vq_set_addrs(&q, DESC_GPA, AVAIL_GPA, RAM - (4 + 8 * 256), &err), 0);
	assert_int_equal(vq_enable(&q, F_EVENT | F_INDIRECT, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "used ring"));
	assert_int_equal(vq_enable(&q, F_INDIRECT, &err), 0);
	assert_true(q.indirect);
	assert_false(q.event_idx);

	/* A smaller size makes a ring fit that did not. */
	vq_reset(&q);
	assert_int_equal(vq_set_addrs(&q, RAM - 16 * 128, AVAIL_GPA, USED_GPA, &err), -EINVAL);
	assert_int_equal(vq_set_size(&q, 128, &err), 0);
	assert_int_equal(vq_set_addrs(&q, RAM - 16 * 128, AVAIL_GPA, USED_GPA, &err), 0);
}

static void test_disabled_queue(void **state)
{
	struct drv *d = *state;

	desc(d, 0, BUF_GPA, 16, 0, 0);
	publish(d, 0);
	vq_reset(&d->vq);
	assert_int_equal(vq_pop(&d->vq, &d->c), 0);
	assert_int_equal(vq_push(&d->vq, 0, 0), -ERANGE);
	assert_int_equal(vq_enable_notify(&d->vq), 0);
	assert_null(vq_error_once(&d->vq));
}

/* ---- good chains --------------------------------------------------------------- */

static void test_single(void **state)
{
	struct drv *d = *state;
	uint32_t id, len;

	assert_int_equal(vq_pop(&d->vq, &d->c), 0); /* empty */
	desc(d, 5, BUF_GPA, 512, 0, 0);
	publish(d, 5);
	assert_int_equal(vq_pop(&d->vq, &d->c), 1);
	assert_int_equal(d->c.head, 5);
	assert_int_equal(d->c.ndesc, 1);
	assert_int_equal(d->c.nout, 1);
	assert_int_equal(d->c.nin, 0);
	assert_int_equal(d->c.out_len, 512);
	assert_int_equal(d->c.in_len, 0);
	assert_ptr_equal(vq_chain_out(&d->c)[0].iov_base, host(d, BUF_GPA));
	assert_int_equal(vq_chain_out(&d->c)[0].iov_len, 512);
	assert_int_equal(vq_pop(&d->vq, &d->c), 0);

	assert_int_equal(used_idx(d), 0);
	assert_int_equal(vq_push(&d->vq, 5, 0), 0);
	assert_int_equal(used_idx(d), 1);
	used_elem(d, 0, &id, &len);
	assert_int_equal(id, 5);
	assert_int_equal(len, 0);
	/* Nothing in flight any more. */
	assert_int_equal(vq_push(&d->vq, 5, 0), -ERANGE);
	assert_int_equal(used_idx(d), 1);
	assert_false(d->vq.broken);
}

static void test_multi_mixed(void **state)
{
	struct drv *d = *state;
	struct iovec *out, *in;
	uint32_t id, len;

	/* 2 readable, 3 writable, scattered over the table: 6 -> 1 -> 7 -> 0 -> 3. */
	desc(d, 6, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	desc(d, 1, BUF_GPA + 0x1000, 100, VIRTQ_DESC_F_NEXT, 7);
	desc(d, 7, BUF_GPA + 0x2000, 4096, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
	desc(d, 0, RAM - 1, 1, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 3); /* last byte of RAM */
	desc(d, 3, BUF_GPA + 0x4000, 7, VIRTQ_DESC_F_WRITE, 5); /* next ignored without NEXT */
	/* A writable-only chain, the second request. */
	desc(d, 2, BUF_GPA + 0x8000, 64, VIRTQ_DESC_F_WRITE, 0);
	publish(d, 6);
	publish(d, 2);

	assert_int_equal(vq_pop(&d->vq, &d->c), 1);
	assert_int_equal(d->c.head, 6);
	assert_int_equal(d->c.ndesc, 5);
	assert_int_equal(d->c.nout, 2);
	assert_int_equal(d->c.nin, 3);
	assert_int_equal(d->c.out_len, 116);
	assert_int_equal(d->c.in_len, 4096 + 1 + 7);
	out = vq_chain_out(&d->c);
	in = vq_chain_in(&d->c);
	assert_ptr_equal(out[0].iov_base, host(d, BUF_GPA));
	assert_int_equal(out[0].iov_len, 16);
	assert_ptr_equal(out[1].iov_base, host(d, BUF_GPA + 0x1000));
	assert_int_equal(out[1].iov_len, 100);
	assert_ptr_equal(in[0].iov_base, host(d, BUF_GPA + 0x2000));
	assert_int_equal(in[0].iov_len, 4096);
	assert_ptr_equal(in[1].iov_base, host(d, RAM - 1));
	assert_ptr_equal(in[2].iov_base, host(d, BUF_GPA + 0x4000));
	assert_int_equal(in[2].iov_len, 7);

	assert_int_equal(vq_pop(&d->vq, &d->c), 1);
	assert_int_equal(d->c.head, 2);
	assert_int_equal(d->c.nout, 0);
	assert_int_equal(d->c.nin, 1);
	assert_ptr_equal(vq_chain_in(&d->c)[0].iov_base, host(d, BUF_GPA + 0x8000));

	/* Completed out of order: the used ring records the device's order. */
	assert_int_equal(vq_push(&d->vq, 2, 64), 0);
	assert_int_equal(vq_push(&d->vq, 6, 4104), 0);
	assert_int_equal(used_idx(d), 2);
	used_elem(d, 0, &id, &len);
	assert_int_equal(id, 2);
	assert_int_equal(len, 64);
	used_elem(d, 1, &id, &len);
	assert_int_equal(id, 6);
	assert_int_equal(len, 4104);
	assert_int_equal(vq_push(&d->vq, QSIZE, 0), -ERANGE); /* head out of range: device bug */
	assert_false(d->vq.broken);
}

static void test_full_ring_and_longest_chain(void **state)
{
	struct drv *d = *state;

	/* One chain through all 8 descriptors, then a full ring of single ones. */
	for (uint16_t i = 0; i < QSIZE; i++)
		desc(d, i, BUF_GPA + i * 0x100, 0x100, i + 1u < QSIZE ? VIRTQ_DESC_F_NEXT : 0,
		     (uint16_t)(i + 1));
	publish(d, 0);
	assert_int_equal(vq_pop(&d->vq, &d->c), 1);
	assert_int_equal(d->c.nout, QSIZE);
	assert_int_equal(d->c.out_len, QSIZE * 0x100);
	assert_int_equal(vq_push(&d->vq, 0, 0), 0);

	for (uint16_t i = 0; i < QSIZE; i++) {
		desc(d, i, BUF_GPA + i * 0x100, 0x100, 0, 0);
		publish(d, i);
	}
	/* Exactly size entries ahead is allowed. */
	for (uint16_t i = 0; i < QSIZE; i++) {
		assert_int_equal(vq_pop(&d->vq, &d->c), 1);
		assert_int_equal(d->c.head, i);
	}
	assert_int_equal(vq_pop(&d->vq, &d->c), 0);
	for (uint16_t i = 0; i < QSIZE; i++)
		assert_int_equal(vq_push(&d->vq, i, i), 0);
	assert_int_equal(used_idx(d), QSIZE + 1);
}

static void test_indirect(void **state)
{
	struct drv *d = *state;
	struct iovec *in;

	start(d, QSIZE, F_INDIRECT);
	/* A head that is only an indirect table: 2 readable, 1 writable. */
	desc_at(d, IND_GPA, 0, BUF_GPA, 10, VIRTQ_DESC_F_NEXT, 2);
	desc_at(d, IND_GPA, 2, BUF_GPA + 0x100, 20, VIRTQ_DESC_F_NEXT, 1);
	desc_at(d, IND_GPA, 1, BUF_GPA + 0x200, 30, VIRTQ_DESC_F_WRITE, 0);
	/* WRITE on the descriptor that points at a table is ignored (spec). */
	desc(d, 4, IND_GPA, 3 * 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
	publish(d, 4);
	assert_int_equal(vq_pop(&d->vq, &d->c), 1);
	assert_int_equal(d->c.head, 4);
	assert_int_equal(d->c.ndesc, 4);
	assert_int_equal(d->c.nout, 2);
	assert_int_equal(d->c.nin, 1);
	assert_ptr_equal(d->c.iov[0].iov_base, host(d, BUF_GPA));
	assert_ptr_equal(d->c.iov[1].iov_base, host(d, BUF_GPA + 0x100));
	assert_ptr_equal(d->c.iov[2].iov_base, host(d, BUF_GPA + 0x200));
	assert_int_equal(d->c.out_len, 30);
	assert_int_equal(d->c.in_len, 30);

	/* Direct descriptors followed by one indirect table (spec 2.7.5.3.2), the
	 * table at an odd address: indirect tables have no alignment rule. */
	desc(d, 0, BUF_GPA + 0x1000, 8, VIRTQ_DESC_F_NEXT, 1);
	desc(d, 1, IND2_GPA + 3, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	desc_at(d, IND2_GPA + 3, 0, BUF_GPA + 0x2000, 9, VIRTQ_DESC_F_NEXT, 1);
	desc_at(d, IND2_GPA + 3, 1, BUF_GPA + 0x3000, 11, VIRTQ_DESC_F_WRITE, 0);
	publish(d, 0);
	assert_int_equal(vq_pop(&d->vq, &d->c), 1);
	assert_int_equal(d->c.head, 0);
	assert_int_equal(d->c.nout, 2);
	assert_int_equal(d->c.nin, 1);
	in = vq_chain_in(&d->c);
	assert_ptr_equal(d->c.iov[0].iov_base, host(d, BUF_GPA + 0x1000));
	assert_ptr_equal(d->c.iov[1].iov_base, host(d, BUF_GPA + 0x2000));
	assert_ptr_equal(in[0].iov_base, host(d, BUF_GPA + 0x3000));
	assert_int_equal(in[0].iov_len, 11);

	/* A table longer than the queue is fine (Linux makes them): 20 entries. */
	for (uint16_t i = 0; i < 20; i++)
		desc_at(d, IND_GPA, i, BUF_GPA + i * 64, 64, i < 19 ? VIRTQ_DESC_F_NEXT : 0,
			(uint16_t)(i + 1));
	desc(d, 2, IND_GPA, 20 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(d, 2);
	assert_int_equal(vq_pop(&d->vq, &d->c), 1);
	assert_int_equal(d->c.nout, 20);
	assert_int_equal(d->c.out_len, 20 * 64);
	assert_int_equal(vq_push(&d->vq, 4, 0), 0);
	assert_int_equal(vq_push(&d->vq, 0, 0), 0);
	assert_int_equal(vq_push(&d->vq, 2, 0), 0);
	assert_false(d->vq.broken);
}

static void test_limits_accept_exact(void **state)
{
	struct drv *d = *state;
	struct chv_err err = {0};

	/* Exactly max_segs segments and exactly max_len bytes pass. */
	assert_int_equal(vq_set_limits(&d->vq, 3, 0x3000, &err), 0);
	desc(d, 0, BUF_GPA, 0x1000, VIRTQ_DESC_F_NEXT, 1);
	desc(d, 1, BUF_GPA, 0x1000, VIRTQ_DESC_F_NEXT, 2);
	desc(d, 2, BUF_GPA, 0x1000, VIRTQ_DESC_F_WRITE, 0);
	publish(d, 0);
	assert_int_equal(vq_pop(&d->vq, &d->c), 1);
	assert_int_equal(d->c.nout + d->c.nin, 3);
	assert_int_equal(d->c.out_len + d->c.in_len, 0x3000);

	/* A full 1024-entry indirect table of the whole RAM, 4 GiB - 4 MiB. */
	start(d, QSIZE, F_INDIRECT);
	for (uint16_t i = 0; i < VQ_MAX_SEGS; i++)
		desc_at(d, IND_GPA, i, 0, i < VQ_MAX_SEGS - 1 ? RAM : RAM - 1,
			i < VQ_MAX_SEGS - 1 ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	desc(d, 0, IND_GPA, VQ_MAX_SEGS * 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(d, 0);
	assert_int_equal(vq_pop(&d->vq, &d->c), 1);
	assert_int_equal(d->c.nout, VQ_MAX_SEGS);
	assert_int_equal(d->c.out_len, 4 * GiB - 1);
}

static void test_unpop(void **state)
{
	struct drv *d = *state;

	desc(d, 0, BUF_GPA, 8, 0, 0);
	desc(d, 1, BUF_GPA, 8, 0, 0);
	publish(d, 0);
	publish(d, 1);
	assert_int_equal(vq_pop(&d->vq, &d->c), 1);
	assert_int_equal(d->c.head, 0);
	vq_unpop(&d->vq);
	assert_int_equal(vq_pop(&d->vq, &d->c), 1);
	assert_int_equal(d->c.head, 0);
	assert_int_equal(vq_pop(&d->vq, &d->c), 1);
	assert_int_equal(d->c.head, 1);
	vq_unpop(&d->vq);
	assert_int_equal(vq_pop(&d->vq, &d->c), 1);
	assert_int_equal(d->c.head, 1);
	assert_int_equal(vq_pop(&d->vq, &d->c), 0);
}

/* ---- wrap-around ------------------------------------------------------------------ */

static void round_trips(struct drv *d, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint16_t head = (uint16_t)(i % d->size);
		uint16_t before = used_idx(d);
		uint32_t id, len;

		desc(d, head, BUF_GPA + head * 0x10, 0x10, VIRTQ_DESC_F_WRITE, 0);
		publish(d, head);
		assert_int_equal(vq_pop(&d->vq, &d->c), 1);
		assert_int_equal(d->c.head, head);
		assert_int_equal(d->c.nin, 1);
		assert_int_equal(vq_pop(&d->vq, &d->c), 0);
		assert_int_equal(vq_push(&d->vq, head, i), 0);
		assert_int_equal(used_idx(d), (uint16_t)(before + 1));
		used_elem(d, before, &id, &len);
		assert_int_equal(id, head);
		assert_int_equal(len, i);
	}
}

static void test_wrap_around(void **state)
{
	struct drv *d = *state;

	start(d, 4, 0);
	round_trips(d, 70000); /* every index wraps past 65535 */
	assert_int_equal(d->vq.last_avail_idx, (uint16_t)70000);
	assert_int_equal(d->vq.used_idx, (uint16_t)70000);
	assert_false(d->vq.broken);
}

static void test_set_indices_wrap(void **state)
{
	struct drv *d = *state;

	/* A restored queue just below the wrap, with a full ring pending across it. */
	d->avail_idx = 65532;
	w16(d, AVAIL_GPA + 2, d->avail_idx);
	w16(d, USED_GPA + 2, 65532);
	vq_set_indices(&d->vq, 65532, 65532);
	for (uint16_t i = 0; i < QSIZE; i++) {
		desc(d, i, BUF_GPA, 1, 0, 0);
		publish(d, i);
	}
	assert_int_equal(d->avail_idx, 4);
	for (uint16_t i = 0; i < QSIZE; i++) {
		assert_int_equal(vq_pop(&d->vq, &d->c), 1);
		assert_int_equal(d->c.head, i);
		assert_int_equal(vq_push(&d->vq, i, 0), 0);
	}
	assert_int_equal(vq_pop(&d->vq, &d->c), 0);
	assert_int_equal(used_idx(d), 4);
	round_trips(d, 20);
}

/* ---- notification suppression ------------------------------------------------ */

static void one_request(struct drv *d)
{
	desc(d, 0, BUF_GPA, 8, 0, 0);
	publish(d, 0);
	assert_int_equal(vq_pop(&d->vq, &d->c), 1);
	assert_int_equal(vq_push(&d->vq, d->c.head, 0), 0);
}

static void test_need_event(void **state)
{
	(void)state;
	static const struct {
		uint16_t event, new_idx, old;
		bool want;
	} t[] = {
	    {0, 1, 0, true},	      /* crossed event 0 */
	    {1, 1, 0, false},	      /* not yet: event is the entry after */
	    {5, 10, 0, true},	      /* event inside a batch */
	    {10, 10, 0, false},	      /* batch ends right before event */
	    {9, 10, 9, true},	      /* exactly the last one */
	    {3, 10, 5, false},	      /* event behind the batch: already signalled */
	    {0, 3, 3, false},	      /* nothing new */
	    {65535, 0, 65535, true},  /* the wrap */
	    {65535, 2, 65534, true},  /* batch across the wrap */
	    {0, 2, 65534, true},      /* event just after the wrap */
	    {2, 2, 65534, false},     /* event past the batch across the wrap */
	    {65533, 2, 65534, false}, /* event before the batch across the wrap */
	    {65535, 65535, 65530, false},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (vq_need_event(t[i].event, t[i].new_idx, t[i].old) != t[i].want)
			fail_msg("row %zu: event %u new %u old %u", i, t[i].event, t[i].new_idx,
				 t[i].old);
	}
}

static void test_notify_flags(void **state)
{
	struct drv *d = *state;

	one_request(d);
	assert_true(vq_need_notify(&d->vq));
	w16(d, AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
	one_request(d);
	assert_false(vq_need_notify(&d->vq));
	w16(d, AVAIL_GPA, 0);
	assert_true(vq_need_notify(&d->vq));

	/* Device side: NO_NOTIFY while draining, cleared when done. */
	vq_disable_notify(&d->vq);
	assert_int_equal(r16(d, USED_GPA), VIRTQ_USED_F_NO_NOTIFY);
	assert_int_equal(vq_enable_notify(&d->vq), 0);
	assert_int_equal(r16(d, USED_GPA), 0);
	/* Something arrived after the last pop: enable says so. */
	vq_disable_notify(&d->vq);
	desc(d, 1, BUF_GPA, 8, 0, 0);
	publish(d, 1);
	assert_int_equal(vq_enable_notify(&d->vq), 1);
	assert_int_equal(r16(d, USED_GPA), 0);
	assert_int_equal(vq_pop(&d->vq, &d->c), 1);
	assert_int_equal(vq_enable_notify(&d->vq), 0);
}

static void test_notify_event_idx(void **state)
{
	struct drv *d = *state;
	const uint64_t used_event = AVAIL_GPA + 4 + 2 * QSIZE;
	const uint64_t avail_event = USED_GPA + 4 + 8 * QSIZE;

	start(d, QSIZE, F_EVENT);
	/* NO_INTERRUPT is ignored with EVENT_IDX. */
	w16(d, AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
	one_request(d);			     /* used 1 */
	assert_true(vq_need_notify(&d->vq)); /* the first check always signals */
	/* The driver wants an interrupt once entry 3 is used. */
	w16(d, used_event, 3);
	one_request(d); /* used 2: entry 1 */
	assert_false(vq_need_notify(&d->vq));
	one_request(d); /* used 3: entry 2 */
	assert_false(vq_need_notify(&d->vq));
	one_request(d); /* used 4: entry 3 */
	assert_true(vq_need_notify(&d->vq));
	one_request(d);
	assert_false(vq_need_notify(&d->vq));
	/* Batch: two pushes, one check, event inside the batch. */
	w16(d, used_event, 5);
	one_request(d);
	one_request(d);
	assert_true(vq_need_notify(&d->vq));

	/* Across the wrap. */
	start(d, QSIZE, F_EVENT);
	d->avail_idx = 65534;
	w16(d, AVAIL_GPA + 2, 65534);
	w16(d, USED_GPA + 2, 65534);
	vq_set_indices(&d->vq, 65534, 65534);
	w16(d, used_event, 0);
	one_request(d);			     /* used 65535: entry 65534 */
	assert_true(vq_need_notify(&d->vq)); /* first check after restore */
	one_request(d);			     /* entry 65535 */
	assert_false(vq_need_notify(&d->vq));
	one_request(d); /* entry 0 */
	assert_true(vq_need_notify(&d->vq));
	w16(d, used_event, 65535); /* stale: behind */
	one_request(d);
	assert_false(vq_need_notify(&d->vq));

	/* Device side: every pop moves avail_event to the next entry, so a
	 * device that never touches notifications keeps getting kicks... */
	assert_int_equal(r16(d, avail_event), 2);
	assert_true(vq_need_event(r16(d, avail_event), 3, 2)); /* the driver's next kick */
	/* ...disable freezes it (and never sets NO_NOTIFY, ignored with EVENT_IDX)... */
	vq_disable_notify(&d->vq);
	one_request(d);
	one_request(d);
	assert_int_equal(r16(d, avail_event), 2);
	assert_int_equal(r16(d, USED_GPA), 0);
	/* ...and enable moves it to where the device waits, reporting chains that
	 * slipped in. */
	assert_int_equal(vq_enable_notify(&d->vq), 0);
	assert_int_equal(r16(d, avail_event), 4);
	desc(d, 1, BUF_GPA, 8, 0, 0);
	publish(d, 1);
	assert_int_equal(vq_enable_notify(&d->vq), 1);
	assert_int_equal(vq_pop(&d->vq, &d->c), 1);
	assert_int_equal(r16(d, avail_event), 5);
}

/* ---- malformed chains ------------------------------------------------------------------ */

static void bad_avail_ahead(struct drv *d)
{
	desc(d, 0, BUF_GPA, 8, 0, 0);
	w16(d, AVAIL_GPA + 2, QSIZE + 1);
}

static void bad_avail_behind(struct drv *d)
{
	w16(d, AVAIL_GPA + 2, 65535); /* "behind" is "far ahead" in uint16_t */
}

static void bad_head(struct drv *d)
{
	publish(d, QSIZE);
}

static void bad_head_max(struct drv *d)
{
	publish(d, 0xffff);
}

static void bad_next(struct drv *d)
{
	desc(d, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, QSIZE);
	publish(d, 0);
}

static void bad_self_loop(struct drv *d)
{
	desc(d, 2, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 2);
	publish(d, 2);
}

static void bad_cycle(struct drv *d)
{
	desc(d, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	desc(d, 1, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 2);
	desc(d, 2, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 0);
	publish(d, 0);
}

static void bad_late_revisit(struct drv *d)
{
	/* Visits all 8, then goes back into the middle. */
	for (uint16_t i = 0; i < QSIZE; i++)
		desc(d, i, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, i + 1u < QSIZE ? (uint16_t)(i + 1) : 3);
	publish(d, 0);
}

static void bad_zero_len(struct drv *d)
{
	desc(d, 0, BUF_GPA, 0, 0, 0);
	publish(d, 0);
}

static void bad_zero_len_middle(struct drv *d)
{
	desc(d, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	desc(d, 1, BUF_GPA, 0, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	desc(d, 2, BUF_GPA, 8, VIRTQ_DESC_F_WRITE, 0);
	publish(d, 0);
}

static void bad_read_after_write(struct drv *d)
{
	desc(d, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	desc(d, 1, BUF_GPA, 8, 0, 0);
	publish(d, 0);
}

static void bad_read_after_write_indirect(struct drv *d)
{
	desc(d, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	desc(d, 1, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	desc_at(d, IND_GPA, 0, BUF_GPA, 8, 0, 0);
	publish(d, 0);
}

static void bad_read_after_write_in_table(struct drv *d)
{
	desc_at(d, IND_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	desc_at(d, IND_GPA, 1, BUF_GPA, 8, 0, 0);
	desc(d, 0, IND_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	publish(d, 0);
}

static void bad_indirect_not_negotiated(struct drv *d)
{
	desc_at(d, IND_GPA, 0, BUF_GPA, 8, 0, 0);
	desc(d, 0, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(d, 0);
}

static void bad_indirect_len0(struct drv *d)
{
	desc(d, 0, IND_GPA, 0, VIRTQ_DESC_F_INDIRECT, 0);
	publish(d, 0);
}

static void bad_indirect_len_odd(struct drv *d)
{
	desc_at(d, IND_GPA, 0, BUF_GPA, 8, 0, 0);
	desc_at(d, IND_GPA, 1, BUF_GPA, 8, 0, 0);
	desc(d, 0, IND_GPA, 24, VIRTQ_DESC_F_INDIRECT, 0);
	publish(d, 0);
}

static void bad_indirect_too_long(struct drv *d)
{
	desc(d, 0, IND_GPA, (VQ_MAX_SEGS + 1) * 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(d, 0);
}

static void bad_indirect_huge(struct drv *d)
{
	desc(d, 0, IND_GPA, 0xfffffff0u, VIRTQ_DESC_F_INDIRECT, 0);
	publish(d, 0);
}

static void bad_indirect_outside(struct drv *d)
{
	desc(d, 0, RAM - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	publish(d, 0);
}

static void bad_indirect_wraps(struct drv *d)
{
	desc(d, 0, 0xfffffffffffffff0ull, 32, VIRTQ_DESC_F_INDIRECT, 0);
	publish(d, 0);
}

static void bad_indirect_nested(struct drv *d)
{
	desc_at(d, IND_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	desc_at(d, IND_GPA, 1, IND2_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	desc_at(d, IND2_GPA, 0, BUF_GPA, 8, 0, 0);
	desc(d, 0, IND_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	publish(d, 0);
}

static void bad_indirect_next(struct drv *d)
{
	desc_at(d, IND_GPA, 0, BUF_GPA, 8, 0, 0);
	desc(d, 0, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	desc(d, 1, BUF_GPA, 8, VIRTQ_DESC_F_WRITE, 0);
	publish(d, 0);
}

static void bad_indirect_next_oob(struct drv *d)
{
	/* In range of the queue, out of range of the 2-entry table. */
	desc_at(d, IND_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 2);
	desc_at(d, IND_GPA, 1, BUF_GPA, 8, 0, 0);
	desc_at(d, IND_GPA, 2, BUF_GPA, 8, 0, 0);
	desc(d, 0, IND_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	publish(d, 0);
}

static void bad_indirect_loop(struct drv *d)
{
	desc_at(d, IND_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	desc_at(d, IND_GPA, 1, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 0);
	desc(d, 0, IND_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	publish(d, 0);
}

static void bad_indirect_second_table(struct drv *d)
{
	/* INDIRECT ends the direct part: a table then more direct descriptors
	 * would need NEXT+INDIRECT, which is refused; so is a second table via
	 * the first one (nested), so only this shape remains: a zero-length
	 * table entry after a good direct one. */
	desc(d, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	desc(d, 1, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	desc_at(d, IND_GPA, 0, BUF_GPA, 0, 0, 0);
	publish(d, 0);
}

static void bad_buf_outside(struct drv *d)
{
	desc(d, 0, RAM, 1, 0, 0);
	publish(d, 0);
}

static void bad_buf_straddles_end(struct drv *d)
{
	desc(d, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	desc(d, 1, RAM - 8, 16, VIRTQ_DESC_F_WRITE, 0);
	publish(d, 0);
}

static void bad_buf_wraps(struct drv *d)
{
	desc(d, 0, 0xfffffffffffff000ull, 0x2000, 0, 0);
	publish(d, 0);
}

static void bad_buf_high(struct drv *d)
{
	desc(d, 0, LAYOUT_RAM64_START, 0x1000, 0, 0); /* no high RAM in 4 MiB */
	publish(d, 0);
}

static void bad_buf_in_table(struct drv *d)
{
	desc_at(d, IND_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	desc_at(d, IND_GPA, 1, RAM - 4, 0xffffffffu, VIRTQ_DESC_F_WRITE, 0);
	desc(d, 0, IND_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	publish(d, 0);
}

static void bad_too_many_segs(struct drv *d)
{
	/* vq_set_limits(4, ...) in the row; a chain of 5. */
	for (uint16_t i = 0; i < 5; i++)
		desc(d, i, BUF_GPA, 8, i < 4 ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	publish(d, 0);
}

static void bad_too_many_segs_indirect(struct drv *d)
{
	/* max_segs 4: 2 direct + a table of 3. */
	desc(d, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	desc(d, 1, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 2);
	desc(d, 2, IND_GPA, 48, VIRTQ_DESC_F_INDIRECT, 0);
	for (uint16_t i = 0; i < 3; i++)
		desc_at(d, IND_GPA, i, BUF_GPA, 8, i < 2 ? VIRTQ_DESC_F_NEXT : 0,
			(uint16_t)(i + 1));
	publish(d, 0);
}

static void bad_too_long(struct drv *d)
{
	/* max_len 0x10000 in the row. */
	desc(d, 0, BUF_GPA, 0x9000, VIRTQ_DESC_F_NEXT, 1);
	desc(d, 1, BUF_GPA, 0x9000, VIRTQ_DESC_F_WRITE, 0);
	publish(d, 0);
}

static void bad_over_4g(struct drv *d)
{
	/* 1024 entries of the whole 4 MiB RAM: 4 GiB, one byte too many. */
	for (uint16_t i = 0; i < VQ_MAX_SEGS; i++)
		desc_at(d, IND_GPA, i, 0, RAM, i < VQ_MAX_SEGS - 1 ? VIRTQ_DESC_F_NEXT : 0,
			(uint16_t)(i + 1));
	desc(d, 0, IND_GPA, VQ_MAX_SEGS * 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(d, 0);
}

static void bad_second_chain(struct drv *d)
{
	/* A good chain first: it is returned, the bad one after it breaks the queue. */
	desc(d, 0, BUF_GPA, 8, 0, 0);
	desc(d, 1, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	publish(d, 0);
	publish(d, 1);
}

struct bad_row {
	const char *name;
	void (*make)(struct drv *d);
	uint64_t features;
	uint32_t max_segs; /* 0: default */
	uint64_t max_len;  /* 0: default */
	unsigned good_first;
	const char *msg; /* expected in the message */
};

static const struct bad_row bad_rows[] = {
    {"avail idx too far ahead", bad_avail_ahead, 0, 0, 0, 0, "more than the queue size 8"},
    {"avail idx moved back", bad_avail_behind, 0, 0, 0, 0, "available index 65535"},
    {"head == size", bad_head, 0, 0, 0, 0, "head 8 is outside"},
    {"head 0xffff", bad_head_max, 0, 0, 0, 0, "head 65535 is outside"},
    {"next == size", bad_next, 0, 0, 0, 0, "next 8 is outside"},
    {"self loop", bad_self_loop, 0, 0, 0, 0, "a loop"},
    {"self loop, max_segs above size", bad_self_loop, 0, QSIZE + 1, 0, 0, "a loop"},
    {"3-cycle", bad_cycle, 0, 0, 0, 0, "a loop"},
    {"revisit after the whole table", bad_late_revisit, 0, 0, 0, 0, "a loop"},
    {"zero length", bad_zero_len, 0, 0, 0, 0, "descriptor 0 has length 0"},
    {"zero length mid-chain", bad_zero_len_middle, 0, 0, 0, 0, "descriptor 1 has length 0"},
    {"readable after writable", bad_read_after_write, 0, 0, 0, 0, "follows a writable"},
    {"readable in table after writable", bad_read_after_write_indirect, F_INDIRECT, 0, 0, 0,
     "indirect descriptor 0 is device-readable"},
    {"readable after writable in table", bad_read_after_write_in_table, F_INDIRECT, 0, 0, 0,
     "follows a writable"},
    {"indirect not negotiated", bad_indirect_not_negotiated, 0, 0, 0, 0, "not negotiated"},
    {"indirect length 0", bad_indirect_len0, F_INDIRECT, 0, 0, 0, "length 0 is not"},
    {"indirect length 24", bad_indirect_len_odd, F_INDIRECT, 0, 0, 0, "length 24 is not"},
    {"indirect table over max_segs", bad_indirect_too_long, F_INDIRECT, 0, 0, 0, "1025 entries"},
    {"indirect table 4 GiB", bad_indirect_huge, F_INDIRECT, 0, 0, 0, "entries, more than"},
    {"indirect table past RAM", bad_indirect_outside, F_INDIRECT, 0, 0, 0,
     "indirect table [0x3ffff0"},
    {"indirect table wraps", bad_indirect_wraps, F_INDIRECT, 0, 0, 0, "not in guest RAM"},
    {"nested indirect", bad_indirect_nested, F_INDIRECT, 0, 0, 0, "nested"},
    {"NEXT + INDIRECT", bad_indirect_next, F_INDIRECT, 0, 0, 0, "both NEXT and INDIRECT"},
    {"indirect next out of table", bad_indirect_next_oob, F_INDIRECT, 0, 0, 0,
     "next 2 is outside the table of 2"},
    {"indirect loop", bad_indirect_loop, F_INDIRECT, 0, 0, 0, "indirect table of 2 (a loop)"},
    {"empty entry in table", bad_indirect_second_table, F_INDIRECT, 0, 0, 0,
     "indirect descriptor 0 has length 0"},
    {"buffer past RAM", bad_buf_outside, 0, 0, 0, 0, "[0x400000, +0x1)"},
    {"buffer straddles RAM end", bad_buf_straddles_end, 0, 0, 0, 0, "not in guest RAM"},
    {"buffer wraps", bad_buf_wraps, 0, 0, 0, 0, "not in guest RAM"},
    {"buffer where no RAM is", bad_buf_high, 0, 0, 0, 0, "not in guest RAM"},
    {"table buffer 4 GiB", bad_buf_in_table, F_INDIRECT, 0, 0, 0, "not in guest RAM"},
    {"too many segments", bad_too_many_segs, 0, 4, 0, 0, "more than 4 segments"},
    {"too many with table", bad_too_many_segs_indirect, F_INDIRECT, 4, 0, 0,
     "more than 4 segments"},
    {"over max_len", bad_too_long, 0, 0, 0x10000, 0, "exceeds 65536 bytes"},
    {"over 4 GiB", bad_over_4g, F_INDIRECT, 0, 0, 0, "exceeds 4294967295 bytes"},
    {"bad after good", bad_second_chain, 0, 0, 0, 1, "a loop"},
};

static void test_malformed_table(void **state)
{
	struct drv *d = *state;
	struct chv_err err = {0};

	for (size_t r = 0; r < sizeof(bad_rows) / sizeof(bad_rows[0]); r++) {
		const struct bad_row *row = &bad_rows[r];
		const char *msg;
		uint16_t last;

		start(d, QSIZE, row->features);
		assert_int_equal(vq_set_limits(&d->vq, row->max_segs ? row->max_segs : VQ_MAX_SEGS,
					       row->max_len ? row->max_len : VQ_DEFAULT_MAX_LEN,
					       &err),
				 0);
		row->make(d);
		for (unsigned g = 0; g < row->good_first; g++) {
			assert_int_equal(vq_pop(&d->vq, &d->c), 1);
			assert_int_equal(vq_push(&d->vq, d->c.head, 0), 0);
		}
		last = d->vq.last_avail_idx;
		if (vq_pop(&d->vq, &d->c) != -EINVAL)
			fail_msg("row '%s': not refused", row->name);
		if (!d->vq.broken)
			fail_msg("row '%s': queue not broken", row->name);
		assert_int_equal(d->vq.err.code, -EINVAL);
		assert_int_equal(d->vq.last_avail_idx, last);
		msg = vq_error_once(&d->vq);
		assert_non_null(msg);
		if (!strstr(msg, row->msg))
			fail_msg("row '%s': message '%s' lacks '%s'", row->name, msg, row->msg);
		if (strncmp(msg, "virtqueue 3: ", 13) != 0)
			fail_msg("row '%s': message '%s' does not name the queue", row->name, msg);
		/* Logged once; the queue stays refused and touches nothing, even
		 * once the driver repairs its rings. */
		assert_null(vq_error_once(&d->vq));
		for (uint16_t i = 0; i < QSIZE; i++) {
			desc(d, i, BUF_GPA, 8, 0, 0);
			w16(d, AVAIL_GPA + 4 + 2 * i, i);
		}
		w16(d, AVAIL_GPA + 2, (uint16_t)(last + 1));
		assert_int_equal(vq_pop(&d->vq, &d->c), -EINVAL);
		assert_int_equal(vq_push(&d->vq, 0, 0), -EINVAL);
		assert_int_equal(vq_enable_notify(&d->vq), -EINVAL);
		assert_int_equal(used_idx(d), row->good_first);
		assert_true(vq_need_notify(&d->vq));
		assert_null(vq_error_once(&d->vq));
		/* The message of a later error does not replace the first. */
		assert_non_null(strstr(d->vq.err.msg, row->msg));

		/* Reset and a fresh set-up make it usable again. */
		vq_reset(&d->vq);
		assert_false(d->vq.broken);
		assert_null(vq_error_once(&d->vq));
		start(d, QSIZE, row->features);
		one_request(d);
	}
}

/* ---- memory leaving under the queue ------------------------------------------- */

static void test_unplug(void **state)
{
	struct drv *d = *state;
	const uint64_t full = d->m.region[0].size;

	/* The buffer's memory goes. */
	desc(d, 0, BUF_GPA, 8, 0, 0);
	publish(d, 0);
	d->m.region[0].size = 0x80000;
	assert_int_equal(vq_pop(&d->vq, &d->c), -EINVAL);
	assert_non_null(strstr(vq_error_once(&d->vq), "[0x100000, +0x8) is not in guest RAM"));
	d->m.region[0].size = full;

	/* The descriptor table goes. */
	start(d, QSIZE, 0);
	desc(d, 0, BUF_GPA, 8, 0, 0);
	publish(d, 0);
	d->m.region[0].size = DESC_GPA;
	assert_int_equal(vq_pop(&d->vq, &d->c), -EINVAL);
	assert_non_null(strstr(vq_error_once(&d->vq), "descriptor table at 0x30000 is no longer"));
	d->m.region[0].size = full;

	/* The used ring goes between pop and push. */
	start(d, QSIZE, 0);
	desc(d, 0, BUF_GPA, 8, 0, 0);
	publish(d, 0);
	assert_int_equal(vq_pop(&d->vq, &d->c), 1);
	d->m.region[0].size = USED_GPA;
	assert_int_equal(vq_push(&d->vq, 0, 0), -EINVAL);
	assert_true(d->vq.broken);
	assert_non_null(strstr(vq_error_once(&d->vq), "used ring at 0x20000 is no longer"));
	d->m.region[0].size = full;
	assert_int_equal(used_idx(d), 0);

	/* The available ring goes: pop and notification checks. */
	start(d, QSIZE, 0);
	d->m.region[0].size = AVAIL_GPA;
	assert_true(vq_need_notify(&d->vq));
	assert_true(d->vq.broken);
	assert_non_null(strstr(vq_error_once(&d->vq), "available ring at 0x10000 is no longer"));
	assert_int_equal(vq_pop(&d->vq, &d->c), -EINVAL);
	d->m.region[0].size = full;

	start(d, QSIZE, F_EVENT);
	d->m.region[0].size = USED_GPA;
	assert_int_equal(vq_enable_notify(&d->vq), -EINVAL);
	assert_true(d->vq.broken);
	d->m.region[0].size = full;

	/* All memory gone. */
	start(d, QSIZE, 0);
	d->m.nregions = 0;
	assert_int_equal(vq_pop(&d->vq, &d->c), -EINVAL);
	d->m.nregions = 1;
	start(d, QSIZE, 0);
	one_request(d);
}

/* ---- hostile drivers --------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64*: reproducible from the printed seed. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static uint64_t rnd_addr(void)
{
	switch (rnd() % 8) {
	case 0:
		return rnd();
	case 1:
		return RAM - rnd() % 64;
	case 2:
		return UINT64_MAX - rnd() % 0x10000;
	case 3:
		return LAYOUT_RAM64_START + rnd() % 0x1000;
	default:
		return BUF_GPA + rnd() % (RAM - BUF_GPA);
	}
}

static uint32_t rnd_len(void)
{
	switch (rnd() % 8) {
	case 0:
		return 0;
	case 1:
		return (uint32_t)rnd();
	case 2:
		return (uint32_t)(rnd() % RAM);
	default:
		return 1 + (uint32_t)(rnd() % 0x2000);
	}
}

static uint16_t rnd_flags(void)
{
	uint16_t f = (uint16_t)(rnd() % 8);

	if (rnd() % 4)
		f &= (uint16_t)~VIRTQ_DESC_F_INDIRECT; /* mostly direct */
	if (rnd() % 16 == 0)
		f |= (uint16_t)(rnd() & 0xfff8); /* undefined bits: ignored */
	return f;
}

static void scribble(struct drv *d, uint64_t table, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		uint64_t addr = rnd_addr();
		uint32_t len = rnd_len();
		uint16_t flags = rnd_flags();
		uint16_t next = (uint16_t)(rnd() % (n + 2));

		if (flags & VIRTQ_DESC_F_INDIRECT && rnd() % 2) {
			addr = rnd() % 2 ? IND_GPA : IND2_GPA;
			len = 16 * (uint32_t)(1 + rnd() % 24);
		}
		desc_at(d, table, i, addr, len, flags, next);
	}
}

static void check_chain(struct drv *d, const struct vq_chain *c)
{
	uint64_t out = 0, in = 0;

	assert_true(c->head < d->vq.size);
	assert_true(c->nout + c->nin >= 1);
	assert_true(c->nout + c->nin <= d->vq.max_segs);
	for (uint32_t i = 0; i < c->nout + c->nin; i++) {
		assert_in_ram(d, &c->iov[i]);
		if (i < c->nout)
			out += c->iov[i].iov_len;
		else
			in += c->iov[i].iov_len;
	}
	assert_int_equal(out, c->out_len);
	assert_int_equal(in, c->in_len);
	assert_true(out + in <= d->vq.max_len);
}

static uint64_t seed(void)
{
	const char *s = getenv("CHV_TEST_SEED");
	uint64_t v = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);

	v = v ? v : 1;
	print_message("hostile driver seed %llu (set CHV_TEST_SEED to repeat)\n",
		      (unsigned long long)v);
	return v;
}

static void test_hostile_driver(void **state)
{
	struct drv *d = *state;
	unsigned ok = 0, refused = 0, empty = 0;
	struct chv_err err = {0};

	rng_state = seed();
	for (unsigned it = 0; it < 20000; it++) {
		int rc;

		if (it % 64 == 0 || d->vq.broken) {
			start(d, 16, rnd() % 2 ? F_INDIRECT | F_EVENT : 0);
			if (rnd() % 4 == 0)
				assert_int_equal(
				    vq_set_limits(&d->vq, 1 + rnd() % 8, 1 + rnd() % 0x10000, &err),
				    0);
		}
		scribble(d, DESC_GPA, 16);
		scribble(d, IND_GPA, 24);
		scribble(d, IND2_GPA, 24);
		for (unsigned k = rnd() % 4; k; k--)
			publish(d, (uint16_t)(rnd() % 18));
		if (rnd() % 50 == 0)
			w16(d, AVAIL_GPA + 2, (uint16_t)rnd());
		while ((rc = vq_pop(&d->vq, &d->c)) == 1) {
			check_chain(d, &d->c);
			assert_int_equal(vq_push(&d->vq, d->c.head, (uint32_t)d->c.in_len), 0);
			ok++;
		}
		if (rc == 0) {
			empty++;
			assert_false(d->vq.broken);
			continue;
		}
		assert_int_equal(rc, -EINVAL);
		assert_true(d->vq.broken);
		assert_non_null(vq_error_once(&d->vq));
		refused++;
	}
	print_message("hostile driver: %u chains accepted, %u refusals, %u empty\n", ok, refused,
		      empty);
	/* The generator must reach both outcomes, or it tests nothing. */
	assert_true(ok > 1000);
	assert_true(refused > 1000);
}

/* A driver thread rewriting descriptors and indices while the device pops:
 * whatever it sees, the device must hand out only pointers into RAM. */
struct racer {
	struct drv *d;
	volatile int stop;
};

static void *race_driver(void *arg)
{
	struct racer *r = arg;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	uint8_t *desc_host = vm_mem_ptr(&r->d->m, DESC_GPA, 16 * 16);
	uint8_t *avail_host = vm_mem_ptr(&r->d->m, AVAIL_GPA, 4 + 2 * 16);

	while (!r->stop) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if ((x >> 20) % 8) {
			/* Mostly plausible descriptors, so chains do get through... */
			uint32_t i = (uint32_t)(x % 16);
			uint64_t addr = BUF_GPA + (x >> 16) % 0x10000;
			uint32_t len = 1 + (uint32_t)((x >> 24) % 0x1000);
			uint16_t flags = (uint16_t)((x >> 36) % 4);
			uint16_t next = (uint16_t)((x >> 44) % 16);

			memcpy(desc_host + 16 * i, &addr, 8);
			memcpy(desc_host + 16 * i + 8, &len, 4);
			memcpy(desc_host + 16 * i + 12, &flags, 2);
			memcpy(desc_host + 16 * i + 14, &next, 2);
		} else {
			/* ...and single bytes: tearing is part of the attack. */
			desc_host[x % (16 * 16)] = (uint8_t)(x >> 32);
		}
		if ((x >> 40) % 8 == 0)
			avail_host[4 + 2 * (x % 16)] = (uint8_t)((x >> 48) % 18); /* heads */
		if ((x >> 40) % 4096 == 0)
			avail_host[2] = (uint8_t)(x >> 48); /* avail->idx itself, now and then */
	}
	return NULL;
}

static void test_racing_driver(void **state)
{
	struct drv *d = *state;
	struct racer r = {.d = d};
	pthread_t t;
	unsigned pops = 0, refusals = 0;
	struct timespec t0, now;

	start(d, 16, F_INDIRECT);
	assert_int_equal(pthread_create(&t, NULL, race_driver, &r), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		int rc;

		for (int k = 0; k < 100; k++) {
			/* The device thread plays the driver's publishing side too. */
			if (k % 10 == 0)
				w16(d, AVAIL_GPA + 2,
				    (uint16_t)(d->vq.last_avail_idx + 1 + k % 16));
			rc = vq_pop(&d->vq, &d->c);
			if (rc == 1) {
				check_chain(d, &d->c);
				pops++;
				if (d->vq.used_idx != d->vq.last_avail_idx)
					assert_int_equal(vq_push(&d->vq, d->c.head, 0), 0);
			} else if (rc < 0) {
				assert_true(d->vq.broken);
				assert_non_null(vq_error_once(&d->vq));
				refusals++;
				/* Re-arm without zeroing memory under the racer. */
				vq_reset(&d->vq);
				struct chv_err err = {0};
				assert_int_equal(vq_set_size(&d->vq, 16, &err), 0);
				assert_int_equal(
				    vq_set_addrs(&d->vq, DESC_GPA, AVAIL_GPA, USED_GPA, &err), 0);
				assert_int_equal(vq_enable(&d->vq, F_INDIRECT, &err), 0);
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((now.tv_sec - t0.tv_sec) * 1000000000L + (now.tv_nsec - t0.tv_nsec) < 300000000L);
	r.stop = 1;
	pthread_join(t, NULL);
	print_message("racing driver: %u chains popped, %u refusals\n", pops, refusals);
	assert_true(pops > 0);
	assert_true(refusals > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_init_and_sizes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ring_addresses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_disabled_queue, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_single, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_multi_mixed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full_ring_and_longest_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_limits_accept_exact, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unpop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrap_around, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_indices_wrap, setup, teardown),
	    cmocka_unit_test(test_need_event),
	    cmocka_unit_test_setup_teardown(test_notify_flags, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_notify_event_idx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_malformed_table, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unplug, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_driver, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_racing_driver, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
