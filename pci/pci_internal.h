/* What the files of pci/ share and nobody else sees. */
#ifndef CHV_PCI_PCI_INTERNAL_H
#define CHV_PCI_PCI_INTERNAL_H

#include <stdint.h>

#include "pci/pci.h"

void pci_dev_lock(struct pci_dev *dev);
void pci_dev_unlock(struct pci_dev *dev);

/* Recomputes where each BAR decodes and reports changes through bar_moved.
 * With force_off every BAR is reported unmapped (device removal). Caller
 * holds the device lock. */
void pci_bars_refresh(struct pci_dev *dev, bool force_off);

/* The MSI-X capability's offset in config space. */
uint8_t pci_msix_cap_offset(const struct pci_msix *m);
/* The guest wrote the message control word (enable, function mask). Caller
 * holds the device lock. */
void pci_msix_ctrl_written(struct pci_msix *m, uint16_t ctrl);
void pci_msix_free(struct pci_msix *m);

#endif
