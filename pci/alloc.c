/* BAR placement in the MMIO windows: first fit, naturally aligned, so the
 * VMM can hand the guest a bus it need not reprogram. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pci/pci.h"
#include "pci/pci_internal.h"

static bool pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* v rounded up to a multiple of size; false when that passes 2^64. */
static bool align_up(uint64_t v, uint64_t size, uint64_t *out)
{
	uint64_t a = v & ~(size - 1);
	if (a < v) {
		a += size;
		if (a == 0)
			return false;
	}
	*out = a;
	return true;
}

static int window_insert(struct pci_window *w, unsigned at, uint64_t base, uint64_t size)
{
	if (w->n == w->cap) {
		unsigned cap = w->cap ? w->cap * 2 : 8;
		struct pci_range *r = realloc(w->used, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		w->used = r;
		w->cap = cap;
	}
	memmove(&w->used[at + 1], &w->used[at], (w->n - at) * sizeof(w->used[0]));
	w->used[at] = (struct pci_range){.base = base, .size = size};
	w->n++;
	return 0;
}

static int window_alloc(struct pci_window *w, uint64_t size, uint64_t *addr)
{
	if (w->size < size)
		return -ENOSPC;
	uint64_t last_start = w->start + (w->size - size); /* the highest base that fits */
	uint64_t cand;
	if (!align_up(w->start, size, &cand))
		return -ENOSPC;
	unsigned i = 0;
	for (; i < w->n; i++) {
		if (cand > last_start)
			return -ENOSPC;
		const struct pci_range *r = &w->used[i];
		if (r->base + r->size <= cand)
			continue;
		if (cand + size <= r->base)
			break;
		if (!align_up(r->base + r->size, size, &cand))
			return -ENOSPC;
	}
	if (cand > last_start)
		return -ENOSPC;
	int rc = window_insert(w, i, cand, size);
	if (rc)
		return rc;
	*addr = cand;
	return 0;
}

static int window_free(struct pci_window *w, uint64_t addr)
{
	for (unsigned i = 0; i < w->n; i++) {
		if (w->used[i].base != addr)
			continue;
		memmove(&w->used[i], &w->used[i + 1], (w->n - i - 1) * sizeof(w->used[0]));
		w->n--;
		return 0;
	}
	return -ENOENT;
}

int pci_alloc(struct pci_bus *bus, uint64_t size, bool mem64, uint64_t *addr)
{
	if (!pow2(size))
		return -EINVAL;
	pthread_mutex_lock(&bus->alloc_lock);
	int rc = -ENOSPC;
	if (mem64 && bus->mem64.size)
		rc = window_alloc(&bus->mem64, size, addr);
	if (rc == -ENOSPC)
		rc = window_alloc(&bus->mem32, size, addr);
	pthread_mutex_unlock(&bus->alloc_lock);
	return rc;
}

int pci_free(struct pci_bus *bus, uint64_t addr)
{
	pthread_mutex_lock(&bus->alloc_lock);
	int rc = window_free(&bus->mem32, addr);
	if (rc == -ENOENT)
		rc = window_free(&bus->mem64, addr);
	pthread_mutex_unlock(&bus->alloc_lock);
	return rc;
}

void pci_release_bars(struct pci_bus *bus, struct pci_dev *dev)
{
	pci_dev_lock(dev);
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		if (dev->bar[i].alloc == PCI_BAR_UNMAPPED)
			continue;
		(void)pci_free(bus, dev->bar[i].alloc);
		dev->bar[i].alloc = PCI_BAR_UNMAPPED;
	}
	pci_dev_unlock(dev);
}

int pci_assign_bars(struct pci_bus *bus, struct pci_dev *dev, bool enable, struct chv_err *err)
{
	uint64_t got[PCI_NUM_BARS];
	int rc = 0;
	pci_dev_lock(dev);
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &dev->bar[i];
		got[i] = PCI_BAR_UNMAPPED;
		if ((b->kind != PCI_BAR_MEM32 && b->kind != PCI_BAR_MEM64) ||
		    b->alloc != PCI_BAR_UNMAPPED)
			continue;
		rc = pci_alloc(bus, b->size, b->kind == PCI_BAR_MEM64, &got[i]);
		if (rc) {
			chv_err_set(err, rc, "pci: no room for BAR %u of 0x%llx bytes in slot %d",
				    i, (unsigned long long)b->size, dev->slot);
			for (unsigned j = 0; j < i; j++)
				if (got[j] != PCI_BAR_UNMAPPED)
					(void)pci_free(bus, got[j]);
			pci_dev_unlock(dev);
			return rc;
		}
	}
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		if (got[i] == PCI_BAR_UNMAPPED)
			continue;
		uint32_t off = PCI_BAR0 + 4 * i;
		uint32_t flags = pci_cfg_get32(dev, off) & 0xfu;
		pci_cfg_set32(dev, off, (uint32_t)got[i] | flags);
		if (dev->bar[i].kind == PCI_BAR_MEM64)
			pci_cfg_set32(dev, off + 4, (uint32_t)(got[i] >> 32));
		dev->bar[i].alloc = got[i];
	}
	if (enable)
		pci_cfg_set16(dev, PCI_COMMAND,
			      pci_cfg_get16(dev, PCI_COMMAND) | PCI_COMMAND_MEMORY);
	pci_bars_refresh(dev, false);
	pci_dev_unlock(dev);
	return 0;
}
