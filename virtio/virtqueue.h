/* Split virtqueues (virtio 1.x, section 2.7), the device side, implemented once
 * for every device and transport.
 *
 * Everything the guest wrote is hostile: indices, addresses, lengths, flags and
 * the shape of each chain are validated before a host pointer leaves this
 * module. The first violation marks the queue broken: vq_pop() and vq_push()
 * then refuse to touch the rings, vq_error_once() hands the message to the
 * caller exactly once for its log, and the device is expected to set
 * VIRTIO_STATUS_DEVICE_NEEDS_RESET and raise a configuration interrupt. Only
 * a reset (vq_reset() and a fresh set-up) clears it.
 *
 * Guest memory is reached only through vm_mem_ptr(), and ring pointers are
 * looked up again on every call rather than cached, so a ring that leaves
 * guest memory (hot-unplug) breaks the queue instead of reading freed pages.
 * The host pointers in a popped chain stay valid only while the memory they
 * point into stays plugged: whoever unplugs memory must first quiesce the
 * devices (complete or drop in-flight chains).
 *
 * A struct vq is driven by one thread at a time (the device's queue handler);
 * the guest's driver is the only other party and runs concurrently. */
#ifndef CHV_VIRTIO_VIRTQUEUE_H
#define CHV_VIRTIO_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vm/err.h"
#include "vm/mem.h"

/* Largest split queue the specification allows. */
#define VQ_MAX_SIZE 32768u

/* Most segments a chain may have: IOV_MAX, so a chain can go to preadv() and
 * writev() in one call. Devices advertise fewer (virtio-blk seg_max). */
#define VQ_MAX_SEGS 1024u

/* The specification caps a chain at 2^32 bytes in total; the used ring's
 * length field is 32 bits wide. */
#define VQ_DEFAULT_MAX_LEN 0xffffffffULL

/* Descriptor flags. */
#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_DESC_F_INDIRECT 4

/* Ring flags: driver asks for no interrupts / device asks for no notifications. */
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY	   1

/* Feature bits that change how the ring is used. */
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX	    29

/* Device status bit a device sets once one of its queues is broken. */
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 0x40

struct vq {
	const struct vm_mem *mem;
	uint16_t index;	   /* queue number, for messages */
	uint32_t max_size; /* what the device offers; size starts here */

	/* Set by the transport while the queue is disabled. */
	uint32_t size; /* entries: a power of two, 1..max_size */
	uint64_t desc_gpa;
	uint64_t avail_gpa;
	uint64_t used_gpa;

	/* Negotiated at vq_enable(). */
	bool enabled;
	bool event_idx;
	bool indirect;

	/* Device limits on one chain (vq_set_limits()). */
	uint32_t max_segs;
	uint64_t max_len;

	/* Ring state. */
	uint16_t last_avail_idx;   /* next avail ring entry to pop */
	uint16_t shadow_avail_idx; /* avail->idx as last read (already validated) */
	uint16_t used_idx;	   /* next used ring entry to fill */
	uint16_t signalled_used;   /* used_idx at the last vq_need_notify() */
	bool signalled_used_valid;
	bool notify_enabled; /* the device wants kicks (vq_disable_notify() not in force) */

	/* The first violation; later ones are not recorded. */
	bool broken;
	bool err_reported;
	struct chv_err err;
};

/* One popped chain: iov[0, nout) are device-readable, iov[nout, nout + nin)
 * device-writable, in chain order. Each segment is non-empty and lies inside
 * one guest RAM region. */
struct vq_chain {
	uint16_t head;	/* what vq_push() takes back */
	uint32_t ndesc; /* descriptors walked, indirect ones included */
	uint32_t nout;
	uint32_t nin;
	uint64_t out_len; /* bytes in the readable segments */
	uint64_t in_len;  /* bytes in the writable segments */
	struct iovec iov[VQ_MAX_SEGS];
};

static inline struct iovec *vq_chain_out(struct vq_chain *c)
{
	return c->iov;
}

static inline struct iovec *vq_chain_in(struct vq_chain *c)
{
	return c->iov + c->nout;
}

/* The EVENT_IDX test: has the index moved from old to new_idx across event?
 * All in uint16_t arithmetic, so it holds across the wrap at 65535. */
static inline bool vq_need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

/* A disabled queue of max_size entries (a power of two up to VQ_MAX_SIZE) over
 * mem, with the default limits. -EINVAL for a bad max_size. */
chv_must_check int vq_init(struct vq *vq, const struct vm_mem *mem, uint16_t index,
			   uint32_t max_size, struct chv_err *err);

/* Back to the state vq_init() left (disabled, addresses 0, size max_size, not
 * broken); keeps mem, index, max_size and the limits. */
void vq_reset(struct vq *vq);

/* max_segs in 1..VQ_MAX_SEGS, max_len in 1..VQ_DEFAULT_MAX_LEN. */
chv_must_check int vq_set_limits(struct vq *vq, uint32_t max_segs, uint64_t max_len,
				 struct chv_err *err);

/* The queue size the driver chose: a power of two up to max_size. Only while
 * disabled. */
chv_must_check int vq_set_size(struct vq *vq, uint32_t size, struct chv_err *err);

/* The ring addresses: checked for alignment (16, 2, 4) and that each ring of the
 * current size lies inside guest RAM. Only while disabled. A transport that lets
 * the driver write size and addresses in any order calls vq_set_size() then
 * vq_set_addrs() when the driver enables the queue. */
chv_must_check int vq_set_addrs(struct vq *vq, uint64_t desc, uint64_t avail, uint64_t used,
				struct chv_err *err);

/* Enables the queue with the negotiated features (bits VIRTIO_RING_F_*), after
 * checking the rings again, now with the event-index fields when EVENT_IDX was
 * negotiated. Indices start at 0. */
chv_must_check int vq_enable(struct vq *vq, uint64_t features, struct chv_err *err);

/* Restores ring indices (snapshot, migration) on an enabled queue. */
void vq_set_indices(struct vq *vq, uint16_t last_avail_idx, uint16_t used_idx);

/* Takes the next available chain: 1 with *c filled, 0 when none is available
 * (or the queue is disabled), -EINVAL when the guest broke the rules (the queue
 * is broken from then on). */
chv_must_check int vq_pop(struct vq *vq, struct vq_chain *c);

/* Gives back the chain popped last, unused (e.g. no room for a received frame). */
void vq_unpop(struct vq *vq);

/* Returns a chain to the driver with the number of bytes the device wrote.
 * 0; -EINVAL when the queue is broken or the used ring left guest memory (then
 * broken); -ERANGE for a device bug (head >= size, nothing in flight, disabled). */
chv_must_check int vq_push(struct vq *vq, uint16_t head, uint32_t written_len);
/* Returns n chains at once: all their used elements are written, then the
 * used index is published once. Same errors as vq_push(); nothing is
 * published on an error. */
chv_must_check int vq_push_batch(struct vq *vq, const uint16_t *heads, const uint32_t *lens,
				 unsigned n);

/* After one or more vq_push(): should the driver be interrupted? Honours
 * VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX. True when in doubt
 * (a broken queue costs the guest a spurious interrupt, nothing more). */
bool vq_need_notify(struct vq *vq);

/* Device-side notification suppression while the device is busy draining the
 * queue. Kicks are on after vq_enable(); with EVENT_IDX each vq_pop() moves
 * avail_event along so a device that never calls these still gets them.
 * vq_enable_notify() returns 1 when chains arrived in the meantime (pop
 * them before sleeping: the driver may not have kicked), 0 when the queue is
 * empty, -EINVAL when broken. */
void vq_disable_notify(struct vq *vq);
chv_must_check int vq_enable_notify(struct vq *vq);

/* The message of the violation that broke the queue, the first time it is
 * asked for; NULL afterwards and while the queue is healthy. Log it once. */
const char *vq_error_once(struct vq *vq);

#endif
