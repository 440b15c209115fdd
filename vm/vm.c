/* VM assembly: memory, hypervisor VM, devices, ACPI, kernel, vCPUs; and the
 * run/stop/destroy lifecycle. Set-up order is mirrored by teardown. */
#include "vm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acpi/acpi.h"
#include "vm/cpuid.h"
#include "vm/e820.h"
#include "vm/log.h"
#include "vm/sink.h"
#include "vm/vm_internal.h"

const char *vm_outcome_name(enum vm_outcome o)
{
	switch (o) {
	case VM_OUT_NONE:
		return "running";
	case VM_OUT_POWEROFF:
		return "poweroff";
	case VM_OUT_RESET:
		return "reset";
	case VM_OUT_FAILED:
		return "failed";
	case VM_OUT_STOPPED:
		return "stopped";
	}
	return "?";
}

struct file_map {
	uint8_t *data;
	size_t len;
};

static int map_file(const char *opt, const char *path, struct file_map *f, struct chv_err *err)
{
	f->data = NULL;
	f->len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return chv_err_set(err, -errno, "%s: cannot open %s: %s", opt, path,
				   strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return chv_err_set(err, -EINVAL, "%s: %s is not a regular file", opt, path);
	}
	if (st.st_size == 0) {
		close(fd);
		return chv_err_set(err, -EINVAL, "%s: %s is empty", opt, path);
	}
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	int e = errno;
	close(fd);
	if (p == MAP_FAILED)
		return chv_err_set(err, -e, "%s: cannot map %s: %s", opt, path, strerror(e));
	f->data = p;
	f->len = (size_t)st.st_size;
	return 0;
}

static void unmap_file(struct file_map *f)
{
	if (f->data)
		munmap(f->data, f->len);
	f->data = NULL;
}

static int setup_memory(struct vm *vm, struct chv_err *err)
{
	struct mem_layout l;
	layout_compute(vm->cfg->memory.size, &l);
	int r = vm_mem_create(&vm->mem, &l, vm->cfg->memory.shared, vm->cfg->memory.hugepages, err);
	if (r < 0)
		return r;
	vm->mem_ok = true;
	for (unsigned i = 0; i < vm->mem.nregions; i++) {
		const struct vm_mem_region *reg = &vm->mem.region[i];
		r = vm->ops->set_memory(vm->hvm, i, reg->gpa, reg->size, reg->hva, 0);
		if (r < 0)
			return chv_err_set(err, r, "memory slot %u (%#llx+%#llx): %s", i,
					   (unsigned long long)reg->gpa,
					   (unsigned long long)reg->size, strerror(-r));
	}
	return 0;
}

static int setup_acpi(struct vm *vm, uint64_t *rsdp, struct chv_err *err)
{
	const struct vm_config *cfg = vm->cfg;
	struct acpi_platform *p = calloc(1, sizeof(*p));
	uint8_t *buf = calloc(1, LAYOUT_ACPI_SIZE);
	int r = 0;
	if (!p || !buf) {
		r = chv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	p->boot_cpus = cfg->cpus.boot;
	p->max_cpus = cfg->cpus.max;
	uint32_t max_id = 0;
	for (uint32_t i = 0; i < cfg->cpus.max; i++) {
		p->apic_id[i] = cpuid_apic_id(&cfg->cpus.topology, i);
		if (p->apic_id[i] > max_id)
			max_id = p->apic_id[i];
	}
	p->lapic_addr = LAYOUT_LAPIC;
	p->ioapic_addr = LAYOUT_IOAPIC;
	/* The IOAPIC takes the id after the last LAPIC's, or 0 when none is left. */
	p->ioapic_id = max_id < 254 ? (uint8_t)(max_id + 1) : 0;
	p->ioapic_gsi_base = 0;
	p->pm_port = PORT_ACPI_PM;
	p->reset_value = ACPI_RESET_VALUE;
	p->s5_slp_typ = ACPI_S5_SLP_TYP;
	if (cfg->serial.mode != CONSOLE_OFF)
		p->com1 = (struct acpi_serial){PORT_COM1, IRQ_COM1};
	if (vm->pci) {
		p->ecam_base = LAYOUT_ECAM_START;
		p->ecam_bus_start = 0;
		p->ecam_bus_end = (uint8_t)((LAYOUT_ECAM_SIZE >> 20) - 1);
		p->pci.present = true;
		p->pci.mem32_base = LAYOUT_MMIO32_START;
		p->pci.mem32_size = LAYOUT_MMIO32_SIZE;
		vm_pci_windows(vm, &p->pci.mem64_base, &p->pci.mem64_size);
		p->pci.intx_gsi_base = VM_PCI_INTX_GSI_BASE;
		p->pci.intx_gsi_count = VM_PCI_INTX_GSIS;
	}
	struct acpi_tables t;
	r = acpi_build(p, buf, LAYOUT_ACPI_SIZE, LAYOUT_ACPI_START, &t);
	if (r < 0) {
		chv_err_set(err, r, "building ACPI tables: %s", strerror(-r));
		goto out;
	}
	if (vm_mem_write(&vm->mem, LAYOUT_ACPI_START, buf, t.size) < 0) {
		r = chv_err_set(err, -EFAULT, "ACPI tables do not fit in guest memory");
		goto out;
	}
	*rsdp = t.rsdp_gpa;
out:
	free(p);
	free(buf);
	return r;
}

static int load_payload(struct vm *vm, uint64_t rsdp, struct chv_err *err)
{
	const struct vm_config *cfg = vm->cfg;
	struct file_map kernel = {0}, initrd = {0};
	int r = map_file("--kernel", cfg->payload.kernel, &kernel, err);
	if (r < 0)
		return r;
	if (cfg->payload.initramfs) {
		r = map_file("--initramfs", cfg->payload.initramfs, &initrd, err);
		if (r < 0)
			goto out;
	}
	struct mem_layout l;
	struct e820_table e820;
	layout_compute(cfg->memory.size, &l);
	e820_build(&l, &e820);
	struct load_request req = {
	    .kernel = kernel.data,
	    .kernel_len = kernel.len,
	    .initramfs = initrd.data,
	    .initramfs_len = initrd.len,
	    .cmdline = cfg->payload.cmdline ? cfg->payload.cmdline : "",
	    .e820 = &e820,
	    .rsdp_gpa = rsdp,
	};
	r = loader_load(&vm->mem, &req, &vm->boot, err);
	if (r == 0)
		log_info("loaded %s as %s, entry %#llx", cfg->payload.kernel,
			 vm->boot.proto == BOOT_PVH ? "PVH ELF" : "bzImage (64-bit entry)",
			 (unsigned long long)vm->boot.entry);
out:
	unmap_file(&kernel);
	unmap_file(&initrd);
	return r;
}

int vm_create(struct vm **out, const struct vm_config *cfg, struct sink *serial,
	      struct chv_err *err)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return chv_err_set(err, -ENOMEM, "out of memory");
	vm->cfg = cfg;
	vm->serial = serial;
	vm->mem.fd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	int r;
	vm->outcome_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->outcome_fd < 0) {
		r = chv_err_set(err, -errno, "outcome eventfd: %s", strerror(errno));
		goto fail;
	}
	vm->ops = hv_backend(cfg->hypervisor ? cfg->hypervisor : "kvm");
	if (!vm->ops) {
		r = chv_err_set(err, -EINVAL, "--hypervisor: %s is not built in", cfg->hypervisor);
		goto fail;
	}
	if ((r = vm->ops->open(&vm->hv, err)) < 0)
		goto fail;
	if ((r = vm->ops->vm_create(vm->hv, &vm->hvm, err)) < 0)
		goto fail;
	if ((r = setup_memory(vm, err)) < 0)
		goto fail;
	if ((r = bus_init(&vm->pio, "pio")) < 0) {
		chv_err_set(err, r, "port I/O bus: %s", strerror(-r));
		goto fail;
	}
	vm->pio_ok = true;
	if ((r = bus_init(&vm->mmio, "mmio")) < 0) {
		chv_err_set(err, r, "MMIO bus: %s", strerror(-r));
		goto fail;
	}
	vm->mmio_ok = true;
	if ((r = vm_devices_create(vm, err)) < 0)
		goto fail;
	if ((r = vm_pci_create(vm, err)) < 0)
		goto fail;
	if ((r = vm_virtio_create(vm, err)) < 0)
		goto fail;
	uint64_t rsdp = 0;
	if ((r = setup_acpi(vm, &rsdp, err)) < 0)
		goto fail;
	if ((r = load_payload(vm, rsdp, err)) < 0)
		goto fail;
	vm->vcpus = calloc(cfg->cpus.boot, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		r = chv_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	for (uint32_t i = 0; i < cfg->cpus.boot; i++) {
		vm->nvcpus = i + 1;
		if ((r = vcpu_setup(vm, &vm->vcpus[i], i, err)) < 0)
			goto fail;
	}
	if ((r = boot_cpu_setup(vm, &vm->vcpus[0], err)) < 0)
		goto fail;
	*out = vm;
	return 0;
fail:
	vm_destroy(vm);
	return r;
}

void vm_stop(struct vm *vm, enum vm_outcome outcome, const char *reason)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->outcome == VM_OUT_NONE) {
		snprintf(vm->reason, sizeof(vm->reason), "%s", reason ? reason : "");
		__atomic_store_n(&vm->outcome, outcome, __ATOMIC_RELEASE);
		for (uint32_t i = 0; i < vm->nvcpus; i++)
			vcpu_kick(&vm->vcpus[i]);
		pthread_cond_broadcast(&vm->cond);
		if (vm->outcome_fd >= 0) {
			uint64_t one = 1;
			ssize_t w = write(vm->outcome_fd, &one, sizeof(one));
			(void)w; /* cannot overflow: written once */
		}
	}
	pthread_mutex_unlock(&vm->lock);
}

int vm_start(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->started) {
		pthread_mutex_unlock(&vm->lock);
		return -EALREADY;
	}
	vm->started = true;
	pthread_mutex_unlock(&vm->lock);
	for (uint32_t i = 0; i < vm->nvcpus; i++) {
		/* Counted before the thread exists, so a pause never misses it. */
		pthread_mutex_lock(&vm->lock);
		vm->live++;
		pthread_mutex_unlock(&vm->lock);
		int r = vcpu_start(&vm->vcpus[i]);
		if (r < 0) {
			pthread_mutex_lock(&vm->lock);
			vm->live--;
			pthread_cond_broadcast(&vm->cond);
			pthread_mutex_unlock(&vm->lock);
			char msg[128];
			snprintf(msg, sizeof(msg), "vcpu%u: cannot start its thread: %s", i,
				 strerror(-r));
			log_error("%s", msg);
			vm_stop(vm, VM_OUT_FAILED, msg);
			return r;
		}
	}
	return 0;
}

enum vm_outcome vm_wait(struct vm *vm, char *reason, size_t reason_len)
{
	pthread_mutex_lock(&vm->lock);
	while (vm->outcome == VM_OUT_NONE)
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	for (uint32_t i = 0; i < vm->nvcpus; i++)
		vcpu_join(&vm->vcpus[i]);
	return vm_outcome(vm, reason, reason_len);
}

enum vm_outcome vm_run(struct vm *vm, char *reason, size_t reason_len)
{
	int r = vm_start(vm);
	(void)r; /* a failure to start is already the VM's outcome */
	return vm_wait(vm, reason, reason_len);
}

int vm_outcome_fd(const struct vm *vm)
{
	return vm->outcome_fd;
}

enum vm_outcome vm_outcome(struct vm *vm, char *reason, size_t reason_len)
{
	pthread_mutex_lock(&vm->lock);
	enum vm_outcome o = vm->outcome;
	if (reason && reason_len)
		snprintf(reason, reason_len, "%s", o == VM_OUT_NONE ? "" : vm->reason);
	pthread_mutex_unlock(&vm->lock);
	return o;
}

int vm_pause(struct vm *vm)
{
	int r = 0;
	pthread_mutex_lock(&vm->lock);
	if (vm->outcome != VM_OUT_NONE) {
		pthread_mutex_unlock(&vm->lock);
		return -ESRCH;
	}
	if (!vm->pause_req) {
		__atomic_store_n(&vm->pause_req, true, __ATOMIC_RELEASE);
		for (uint32_t i = 0; i < vm->nvcpus; i++)
			vcpu_kick(&vm->vcpus[i]);
	}
	while (vm->parked < vm->live && vm->outcome == VM_OUT_NONE)
		pthread_cond_wait(&vm->cond, &vm->lock);
	if (vm->outcome != VM_OUT_NONE)
		r = -ESRCH;
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	int r = vm->outcome != VM_OUT_NONE ? -ESRCH : 0;
	if (vm->pause_req) {
		__atomic_store_n(&vm->pause_req, false, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&vm->cond);
	}
	pthread_mutex_unlock(&vm->lock);
	return r;
}

static const char *const exit_names[HV_EXIT__COUNT] = {
    [HV_EXIT_NONE] = "none",
    [HV_EXIT_PIO] = "pio",
    [HV_EXIT_MMIO] = "mmio",
    [HV_EXIT_HLT] = "hlt",
    [HV_EXIT_INTR] = "intr",
    [HV_EXIT_SHUTDOWN] = "shutdown",
    [HV_EXIT_SYSTEM_RESET] = "system_reset",
    [HV_EXIT_SYSTEM_OFF] = "system_off",
    [HV_EXIT_INTERNAL_ERROR] = "internal_error",
    [HV_EXIT_FAIL_ENTRY] = "fail_entry",
    [HV_EXIT_UNKNOWN] = "unknown",
};

void vm_counters(struct vm *vm, vm_counter_fn fn, void *ctx)
{
	/* Every kind is reported, zeros included, so the set of names is stable. */
	for (unsigned k = HV_EXIT_NONE + 1; k < HV_EXIT__COUNT; k++) {
		uint64_t sum = 0;
		for (uint32_t i = 0; i < vm->nvcpus; i++)
			sum += __atomic_load_n(&vm->vcpus[i].exits[k], __ATOMIC_RELAXED);
		char name[48];
		snprintf(name, sizeof(name), "exits.%s", exit_names[k]);
		fn(ctx, name, sum);
	}
	if (vm->serial)
		fn(ctx, "serial.tx_bytes", sink_tx_bytes(vm->serial));
	/* A timestamp, not a count: lets a client measure start-up to the
	 * guest's first instruction against its own clock (bench/api_bench). */
	fn(ctx, "debug.first_io_monotonic_ns", vm_devices_debug_first_ns(vm));
	vm_virtio_counters(vm, fn, ctx);
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	/* vCPU threads leave their loop only once an outcome is set. */
	if (vm->started)
		vm_stop(vm, VM_OUT_STOPPED, "destroyed");
	for (uint32_t i = 0; i < vm->nvcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	for (uint32_t i = vm->nvcpus; i-- > 0;)
		vcpu_teardown(&vm->vcpus[i]);
	free(vm->vcpus);
	/* No kick may reach a device while its function leaves the bus. */
	vm_virtio_stop(vm);
	vm_pci_destroy(vm);
	vm_virtio_destroy(vm);
	vm_devices_destroy(vm);
	if (vm->mmio_ok)
		bus_destroy(&vm->mmio);
	if (vm->pio_ok)
		bus_destroy(&vm->pio);
	if (vm->hvm)
		vm->ops->vm_destroy(vm->hvm);
	if (vm->mem_ok)
		vm_mem_destroy(&vm->mem);
	if (vm->hv)
		vm->ops->close(vm->hv);
	if (vm->outcome_fd >= 0)
		close(vm->outcome_fd);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}
