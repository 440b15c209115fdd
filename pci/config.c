/* Type-0 configuration space of one function: stored header and masks,
 * guest reads and writes, and the side effects of command and BAR writes. */
#include <errno.h>
#include <string.h>

#include "pci/pci.h"
#include "pci/pci_internal.h"

void pci_dev_lock(struct pci_dev *dev)
{
	pthread_mutex_lock(&dev->lock);
}

void pci_dev_unlock(struct pci_dev *dev)
{
	pthread_mutex_unlock(&dev->lock);
}

static bool stored(uint32_t off, uint32_t len)
{
	return off < PCI_CFG_HEADER_SIZE && len <= PCI_CFG_HEADER_SIZE - off;
}

static uint32_t load(const uint8_t *p, uint32_t off, uint32_t len)
{
	uint32_t v = 0;
	for (uint32_t i = 0; i < len; i++)
		v |= (uint32_t)p[off + i] << (8 * i);
	return v;
}

static void store(uint8_t *p, uint32_t off, uint32_t len, uint32_t v)
{
	for (uint32_t i = 0; i < len; i++)
		p[off + i] = (uint8_t)(v >> (8 * i));
}

void pci_cfg_set8(struct pci_dev *dev, uint32_t off, uint8_t v)
{
	if (stored(off, 1))
		dev->cfg[off] = v;
}

void pci_cfg_set16(struct pci_dev *dev, uint32_t off, uint16_t v)
{
	if (stored(off, 2))
		store(dev->cfg, off, 2, v);
}

void pci_cfg_set32(struct pci_dev *dev, uint32_t off, uint32_t v)
{
	if (stored(off, 4))
		store(dev->cfg, off, 4, v);
}

uint8_t pci_cfg_get8(struct pci_dev *dev, uint32_t off)
{
	return stored(off, 1) ? dev->cfg[off] : 0;
}

uint16_t pci_cfg_get16(struct pci_dev *dev, uint32_t off)
{
	return stored(off, 2) ? (uint16_t)load(dev->cfg, off, 2) : 0;
}

uint32_t pci_cfg_get32(struct pci_dev *dev, uint32_t off)
{
	return stored(off, 4) ? load(dev->cfg, off, 4) : 0;
}

void pci_cfg_set_masks(struct pci_dev *dev, uint32_t off, uint32_t len, uint32_t wmask,
		       uint32_t w1c)
{
	if ((len != 1 && len != 2 && len != 4) || !stored(off, len))
		return;
	store(dev->wmask, off, len, wmask);
	store(dev->w1c, off, len, w1c);
}

int pci_dev_init(struct pci_dev *dev, const struct pci_dev_info *info,
		 const struct pci_dev_ops *ops, void *opaque)
{
	memset(dev, 0, sizeof(*dev));
	dev->slot = -1;
	if (!info || info->irq_pin > 4)
		return -EINVAL;
	/* Recursive: hooks run with the lock held and may use this API. */
	pthread_mutexattr_t a;
	int rc = pthread_mutexattr_init(&a);
	if (rc)
		return -rc;
	rc = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	if (!rc)
		rc = pthread_mutex_init(&dev->lock, &a);
	pthread_mutexattr_destroy(&a);
	if (rc)
		return -rc;
	dev->inited = true;
	dev->ops = ops;
	dev->opaque = opaque;
	dev->cap_end = PCI_CAP_START;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		dev->bar[i].mapped = dev->bar[i].alloc = PCI_BAR_UNMAPPED;

	pci_cfg_set16(dev, PCI_VENDOR_ID, info->vendor);
	pci_cfg_set16(dev, PCI_DEVICE_ID, info->device);
	pci_cfg_set8(dev, PCI_REVISION_ID, info->revision);
	pci_cfg_set8(dev, PCI_CLASS_PROG, (uint8_t)info->class_code);
	pci_cfg_set16(dev, PCI_CLASS_DEVICE, (uint16_t)(info->class_code >> 8));
	pci_cfg_set16(dev, PCI_SUBSYSTEM_VENDOR, info->subsys_vendor);
	pci_cfg_set16(dev, PCI_SUBSYSTEM_ID, info->subsys_id);
	pci_cfg_set8(dev, PCI_INTERRUPT_PIN, info->irq_pin);
	/* Header type 0, single function: the stored zero. */
	pci_cfg_set_masks(dev, PCI_COMMAND, 2,
			  PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
			      PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_OFF,
			  0);
	pci_cfg_set_masks(dev, PCI_STATUS, 2, 0, PCI_STATUS_RW1C);
	/* Cache line size has no effect but must hold what is written. */
	pci_cfg_set_masks(dev, PCI_CACHE_LINE_SIZE, 1, 0xff, 0);
	pci_cfg_set_masks(dev, PCI_INTERRUPT_LINE, 1, 0xff, 0);
	return 0;
}

void pci_dev_destroy(struct pci_dev *dev)
{
	if (!dev->inited)
		return;
	if (dev->msix)
		pci_msix_free(dev->msix);
	dev->msix = NULL;
	pthread_mutex_destroy(&dev->lock);
	dev->inited = false;
}

int pci_dev_set_bar(struct pci_dev *dev, unsigned bar, enum pci_bar_kind kind, uint64_t size,
		    bool prefetch, struct chv_err *err)
{
	if (bar >= PCI_NUM_BARS || dev->bar[bar].kind != PCI_BAR_NONE)
		return chv_err_set(err, -EINVAL, "pci: BAR %u is out of range or already set", bar);
	if (size == 0 || (size & (size - 1)))
		return chv_err_set(err, -EINVAL, "pci: BAR %u size 0x%llx is not a power of two",
				   bar, (unsigned long long)size);
	uint32_t lo_flags = 0, lo_mask;
	switch (kind) {
	case PCI_BAR_IO:
		if (size < 4 || size > 256 || prefetch)
			return chv_err_set(err, -EINVAL,
					   "pci: I/O BAR %u size 0x%llx (4..256, not prefetchable)",
					   bar, (unsigned long long)size);
		lo_flags = PCI_BAR_IO_FLAG;
		lo_mask = (uint32_t) ~(size - 1) & ~3u;
		break;
	case PCI_BAR_MEM32:
		if (size < 16 || size > 0x80000000ULL)
			return chv_err_set(err, -EINVAL,
					   "pci: 32-bit BAR %u size 0x%llx (16 B..2 GiB)", bar,
					   (unsigned long long)size);
		lo_mask = (uint32_t) ~(size - 1) & ~0xfu;
		break;
	case PCI_BAR_MEM64:
		if (bar + 1 >= PCI_NUM_BARS || dev->bar[bar + 1].kind != PCI_BAR_NONE)
			return chv_err_set(err, -EINVAL,
					   "pci: 64-bit BAR %u needs the next register free", bar);
		if (size < 16 || size > (1ULL << 63))
			return chv_err_set(err, -EINVAL,
					   "pci: 64-bit BAR %u size 0x%llx (16 B..2^63)", bar,
					   (unsigned long long)size);
		lo_flags = PCI_BAR_MEM_TYPE_64;
		lo_mask = (uint32_t) ~(size - 1) & ~0xfu;
		break;
	default:
		return chv_err_set(err, -EINVAL, "pci: BAR %u kind %d is not a BAR kind", bar,
				   (int)kind);
	}
	if (prefetch)
		lo_flags |= PCI_BAR_MEM_PREFETCH;
	uint32_t off = PCI_BAR0 + 4 * bar;
	pci_dev_lock(dev);
	dev->bar[bar].kind = kind;
	dev->bar[bar].size = size;
	dev->bar[bar].prefetch = prefetch;
	pci_cfg_set32(dev, off, lo_flags);
	pci_cfg_set_masks(dev, off, 4, lo_mask, 0);
	if (kind == PCI_BAR_MEM64) {
		dev->bar[bar + 1].kind = PCI_BAR_MEM64_HI;
		pci_cfg_set32(dev, off + 4, 0);
		pci_cfg_set_masks(dev, off + 4, 4, (uint32_t)(~(size - 1) >> 32), 0);
	}
	pci_dev_unlock(dev);
	return 0;
}

static uint64_t bar_addr_locked(struct pci_dev *dev, unsigned bar)
{
	uint32_t off = PCI_BAR0 + 4 * bar;
	uint32_t lo = pci_cfg_get32(dev, off);
	switch (dev->bar[bar].kind) {
	case PCI_BAR_IO:
		return lo & ~3u;
	case PCI_BAR_MEM32:
		return lo & ~0xfu;
	case PCI_BAR_MEM64:
		return (lo & ~0xfu) | (uint64_t)pci_cfg_get32(dev, off + 4) << 32;
	default:
		return 0;
	}
}

uint64_t pci_bar_addr(struct pci_dev *dev, unsigned bar)
{
	if (bar >= PCI_NUM_BARS)
		return 0;
	pci_dev_lock(dev);
	uint64_t a = bar_addr_locked(dev, bar);
	pci_dev_unlock(dev);
	return a;
}

/* Where the BAR decodes now. Address 0 and ranges touching the last byte of
 * the address space count as unmapped: the latter is where a BAR points
 * while the guest sizes it. */
static uint64_t bar_effective(struct pci_dev *dev, unsigned bar)
{
	const struct pci_bar *b = &dev->bar[bar];
	uint16_t cmd = pci_cfg_get16(dev, PCI_COMMAND);
	uint64_t limit;
	switch (b->kind) {
	case PCI_BAR_IO:
		if (!(cmd & PCI_COMMAND_IO))
			return PCI_BAR_UNMAPPED;
		limit = 0xffff;
		break;
	case PCI_BAR_MEM32:
		if (!(cmd & PCI_COMMAND_MEMORY))
			return PCI_BAR_UNMAPPED;
		limit = 0xffffffffULL;
		break;
	case PCI_BAR_MEM64:
		if (!(cmd & PCI_COMMAND_MEMORY))
			return PCI_BAR_UNMAPPED;
		limit = UINT64_MAX;
		break;
	default:
		return PCI_BAR_UNMAPPED;
	}
	uint64_t a = bar_addr_locked(dev, bar);
	if (a == 0 || b->size > limit || a > limit - b->size)
		return PCI_BAR_UNMAPPED;
	return a;
}

void pci_bars_refresh(struct pci_dev *dev, bool force_off)
{
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &dev->bar[i];
		if (b->kind == PCI_BAR_NONE || b->kind == PCI_BAR_MEM64_HI)
			continue;
		uint64_t now = force_off ? PCI_BAR_UNMAPPED : bar_effective(dev, i);
		if (now == b->mapped)
			continue;
		uint64_t old = b->mapped;
		b->mapped = now;
		if (dev->ops && dev->ops->bar_moved)
			dev->ops->bar_moved(dev, i, old, now);
	}
}

/* Caller holds the lock. */
static void intx_refresh(struct pci_dev *dev)
{
	uint16_t st = pci_cfg_get16(dev, PCI_STATUS);
	st = dev->intx_level ? st | PCI_STATUS_INTX : st & ~PCI_STATUS_INTX;
	pci_cfg_set16(dev, PCI_STATUS, st);
	bool out = dev->intx_level && !(pci_cfg_get16(dev, PCI_COMMAND) & PCI_COMMAND_INTX_OFF);
	if (dev->msix) {
		uint8_t cap = pci_msix_cap_offset(dev->msix);
		if (pci_cfg_get16(dev, cap + 2u) & PCI_MSIX_CTRL_ENABLE)
			out = false;
	}
	if (out != dev->intx_out) {
		dev->intx_out = out;
		irq_line_set(&dev->intx, out);
	}
}

void pci_dev_set_intx_line(struct pci_dev *dev, const struct irq_line *line)
{
	pci_dev_lock(dev);
	if (dev->intx_out)
		irq_line_set(&dev->intx, false);
	dev->intx_out = false;
	if (line)
		dev->intx = *line;
	else
		memset(&dev->intx, 0, sizeof(dev->intx));
	intx_refresh(dev);
	pci_dev_unlock(dev);
}

void pci_intx_set(struct pci_dev *dev, bool level)
{
	pci_dev_lock(dev);
	dev->intx_level = level;
	intx_refresh(dev);
	pci_dev_unlock(dev);
}

static bool access_ok(uint32_t off, uint32_t len)
{
	return (len == 1 || len == 2 || len == 4) && (off & (len - 1)) == 0 &&
	       off < PCI_CFG_SPACE_SIZE;
}

static bool overlaps(uint32_t off, uint32_t len, uint32_t start, uint32_t n)
{
	return off < start + n && start < off + len;
}

uint32_t pci_cfg_read(struct pci_dev *dev, uint32_t off, uint32_t len)
{
	if (!access_ok(off, len))
		return 0xffffffffu;
	pci_dev_lock(dev);
	uint32_t v = 0;
	if (!(dev->ops && dev->ops->cfg_read && dev->ops->cfg_read(dev, off, len, &v)))
		v = stored(off, len) ? load(dev->cfg, off, len) : 0;
	pci_dev_unlock(dev);
	if (len < 4)
		v &= (1u << (8 * len)) - 1;
	return v;
}

void pci_cfg_write_default(struct pci_dev *dev, uint32_t off, uint32_t len, uint32_t val)
{
	if (!access_ok(off, len) || !stored(off, len))
		return;
	pci_dev_lock(dev);
	for (uint32_t i = 0; i < len; i++) {
		uint8_t b = (uint8_t)(val >> (8 * i));
		uint8_t wm = dev->wmask[off + i], c = dev->w1c[off + i];
		uint8_t v = (uint8_t)((dev->cfg[off + i] & ~wm) | (b & wm));
		dev->cfg[off + i] = (uint8_t)(v & ~(b & c));
	}
	bool cmd = overlaps(off, len, PCI_COMMAND, 2);
	if (cmd || overlaps(off, len, PCI_BAR0, 4 * PCI_NUM_BARS))
		pci_bars_refresh(dev, false);
	bool msix_ctrl = false;
	if (dev->msix) {
		uint8_t cap = pci_msix_cap_offset(dev->msix);
		if (overlaps(off, len, cap + 2u, 2)) {
			pci_msix_ctrl_written(dev->msix, pci_cfg_get16(dev, cap + 2u));
			msix_ctrl = true;
		}
	}
	if (cmd || msix_ctrl)
		intx_refresh(dev);
	pci_dev_unlock(dev);
}

void pci_cfg_write(struct pci_dev *dev, uint32_t off, uint32_t len, uint32_t val)
{
	if (!access_ok(off, len))
		return;
	pci_dev_lock(dev);
	if (!(dev->ops && dev->ops->cfg_write && dev->ops->cfg_write(dev, off, len, val)))
		pci_cfg_write_default(dev, off, len, val);
	pci_dev_unlock(dev);
}
