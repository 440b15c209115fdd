/* The virtio-pci modern transport: capabilities, the registers of the BAR,
 * feature negotiation, queue set-up, reset, kicks and interrupts. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pci/pci_internal.h"
#include "pci/virtio_pci.h"
#include "vm/log.h"

#define CFG_DATA_LEN 4
#define U64_LO(v)    ((uint32_t)(v))
#define U64_HI(v)    ((uint32_t)((v) >> 32))

static uint32_t get_le(const uint8_t *p, uint32_t len)
{
	uint32_t v = 0;
	for (uint32_t i = 0; i < len; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static void put_le(uint8_t *p, uint32_t len, uint32_t v)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t checked_vector(const struct virtio_pci *vp, uint32_t v)
{
	/* 4.1.4.3: a vector the device cannot use reads back as NO_VECTOR. */
	return v < vp->nvec ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
}

static void set_hi(uint64_t *v, uint32_t hi)
{
	*v = (*v & 0xffffffffull) | (uint64_t)hi << 32;
}

static void set_lo(uint64_t *v, uint32_t lo)
{
	*v = (*v & ~0xffffffffull) | lo;
}

/* Registers back to their reset values; the device itself is reset apart. */
static void regs_reset(struct virtio_pci *vp)
{
	vp->dfselect = 0;
	vp->gfselect = 0;
	vp->gf = 0;
	vp->gf_beyond = false;
	vp->msix_config = VIRTIO_MSI_NO_VECTOR;
	vp->queue_select = 0;
	for (uint16_t q = 0; q < vp->vdev->num_queues; q++) {
		struct virtio_pci_queue *pq = &vp->q[q];
		pq->size = (uint16_t)vp->vdev->vqs[q].max_size; /* <= VQ_MAX_SIZE */
		pq->vector = VIRTIO_MSI_NO_VECTOR;
		pq->desc = pq->driver = pq->device = 0;
	}
	vp->isr = 0;
	pci_intx_set(&vp->pci, false);
}

static void refuse(struct virtio_pci *vp, const struct chv_err *e)
{
	vp->last_err = *e;
	log_warn("%s: %s", vp->vdev->name, e->msg);
}

/* FEATURES_OK is kept only for a subset of the offered features that
 * includes VERSION_1 (this transport has no legacy interface). */
static bool features_ok(struct virtio_pci *vp)
{
	struct chv_err e = {0};
	uint64_t extra = vp->gf & ~vp->vdev->features;
	if (vp->gf_beyond) {
		chv_err_set(&e, -EINVAL, "driver features include bits past 63, not offered");
		refuse(vp, &e);
		return false;
	}
	if (extra) {
		chv_err_set(&e, -EINVAL, "driver features 0x%llx include 0x%llx, not offered",
			    (unsigned long long)vp->gf, (unsigned long long)extra);
		refuse(vp, &e);
		return false;
	}
	if (!(vp->gf & 1ull << VIRTIO_F_VERSION_1)) {
		chv_err_set(&e, -EINVAL, "driver features 0x%llx lack VIRTIO_F_VERSION_1",
			    (unsigned long long)vp->gf);
		refuse(vp, &e);
		return false;
	}
	vp->vdev->driver_features = vp->gf;
	return true;
}

static void status_write(struct virtio_pci *vp, uint8_t v)
{
	struct virtio_dev *d = vp->vdev;
	if (v == 0) {
		virtio_dev_reset(d);
		regs_reset(vp);
		return;
	}
	uint8_t cur = virtio_dev_status(d);
	/* Only a reset clears bits, and DEVICE_NEEDS_RESET is the device's. */
	uint8_t add = (uint8_t)(v & ~cur & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	if ((add & VIRTIO_STATUS_FEATURES_OK) && !features_ok(vp))
		add &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	if ((add & VIRTIO_STATUS_DRIVER_OK) && !((cur | add) & VIRTIO_STATUS_FEATURES_OK)) {
		struct chv_err e;
		chv_err_set(&e, -EINVAL, "DRIVER_OK without FEATURES_OK (status 0x%x)", v);
		refuse(vp, &e);
		add &= (uint8_t)~VIRTIO_STATUS_DRIVER_OK;
	}
	__atomic_fetch_or(&d->status, add, __ATOMIC_ACQ_REL);
	if (add & VIRTIO_STATUS_DRIVER_OK) {
		virtio_dev_activate(d);
		/* Buffers made available before DRIVER_OK were not kicked
		 * into a live device. */
		for (uint16_t q = 0; q < d->num_queues; q++)
			virtio_dev_kick(d, q);
	}
}

static void queue_enable(struct virtio_pci *vp, uint16_t qi)
{
	struct virtio_dev *d = vp->vdev;
	struct virtio_pci_queue *pq = &vp->q[qi];
	struct vq *vq = &d->vqs[qi];
	struct chv_err e = {0};
	int rc;

	if (vq->enabled)
		return;
	if (!(virtio_dev_status(d) & VIRTIO_STATUS_FEATURES_OK)) {
		chv_err_set(&e, -EINVAL, "queue %u enabled before FEATURES_OK", qi);
		rc = -EINVAL;
	} else {
		rc = vq_set_size(vq, pq->size, &e);
		if (!rc)
			rc = vq_set_addrs(vq, pq->desc, pq->driver, pq->device, &e);
		if (!rc)
			rc = vq_enable(vq, d->driver_features, &e);
	}
	if (rc) {
		refuse(vp, &e);
		/* The driver believes the queue works: it must learn otherwise. */
		virtio_set_needs_reset(d, "%s", e.msg);
	}
}

static uint32_t common_read(struct virtio_pci *vp, uint32_t off)
{
	struct virtio_dev *d = vp->vdev;
	uint16_t qs = vp->queue_select;
	bool qok = qs < d->num_queues;
	const struct virtio_pci_queue *pq = qok ? &vp->q[qs] : NULL;

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		return vp->dfselect;
	case VIRTIO_PCI_COMMON_DF:
		return vp->dfselect == 0   ? U64_LO(d->features)
		       : vp->dfselect == 1 ? U64_HI(d->features)
					   : 0;
	case VIRTIO_PCI_COMMON_GFSELECT:
		return vp->gfselect;
	case VIRTIO_PCI_COMMON_GF:
		return vp->gfselect == 0 ? U64_LO(vp->gf) : vp->gfselect == 1 ? U64_HI(vp->gf) : 0;
	case VIRTIO_PCI_COMMON_MSIX:
		return vp->msix_config;
	case VIRTIO_PCI_COMMON_NUMQ:
		return d->num_queues;
	case VIRTIO_PCI_COMMON_STATUS:
		return virtio_dev_status(d);
	case VIRTIO_PCI_COMMON_CFGGEN:
		return __atomic_load_n(&d->config_generation, __ATOMIC_ACQUIRE);
	case VIRTIO_PCI_COMMON_Q_SELECT:
		return qs;
	}
	if (!qok)
		return 0; /* queue_size 0: no such queue (4.1.4.3) */
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE:
		return pq->size;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		return pq->vector;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		return d->vqs[qs].enabled;
	case VIRTIO_PCI_COMMON_Q_NOFF:
		return qs;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
		return U64_LO(pq->desc);
	case VIRTIO_PCI_COMMON_Q_DESCHI:
		return U64_HI(pq->desc);
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
		return U64_LO(pq->driver);
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
		return U64_HI(pq->driver);
	case VIRTIO_PCI_COMMON_Q_USEDLO:
		return U64_LO(pq->device);
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		return U64_HI(pq->device);
	}
	return 0;
}

static void common_write(struct virtio_pci *vp, uint32_t off, uint32_t v)
{
	struct virtio_dev *d = vp->vdev;
	uint16_t qs = vp->queue_select;

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		vp->dfselect = v;
		return;
	case VIRTIO_PCI_COMMON_GFSELECT:
		vp->gfselect = v;
		return;
	case VIRTIO_PCI_COMMON_GF:
		/* Features are fixed once FEATURES_OK is accepted. */
		if (virtio_dev_status(d) & VIRTIO_STATUS_FEATURES_OK)
			return;
		if (vp->gfselect == 0)
			set_lo(&vp->gf, v);
		else if (vp->gfselect == 1)
			set_hi(&vp->gf, v);
		else if (v)
			vp->gf_beyond = true; /* bits past 63 are never offered */
		return;
	case VIRTIO_PCI_COMMON_MSIX:
		vp->msix_config = checked_vector(vp, v);
		return;
	case VIRTIO_PCI_COMMON_STATUS:
		status_write(vp, (uint8_t)v);
		return;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		vp->queue_select = (uint16_t)v;
		return;
	}
	if (qs >= d->num_queues)
		return;
	struct virtio_pci_queue *pq = &vp->q[qs];
	if (off == VIRTIO_PCI_COMMON_Q_MSIX) {
		pq->vector = checked_vector(vp, v);
		return;
	}
	if (off == VIRTIO_PCI_COMMON_Q_ENABLE) {
		/* Writing 0 is not allowed to the driver (4.1.4.3.2): ignored. */
		if (v == 1)
			queue_enable(vp, qs);
		return;
	}
	/* The layout of an enabled queue is fixed until reset. */
	if (d->vqs[qs].enabled)
		return;
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE:
		pq->size = (uint16_t)v;
		break;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
		set_lo(&pq->desc, v);
		break;
	case VIRTIO_PCI_COMMON_Q_DESCHI:
		set_hi(&pq->desc, v);
		break;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
		set_lo(&pq->driver, v);
		break;
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
		set_hi(&pq->driver, v);
		break;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
		set_lo(&pq->device, v);
		break;
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		set_hi(&pq->device, v);
		break;
	}
}

/* The width of the field at off, 0 when no field starts there. */
static uint32_t common_width(uint32_t off)
{
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
	case VIRTIO_PCI_COMMON_DF:
	case VIRTIO_PCI_COMMON_GFSELECT:
	case VIRTIO_PCI_COMMON_GF:
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_DESCHI:
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
	case VIRTIO_PCI_COMMON_Q_USEDLO:
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		return 4;
	case VIRTIO_PCI_COMMON_STATUS:
	case VIRTIO_PCI_COMMON_CFGGEN:
		return 1;
	case VIRTIO_PCI_COMMON_MSIX:
	case VIRTIO_PCI_COMMON_NUMQ:
	case VIRTIO_PCI_COMMON_Q_SELECT:
	case VIRTIO_PCI_COMMON_Q_SIZE:
	case VIRTIO_PCI_COMMON_Q_MSIX:
	case VIRTIO_PCI_COMMON_Q_ENABLE:
	case VIRTIO_PCI_COMMON_Q_NOFF:
		return 2;
	}
	return 0;
}

/* Each field is accessed at its own width (4.1.3.1); the 64-bit queue
 * addresses also as one 64-bit access. Anything else reads 0 and is dropped. */
static void common_io(struct virtio_pci *vp, uint32_t off, uint8_t *data, uint32_t len,
		      bool is_write)
{
	bool addr64 =
	    len == 8 && (off == VIRTIO_PCI_COMMON_Q_DESCLO || off == VIRTIO_PCI_COMMON_Q_AVAILLO ||
			 off == VIRTIO_PCI_COMMON_Q_USEDLO);
	if (addr64) {
		common_io(vp, off, data, 4, is_write);
		common_io(vp, off + 4, data + 4, 4, is_write);
		return;
	}
	if (common_width(off) != len)
		return;
	if (is_write)
		common_write(vp, off, get_le(data, len));
	else
		put_le(data, len, common_read(vp, off));
}

static void isr_read(struct virtio_pci *vp, uint8_t *data)
{
	data[0] = vp->isr;
	vp->isr = 0;
	pci_intx_set(&vp->pci, false);
}

static void device_io(struct virtio_pci *vp, uint32_t off, uint8_t *data, uint32_t len,
		      bool is_write)
{
	struct virtio_dev *d = vp->vdev;
	if (off >= d->config_size || len > d->config_size - off)
		return;
	if (is_write) {
		if (d->ops->config_write)
			d->ops->config_write(d, off, data, len);
	} else if (d->ops->config_read) {
		d->ops->config_read(d, off, data, len);
	}
}

static void notify_write(struct virtio_pci *vp, uint32_t off, uint32_t len)
{
	uint32_t q = off / VIRTIO_PCI_NOTIFY_MUL;
	/* The driver writes the 16-bit queue index at the queue's own slot
	 * (32 bits would carry notification data, which is not offered). */
	if (off % VIRTIO_PCI_NOTIFY_MUL || (len != 2 && len != 4) || q >= vp->vdev->num_queues)
		return;
	virtio_dev_kick(vp->vdev, (uint16_t)q);
}

static bool in_region(uint64_t off, uint32_t len, uint64_t start, uint64_t size)
{
	return off >= start && off - start < size && len <= size - (off - start);
}

void virtio_pci_bar_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct virtio_pci *vp = opaque;
	if (!is_write)
		memset(data, 0, len);
	if (len == 0 || len > 8 || !in_region(offset, len, 0, VIRTIO_PCI_BAR_SIZE))
		return;
	struct pci_msix *msix = __atomic_load_n(&vp->msix, __ATOMIC_ACQUIRE);
	if (msix && pci_msix_bar_io(msix, VIRTIO_PCI_BAR, offset, data, len, is_write))
		return;
	pci_dev_lock(&vp->pci);
	if (in_region(offset, len, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_LEN))
		common_io(vp, (uint32_t)(offset - VIRTIO_PCI_COMMON_OFF), data, len, is_write);
	else if (offset == VIRTIO_PCI_ISR_OFF && !is_write)
		isr_read(vp, data);
	else if (in_region(offset, len, VIRTIO_PCI_DEVICE_OFF, VIRTIO_MAX_CONFIG))
		device_io(vp, (uint32_t)(offset - VIRTIO_PCI_DEVICE_OFF), data, len, is_write);
	else if (is_write && in_region(offset, len, VIRTIO_PCI_NOTIFY_OFF,
				       (uint64_t)VIRTIO_PCI_NOTIFY_MUL * vp->vdev->num_queues))
		notify_write(vp, (uint32_t)(offset - VIRTIO_PCI_NOTIFY_OFF), len);
	pci_dev_unlock(&vp->pci);
}

void virtio_pci_kick(struct virtio_pci *vp, uint16_t q)
{
	pci_dev_lock(&vp->pci);
	virtio_dev_kick(vp->vdev, q);
	pci_dev_unlock(&vp->pci);
}

int virtio_pci_notify_info(struct virtio_pci *vp, uint16_t q, struct virtio_pci_notify *out)
{
	if (q >= vp->vdev->num_queues)
		return -EINVAL;
	pci_dev_lock(&vp->pci);
	uint64_t base = vp->pci.bar[VIRTIO_PCI_BAR].mapped;
	pci_dev_unlock(&vp->pci);
	out->offset = VIRTIO_PCI_NOTIFY_OFF + (uint64_t)q * VIRTIO_PCI_NOTIFY_MUL;
	out->addr = base == PCI_BAR_UNMAPPED ? PCI_BAR_UNMAPPED : base + out->offset;
	out->len = 2;
	out->datamatch = q;
	return 0;
}

/* The device's interrupts: its MSI-X vector when MSI-X is on, else the ISR
 * bit and INTx. The configuration bit is set in ISR either way (4.1.4.5). */
static void vp_signal(void *ctx, enum virtio_irq kind, uint16_t q)
{
	struct virtio_pci *vp = ctx;
	uint16_t vector;
	if (kind == VIRTIO_IRQ_QUEUE) {
		if (q >= vp->vdev->num_queues)
			return;
		vector = __atomic_load_n(&vp->q[q].vector, __ATOMIC_RELAXED);
	} else {
		vector = __atomic_load_n(&vp->msix_config, __ATOMIC_RELAXED);
	}
	uint8_t bit = kind == VIRTIO_IRQ_QUEUE ? VIRTIO_PCI_ISR_QUEUE : VIRTIO_PCI_ISR_CONFIG;
	struct pci_msix *msix = __atomic_load_n(&vp->msix, __ATOMIC_ACQUIRE);
	if (msix && pci_msix_enabled(msix)) {
		if (kind == VIRTIO_IRQ_CONFIG)
			__atomic_fetch_or(&vp->isr, bit, __ATOMIC_RELAXED);
		if (vector == VIRTIO_MSI_NO_VECTOR)
			return;
		if (pci_msix_notify(msix, vector) != PCI_MSIX_DISABLED)
			return;
	}
	pci_dev_lock(&vp->pci);
	vp->isr |= bit;
	pci_intx_set(&vp->pci, true);
	pci_dev_unlock(&vp->pci);
}

/* The VIRTIO_PCI_CAP_PCI_CFG window: pci_cfg_data reaches length bytes of
 * the BAR at offset, when those are a width the BAR takes. */
static bool cfg_window(struct virtio_pci *vp, uint32_t off, uint32_t len, uint32_t *boff,
		       uint32_t *blen)
{
	uint32_t data = vp->pci_cfg_cap + VIRTIO_PCI_CAP_CFG_DATA;
	if (!vp->pci_cfg_cap || off < data || off + len > data + CFG_DATA_LEN)
		return false;
	*boff = pci_cfg_get32(&vp->pci, vp->pci_cfg_cap + VIRTIO_PCI_CAP_OFFSET);
	*blen = pci_cfg_get32(&vp->pci, vp->pci_cfg_cap + VIRTIO_PCI_CAP_LENGTH);
	return true;
}

static bool cfg_window_ok(struct virtio_pci *vp, uint32_t boff, uint32_t blen)
{
	return pci_cfg_get8(&vp->pci, vp->pci_cfg_cap + VIRTIO_PCI_CAP_BAR) == VIRTIO_PCI_BAR &&
	       (blen == 1 || blen == 2 || blen == 4) && boff % blen == 0 &&
	       boff < VIRTIO_PCI_BAR_SIZE;
}

static bool vp_cfg_read(struct pci_dev *dev, uint32_t off, uint32_t len, uint32_t *val)
{
	struct virtio_pci *vp = dev->opaque;
	uint32_t boff, blen;
	if (!cfg_window(vp, off, len, &boff, &blen))
		return false;
	uint8_t buf[CFG_DATA_LEN] = {0};
	if (cfg_window_ok(vp, boff, blen))
		virtio_pci_bar_io(vp, boff, buf, blen, false);
	uint32_t at = off - (vp->pci_cfg_cap + VIRTIO_PCI_CAP_CFG_DATA);
	*val = get_le(buf + at, len);
	return true;
}

static bool vp_cfg_write(struct pci_dev *dev, uint32_t off, uint32_t len, uint32_t val)
{
	struct virtio_pci *vp = dev->opaque;
	uint32_t boff, blen;
	if (!cfg_window(vp, off, len, &boff, &blen))
		return false;
	uint8_t buf[CFG_DATA_LEN] = {0};
	uint32_t at = off - (vp->pci_cfg_cap + VIRTIO_PCI_CAP_CFG_DATA);
	put_le(buf + at, len, val);
	if (cfg_window_ok(vp, boff, blen))
		virtio_pci_bar_io(vp, boff, buf, blen, true);
	return true;
}

static void vp_bar_moved(struct pci_dev *dev, unsigned bar, uint64_t old_addr, uint64_t new_addr)
{
	struct virtio_pci *vp = dev->opaque;
	if (bar == VIRTIO_PCI_BAR && vp->host.bar_moved)
		vp->host.bar_moved(vp->host.ctx, old_addr, new_addr);
}

static const struct pci_dev_ops vp_pci_ops = {
    .cfg_read = vp_cfg_read,
    .cfg_write = vp_cfg_write,
    .bar_moved = vp_bar_moved,
};

static uint32_t class_of(uint16_t device_id)
{
	switch (device_id) {
	case VIRTIO_ID_NET:
		return 0x020000; /* Ethernet controller */
	case VIRTIO_ID_BLOCK:
		return 0x018000; /* other mass storage */
	case VIRTIO_ID_CONSOLE:
		return 0x078000; /* other communication */
	}
	return 0xff0000; /* unassigned class */
}

static int add_vcap(struct virtio_pci *vp, uint8_t type, uint32_t cap_len, uint32_t off,
		    uint32_t len, struct chv_err *err)
{
	int at = pci_add_cap(&vp->pci, PCI_CAP_ID_VNDR, cap_len);
	if (at < 0)
		return chv_err_set(err, at, "%s: no room for virtio capability %u", vp->vdev->name,
				   type);
	pci_cfg_set8(&vp->pci, (uint32_t)at + 2, (uint8_t)cap_len);
	pci_cfg_set8(&vp->pci, (uint32_t)at + VIRTIO_PCI_CAP_CFG_TYPE, type);
	pci_cfg_set8(&vp->pci, (uint32_t)at + VIRTIO_PCI_CAP_BAR, VIRTIO_PCI_BAR);
	pci_cfg_set32(&vp->pci, (uint32_t)at + VIRTIO_PCI_CAP_OFFSET, off);
	pci_cfg_set32(&vp->pci, (uint32_t)at + VIRTIO_PCI_CAP_LENGTH, len);
	return at;
}

static int add_caps(struct virtio_pci *vp, struct chv_err *err)
{
	struct virtio_dev *d = vp->vdev;
	int at = add_vcap(vp, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_LEN, VIRTIO_PCI_COMMON_OFF,
			  VIRTIO_PCI_COMMON_LEN, err);
	if (at < 0)
		return at;
	at = add_vcap(vp, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_CAP_LEN,
		      VIRTIO_PCI_NOTIFY_OFF, (uint32_t)VIRTIO_PCI_NOTIFY_MUL * d->num_queues, err);
	if (at < 0)
		return at;
	pci_cfg_set32(&vp->pci, (uint32_t)at + VIRTIO_PCI_CAP_NOTIFY_MUL, VIRTIO_PCI_NOTIFY_MUL);
	at = add_vcap(vp, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_CAP_LEN, VIRTIO_PCI_ISR_OFF, 1, err);
	if (at < 0)
		return at;
	if (d->config_size) {
		at = add_vcap(vp, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_CAP_LEN,
			      VIRTIO_PCI_DEVICE_OFF, d->config_size, err);
		if (at < 0)
			return at;
	}
	/* The access window: bar, offset and length are the driver's to set. */
	at = add_vcap(vp, VIRTIO_PCI_CAP_PCI_CFG, VIRTIO_PCI_CFG_CAP_LEN, 0, 0, err);
	if (at < 0)
		return at;
	pci_cfg_set8(&vp->pci, (uint32_t)at + VIRTIO_PCI_CAP_BAR, 0);
	pci_cfg_set_masks(&vp->pci, (uint32_t)at + VIRTIO_PCI_CAP_BAR, 1, 0xff, 0);
	pci_cfg_set_masks(&vp->pci, (uint32_t)at + VIRTIO_PCI_CAP_OFFSET, 4, 0xffffffff, 0);
	pci_cfg_set_masks(&vp->pci, (uint32_t)at + VIRTIO_PCI_CAP_LENGTH, 4, 0xffffffff, 0);
	vp->pci_cfg_cap = (uint8_t)at;
	return 0;
}

void virtio_pci_msix_cfg(const struct virtio_pci *vp, struct pci_msix_cfg *out)
{
	*out = (struct pci_msix_cfg){
	    .nvec = vp->nvec,
	    .table_bar = VIRTIO_PCI_BAR,
	    .table_off = VIRTIO_PCI_MSIX_TABLE_OFF,
	    .pba_bar = VIRTIO_PCI_BAR,
	    .pba_off = VIRTIO_PCI_MSIX_PBA_OFF,
	};
}

void virtio_pci_set_msix(struct virtio_pci *vp, struct pci_msix *msix)
{
	pci_dev_lock(&vp->pci);
	__atomic_store_n(&vp->msix, msix, __ATOMIC_RELEASE);
	pci_dev_unlock(&vp->pci);
}

int virtio_pci_init(struct virtio_pci *vp, struct virtio_dev *vdev,
		    const struct virtio_pci_host *host, struct chv_err *err)
{
	memset(vp, 0, sizeof(*vp));
	if (!vdev || !vdev->vqs || vdev->num_queues == 0)
		return chv_err_set(err, -EINVAL, "virtio-pci: device not initialised");
	if (host)
		vp->host = *host;
	vp->vdev = vdev;
	uint32_t max_vec =
	    (VIRTIO_PCI_MSIX_PBA_OFF - VIRTIO_PCI_MSIX_TABLE_OFF) / PCI_MSIX_ENTRY_SIZE;
	vp->nvec = vp->host.nvec ? vp->host.nvec : (uint16_t)(vdev->num_queues + 1);
	if (vp->nvec > max_vec)
		return chv_err_set(err, -EINVAL, "%s: nvec=%u is not in 1..%u", vdev->name,
				   vp->nvec, max_vec);
	vp->q = calloc(vdev->num_queues, sizeof(*vp->q));
	if (!vp->q)
		return chv_err_set(err, -ENOMEM, "%s: out of memory", vdev->name);

	const struct pci_dev_info info = {
	    .vendor = VIRTIO_PCI_VENDOR,
	    .device = (uint16_t)(VIRTIO_PCI_DEVICE_BASE + vdev->device_id),
	    .subsys_vendor = VIRTIO_PCI_SUBSYS_VENDOR,
	    .subsys_id = (uint16_t)(VIRTIO_PCI_SUBSYS_ID_BASE + vdev->device_id),
	    .revision = VIRTIO_PCI_REVISION,
	    .class_code = class_of(vdev->device_id),
	    .irq_pin = 1,
	};
	int rc = pci_dev_init(&vp->pci, &info, &vp_pci_ops, vp);
	if (rc)
		return chv_err_set(err, rc, "%s: PCI function: %s", vdev->name, strerror(-rc));
	rc = pci_dev_set_bar(&vp->pci, VIRTIO_PCI_BAR, PCI_BAR_MEM64, VIRTIO_PCI_BAR_SIZE, false,
			     err);
	if (rc)
		return rc;
	rc = add_caps(vp, err);
	if (rc)
		return rc;
	if (!vp->host.msix_external) {
		struct pci_msix_cfg mcfg;
		virtio_pci_msix_cfg(vp, &mcfg);
		rc = pci_msix_init(&vp->pci, &mcfg, vp->host.msix_ops, vp->host.msix_opaque,
				   &vp->msix, err);
		if (rc)
			return rc;
	}
	regs_reset(vp);
	const struct virtio_transport t = {.signal = vp_signal, .ctx = vp};
	virtio_dev_set_transport(vdev, &t);
	return 0;
}

void virtio_pci_destroy(struct virtio_pci *vp)
{
	if (vp->vdev)
		virtio_dev_set_transport(vp->vdev, NULL);
	pci_dev_destroy(&vp->pci);
	vp->msix = NULL;
	free(vp->q);
	vp->q = NULL;
	vp->vdev = NULL;
}
