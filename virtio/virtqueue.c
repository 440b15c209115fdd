/* Split virtqueues: rings in guest memory, read and written with the ordering
 * the driver relies on, every guest value checked before use.
 *
 * Layout (all little-endian):
 *   descriptor table  16 * size          { le64 addr; le32 len; le16 flags; le16 next; }
 *   available ring    6 + 2 * size       { le16 flags; le16 idx; le16 ring[size]; le16 used_event;
 * } used ring         6 + 8 * size       { le16 flags; le16 idx; {le32 id; le32 len} ring[size];
 *                                          le16 avail_event; }
 * The trailing event fields exist only with EVENT_IDX.
 *
 * Guest memory is shared with vCPUs running the driver, so each guest field is
 * read once into a local and only the local is checked and used: a value the
 * driver changes between a check and a use could otherwise slip past the check. */
#include "virtio/virtqueue.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define DESC_SIZE	16u
#define AVAIL_RING_OFF	4u
#define USED_RING_OFF	4u
#define USED_ELEM_SIZE	8u
#define EVENT_FIELD_LEN 2u

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

static uint64_t desc_bytes(uint32_t size)
{
	return (uint64_t)DESC_SIZE * size;
}

static uint64_t avail_bytes(uint32_t size, bool event_idx)
{
	return AVAIL_RING_OFF + 2ull * size + (event_idx ? EVENT_FIELD_LEN : 0);
}

static uint64_t used_bytes(uint32_t size, bool event_idx)
{
	return USED_RING_OFF + (uint64_t)USED_ELEM_SIZE * size + (event_idx ? EVENT_FIELD_LEN : 0);
}

/* Guest-memory accessors for ring fields. The rings are aligned (checked in
 * vq_set_addrs), so these are single, untorn accesses. */
static uint16_t load16(const uint8_t *p, int order)
{
	return le16toh(__atomic_load_n((const uint16_t *)(const void *)p, order));
}

static void store16(uint8_t *p, uint16_t v, int order)
{
	__atomic_store_n((uint16_t *)(void *)p, htole16(v), order);
}

static void store32(uint8_t *p, uint32_t v)
{
	__atomic_store_n((uint32_t *)(void *)p, htole32(v), __ATOMIC_RELAXED);
}

/* Indirect tables need not be aligned, so descriptors are copied bytewise. The
 * compiler barrier keeps the compiler from dropping the copy and reading guest
 * memory again at each use of d. */
static void read_desc(const uint8_t *table, uint32_t i, struct desc *d)
{
	uint8_t raw[DESC_SIZE];
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;

	memcpy(raw, table + (size_t)i * DESC_SIZE, sizeof(raw));
	__asm__ volatile("" ::: "memory");
	memcpy(&addr, raw, 8);
	memcpy(&len, raw + 8, 4);
	memcpy(&flags, raw + 12, 2);
	memcpy(&next, raw + 14, 2);
	d->addr = le64toh(addr);
	d->len = le32toh(len);
	d->flags = le16toh(flags);
	d->next = le16toh(next);
}

/* Records the first violation and breaks the queue; always -EINVAL. */
__attribute__((format(printf, 2, 3))) static int vq_fail(struct vq *vq, const char *fmt, ...)
{
	if (!vq->broken) {
		va_list ap;
		int n;

		n = snprintf(vq->err.msg, sizeof(vq->err.msg), "virtqueue %u: ", vq->index);
		if (n < 0 || (size_t)n >= sizeof(vq->err.msg))
			n = 0;
		va_start(ap, fmt);
		vsnprintf(vq->err.msg + n, sizeof(vq->err.msg) - (size_t)n, fmt, ap);
		va_end(ap);
		vq->err.code = -EINVAL;
		vq->broken = true;
		vq->err_reported = false;
	}
	return -EINVAL;
}

static int check_rings(const struct vq *vq, uint64_t desc, uint64_t avail, uint64_t used,
		       bool event_idx, struct chv_err *err)
{
	if (desc % 16)
		return chv_err_set(err, -EINVAL,
				   "virtqueue %u: descriptor table address 0x%" PRIx64
				   " is not 16-byte aligned",
				   vq->index, desc);
	if (avail % 2)
		return chv_err_set(err, -EINVAL,
				   "virtqueue %u: available ring address 0x%" PRIx64
				   " is not 2-byte aligned",
				   vq->index, avail);
	if (used % 4)
		return chv_err_set(err, -EINVAL,
				   "virtqueue %u: used ring address 0x%" PRIx64
				   " is not 4-byte aligned",
				   vq->index, used);
	if (!vm_mem_ptr(vq->mem, desc, desc_bytes(vq->size)))
		return chv_err_set(err, -EINVAL,
				   "virtqueue %u: descriptor table [0x%" PRIx64 ", +0x%" PRIx64
				   ") is not in guest RAM",
				   vq->index, desc, desc_bytes(vq->size));
	if (!vm_mem_ptr(vq->mem, avail, avail_bytes(vq->size, event_idx)))
		return chv_err_set(err, -EINVAL,
				   "virtqueue %u: available ring [0x%" PRIx64 ", +0x%" PRIx64
				   ") is not in guest RAM",
				   vq->index, avail, avail_bytes(vq->size, event_idx));
	if (!vm_mem_ptr(vq->mem, used, used_bytes(vq->size, event_idx)))
		return chv_err_set(err, -EINVAL,
				   "virtqueue %u: used ring [0x%" PRIx64 ", +0x%" PRIx64
				   ") is not in guest RAM",
				   vq->index, used, used_bytes(vq->size, event_idx));
	return 0;
}

int vq_init(struct vq *vq, const struct vm_mem *mem, uint16_t index, uint32_t max_size,
	    struct chv_err *err)
{
	memset(vq, 0, sizeof(*vq));
	vq->index = index;
	if (!mem)
		return chv_err_set(err, -EINVAL, "virtqueue %u: no guest memory", index);
	if (!is_pow2(max_size) || max_size > VQ_MAX_SIZE)
		return chv_err_set(err, -EINVAL,
				   "virtqueue %u: queue_size=%u is not a power of two in 1..%u",
				   index, max_size, VQ_MAX_SIZE);
	vq->mem = mem;
	vq->max_size = max_size;
	vq->max_segs = VQ_MAX_SEGS;
	vq->max_len = VQ_DEFAULT_MAX_LEN;
	vq_reset(vq);
	return 0;
}

void vq_reset(struct vq *vq)
{
	vq->size = vq->max_size;
	vq->desc_gpa = 0;
	vq->avail_gpa = 0;
	vq->used_gpa = 0;
	vq->enabled = false;
	vq->event_idx = false;
	vq->indirect = false;
	vq->last_avail_idx = 0;
	vq->shadow_avail_idx = 0;
	vq->used_idx = 0;
	vq->signalled_used = 0;
	vq->signalled_used_valid = false;
	vq->notify_enabled = true;
	vq->broken = false;
	vq->err_reported = false;
	memset(&vq->err, 0, sizeof(vq->err));
}

int vq_set_limits(struct vq *vq, uint32_t max_segs, uint64_t max_len, struct chv_err *err)
{
	if (max_segs == 0 || max_segs > VQ_MAX_SEGS)
		return chv_err_set(err, -EINVAL, "virtqueue %u: max_segs=%u is not in 1..%u",
				   vq->index, max_segs, VQ_MAX_SEGS);
	if (max_len == 0 || max_len > VQ_DEFAULT_MAX_LEN)
		return chv_err_set(err, -EINVAL,
				   "virtqueue %u: max_len=%" PRIu64 " is not in 1..%llu", vq->index,
				   max_len, VQ_DEFAULT_MAX_LEN);
	vq->max_segs = max_segs;
	vq->max_len = max_len;
	return 0;
}

int vq_set_size(struct vq *vq, uint32_t size, struct chv_err *err)
{
	if (vq->enabled)
		return chv_err_set(err, -EBUSY, "virtqueue %u: size changed while enabled",
				   vq->index);
	if (!is_pow2(size) || size > vq->max_size)
		return chv_err_set(err, -EINVAL,
				   "virtqueue %u: queue size %u is not a power of two in 1..%u",
				   vq->index, size, vq->max_size);
	vq->size = size;
	return 0;
}

int vq_set_addrs(struct vq *vq, uint64_t desc, uint64_t avail, uint64_t used, struct chv_err *err)
{
	int rc;

	if (vq->enabled)
		return chv_err_set(err, -EBUSY,
				   "virtqueue %u: ring addresses changed while enabled", vq->index);
	rc = check_rings(vq, desc, avail, used, false, err);
	if (rc)
		return rc;
	vq->desc_gpa = desc;
	vq->avail_gpa = avail;
	vq->used_gpa = used;
	return 0;
}

int vq_enable(struct vq *vq, uint64_t features, struct chv_err *err)
{
	bool event_idx = features & (1ull << VIRTIO_RING_F_EVENT_IDX);
	int rc;

	if (vq->enabled)
		return chv_err_set(err, -EBUSY, "virtqueue %u: already enabled", vq->index);
	rc = check_rings(vq, vq->desc_gpa, vq->avail_gpa, vq->used_gpa, event_idx, err);
	if (rc)
		return rc;
	vq->event_idx = event_idx;
	vq->indirect = features & (1ull << VIRTIO_RING_F_INDIRECT_DESC);
	vq->enabled = true;
	vq->notify_enabled = true;
	vq_set_indices(vq, 0, 0);
	return 0;
}

void vq_set_indices(struct vq *vq, uint16_t last_avail_idx, uint16_t used_idx)
{
	vq->last_avail_idx = last_avail_idx;
	vq->shadow_avail_idx = last_avail_idx;
	vq->used_idx = used_idx;
	vq->signalled_used = used_idx;
	vq->signalled_used_valid = false;
}

/* The rings are looked up on every call, never cached: memory may have been
 * unplugged since the last one. */
static uint8_t *avail_ring(struct vq *vq)
{
	uint8_t *p = vm_mem_ptr(vq->mem, vq->avail_gpa, avail_bytes(vq->size, vq->event_idx));

	if (!p)
		vq_fail(vq, "available ring at 0x%" PRIx64 " is no longer in guest RAM",
			vq->avail_gpa);
	return p;
}

static uint8_t *used_ring(struct vq *vq)
{
	uint8_t *p = vm_mem_ptr(vq->mem, vq->used_gpa, used_bytes(vq->size, vq->event_idx));

	if (!p)
		vq_fail(vq, "used ring at 0x%" PRIx64 " is no longer in guest RAM", vq->used_gpa);
	return p;
}

/* Reads avail->idx. Acquire: the driver fills the ring entry and descriptors
 * before it publishes idx (with a release/wmb), so everything read after this
 * load sees them. */
static int refresh_avail_idx(struct vq *vq, const uint8_t *avail)
{
	uint16_t idx = load16(avail + 2, __ATOMIC_ACQUIRE);
	uint16_t pending = (uint16_t)(idx - vq->last_avail_idx);

	if (pending > vq->size)
		return vq_fail(vq,
			       "available index %u is %u entries ahead of the last one taken (%u), "
			       "more than the queue size %u",
			       idx, pending, vq->last_avail_idx, vq->size);
	vq->shadow_avail_idx = idx;
	return 0;
}

static int add_segment(struct vq *vq, struct vq_chain *c, const struct desc *d, bool indirect,
		       uint32_t i)
{
	const char *where = indirect ? "indirect descriptor" : "descriptor";
	bool writable = d->flags & VIRTQ_DESC_F_WRITE;
	void *p;

	/* The specification does not forbid empty descriptors, but no driver needs
	 * one, QEMU refuses them too, and vm_mem_ptr() has no pointer for them. */
	if (d->len == 0)
		return vq_fail(vq, "chain %u: %s %u has length 0", c->head, where, i);
	p = vm_mem_ptr(vq->mem, d->addr, d->len);
	if (!p)
		return vq_fail(vq,
			       "chain %u: %s %u: buffer [0x%" PRIx64 ", +0x%x) is not in guest RAM",
			       c->head, where, i, d->addr, d->len);
	if (!writable && c->nin)
		return vq_fail(vq, "chain %u: %s %u is device-readable but follows a writable one",
			       c->head, where, i);
	if (c->nout + c->nin >= vq->max_segs)
		return vq_fail(vq, "chain %u: more than %u segments", c->head, vq->max_segs);
	if (c->out_len + c->in_len + d->len > vq->max_len)
		return vq_fail(vq, "chain %u: total length exceeds %" PRIu64 " bytes", c->head,
			       vq->max_len);
	c->iov[c->nout + c->nin].iov_base = p;
	c->iov[c->nout + c->nin].iov_len = d->len;
	if (writable) {
		c->nin++;
		c->in_len += d->len;
	} else {
		c->nout++;
		c->out_len += d->len;
	}
	return 0;
}

/* Switches the walk to the indirect table d describes. */
static int enter_indirect(struct vq *vq, struct vq_chain *c, const struct desc *d, uint32_t i,
			  const uint8_t **table, uint32_t *n)
{
	if (!vq->indirect)
		return vq_fail(vq,
			       "chain %u: descriptor %u is indirect, but "
			       "VIRTIO_RING_F_INDIRECT_DESC was not negotiated",
			       c->head, i);
	if (d->flags & VIRTQ_DESC_F_NEXT)
		return vq_fail(vq, "chain %u: descriptor %u has both NEXT and INDIRECT", c->head,
			       i);
	if (d->len == 0 || d->len % DESC_SIZE)
		return vq_fail(vq,
			       "chain %u: descriptor %u: indirect table length %u is not a "
			       "nonzero multiple of %u",
			       c->head, i, d->len, DESC_SIZE);
	/* Every entry becomes a segment, so a longer table can never be accepted. */
	if (d->len / DESC_SIZE > vq->max_segs)
		return vq_fail(vq,
			       "chain %u: descriptor %u: indirect table of %u entries, more than "
			       "%u",
			       c->head, i, d->len / DESC_SIZE, vq->max_segs);
	*table = vm_mem_ptr(vq->mem, d->addr, d->len);
	if (!*table)
		return vq_fail(vq,
			       "chain %u: descriptor %u: indirect table [0x%" PRIx64
			       ", +0x%x) is not in guest RAM",
			       c->head, i, d->addr, d->len);
	*n = d->len / DESC_SIZE;
	return 0;
}

/* Walks the chain at c->head. A chain without a loop visits each descriptor of
 * a table at most once, so counting steps against the table's length catches
 * every loop without a visited set. Direct descriptors may be followed by one
 * indirect descriptor, which ends the direct part (spec 2.7.5.3.2). */
static int walk_chain(struct vq *vq, const uint8_t *desc_table, struct vq_chain *c)
{
	const uint8_t *table = desc_table;
	uint32_t n = vq->size, i = c->head, steps = 0;
	bool indirect = false;
	struct desc d;
	int rc;

	for (;;) {
		if (++steps > n)
			return vq_fail(vq, "chain %u: longer than its %s table of %u (a loop)",
				       c->head, indirect ? "indirect" : "descriptor", n);
		read_desc(table, i, &d);
		c->ndesc++;
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (indirect)
				return vq_fail(vq,
					       "chain %u: indirect descriptor %u is itself "
					       "indirect (nested tables)",
					       c->head, i);
			rc = enter_indirect(vq, c, &d, i, &table, &n);
			if (rc)
				return rc;
			indirect = true;
			i = 0;
			steps = 0;
			continue;
		}
		rc = add_segment(vq, c, &d, indirect, i);
		if (rc)
			return rc;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= n)
			return vq_fail(vq, "chain %u: %s %u: next %u is outside the table of %u",
				       c->head, indirect ? "indirect descriptor" : "descriptor", i,
				       d.next, n);
		i = d.next;
	}
}

/* Asks the driver to kick once it publishes entry last_avail_idx, the next one
 * the device will look at. Moved on every pop (as long as kicks are wanted):
 * left behind, it would silence the driver until avail->idx wraps round to it. */
static int publish_avail_event(struct vq *vq)
{
	uint8_t *used = used_ring(vq);

	if (!used)
		return -EINVAL;
	store16(used + USED_RING_OFF + USED_ELEM_SIZE * vq->size, vq->last_avail_idx,
		__ATOMIC_RELAXED);
	return 0;
}

int vq_pop(struct vq *vq, struct vq_chain *c)
{
	const uint8_t *avail, *desc_table;
	uint16_t head;
	int rc;

	if (vq->broken)
		return -EINVAL;
	if (!vq->enabled)
		return 0;
	avail = avail_ring(vq);
	if (!avail)
		return -EINVAL;
	if (vq->last_avail_idx == vq->shadow_avail_idx) {
		rc = refresh_avail_idx(vq, avail);
		if (rc)
			return rc;
		if (vq->last_avail_idx == vq->shadow_avail_idx)
			return 0;
	}
	/* size is a power of two, so the mask is the modulo the spec asks for. */
	head = load16(avail + AVAIL_RING_OFF + 2u * (vq->last_avail_idx & (vq->size - 1)),
		      __ATOMIC_RELAXED);
	c->head = head;
	c->ndesc = 0;
	c->nout = 0;
	c->nin = 0;
	c->out_len = 0;
	c->in_len = 0;
	if (head >= vq->size)
		return vq_fail(vq, "available ring entry %u: head %u is outside the queue of %u",
			       vq->last_avail_idx, head, vq->size);
	desc_table = vm_mem_ptr(vq->mem, vq->desc_gpa, desc_bytes(vq->size));
	if (!desc_table)
		return vq_fail(vq, "descriptor table at 0x%" PRIx64 " is no longer in guest RAM",
			       vq->desc_gpa);
	rc = walk_chain(vq, desc_table, c);
	if (rc)
		return rc;
	vq->last_avail_idx++;
	/* A used ring that left guest memory breaks the queue here already;
	 * the chain just taken is still handed out, vq_push() will refuse it. */
	if (vq->event_idx && vq->notify_enabled)
		(void)publish_avail_event(vq);
	return 1;
}

void vq_unpop(struct vq *vq)
{
	vq->last_avail_idx--;
}

int vq_push_batch(struct vq *vq, const uint16_t *heads, const uint32_t *lens, unsigned n)
{
	uint8_t *used, *elem;
	uint16_t idx = vq->used_idx;

	if (vq->broken)
		return -EINVAL;
	if (!vq->enabled || (uint16_t)(vq->last_avail_idx - vq->used_idx) < n)
		return -ERANGE;
	for (unsigned i = 0; i < n; i++)
		if (heads[i] >= vq->size)
			return -ERANGE;
	used = used_ring(vq);
	if (!used)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++, idx++) {
		elem = used + USED_RING_OFF + USED_ELEM_SIZE * (idx & (vq->size - 1));
		store32(elem, heads[i]);
		store32(elem + 4, lens[i]);
	}
	vq->used_idx = idx;
	/* Release: the elements must be visible before the index that hands
	 * them over, and all of them at once (a frame spread over several
	 * buffers must never be seen half-published). */
	store16(used + 2, vq->used_idx, __ATOMIC_RELEASE);
	return 0;
}

int vq_push(struct vq *vq, uint16_t head, uint32_t written_len)
{
	return vq_push_batch(vq, &head, &written_len, 1);
}

bool vq_need_notify(struct vq *vq)
{
	const uint8_t *avail;
	uint16_t old, event;
	bool valid;

	if (!vq->enabled || vq->broken)
		return true;
	/* Full barrier: our used->idx store must be visible before we read the
	 * driver's flags or used_event. Otherwise the driver may re-enable
	 * interrupts after reading the old used->idx while we read its old
	 * "suppressed" state, and neither side wakes the other. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	avail = avail_ring(vq);
	if (!avail)
		return true;
	if (!vq->event_idx)
		return !(load16(avail, __ATOMIC_RELAXED) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	/* With EVENT_IDX the driver's flags are ignored (spec 2.7.7.2). */
	old = vq->signalled_used;
	valid = vq->signalled_used_valid;
	vq->signalled_used = vq->used_idx;
	vq->signalled_used_valid = true;
	if (!valid)
		return true;
	event = load16(avail + AVAIL_RING_OFF + 2u * vq->size, __ATOMIC_RELAXED);
	return vq_need_event(event, vq->used_idx, old);
}

void vq_disable_notify(struct vq *vq)
{
	uint8_t *used;

	vq->notify_enabled = false;
	/* With EVENT_IDX, avail_event no longer moving is enough: the driver kicks
	 * at most once more, when it passes it. */
	if (!vq->enabled || vq->broken || vq->event_idx)
		return;
	used = used_ring(vq);
	if (used)
		store16(used, VIRTQ_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
}

int vq_enable_notify(struct vq *vq)
{
	const uint8_t *avail;
	uint8_t *used;
	uint16_t idx;

	vq->notify_enabled = true;
	if (vq->broken)
		return -EINVAL;
	if (!vq->enabled)
		return 0;
	if (vq->event_idx) {
		if (publish_avail_event(vq))
			return -EINVAL;
	} else {
		used = used_ring(vq);
		if (!used)
			return -EINVAL;
		store16(used, 0, __ATOMIC_RELAXED);
	}
	/* Full barrier: the re-enabled notification must be visible before we look
	 * at avail->idx again, or a chain the driver adds now (seeing notifications
	 * still off) would sit there with nobody woken for it. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	avail = avail_ring(vq);
	if (!avail)
		return -EINVAL;
	idx = load16(avail + 2, __ATOMIC_ACQUIRE);
	return idx != vq->last_avail_idx;
}

const char *vq_error_once(struct vq *vq)
{
	if (!vq->broken || vq->err_reported)
		return NULL;
	vq->err_reported = true;
	return vq->err.msg;
}
