/* One VM: guest memory, the hypervisor VM, buses, legacy devices, ACPI,
 * the loaded kernel and one thread per vCPU. vm_create() builds everything
 * from a validated config; vm_run() (or vm_start() + vm_wait()) runs it
 * until an outcome; a reboot is a vm_destroy() and a new vm_create() from
 * the same config. */
#ifndef CHV_VM_VM_H
#define CHV_VM_VM_H

#include <stddef.h>
#include <stdint.h>

#include "vm/bus.h"
#include "vm/config.h"
#include "vm/err.h"

struct vm;
struct sink;
struct pci_dev;
struct pci_msix;
struct pci_msix_cfg;

enum vm_outcome {
	VM_OUT_NONE = 0,
	VM_OUT_POWEROFF, /* the guest powered off (ACPI S5) */
	VM_OUT_RESET,	 /* the guest reset (ACPI reset, i8042, triple fault) */
	VM_OUT_FAILED,	 /* internal error, failed entry, host error */
	VM_OUT_STOPPED,	 /* stopped from outside (signal, API) */
};

/* serial may be NULL (--serial off). The sink outlives reboots. */
chv_must_check int vm_create(struct vm **out, const struct vm_config *cfg, struct sink *serial,
			     struct chv_err *err);
/* Starts the vCPUs and waits for an outcome; reason (may be NULL) gets a
 * one-line description of it. vm_start() + vm_wait(). */
enum vm_outcome vm_run(struct vm *vm, char *reason, size_t reason_len);
/* Starts the vCPU threads and returns. Once only; a vCPU thread that cannot
 * start stops the VM with VM_OUT_FAILED (and the error is returned). */
chv_must_check int vm_start(struct vm *vm);
/* Waits for the outcome of a started VM and joins its vCPU threads. */
enum vm_outcome vm_wait(struct vm *vm, char *reason, size_t reason_len);
/* An eventfd that becomes readable (and stays so) once the outcome is set,
 * for an event loop; the VM owns it. */
int vm_outcome_fd(const struct vm *vm);
/* The outcome so far (VM_OUT_NONE while running); never blocks. */
enum vm_outcome vm_outcome(struct vm *vm, char *reason, size_t reason_len);

/* Pause: every vCPU is taken out of the guest and parked; returns once all
 * are parked. Resume lets them run again. Both are idempotent and
 * thread-safe. -ESRCH: the VM has already ended (its outcome is set). */
chv_must_check int vm_pause(struct vm *vm);
chv_must_check int vm_resume(struct vm *vm);

/* Calls fn for each counter of this VM instance: "exits.<kind>" (summed over
 * the vCPUs), "serial.tx_bytes" (of the serial sink, which outlives
 * reboots) and "debug.first_io_monotonic_ns" (CLOCK_MONOTONIC of the guest's
 * first debug-port write, 0 before it) and, per virtio device,
 * "virtio.<dev>.requests", ".bytes", ".errors" and ".notifications" (queue
 * kicks through ioeventfd; e.g. "virtio.rng.requests"). Any thread; values are read without
 * stopping the vCPUs. */
typedef void (*vm_counter_fn)(void *ctx, const char *name, uint64_t value);
void vm_counters(struct vm *vm, vm_counter_fn fn, void *ctx);
/* Asks a running VM to stop with the given outcome (first request wins).
 * Async-signal-unsafe; any thread. */
void vm_stop(struct vm *vm, enum vm_outcome outcome, const char *reason);
/* Safe on a half-built VM and on NULL. */
void vm_destroy(struct vm *vm);

/* Bytes typed at the serial console, for the guest's UART. */
void vm_serial_input(struct vm *vm, const uint8_t *buf, size_t n);

const char *vm_outcome_name(enum vm_outcome o);

/* ---- PCI functions (pci/pci.h) on the VM's root bus ---- */

struct vm_pci_fn {
	struct pci_dev *dev; /* initialised, BARs declared, not on a bus */
	int slot;	     /* 1..31, or -1 for the first free one */
	const char *name;    /* for messages */
	/* Per BAR: accesses the MSI-X table and PBA do not take, with offsets
	 * relative to the BAR (NULL: reads 0, writes ignored). */
	bus_io_fn bar_io[6];
	void *opaque;			 /* for bar_io */
	const struct pci_msix_cfg *msix; /* NULL: no MSI-X */
};

/* Puts a function on the bus: MSI-X (when asked; *msix gets it, may be
 * NULL) with one GSI and irqfd per vector, INTx wired to the swizzled IOAPIC
 * GSI, memory BARs placed and decoding. Returns the slot, or -errno with
 * err set. Call before the vCPUs start. The device's pci_dev_ops.bar_moved
 * must call vm_pci_bar_moved(), which keeps the BAR's bus registration where
 * the guest puts it. The owner destroys the device after vm_destroy(). */
chv_must_check int vm_pci_add_device(struct vm *vm, const struct vm_pci_fn *fn,
				     struct pci_msix **msix, struct chv_err *err);
void vm_pci_bar_moved(struct vm *vm, struct pci_dev *dev, unsigned bar, uint64_t old_addr,
		      uint64_t new_addr);
/* The eventfd that raises MSI-X vector `vector` of dev (an irqfd; valid once
 * the guest has unmasked the vector), for a device thread that bypasses
 * pci_msix_notify. -EINVAL (no such vector), -ENOENT (not routed yet). */
int vm_pci_msix_fd(struct vm *vm, struct pci_dev *dev, uint16_t vector);

#endif
