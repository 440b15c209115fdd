/* The VM's PCI root: the pci_bus, its two configuration mechanisms on the
 * VM's buses, INTx lines into IOAPIC GSIs, and for each added function its
 * BAR registrations and the MSI-X glue (one GSI and irqfd per vector).
 *
 * Locks: vm_pci.lock guards the function records and the GSI counter only;
 * it is never held while calling into pci/, because pci/ calls back
 * (bar_moved) with a device lock held. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "pci/pci.h"
#include "vm/layout.h"
#include "vm/log.h"
#include "vm/vm_internal.h"

#define MEM64_ALIGN (1ULL << 30)
/* GSIs 0-23 are the IOAPIC's; MSI routes take the numbers after them. */
#define MSI_GSI_FIRST 24
#define MSI_GSI_LIMIT 1024 /* the backend's route table holds no more */

struct vm_pci_vec {
	int fd; /* eventfd bound to gsi by an irqfd, -1 until first routed */
	bool routed;
};

struct vm_pci_rec;

struct vm_pci_bar {
	struct vm_pci_rec *rec;
	unsigned idx;
	uint64_t mapped; /* where it is registered, or PCI_BAR_UNMAPPED */
	bool pio;
};

struct vm_pci_rec {
	struct vm *vm;
	struct pci_dev *dev;
	char name[32];
	bus_io_fn bar_io[PCI_NUM_BARS];
	void *opaque;
	struct vm_pci_bar bar[PCI_NUM_BARS];
	struct pci_msix *msix;
	uint16_t nvec;
	uint32_t gsi_base;
	struct vm_pci_vec *vec;
	bool warned; /* a failed registration was logged once */
};

struct vm_pci {
	struct pci_bus bus;
	bool bus_ok, ecam_ok, cf8_ok, cfc_ok;
	pthread_mutex_t lock;
	struct vm_pci_rec *rec[PCI_SLOTS];
	uint32_t next_gsi;
	uint64_t mem64_start, mem64_size;
};

uint32_t vm_pci_intx_gsi(unsigned slot, unsigned pin)
{
	return VM_PCI_INTX_GSI_BASE + (slot + pin - 1) % VM_PCI_INTX_GSIS;
}

void vm_pci_mem64_window(uint64_t ram_size, uint32_t phys_bits, uint64_t *start, uint64_t *size)
{
	struct mem_layout l;
	layout_compute(ram_size, &l);
	uint64_t ram_end = LAYOUT_RAM64_START + l.high_size;
	uint64_t s = (ram_end + MEM64_ALIGN - 1) & ~(MEM64_ALIGN - 1);
	uint64_t limit = phys_bits >= 64 ? UINT64_MAX : (1ULL << phys_bits);
	*start = s;
	*size = phys_bits < 64 && s < limit ? limit - s : 0;
}

static int intx_set(void *ctx, uint32_t gsi, bool level)
{
	struct vm *vm = ctx;
	return vm->ops->irq_line(vm->hvm, gsi, level);
}

static void bar_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct vm_pci_bar *b = opaque;
	struct vm_pci_rec *r = b->rec;
	if (r->msix && pci_msix_bar_io(r->msix, b->idx, offset, data, len, is_write))
		return;
	if (r->bar_io[b->idx])
		r->bar_io[b->idx](r->opaque, offset, data, len, is_write);
	else if (!is_write)
		memset(data, 0, len);
}

static struct vm_pci_rec *rec_find(struct vm_pci *p, const struct pci_dev *dev)
{
	struct vm_pci_rec *found = NULL;
	pthread_mutex_lock(&p->lock);
	for (unsigned s = 0; s < PCI_SLOTS && !found; s++)
		if (p->rec[s] && p->rec[s]->dev == dev)
			found = p->rec[s];
	pthread_mutex_unlock(&p->lock);
	return found;
}

void vm_pci_bar_moved(struct vm *vm, struct pci_dev *dev, unsigned bar, uint64_t old_addr,
		      uint64_t new_addr)
{
	(void)old_addr; /* the record knows where it registered */
	if (!vm || !vm->pci || bar >= PCI_NUM_BARS)
		return;
	struct vm_pci_rec *r = rec_find(vm->pci, dev);
	if (!r)
		return;
	struct vm_pci_bar *b = &r->bar[bar];
	struct bus *bus = b->pio ? &vm->pio : &vm->mmio;
	if (b->mapped != PCI_BAR_UNMAPPED) {
		(void)bus_unregister(bus, b->mapped);
		b->mapped = PCI_BAR_UNMAPPED;
	}
	if (new_addr == PCI_BAR_UNMAPPED)
		return;
	int e = bus_register(bus, new_addr, dev->bar[bar].size, bar_io, b, r->name);
	if (e == 0) {
		b->mapped = new_addr;
	} else if (!r->warned) {
		/* A guest may program a BAR over another range; it then decodes nothing. */
		r->warned = true;
		log_warn("pci %s: BAR%u at %#" PRIx64 " (%#" PRIx64 " bytes) not mapped: %s",
			 r->name, bar, new_addr, dev->bar[bar].size, strerror(-e));
	}
}

/* ---- MSI-X: each vector gets GSI gsi_base + vector, routed when first
 * unmasked and raised through an irqfd. Runs with the MSI-X lock held. ---- */

static void msix_vector_changed(void *opaque, uint16_t vector, const struct pci_msi_msg *msg,
				bool masked)
{
	struct vm_pci_rec *r = opaque;
	struct vm *vm = r->vm;
	if (vector >= r->nvec || masked)
		return; /* a masked vector is never delivered; its route may stay */
	struct vm_pci_vec *v = &r->vec[vector];
	uint32_t gsi = r->gsi_base + vector;
	const struct hv_msi m = {.address = msg->address, .data = msg->data};
	int e = vm->ops->route_msi(vm->hvm, gsi, &m);
	if (e < 0) {
		log_warn("pci %s: MSI-X vector %u: routing GSI %u: %s", r->name, vector, gsi,
			 strerror(-e));
		return;
	}
	if (v->fd < 0) {
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0) {
			log_warn("pci %s: MSI-X vector %u: eventfd: %s", r->name, vector,
				 strerror(errno));
			return;
		}
		e = vm->ops->irqfd(vm->hvm, fd, gsi, true);
		if (e < 0) {
			log_warn("pci %s: MSI-X vector %u: irqfd on GSI %u: %s", r->name, vector,
				 gsi, strerror(-e));
			close(fd);
			return;
		}
		v->fd = fd;
	}
	v->routed = true;
}

static void msix_deliver(void *opaque, uint16_t vector, const struct pci_msi_msg *msg)
{
	struct vm_pci_rec *r = opaque;
	if (vector >= r->nvec)
		return;
	struct vm_pci_vec *v = &r->vec[vector];
	/* deliver follows vector_changed for an unmasked vector; a failed route
	 * leaves nothing to raise. */
	if (!v->routed || v->fd < 0) {
		msix_vector_changed(opaque, vector, msg, false);
		if (!v->routed || v->fd < 0)
			return;
	}
	uint64_t one = 1;
	ssize_t n = write(v->fd, &one, sizeof(one));
	(void)n; /* EAGAIN: the counter is saturated, the interrupt is pending anyway */
}

static const struct pci_msix_ops msix_ops = {
    .vector_changed = msix_vector_changed,
    .deliver = msix_deliver,
};

int vm_pci_msix_fd(struct vm *vm, struct pci_dev *dev, uint16_t vector)
{
	struct vm_pci_rec *r = vm && vm->pci ? rec_find(vm->pci, dev) : NULL;
	if (!r || vector >= r->nvec)
		return -EINVAL;
	return r->vec[vector].fd >= 0 ? r->vec[vector].fd : -ENOENT;
}

static void rec_free(struct vm *vm, struct vm_pci_rec *r)
{
	if (!r)
		return;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		if (r->bar[i].mapped != PCI_BAR_UNMAPPED)
			(void)bus_unregister(r->bar[i].pio ? &vm->pio : &vm->mmio,
					     r->bar[i].mapped);
	for (unsigned i = 0; i < r->nvec; i++)
		if (r->vec[i].fd >= 0) {
			(void)vm->ops->irqfd(vm->hvm, r->vec[i].fd, r->gsi_base + i, false);
			close(r->vec[i].fd);
		}
	free(r->vec);
	free(r);
}

int vm_pci_add_device(struct vm *vm, const struct vm_pci_fn *fn, struct pci_msix **msix,
		      struct chv_err *err)
{
	if (!vm || !vm->pci || !fn || !fn->dev || !fn->dev->inited)
		return chv_err_set(err, -EINVAL, "pci: no device to add");
	struct vm_pci *p = vm->pci;
	const char *name = fn->name ? fn->name : "device";
	if (fn->slot < -1 || fn->slot == 0 || fn->slot >= PCI_SLOTS)
		return chv_err_set(err, -EINVAL, "pci %s: slot=%d is out of range (1..%d)", name,
				   fn->slot, PCI_SLOTS - 1);
	struct vm_pci_rec *r = calloc(1, sizeof(*r));
	if (!r)
		return chv_err_set(err, -ENOMEM, "pci %s: out of memory", name);
	r->vm = vm;
	r->dev = fn->dev;
	snprintf(r->name, sizeof(r->name), "%s", name);
	memcpy(r->bar_io, fn->bar_io, sizeof(r->bar_io));
	r->opaque = fn->opaque;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		r->bar[i] =
		    (struct vm_pci_bar){r, i, PCI_BAR_UNMAPPED, fn->dev->bar[i].kind == PCI_BAR_IO};

	int e;
	if (fn->msix) {
		uint16_t nvec = fn->msix->nvec;
		pthread_mutex_lock(&p->lock);
		bool room = nvec <= MSI_GSI_LIMIT - p->next_gsi;
		if (room) {
			r->gsi_base = p->next_gsi;
			p->next_gsi += nvec;
		}
		pthread_mutex_unlock(&p->lock);
		if (!room) {
			free(r);
			return chv_err_set(
			    err, -ENOSPC, "pci %s: MSI-X nvec=%u: no GSIs left (%u in use of %u)",
			    name, nvec, p->next_gsi - MSI_GSI_FIRST, MSI_GSI_LIMIT - MSI_GSI_FIRST);
		}
		r->vec = calloc(nvec ? nvec : 1, sizeof(*r->vec));
		if (!r->vec) {
			free(r);
			return chv_err_set(err, -ENOMEM, "pci %s: out of memory", name);
		}
		for (unsigned i = 0; i < nvec; i++)
			r->vec[i].fd = -1;
		r->nvec = nvec;
		e = pci_msix_init(fn->dev, fn->msix, &msix_ops, r, &r->msix, err);
		if (e < 0) {
			rec_free(vm, r);
			return e;
		}
	}

	/* The record is found by bar_moved from here on. */
	pthread_mutex_lock(&p->lock);
	int slot = fn->slot;
	if (slot < 0)
		for (int s = 1; s < PCI_SLOTS && slot < 0; s++)
			if (!p->rec[s] && !pci_bus_get(&p->bus, s))
				slot = s;
	e = slot < 0 ? -ENOSPC : p->rec[slot] ? -EBUSY : 0;
	if (!e)
		p->rec[slot] = r;
	pthread_mutex_unlock(&p->lock);
	if (!e) {
		e = pci_bus_add(&p->bus, fn->dev, slot);
		if (e < 0) {
			pthread_mutex_lock(&p->lock);
			p->rec[slot] = NULL;
			pthread_mutex_unlock(&p->lock);
		}
	}
	if (e < 0) {
		rec_free(vm, r); /* pci_dev_destroy by the owner takes the MSI-X */
		if (e == -ENOSPC)
			return chv_err_set(err, e, "pci %s: no free slot", name);
		return chv_err_set(err, e, "pci %s: slot %d: %s", name, fn->slot,
				   e == -EBUSY ? "taken" : strerror(-e));
	}
	uint8_t pin = pci_cfg_get8(fn->dev, PCI_INTERRUPT_PIN);
	if (pin >= 1 && pin <= 4) {
		const struct irq_line line = {intx_set, vm, vm_pci_intx_gsi((unsigned)slot, pin)};
		pci_dev_set_intx_line(fn->dev, &line);
		/* What firmware would report for a guest that reads it. */
		pci_cfg_set8(fn->dev, PCI_INTERRUPT_LINE, (uint8_t)line.gsi);
	}
	e = pci_assign_bars(&p->bus, fn->dev, true, err);
	if (e < 0) {
		(void)pci_bus_remove(&p->bus, slot);
		pthread_mutex_lock(&p->lock);
		p->rec[slot] = NULL;
		pthread_mutex_unlock(&p->lock);
		rec_free(vm, r);
		return e;
	}
	if (msix)
		*msix = r->msix;
	return slot;
}

int vm_pci_create(struct vm *vm, struct chv_err *err)
{
	struct vm_pci *p = calloc(1, sizeof(*p));
	if (!p)
		return chv_err_set(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&p->lock, NULL);
	p->next_gsi = MSI_GSI_FIRST;
	vm->pci = p;
	vm_pci_mem64_window(vm->cfg->memory.size, vm->cfg->cpus.max_phys_bits, &p->mem64_start,
			    &p->mem64_size);
	int e = pci_bus_init(&p->bus, p->mem64_start, p->mem64_size, err);
	if (e < 0)
		return e;
	p->bus_ok = true;
	e = bus_register(&vm->mmio, LAYOUT_ECAM_START, LAYOUT_ECAM_SIZE, pci_ecam_io, &p->bus,
			 "PCI ECAM");
	if (e < 0)
		return chv_err_set(err, e, "PCI ECAM at %#llx: %s", LAYOUT_ECAM_START,
				   strerror(-e));
	p->ecam_ok = true;
	e = bus_register(&vm->pio, PCI_PORT_CONFIG_ADDR, 4, pci_cf8_io, &p->bus, "PCI 0xCF8");
	if (e < 0)
		return chv_err_set(err, e, "PCI config address at port 0xcf8: %s", strerror(-e));
	p->cf8_ok = true;
	e = bus_register(&vm->pio, PCI_PORT_CONFIG_DATA, 4, pci_cfc_io, &p->bus, "PCI 0xCFC");
	if (e < 0)
		return chv_err_set(err, e, "PCI config data at port 0xcfc: %s", strerror(-e));
	p->cfc_ok = true;
	return 0;
}

void vm_pci_destroy(struct vm *vm)
{
	struct vm_pci *p = vm->pci;
	if (!p)
		return;
	/* Devices are destroyed by their owners; only the VM's records go. */
	for (int s = PCI_SLOTS - 1; s > 0; s--) {
		if (!p->rec[s])
			continue;
		(void)pci_bus_remove(&p->bus, s); /* unmaps its BARs through bar_moved */
		rec_free(vm, p->rec[s]);
		p->rec[s] = NULL;
	}
	if (p->cfc_ok)
		(void)bus_unregister(&vm->pio, PCI_PORT_CONFIG_DATA);
	if (p->cf8_ok)
		(void)bus_unregister(&vm->pio, PCI_PORT_CONFIG_ADDR);
	if (p->ecam_ok)
		(void)bus_unregister(&vm->mmio, LAYOUT_ECAM_START);
	if (p->bus_ok)
		pci_bus_destroy(&p->bus);
	pthread_mutex_destroy(&p->lock);
	free(p);
	vm->pci = NULL;
}

void vm_pci_windows(struct vm *vm, uint64_t *mem64_start, uint64_t *mem64_size)
{
	*mem64_start = vm->pci ? vm->pci->mem64_start : 0;
	*mem64_size = vm->pci ? vm->pci->mem64_size : 0;
}

struct pci_bus *vm_pci_bus(struct vm *vm)
{
	return vm->pci ? &vm->pci->bus : NULL;
}
