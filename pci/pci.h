/* The PCI core: type-0 configuration space with per-register write masks,
 * capability lists, BARs with the sizing protocol, a segment-0 bus of 32
 * slots (function 0 only) reached through ECAM or 0xCF8/0xCFC, firmware-style
 * BAR placement, INTx status and MSI-X.
 *
 * Everything a guest can reach (config offsets, widths, MSI-X table and PBA
 * offsets) is bounds-checked here: a bad access reads all ones (config) or
 * zero (MSI-X), and is otherwise ignored.
 *
 * Threads: config accesses to one device are serialised by that device's
 * recursive lock, so the device hooks below run with it held and may call
 * back into this API for the same device. MSI-X has its own lock (taken
 * after the device's, never before), and its callbacks run with it held. */
#ifndef CHV_PCI_PCI_H
#define CHV_PCI_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vm/devctx.h"
#include "vm/err.h"

#define PCI_CFG_SPACE_SIZE  4096 /* addressable per function (PCIe) */
#define PCI_CFG_HEADER_SIZE 256	 /* backed by storage; the rest reads 0 */
#define PCI_SLOTS	    32
#define PCI_NUM_BARS	    6
#define PCI_BAR_UNMAPPED    UINT64_MAX

/* Type-0 header offsets. */
#define PCI_VENDOR_ID	     0x00
#define PCI_DEVICE_ID	     0x02
#define PCI_COMMAND	     0x04
#define PCI_STATUS	     0x06
#define PCI_REVISION_ID	     0x08
#define PCI_CLASS_PROG	     0x09
#define PCI_CLASS_DEVICE     0x0a /* sub-class, then base class at 0x0b */
#define PCI_CACHE_LINE_SIZE  0x0c
#define PCI_LATENCY_TIMER    0x0d
#define PCI_HEADER_TYPE	     0x0e
#define PCI_BAR0	     0x10
#define PCI_SUBSYSTEM_VENDOR 0x2c
#define PCI_SUBSYSTEM_ID     0x2e
#define PCI_ROM_ADDRESS	     0x30
#define PCI_CAPABILITY_LIST  0x34
#define PCI_INTERRUPT_LINE   0x3c
#define PCI_INTERRUPT_PIN    0x3d
#define PCI_CAP_START	     0x40 /* first byte after the standard header */

#define PCI_COMMAND_IO	     0x0001
#define PCI_COMMAND_MEMORY   0x0002
#define PCI_COMMAND_MASTER   0x0004
#define PCI_COMMAND_PARITY   0x0040
#define PCI_COMMAND_SERR     0x0100
#define PCI_COMMAND_INTX_OFF 0x0400

#define PCI_STATUS_INTX	    0x0008 /* read-only: INTx asserted */
#define PCI_STATUS_CAP_LIST 0x0010
#define PCI_STATUS_RW1C	    0xf900 /* parity/abort/SERR error bits */

#define PCI_BAR_IO_FLAG	     0x1
#define PCI_BAR_MEM_TYPE_64  0x4
#define PCI_BAR_MEM_PREFETCH 0x8

#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_VNDR 0x09

enum pci_bar_kind {
	PCI_BAR_NONE = 0,
	PCI_BAR_IO,
	PCI_BAR_MEM32,
	PCI_BAR_MEM64,	 /* takes this BAR register and the next (high dword) */
	PCI_BAR_MEM64_HI /* internal: the high half of the BAR before it */
};

struct pci_bar {
	enum pci_bar_kind kind;
	bool prefetch;
	uint64_t size;	 /* a power of two */
	uint64_t mapped; /* where the guest sees it now, or PCI_BAR_UNMAPPED */
	uint64_t alloc;	 /* placed by pci_assign_bars, or PCI_BAR_UNMAPPED */
};

struct pci_dev;
struct pci_bus;
struct pci_msix;

struct pci_dev_ops {
	/* Called first for every guest read; off + len <= 4096, len 1, 2 or 4,
	 * naturally aligned. Return true after filling *val to override the
	 * stored value (device-specific registers, extended space). */
	bool (*cfg_read)(struct pci_dev *dev, uint32_t off, uint32_t len, uint32_t *val);
	/* Called first for every guest write; return true when handled. A hook
	 * that only wants to watch may call pci_cfg_write_default() itself. */
	bool (*cfg_write)(struct pci_dev *dev, uint32_t off, uint32_t len, uint32_t val);
	/* Where BAR bar decodes changed (a BAR rewritten while decoding is on,
	 * or decoding toggled in the command register, or the device removed):
	 * either address may be PCI_BAR_UNMAPPED. The device moves its bus_io_fn
	 * registrations. An address is never 0 and never includes the last byte
	 * of its address space (that is where a BAR being sized points). */
	void (*bar_moved)(struct pci_dev *dev, unsigned bar, uint64_t old_addr, uint64_t new_addr);
};

struct pci_dev_info {
	uint16_t vendor, device;
	uint16_t subsys_vendor, subsys_id;
	uint8_t revision;
	uint32_t class_code; /* base << 16 | sub-class << 8 | prog-if */
	uint8_t irq_pin;     /* 0 none, 1..4 INTA..INTD */
};

/* Embedded in a device model's own struct; fields are private to pci/. */
struct pci_dev {
	uint8_t cfg[PCI_CFG_HEADER_SIZE];
	uint8_t wmask[PCI_CFG_HEADER_SIZE]; /* bits a guest write sets */
	uint8_t w1c[PCI_CFG_HEADER_SIZE];   /* bits a guest write of 1 clears */
	struct pci_bar bar[PCI_NUM_BARS];
	const struct pci_dev_ops *ops;
	void *opaque;
	pthread_mutex_t lock;
	bool inited;
	uint8_t cap_end;  /* where the next capability goes */
	uint8_t cap_last; /* offset of the last capability, 0 when none */
	bool intx_level;  /* what the device asks for */
	bool intx_out;	  /* what the line carries */
	struct irq_line intx;
	struct pci_msix *msix;
	struct pci_bus *bus;
	int slot; /* -1 when not on a bus */
};

/* Fills the standard header; masks for command, status (RW1C), cache line
 * and interrupt line. ops may be NULL. Safe to destroy after a failure. */
chv_must_check int pci_dev_init(struct pci_dev *dev, const struct pci_dev_info *info,
				const struct pci_dev_ops *ops, void *opaque);
/* Also destroys an attached MSI-X. Safe on a zeroed or half-built device. */
void pci_dev_destroy(struct pci_dev *dev);

/* Declares a BAR before the device is on a bus. -EINVAL (with err) for an
 * index out of range or taken, a 64-bit BAR in register 5, a size that is
 * not a power of two or out of range (memory 16 B..2 GiB for 32-bit, ..2^63
 * for 64-bit; I/O 4..256 B), or prefetch on an I/O BAR. */
chv_must_check int pci_dev_set_bar(struct pci_dev *dev, unsigned bar, enum pci_bar_kind kind,
				   uint64_t size, bool prefetch, struct chv_err *err);
/* The address programmed in the BAR registers (decoding or not). */
uint64_t pci_bar_addr(struct pci_dev *dev, unsigned bar);

/* Appends a capability of len bytes (>= 2, header included) with the given
 * id, linked after the last one; its body is zero and read-only until the
 * device sets values and masks. Returns its offset or -EINVAL / -ENOSPC. */
chv_must_check int pci_add_cap(struct pci_dev *dev, uint8_t id, uint32_t len);
/* Offset of the first capability with this id (or after `from`, 0 to start),
 * 0 when absent. Stops on a loop. */
uint8_t pci_find_cap(struct pci_dev *dev, uint8_t id, uint8_t from);

/* Device-side access to stored registers, masks ignored and no side effects;
 * accesses that do not fit in the 256 stored bytes are ignored (read 0). */
void pci_cfg_set8(struct pci_dev *dev, uint32_t off, uint8_t v);
void pci_cfg_set16(struct pci_dev *dev, uint32_t off, uint16_t v);
void pci_cfg_set32(struct pci_dev *dev, uint32_t off, uint32_t v);
uint8_t pci_cfg_get8(struct pci_dev *dev, uint32_t off);
uint16_t pci_cfg_get16(struct pci_dev *dev, uint32_t off);
uint32_t pci_cfg_get32(struct pci_dev *dev, uint32_t off);
/* Sets the guest-writable and write-1-to-clear bits of len (1, 2, 4) bytes. */
void pci_cfg_set_masks(struct pci_dev *dev, uint32_t off, uint32_t len, uint32_t wmask,
		       uint32_t w1c);

/* Guest accesses: off < 4096, len 1, 2 or 4 and naturally aligned, or the
 * read returns all ones and the write is dropped. */
uint32_t pci_cfg_read(struct pci_dev *dev, uint32_t off, uint32_t len);
void pci_cfg_write(struct pci_dev *dev, uint32_t off, uint32_t len, uint32_t val);
/* The generic write (masks, RW1C, BAR and command side effects, MSI-X
 * control), without the cfg_write hook. */
void pci_cfg_write_default(struct pci_dev *dev, uint32_t off, uint32_t len, uint32_t val);

/* INTx: the line to drive (copied) and the device's request. The line
 * carries the request unless the command register disables INTx or MSI-X is
 * enabled; the status register's interrupt bit shows the request. */
void pci_dev_set_intx_line(struct pci_dev *dev, const struct irq_line *line);
void pci_intx_set(struct pci_dev *dev, bool level);

/* ---- The bus: segment 0, bus 0, a host bridge at 00:00.0. ---- */

#define PCI_HOST_BRIDGE_VENDOR 0x8086
#define PCI_HOST_BRIDGE_DEVICE 0x0d57
#define PCI_CF8_ENABLE	       0x80000000u
#define PCI_PORT_CONFIG_ADDR   0xcf8
#define PCI_PORT_CONFIG_DATA   0xcfc

struct pci_window {
	uint64_t start, size;
	struct pci_range {
		uint64_t base, size;
	} * used; /* sorted by base */
	unsigned n, cap;
};

struct pci_bus {
	pthread_rwlock_t lock; /* readers: config accesses; writer: add/remove */
	pthread_mutex_t alloc_lock;
	struct pci_dev *slots[PCI_SLOTS];
	struct pci_dev host_bridge;
	uint32_t cf8; /* the 0xCF8 latch (atomic) */
	struct pci_window mem32, mem64;
	bool inited;
};

/* The 32-bit window is [LAYOUT_MMIO32_START, +LAYOUT_MMIO32_SIZE); the
 * 64-bit one is given (size 0 for none; it must not wrap). */
chv_must_check int pci_bus_init(struct pci_bus *bus, uint64_t mem64_start, uint64_t mem64_size,
				struct chv_err *err);
/* Leaves the devices alone (their owners destroy them). Safe on a zeroed bus. */
void pci_bus_destroy(struct pci_bus *bus);

/* Puts dev in slot (1..31) or, with slot -1, the first free one. Returns the
 * slot, -EBUSY (taken), -ENOSPC (full), -EINVAL (out of range, or dev
 * already on a bus). */
chv_must_check int pci_bus_add(struct pci_bus *bus, struct pci_dev *dev, int slot);
/* Takes the device in slot off the bus (after any access in progress):
 * mapped BARs are reported unmapped through bar_moved, placed BARs freed.
 * Returns it, or NULL when the slot is empty or holds the host bridge. */
struct pci_dev *pci_bus_remove(struct pci_bus *bus, int slot);
struct pci_dev *pci_bus_get(struct pci_bus *bus, int slot);

/* bus_io_fn handlers; opaque is the struct pci_bus. ECAM: for the window at
 * LAYOUT_ECAM_START (bus << 20 | dev << 15 | fn << 12 | reg). 0xCF8: for
 * port 0xCF8, 4 ports (dword accesses only). 0xCFC: for port 0xCFC, 4 ports. */
void pci_ecam_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
void pci_cf8_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
void pci_cfc_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* ---- BAR placement, as firmware would. ---- */

/* A naturally aligned range of size (a power of two) from the 64-bit window
 * (mem64, falling back to the 32-bit one) or the 32-bit window. -EINVAL for
 * a bad size, -ENOSPC when it does not fit. */
chv_must_check int pci_alloc(struct pci_bus *bus, uint64_t size, bool mem64, uint64_t *addr);
/* -ENOENT when addr is not the start of an allocated range. */
int pci_free(struct pci_bus *bus, uint64_t addr);
/* Places every memory BAR of dev and programs its registers, then (when
 * enable) turns memory decoding on. I/O BARs are left to the guest. Undoes
 * its placements on failure. */
chv_must_check int pci_assign_bars(struct pci_bus *bus, struct pci_dev *dev, bool enable,
				   struct chv_err *err);
void pci_release_bars(struct pci_bus *bus, struct pci_dev *dev);

/* ---- MSI-X ---- */

#define PCI_MSIX_MAX_VECTORS  2048
#define PCI_MSIX_ENTRY_SIZE   16
#define PCI_MSIX_CAP_LEN      12
#define PCI_MSIX_CTRL_ENABLE  0x8000
#define PCI_MSIX_CTRL_MASKALL 0x4000
#define PCI_MSIX_VEC_MASKED   0x1

struct pci_msi_msg {
	uint64_t address;
	uint32_t data;
};

struct pci_msix_ops {
	/* A vector's message or effective mask (its own mask bit, the function
	 * mask, or MSI-X disabled) changed: update the interrupt route. */
	void (*vector_changed)(void *opaque, uint16_t vector, const struct pci_msi_msg *msg,
			       bool masked);
	/* Send the message now. */
	void (*deliver)(void *opaque, uint16_t vector, const struct pci_msi_msg *msg);
};

struct pci_msix_cfg {
	uint16_t nvec;	    /* 1..2048 */
	uint8_t table_bar;  /* a memory BAR of the device */
	uint32_t table_off; /* 8-byte aligned; table inside the BAR */
	uint8_t pba_bar;
	uint32_t pba_off; /* 8-byte aligned; PBA inside the BAR, not on the table */
};

/* Adds the capability (after the device's BARs are set) and the table, all
 * vectors masked. Errors name the field. */
chv_must_check int pci_msix_init(struct pci_dev *dev, const struct pci_msix_cfg *cfg,
				 const struct pci_msix_ops *ops, void *opaque,
				 struct pci_msix **out, struct chv_err *err);

enum pci_msix_result {
	PCI_MSIX_SENT = 0,
	PCI_MSIX_PENDING = 1,  /* masked: the PBA bit is set, sent on unmask */
	PCI_MSIX_DISABLED = 2, /* MSI-X is off: use INTx */
};
/* Raises a vector: a pci_msix_result, or -EINVAL for a vector out of range. */
int pci_msix_notify(struct pci_msix *m, uint16_t vector);
bool pci_msix_enabled(struct pci_msix *m);
/* The vector's message and effective mask; -EINVAL out of range. */
int pci_msix_get(struct pci_msix *m, uint16_t vector, struct pci_msi_msg *msg, bool *masked);
bool pci_msix_pending(struct pci_msix *m, uint16_t vector);
uint16_t pci_msix_nvec(struct pci_msix *m);
/* Sizes of the two regions in bytes (the PBA in whole qwords). */
uint32_t pci_msix_table_size(struct pci_msix *m);
uint32_t pci_msix_pba_size(struct pci_msix *m);

/* bus_io_fn handlers for the table and the PBA (opaque: the pci_msix),
 * offsets relative to their start; any width 1..8, any alignment; bytes
 * outside read 0 and ignore writes; the PBA is read-only. */
void pci_msix_table_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
void pci_msix_pba_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/* For a device with one handler per BAR: serves the access when it touches
 * the table or PBA in BAR bar and returns true; false leaves it to the caller. */
bool pci_msix_bar_io(struct pci_msix *m, unsigned bar, uint64_t offset, uint8_t *data, uint32_t len,
		     bool is_write);

#endif
