/* Split virtqueues (virtio/virtqueue.c) against a hostile driver: the input
 * sets the ring addresses, size and features, writes guest memory (raw bytes,
 * descriptors, available entries and indices) and drives the device side
 * (pop, push, batches, notification suppression, restored indices).
 *
 * Input: u8 mode, u8 size byte, u8 features byte, then ops (see below).
 * mode bit 0: ring addresses from the input (u64 desc, avail, used) instead
 * of the fixed layout; bit 1: lower the chain limits (u8 segs, u16 len).
 *
 * Checked beyond the sanitizers: every popped segment lies inside guest
 * RAM, segment counts and lengths add up and respect the limits, readable
 * segments come before writable ones. */
#include <string.h>

#include "fz_common.h"
#include "virtio/virtqueue.h"

static struct vq_chain chain;

static void check_chain(const struct vq *vq, const struct vq_chain *c)
{
	uint64_t out = 0, in = 0;
	if (c->head >= vq->size)
		fz_fail("popped head %u >= size %u", c->head, vq->size);
	if (c->nout + c->nin > vq->max_segs || c->nout + c->nin > VQ_MAX_SEGS)
		fz_fail("chain of %u + %u segments, limit %u", c->nout, c->nin, vq->max_segs);
	for (uint32_t i = 0; i < c->nout + c->nin; i++) {
		fz_check_in_ram(c->iov[i].iov_base, c->iov[i].iov_len, "segment");
		if (i < c->nout)
			out += c->iov[i].iov_len;
		else
			in += c->iov[i].iov_len;
	}
	if (out != c->out_len || in != c->in_len)
		fz_fail("lengths %llu/%llu, segments add up to %llu/%llu",
			(unsigned long long)c->out_len, (unsigned long long)c->in_len,
			(unsigned long long)out, (unsigned long long)in);
	if (out + in > vq->max_len)
		fz_fail("chain of %llu bytes, limit %llu", (unsigned long long)(out + in),
			(unsigned long long)vq->max_len);
}

static void no_kick(void *ctx, uint16_t q)
{
	(void)ctx;
	(void)q;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vm_mem *m = fz_mem();
	struct chv_err err = {0};
	struct vq vq;
	struct fz f;
	uint16_t popped[FZ_QSIZE_MAX];
	uint32_t npopped = 0;
	bool just_popped = false;

	fz_init(&f, data, size);
	memset(m->map, 0, m->map_size);
	uint8_t mode = fz_u8(&f);
	uint32_t qsize = 1u << (fz_u8(&f) % 5);
	uint8_t fbyte = fz_u8(&f);
	uint64_t features = (fbyte & 1 ? 1ull << VIRTIO_RING_F_EVENT_IDX : 0) |
			    (fbyte & 2 ? 1ull << VIRTIO_RING_F_INDIRECT_DESC : 0);

	if (vq_init(&vq, m, 0, FZ_QSIZE_MAX, &err) || vq_set_size(&vq, qsize, &err))
		fz_fail("vq set-up: %s", err.msg);
	uint64_t desc = FZ_DESC(0), avail = FZ_AVAIL(0), used = FZ_USED(0);
	if (mode & 1) {
		desc = fz_u64(&f);
		avail = fz_u64(&f);
		used = fz_u64(&f);
	}
	if (mode & 2) {
		uint32_t segs = 1 + fz_u8(&f);
		uint64_t len = 1 + fz_u16(&f);
		if (vq_set_limits(&vq, segs, len, &err))
			fz_fail("vq_set_limits(%u, %llu): %s", segs, (unsigned long long)len,
				err.msg);
	}
	if (vq_set_addrs(&vq, desc, avail, used, &err) || vq_enable(&vq, features, &err))
		return 0; /* refused: that is the check */

	/* The common driver ops need a device; a bare one around the queue. */
	struct virtio_dev dev = {.num_queues = 1, .vqs = &vq};
	struct fz_driver drv = {.d = &dev, .qsize = qsize};

	while (fz_left(&f)) {
		uint8_t op = fz_u8(&f) % VQ_OP_COUNT;
		bool was_pop = just_popped;
		just_popped = false;
		switch (op) {
		case VQ_OP_POP: {
			int rc = vq_pop(&vq, &chain);
			if (rc < 0 && !vq.broken)
				fz_fail("vq_pop failed without breaking the queue");
			if (rc == 1) {
				check_chain(&vq, &chain);
				if (npopped < FZ_QSIZE_MAX)
					popped[npopped++] = chain.head;
				just_popped = true;
			}
			if (vq.broken && !vq.err.msg[0])
				fz_fail("broken queue without a message");
			break;
		}
		case VQ_OP_PUSH: {
			uint32_t len = fz_u32(&f);
			if (npopped)
				(void)vq_push(&vq, popped[--npopped], len);
			break;
		}
		case VQ_OP_PUSH_BATCH: {
			uint32_t n = fz_u8(&f) % (npopped + 1);
			uint32_t lens[FZ_QSIZE_MAX] = {0};
			if (n && vq_push_batch(&vq, popped + npopped - n, lens, n) == 0)
				npopped -= n;
			break;
		}
		case VQ_OP_NEED_NOTIFY:
			(void)vq_need_notify(&vq);
			break;
		case VQ_OP_DISABLE_NOTIFY:
			vq_disable_notify(&vq);
			break;
		case VQ_OP_ENABLE_NOTIFY:
			(void)vq_enable_notify(&vq);
			break;
		case VQ_OP_UNPOP:
			if (was_pop) {
				vq_unpop(&vq);
				npopped--;
			}
			break;
		case VQ_OP_SET_INDICES: {
			uint16_t a = fz_u16(&f), u = fz_u16(&f);
			vq_set_indices(&vq, a, u);
			npopped = 0;
			break;
		}
		case VQ_OP_PUSH_RAW: {
			uint16_t head = fz_u8(&f);
			(void)vq_push(&vq, head, fz_u32(&f));
			break;
		}
		case FZ_OP_RESET:
		case FZ_OP_CONFIG:
			break; /* device ops: nothing to reset or configure here */
		default:
			fz_driver_op(&drv, &f, op, no_kick, NULL);
			break;
		}
	}
	return 0;
}
