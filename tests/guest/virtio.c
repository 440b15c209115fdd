/* The virtio-pci modern driver core every device driver builds on: find the
 * function, walk its vendor capabilities to the common, notify, ISR and
 * device structures, place the BAR(s) below 4 GiB, run the status handshake
 * (reset, ACKNOWLEDGE | DRIVER, features with VERSION_1, FEATURES_OK), set up
 * split queues and DRIVER_OK. Queues are polled: the guest runs with
 * interrupts off, so every queue is given NO_VECTOR.
 *
 * Set-up is a few dozen register accesses at CPL0; virtq_transact() is the
 * data path and runs at CPL3 too (its only hardware access is the notify
 * write, to a user-accessible mapping). Each common register is accessed at
 * its own width, as the specification requires. */
#include "guest.h"

#define PCI_STATUS	0x06
#define PCI_STATUS_CAPS 0x10
#define PCI_CAP_PTR	0x34
#define PCI_CAP_ID_VNDR 0x09
#define CAP_COMMON	1
#define CAP_NOTIFY	2
#define CAP_ISR		3
#define CAP_DEVICE	4
#define MODERN_ID_BASE	0x1040
#define NO_VECTOR	0xffff

/* struct virtio_pci_common_cfg offsets. */
#define C_DFSELECT  0x00
#define C_DF	    0x04
#define C_GFSELECT  0x08
#define C_GF	    0x0c
#define C_MSIX	    0x10
#define C_NUMQ	    0x12
#define C_STATUS    0x14
#define C_Q_SELECT  0x16
#define C_Q_SIZE    0x18
#define C_Q_MSIX    0x1a
#define C_Q_ENABLE  0x1c
#define C_Q_NOFF    0x1e
#define C_Q_DESCLO  0x20
#define C_Q_DESCHI  0x24
#define C_Q_AVAILLO 0x28
#define C_Q_AVAILHI 0x2c
#define C_Q_USEDLO  0x30
#define C_Q_USEDHI  0x34

#define RING_AVAIL_OFF 0x100
#define RING_USED_OFF  0x200
#define RING_PAGE      4096

static void w8(uint64_t pa, uint8_t v)
{
	*(volatile uint8_t *)(uintptr_t)pa = v;
}
static void w16(uint64_t pa, uint16_t v)
{
	*(volatile uint16_t *)(uintptr_t)pa = v;
}
static void w32(uint64_t pa, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)pa = v;
}
static uint8_t r8(uint64_t pa)
{
	return *(volatile uint8_t *)(uintptr_t)pa;
}
static uint16_t r16(uint64_t pa)
{
	return *(volatile uint16_t *)(uintptr_t)pa;
}
static uint32_t r32(uint64_t pa)
{
	return *(volatile uint32_t *)(uintptr_t)pa;
}

uint8_t virtio_status(const struct virtio_dev *v)
{
	return r8(v->common + C_STATUS);
}

void virtio_reset(struct virtio_dev *v)
{
	w8(v->common + C_STATUS, 0);
	/* 4.1.4.3.2: the reset is done once status reads back 0. */
	for (int i = 0; i < 1000 && virtio_status(v); i++)
		;
}

struct bar_map {
	bool mapped;
	uint64_t pa, len;
};

/* A structure of len bytes at off in BAR bar, mapped when first used. */
static bool locate(const struct virtio_dev *v, struct bar_map *bars, uint8_t bar, uint32_t off,
		   uint32_t len, uint64_t *pa, char *why, size_t cap)
{
	if (bar >= 6) {
		ksnprintf(why, cap, "capability names BAR%u", bar);
		return false;
	}
	struct bar_map *b = &bars[bar];
	if (!b->mapped) {
		char w[96];
		if (!pci_bar_map(&v->pci, bar, &b->pa, &b->len, w, sizeof(w))) {
			ksnprintf(why, cap, "%02x:%02x.%x %s", v->pci.bus, v->pci.dev, v->pci.fn,
				  w);
			return false;
		}
		b->mapped = true;
	}
	if ((uint64_t)off + len > b->len) {
		ksnprintf(why, cap, "structure at BAR%u+0x%x (0x%x bytes) is outside the BAR", bar,
			  off, len);
		return false;
	}
	*pa = b->pa + off;
	return true;
}

bool virtio_open(uint16_t device_id, struct virtio_dev *v, char *why, size_t cap)
{
	memset(v, 0, sizeof(*v));
	if (!pci_init(why, cap))
		return false;
	/* Transitional devices (QEMU's default on a root bus) have legacy ids
	 * and the same modern capabilities. */
	static const uint16_t transitional[5] = {0, 0x1000, 0x1001, 0x1003, 0x1005};
	const uint16_t ids[2] = {(uint16_t)(MODERN_ID_BASE + device_id),
				 device_id < 5 ? transitional[device_id] : 0};
	if (!pci_find(VIRTIO_VENDOR, ids, ids[1] ? 2 : 1, &v->pci)) {
		ksnprintf(why, cap, "no virtio device %u (%04x:%04x) on the bus", device_id,
			  VIRTIO_VENDOR, ids[0]);
		return false;
	}
	if (!(pci_cfg_read16(&v->pci, PCI_STATUS) & PCI_STATUS_CAPS)) {
		ksnprintf(why, cap, "no capability list");
		return false;
	}
	struct bar_map bars[6] = {0};
	bool have[5] = {0};
	unsigned at = pci_cfg_read8(&v->pci, PCI_CAP_PTR) & ~3u;
	/* 48 capabilities at most fit in config space: a loop cannot go on. */
	for (int n = 0; at >= 0x40 && n < 48; n++) {
		uint8_t id = pci_cfg_read8(&v->pci, at), next = pci_cfg_read8(&v->pci, at + 1);
		uint8_t type = pci_cfg_read8(&v->pci, at + 3);
		if (id == PCI_CAP_ID_VNDR && type >= CAP_COMMON && type <= CAP_DEVICE &&
		    !have[type]) {
			uint8_t bar = pci_cfg_read8(&v->pci, at + 4);
			uint32_t off = pci_cfg_read32(&v->pci, at + 8);
			uint32_t len = pci_cfg_read32(&v->pci, at + 12);
			uint64_t *dst = type == CAP_COMMON   ? &v->common
					: type == CAP_NOTIFY ? &v->notify_base
					: type == CAP_ISR    ? &v->isr
							     : &v->device;
			if (!locate(v, bars, bar, off, len, dst, why, cap))
				return false;
			if (type == CAP_NOTIFY)
				v->notify_mul = pci_cfg_read32(&v->pci, at + 16);
			if (type == CAP_DEVICE)
				v->device_len = len;
			if (type == CAP_COMMON) {
				v->bar = bar;
				v->bar_pa = bars[bar].pa;
			}
			have[type] = true;
		}
		at = next & ~3u;
	}
	static const char *const names[5] = {"", "common", "notify", "ISR", "device"};
	for (unsigned t = CAP_COMMON; t <= CAP_ISR; t++)
		if (!have[t]) {
			ksnprintf(why, cap, "no %s configuration capability", names[t]);
			return false;
		}
	virtio_reset(v);
	if (virtio_status(v)) {
		ksnprintf(why, cap, "status 0x%x after reset, not 0", virtio_status(v));
		return false;
	}
	w8(v->common + C_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	w8(v->common + C_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	w16(v->common + C_MSIX, NO_VECTOR);
	return true;
}

bool virtio_negotiate(struct virtio_dev *v, uint64_t want, char *why, size_t cap)
{
	w32(v->common + C_DFSELECT, 0);
	uint64_t offered = r32(v->common + C_DF);
	w32(v->common + C_DFSELECT, 1);
	offered |= (uint64_t)r32(v->common + C_DF) << 32;
	if (!(offered >> VIRTIO_F_VERSION_1 & 1)) {
		ksnprintf(why, cap, "device features 0x%lx lack VERSION_1", offered);
		return false;
	}
	uint64_t take = (want | 1ULL << VIRTIO_F_VERSION_1) & offered;
	w32(v->common + C_GFSELECT, 0);
	w32(v->common + C_GF, (uint32_t)take);
	w32(v->common + C_GFSELECT, 1);
	w32(v->common + C_GF, (uint32_t)(take >> 32));
	uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
	w8(v->common + C_STATUS, st);
	if (!(virtio_status(v) & VIRTIO_STATUS_FEATURES_OK)) {
		ksnprintf(why, cap, "the device refused features 0x%lx (offered 0x%lx)", take,
			  offered);
		w8(v->common + C_STATUS, st | VIRTIO_STATUS_FAILED);
		return false;
	}
	v->features = take;
	return true;
}

bool virtio_queue_setup(struct virtio_dev *v, uint16_t q, struct virtq *vq, uint64_t ring_pa,
			char *why, size_t cap)
{
	if (q >= r16(v->common + C_NUMQ)) {
		ksnprintf(why, cap, "queue %u: the device has %u", q, r16(v->common + C_NUMQ));
		return false;
	}
	w16(v->common + C_Q_SELECT, q);
	uint16_t max = r16(v->common + C_Q_SIZE);
	if (!max) {
		ksnprintf(why, cap, "queue %u is not available (size 0)", q);
		return false;
	}
	if (r16(v->common + C_Q_ENABLE)) {
		ksnprintf(why, cap, "queue %u is enabled after reset", q);
		return false;
	}
	uint16_t size = max < VIRTQ_MAX ? max : VIRTQ_MAX;
	/* Descriptors are written before use and used entries read only after
	 * the device publishes them: only flags and indices need a value. */
	vq->index = q;
	vq->size = size;
	vq->desc = (volatile struct virtq_desc *)(uintptr_t)ring_pa;
	vq->avail = (volatile uint16_t *)(uintptr_t)(ring_pa + RING_AVAIL_OFF);
	vq->used = (volatile uint8_t *)(uintptr_t)(ring_pa + RING_USED_OFF);
	vq->avail[0] = 0;
	vq->avail[1] = 0;
	*(volatile uint32_t *)vq->used = 0;
	vq->avail_idx = vq->last_used = 0;
	w16(v->common + C_Q_SIZE, size);
	w16(v->common + C_Q_MSIX, NO_VECTOR);
	w32(v->common + C_Q_DESCLO, (uint32_t)ring_pa);
	w32(v->common + C_Q_DESCHI, (uint32_t)(ring_pa >> 32));
	w32(v->common + C_Q_AVAILLO, (uint32_t)(ring_pa + RING_AVAIL_OFF));
	w32(v->common + C_Q_AVAILHI, (uint32_t)((ring_pa + RING_AVAIL_OFF) >> 32));
	w32(v->common + C_Q_USEDLO, (uint32_t)(ring_pa + RING_USED_OFF));
	w32(v->common + C_Q_USEDHI, (uint32_t)((ring_pa + RING_USED_OFF) >> 32));
	uint16_t noff = r16(v->common + C_Q_NOFF);
	vq->notify = v->notify_base + (uint64_t)noff * v->notify_mul;
	w16(v->common + C_Q_ENABLE, 1);
	if (r16(v->common + C_Q_ENABLE) != 1 || (virtio_status(v) & VIRTIO_STATUS_NEEDS_RESET)) {
		ksnprintf(why, cap, "queue %u: enable refused (status 0x%x)", q, virtio_status(v));
		return false;
	}
	return true;
}

void virtio_driver_ok(struct virtio_dev *v)
{
	w8(v->common + C_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

void virtq_publish(struct virtq *vq, uint16_t head)
{
	vq->avail[2 + vq->avail_idx % vq->size] = head;
	/* The descriptors and the ring entry before the index that publishes them. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	vq->avail[1] = ++vq->avail_idx;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void virtq_kick(const struct virtq *vq)
{
	*(volatile uint16_t *)(uintptr_t)vq->notify = vq->index;
}

bool virtq_used_pop(struct virtq *vq, uint32_t *id, uint32_t *len)
{
	volatile uint16_t *used_idx = (volatile uint16_t *)(vq->used + 2);
	if (*used_idx == vq->last_used)
		return false;
	/* The entry is read only after the index that published it. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	const volatile uint8_t *e = vq->used + 4 + 8 * (vq->last_used % vq->size);
	*id = *(const volatile uint32_t *)e;
	*len = *(const volatile uint32_t *)(e + 4);
	vq->last_used++;
	return true;
}

int64_t virtq_transact(struct virtq *vq, const struct virtq_buf *bufs, unsigned n,
		       uint64_t deadline_tsc)
{
	if (!n || n > vq->size)
		return -1;
	/* One chain at a time: descriptors 0..n-1, head 0. */
	for (unsigned i = 0; i < n; i++) {
		vq->desc[i].addr = bufs[i].pa;
		vq->desc[i].len = bufs[i].len;
		vq->desc[i].flags = (uint16_t)((i + 1 < n ? VIRTQ_DESC_F_NEXT : 0) |
					       (bufs[i].device_writes ? VIRTQ_DESC_F_WRITE : 0));
		vq->desc[i].next = (uint16_t)(i + 1 < n ? i + 1 : 0);
	}
	virtq_publish(vq, 0);
	virtq_kick(vq);

	uint32_t id, len;
	while (!virtq_used_pop(vq, &id, &len)) {
		if ((int64_t)(rdtsc() - deadline_tsc) > 0)
			return -1;
		__asm__ volatile("pause");
	}
	return id == 0 ? (int64_t)len : -1;
}
