/* Segment 0, bus 0: the slots, the host bridge, and the two ways a guest
 * reaches configuration space (ECAM and the 0xCF8/0xCFC pair). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pci/pci.h"
#include "pci/pci_internal.h"
#include "vm/layout.h"

int pci_bus_init(struct pci_bus *bus, uint64_t mem64_start, uint64_t mem64_size,
		 struct chv_err *err)
{
	memset(bus, 0, sizeof(*bus));
	if (mem64_size && mem64_start + mem64_size < mem64_start)
		return chv_err_set(err, -EINVAL, "pci: 64-bit window 0x%llx+0x%llx wraps around",
				   (unsigned long long)mem64_start, (unsigned long long)mem64_size);
	if (mem64_size && mem64_start < LAYOUT_RAM64_START)
		return chv_err_set(err, -EINVAL, "pci: 64-bit window 0x%llx is below 4 GiB",
				   (unsigned long long)mem64_start);
	int rc = pthread_rwlock_init(&bus->lock, NULL);
	if (rc)
		return chv_err_set(err, -rc, "pci: bus lock: %s", strerror(rc));
	rc = pthread_mutex_init(&bus->alloc_lock, NULL);
	if (rc) {
		pthread_rwlock_destroy(&bus->lock);
		return chv_err_set(err, -rc, "pci: allocator lock: %s", strerror(rc));
	}
	bus->inited = true;
	bus->mem32.start = LAYOUT_MMIO32_START;
	bus->mem32.size = LAYOUT_MMIO32_SIZE;
	bus->mem64.start = mem64_start;
	bus->mem64.size = mem64_size;

	const struct pci_dev_info hb = {
	    .vendor = PCI_HOST_BRIDGE_VENDOR,
	    .device = PCI_HOST_BRIDGE_DEVICE,
	    .subsys_vendor = PCI_HOST_BRIDGE_VENDOR,
	    .subsys_id = PCI_HOST_BRIDGE_DEVICE,
	    .class_code = 0x060000,
	};
	rc = pci_dev_init(&bus->host_bridge, &hb, NULL, NULL);
	if (rc) {
		pci_bus_destroy(bus);
		return chv_err_set(err, rc, "pci: host bridge: %s", strerror(-rc));
	}
	/* A host bridge does no I/O of its own. */
	pci_cfg_set_masks(&bus->host_bridge, PCI_COMMAND, 2, 0, 0);
	bus->host_bridge.bus = bus;
	bus->host_bridge.slot = 0;
	bus->slots[0] = &bus->host_bridge;
	return 0;
}

void pci_bus_destroy(struct pci_bus *bus)
{
	if (!bus->inited)
		return;
	pci_dev_destroy(&bus->host_bridge);
	free(bus->mem32.used);
	free(bus->mem64.used);
	pthread_mutex_destroy(&bus->alloc_lock);
	pthread_rwlock_destroy(&bus->lock);
	memset(bus, 0, sizeof(*bus));
}

int pci_bus_add(struct pci_bus *bus, struct pci_dev *dev, int slot)
{
	if (!dev || !dev->inited || dev->bus || slot < -1 || slot == 0 || slot >= PCI_SLOTS)
		return -EINVAL;
	pthread_rwlock_wrlock(&bus->lock);
	if (slot == -1) {
		for (int s = 1; s < PCI_SLOTS && slot < 0; s++)
			if (!bus->slots[s])
				slot = s;
		if (slot < 0) {
			pthread_rwlock_unlock(&bus->lock);
			return -ENOSPC;
		}
	} else if (bus->slots[slot]) {
		pthread_rwlock_unlock(&bus->lock);
		return -EBUSY;
	}
	bus->slots[slot] = dev;
	dev->bus = bus;
	dev->slot = slot;
	pthread_rwlock_unlock(&bus->lock);
	return slot;
}

struct pci_dev *pci_bus_remove(struct pci_bus *bus, int slot)
{
	if (slot <= 0 || slot >= PCI_SLOTS)
		return NULL;
	/* The write lock waits for config accesses in flight on any vCPU. */
	pthread_rwlock_wrlock(&bus->lock);
	struct pci_dev *dev = bus->slots[slot];
	bus->slots[slot] = NULL;
	pthread_rwlock_unlock(&bus->lock);
	if (!dev)
		return NULL;
	pci_dev_lock(dev);
	pci_bars_refresh(dev, true);
	pci_dev_unlock(dev);
	pci_release_bars(bus, dev);
	dev->bus = NULL;
	dev->slot = -1;
	return dev;
}

struct pci_dev *pci_bus_get(struct pci_bus *bus, int slot)
{
	if (slot < 0 || slot >= PCI_SLOTS)
		return NULL;
	pthread_rwlock_rdlock(&bus->lock);
	struct pci_dev *dev = bus->slots[slot];
	pthread_rwlock_unlock(&bus->lock);
	return dev;
}

/* One config access by bus/device/function; absent functions read all ones. */
static void cfg_access(struct pci_bus *bus, uint32_t busno, uint32_t devno, uint32_t fn,
		       uint32_t reg, uint8_t *data, uint32_t len, bool is_write)
{
	bool ok = (len == 1 || len == 2 || len == 4) && (reg & (len - 1)) == 0 &&
		  reg < PCI_CFG_SPACE_SIZE && busno == 0 && devno < PCI_SLOTS && fn == 0;
	uint32_t v = 0xffffffffu;
	if (ok) {
		pthread_rwlock_rdlock(&bus->lock);
		struct pci_dev *dev = bus->slots[devno];
		if (dev && is_write) {
			v = 0;
			for (uint32_t i = 0; i < len; i++)
				v |= (uint32_t)data[i] << (8 * i);
			pci_cfg_write(dev, reg, len, v);
		} else if (dev) {
			v = pci_cfg_read(dev, reg, len);
		}
		pthread_rwlock_unlock(&bus->lock);
	}
	if (!is_write)
		for (uint32_t i = 0; i < len && i < 8; i++)
			data[i] = i < 4 ? (uint8_t)(v >> (8 * i)) : 0xff;
}

void pci_ecam_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	if (offset >= LAYOUT_ECAM_SIZE) {
		cfg_access(opaque, 1, 0, 0, 0, data, len, is_write); /* all ones */
		return;
	}
	cfg_access(opaque, (uint32_t)(offset >> 20), (uint32_t)(offset >> 15) & 31,
		   (uint32_t)(offset >> 12) & 7, (uint32_t)offset & 0xfff, data, len, is_write);
}

/* Only dword accesses reach the address latch; byte and word accesses to
 * these ports belong to other (absent) chipset registers. */
void pci_cf8_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *bus = opaque;
	if (offset != 0 || len != 4) {
		if (!is_write)
			memset(data, 0xff, len > 8 ? 8 : len);
		return;
	}
	if (is_write) {
		uint32_t v = data[0] | data[1] << 8 | data[2] << 16 | (uint32_t)data[3] << 24;
		/* Reserved bits 30:24 and the dword offset's low bits read 0. */
		__atomic_store_n(&bus->cf8, v & 0x80fffffcu, __ATOMIC_RELEASE);
	} else {
		uint32_t v = __atomic_load_n(&bus->cf8, __ATOMIC_ACQUIRE);
		for (int i = 0; i < 4; i++)
			data[i] = (uint8_t)(v >> (8 * i));
	}
}

void pci_cfc_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *bus = opaque;
	uint32_t a = __atomic_load_n(&bus->cf8, __ATOMIC_ACQUIRE);
	if (!(a & PCI_CF8_ENABLE) || offset >= 4 || len > 4 || offset + len > 4) {
		if (!is_write)
			memset(data, 0xff, len > 8 ? 8 : len);
		return;
	}
	cfg_access(bus, (a >> 16) & 0xff, (a >> 11) & 31, (a >> 8) & 7,
		   (a & 0xfc) + (uint32_t)offset, data, len, is_write);
}
