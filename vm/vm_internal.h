/* Private to the VM core (vm.c, vcpu.c, boot_cpu.c): the objects behind struct vm. */
#ifndef CHV_VM_VM_INTERNAL_H
#define CHV_VM_VM_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include "vm/bus.h"
#include "vm/hv.h"
#include "vm/loader.h"
#include "vm/mem.h"
#include "vm/vm.h"

struct vcpu {
	struct vm *vm;
	struct hv_vcpu *hv;
	uint32_t index;
	pthread_t thread;
	bool started;
	uint64_t exits[HV_EXIT__COUNT]; /* written by the vCPU thread only, read atomically */
};

struct vm_devices;
struct vm_pci;
struct vm_virtio;
struct pci_bus;

struct vm {
	const struct vm_config *cfg;
	const struct hv_ops *ops;
	struct hv *hv;
	struct hv_vm *hvm;
	struct vm_mem mem;
	bool mem_ok;
	struct bus pio, mmio;
	bool pio_ok, mmio_ok;
	struct sink *serial;
	struct vm_devices *dev;
	struct vm_pci *pci;	  /* pci_setup.c */
	struct vm_virtio *virtio; /* virtio_devices.c */
	struct load_result boot;
	uint32_t nvcpus;
	struct vcpu *vcpus;

	pthread_mutex_t lock;
	pthread_cond_t cond;	 /* outcome set, a vCPU parked or left, resume */
	enum vm_outcome outcome; /* written under lock, read atomically by vCPUs */
	char reason[1536];
	int outcome_fd; /* eventfd, written once the outcome is set */
	bool started;
	bool pause_req;	 /* under lock; read atomically by vCPUs */
	uint32_t live;	 /* vCPU threads in their run loop, under lock */
	uint32_t parked; /* of those, parked for a pause, under lock */
};

/* vcpu.c */
chv_must_check int vcpu_setup(struct vm *vm, struct vcpu *v, uint32_t index, struct chv_err *err);
chv_must_check int vcpu_start(struct vcpu *v);
void vcpu_kick(struct vcpu *v);
void vcpu_join(struct vcpu *v);
void vcpu_teardown(struct vcpu *v);
/* A one-line register dump for failure logs. */
void vcpu_dump(struct vcpu *v, char *buf, size_t len);

/* boot_cpu.c: the boot vCPU's state for its boot protocol. */
chv_must_check int boot_cpu_setup(struct vm *vm, struct vcpu *bsp, struct chv_err *err);

/* devices.c: the legacy devices, created and registered on the buses. */
chv_must_check int vm_devices_create(struct vm *vm, struct chv_err *err);
void vm_devices_destroy(struct vm *vm);
/* CLOCK_MONOTONIC ns of the guest's first debug-port write; 0: none yet. */
uint64_t vm_devices_debug_first_ns(struct vm *vm);

/* pci_setup.c: the PCI root (ECAM on the MMIO bus, 0xCF8/0xCFC on the
 * port bus), created after the buses and destroyed before them. */
#define VM_PCI_INTX_GSI_BASE 16
#define VM_PCI_INTX_GSIS     8
chv_must_check int vm_pci_create(struct vm *vm, struct chv_err *err);
/* Takes every added function off the bus (their owners destroy them after). */
void vm_pci_destroy(struct vm *vm);
/* The 64-bit window of this VM (size 0: none), for ACPI. */
void vm_pci_windows(struct vm *vm, uint64_t *mem64_start, uint64_t *mem64_size);
struct pci_bus *vm_pci_bus(struct vm *vm);
/* The INTx swizzle (the DSDT's _PRT says the same): slot, pin 1..4 (INTA..INTD)
 * -> GSI VM_PCI_INTX_GSI_BASE + (slot + pin - 1) % VM_PCI_INTX_GSIS. */
uint32_t vm_pci_intx_gsi(unsigned slot, unsigned pin);
/* The 64-bit window: from the end of RAM (above 4 GiB) rounded up to 1 GiB,
 * to the end of the guest's physical address space; size 0 when nothing is left. */
void vm_pci_mem64_window(uint64_t ram_size, uint32_t phys_bits, uint64_t *start, uint64_t *size);

/* virtio_devices.c: the virtio-pci functions (virtio-rng always, at
 * VM_PCI_SLOT_RNG; a virtio-blk per --disk after it; virtio-console, unless
 * --console off, after the disks, with its own sink; a virtio-net per --net after those) and
 * the device thread serving their queue ioeventfds, tap fds and rate-limiter timers. Created after the PCI root; vm_virtio_stop() once the vCPUs are gone, then
 * vm_pci_destroy(), then vm_virtio_destroy() (which also stops). */
#define VM_PCI_SLOT_RNG	  1
#define VM_PCI_SLOT_DISK0 2 /* --disk i at slot 2 + i */
chv_must_check int vm_virtio_create(struct vm *vm, struct chv_err *err);
void vm_virtio_stop(struct vm *vm);
void vm_virtio_destroy(struct vm *vm);
/* "virtio.<dev>.requests", ".bytes", ".errors", ".notifications"; disks
 * ("blk0"...) also ".reads", ".writes", ".flushes", ".bytes_read"...; the
 * console also ".tx_bytes", ".rx_bytes", ".tx_dropped"... */
void vm_virtio_counters(struct vm *vm, vm_counter_fn fn, void *ctx);

#endif
