/* The virtio-pci modern transport (virtio 1.x, 4.1) over the PCI core: a
 * struct virtio_dev presented as PCI function 0x1af4:0x1040+id, revision 1.
 *
 * One 64-bit memory BAR (VIRTIO_PCI_BAR) holds every structure, found by the
 * driver through vendor capabilities: common configuration, ISR status,
 * device configuration (when the device has one), notifications (one 4-byte
 * slot per queue) and the MSI-X table and PBA. A VIRTIO_PCI_CAP_PCI_CFG
 * capability gives config-space access to the same registers.
 *
 * Every register access from the guest is checked here: wrong widths, offsets
 * off a field, out-of-range selectors and vectors read 0 or are ignored, and
 * nothing a driver writes makes the VMM fail. Register accesses, kicks and
 * the device's activate/reset run under the PCI device's lock. */
#ifndef CHV_PCI_VIRTIO_PCI_H
#define CHV_PCI_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "pci/pci.h"
#include "virtio/virtio.h"
#include "vm/err.h"

#define VIRTIO_PCI_VENDOR	  0x1af4
#define VIRTIO_PCI_DEVICE_BASE	  0x1040
#define VIRTIO_PCI_REVISION	  1
#define VIRTIO_PCI_SUBSYS_VENDOR  0x1af4
#define VIRTIO_PCI_SUBSYS_ID_BASE 0x1100 /* + device id */

/* Capability cfg_type values. */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG	  3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG	  5

/* struct virtio_pci_cap: cap_vndr, cap_next, cap_len, cfg_type, bar, id,
 * padding[2], offset, length; notify adds notify_off_multiplier, the PCI
 * access capability pci_cfg_data[4]. */
#define VIRTIO_PCI_CAP_LEN	  16
#define VIRTIO_PCI_NOTIFY_CAP_LEN 20
#define VIRTIO_PCI_CFG_CAP_LEN	  20
#define VIRTIO_PCI_CAP_CFG_TYPE	  3
#define VIRTIO_PCI_CAP_BAR	  4
#define VIRTIO_PCI_CAP_OFFSET	  8
#define VIRTIO_PCI_CAP_LENGTH	  12
#define VIRTIO_PCI_CAP_NOTIFY_MUL 16
#define VIRTIO_PCI_CAP_CFG_DATA	  16

/* struct virtio_pci_common_cfg. */
#define VIRTIO_PCI_COMMON_DFSELECT  0x00
#define VIRTIO_PCI_COMMON_DF	    0x04
#define VIRTIO_PCI_COMMON_GFSELECT  0x08
#define VIRTIO_PCI_COMMON_GF	    0x0c
#define VIRTIO_PCI_COMMON_MSIX	    0x10
#define VIRTIO_PCI_COMMON_NUMQ	    0x12
#define VIRTIO_PCI_COMMON_STATUS    0x14
#define VIRTIO_PCI_COMMON_CFGGEN    0x15
#define VIRTIO_PCI_COMMON_Q_SELECT  0x16
#define VIRTIO_PCI_COMMON_Q_SIZE    0x18
#define VIRTIO_PCI_COMMON_Q_MSIX    0x1a
#define VIRTIO_PCI_COMMON_Q_ENABLE  0x1c
#define VIRTIO_PCI_COMMON_Q_NOFF    0x1e
#define VIRTIO_PCI_COMMON_Q_DESCLO  0x20
#define VIRTIO_PCI_COMMON_Q_DESCHI  0x24
#define VIRTIO_PCI_COMMON_Q_AVAILLO 0x28
#define VIRTIO_PCI_COMMON_Q_AVAILHI 0x2c
#define VIRTIO_PCI_COMMON_Q_USEDLO  0x30
#define VIRTIO_PCI_COMMON_Q_USEDHI  0x34
#define VIRTIO_PCI_COMMON_LEN	    0x38

#define VIRTIO_MSI_NO_VECTOR 0xffff

/* ISR status bits (read to clear). */
#define VIRTIO_PCI_ISR_QUEUE  0x1
#define VIRTIO_PCI_ISR_CONFIG 0x2

/* The BAR and where each structure lies in it. */
#define VIRTIO_PCI_BAR		  0
#define VIRTIO_PCI_BAR_SIZE	  0x8000
#define VIRTIO_PCI_COMMON_OFF	  0x0000
#define VIRTIO_PCI_ISR_OFF	  0x1000
#define VIRTIO_PCI_DEVICE_OFF	  0x2000
#define VIRTIO_PCI_NOTIFY_OFF	  0x3000
#define VIRTIO_PCI_NOTIFY_MUL	  4
#define VIRTIO_PCI_MSIX_TABLE_OFF 0x4000
#define VIRTIO_PCI_MSIX_PBA_OFF	  0x6000

struct virtio_pci_queue {
	uint16_t size; /* as the driver wrote it; checked at enable */
	uint16_t vector;
	uint64_t desc, driver, device;
};

struct virtio_pci_host {
	/* MSI-X delivery and routing (see struct pci_msix_ops). */
	const struct pci_msix_ops *msix_ops;
	void *msix_opaque;
	/* The BAR moved (old or new may be PCI_BAR_UNMAPPED): move the MMIO
	 * registration and the queues' ioeventfds. May be NULL. */
	void (*bar_moved)(void *ctx, uint64_t old_addr, uint64_t new_addr);
	void *ctx;
	/* MSI-X vectors: 0 for one per queue plus one for configuration
	 * changes. */
	uint16_t nvec;
	/* The owner adds the MSI-X capability itself (msix_ops unused): it
	 * builds it from virtio_pci_msix_cfg() (vm_pci_add_device() does, with
	 * the VM's GSI routing and irqfds) and hands it over with
	 * virtio_pci_set_msix() before the guest runs. */
	bool msix_external;
};

struct virtio_pci {
	struct pci_dev pci;
	struct virtio_dev *vdev;
	struct pci_msix *msix;
	struct virtio_pci_host host;
	uint16_t nvec;
	uint8_t pci_cfg_cap; /* offset of the VIRTIO_PCI_CAP_PCI_CFG capability */
	/* Common configuration registers. */
	uint32_t dfselect, gfselect;
	uint64_t gf;	/* driver features as written; checked at FEATURES_OK */
	bool gf_beyond; /* the driver set a bit past 63 */
	uint16_t msix_config;
	uint16_t queue_select;
	struct virtio_pci_queue *q;
	uint8_t isr;
	/* The last set-up refusal, for the log and for tests. */
	struct chv_err last_err;
};

/* Builds the PCI function for vdev (already initialised; not owned).
 * Errors name the field. Safe to destroy after a failure. */
chv_must_check int virtio_pci_init(struct virtio_pci *vp, struct virtio_dev *vdev,
				   const struct virtio_pci_host *host, struct chv_err *err);
void virtio_pci_destroy(struct virtio_pci *vp);

/* Where the MSI-X table and PBA lie, for an owner with msix_external. */
void virtio_pci_msix_cfg(const struct virtio_pci *vp, struct pci_msix_cfg *out);
/* The MSI-X built from that configuration; interrupts go through it from
 * then on (until then, and while it is disabled, INTx). */
void virtio_pci_set_msix(struct virtio_pci *vp, struct pci_msix *msix);

/* bus_io_fn for the BAR (opaque: the struct virtio_pci), offset from its
 * start, any width 1..8. */
void virtio_pci_bar_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* Where queue q's notification lands, for an ioeventfd: the guest writes
 * the 16-bit queue index (len 2, datamatch q) at the BAR's address + offset.
 * addr is PCI_BAR_UNMAPPED while the BAR does not decode. -EINVAL for a
 * queue the device does not have. */
struct virtio_pci_notify {
	uint64_t offset; /* in the BAR */
	uint64_t addr;	 /* guest-physical, or PCI_BAR_UNMAPPED */
	uint32_t len;
	uint64_t datamatch;
};
chv_must_check int virtio_pci_notify_info(struct virtio_pci *vp, uint16_t q,
					  struct virtio_pci_notify *out);
/* What an ioeventfd firing for queue q does: the same as the guest's write. */
void virtio_pci_kick(struct virtio_pci *vp, uint16_t q);

#endif
