/* The capability list: capabilities laid out one after another from 0x40,
 * dword aligned, linked through their next pointers. */
#include <errno.h>

#include "pci/pci.h"
#include "pci/pci_internal.h"

int pci_add_cap(struct pci_dev *dev, uint8_t id, uint32_t len)
{
	if (len < 2 || len > PCI_CFG_HEADER_SIZE - PCI_CAP_START)
		return -EINVAL;
	pci_dev_lock(dev);
	uint32_t off = dev->cap_end;
	if (len > PCI_CFG_HEADER_SIZE - off) {
		pci_dev_unlock(dev);
		return -ENOSPC;
	}
	for (uint32_t i = 0; i < len; i++) {
		pci_cfg_set8(dev, off + i, 0);
		pci_cfg_set_masks(dev, off + i, 1, 0, 0);
	}
	pci_cfg_set8(dev, off, id);
	if (dev->cap_last)
		pci_cfg_set8(dev, dev->cap_last + 1u, (uint8_t)off);
	else
		pci_cfg_set8(dev, PCI_CAPABILITY_LIST, (uint8_t)off);
	pci_cfg_set16(dev, PCI_STATUS, pci_cfg_get16(dev, PCI_STATUS) | PCI_STATUS_CAP_LIST);
	dev->cap_last = (uint8_t)off;
	/* The next one starts dword aligned; at the end of space it cannot fit. */
	uint32_t end = (off + len + 3) & ~3u;
	dev->cap_end = end >= PCI_CFG_HEADER_SIZE ? 0xff : (uint8_t)end;
	pci_dev_unlock(dev);
	return (int)off;
}

uint8_t pci_find_cap(struct pci_dev *dev, uint8_t id, uint8_t from)
{
	pci_dev_lock(dev);
	uint8_t at;
	if (from)
		at = pci_cfg_get8(dev, from + 1u);
	else
		at = pci_cfg_get16(dev, PCI_STATUS) & PCI_STATUS_CAP_LIST
			 ? pci_cfg_get8(dev, PCI_CAPABILITY_LIST)
			 : 0;
	/* At most 48 capabilities fit in 192 bytes: more steps mean a loop. */
	for (int steps = 0; at >= PCI_CAP_START && steps < 48; steps++) {
		at &= ~3u;
		if (pci_cfg_get8(dev, at) == id) {
			pci_dev_unlock(dev);
			return at;
		}
		at = pci_cfg_get8(dev, at + 1u);
	}
	pci_dev_unlock(dev);
	return 0;
}
