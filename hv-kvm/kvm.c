/* KVM backend: the hypervisor, the VM, memory, interrupts and eventfds. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "hv-kvm/kvm.h"
#include "vm/layout.h"

/* Every capability chv relies on; a missing one is a clear error naming it. */
static const struct {
	int cap;
	const char *name;
} required_caps[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR"},
    {KVM_CAP_XSAVE, "KVM_CAP_XSAVE"},
    {KVM_CAP_TSC_DEADLINE_TIMER, "KVM_CAP_TSC_DEADLINE_TIMER"},
    {KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS"},
    {KVM_CAP_ADJUST_CLOCK, "KVM_CAP_ADJUST_CLOCK"},
};

static int kvm_open(struct hv **out, struct chv_err *err)
{
	struct hv *hv = calloc(1, sizeof(*hv));
	if (!hv)
		return chv_err_set(err, -ENOMEM, "out of memory");
	hv->fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (hv->fd < 0) {
		int e = errno;
		free(hv);
		/* A missing device is the host's state, not a bad argument:
		 * report it as -ENODEV (FAILED_PRECONDITION over the API). */
		return chv_err_set(err, e == ENOENT || e == ENXIO ? -ENODEV : -e,
				   "cannot open /dev/kvm: %s (is KVM available on this host?)",
				   strerror(e));
	}
	int version = ioctl(hv->fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION) {
		chv_err_set(err, -ENOTSUP, "/dev/kvm: API version %d, chv needs %d", version,
			    KVM_API_VERSION);
		goto fail;
	}
	for (size_t i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++) {
		if (ioctl(hv->fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0) {
			chv_err_set(err, -ENOTSUP, "/dev/kvm lacks %s, which chv needs",
				    required_caps[i].name);
			goto fail;
		}
	}
	hv->run_size = ioctl(hv->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (hv->run_size < (int)sizeof(struct kvm_run)) {
		chv_err_set(err, -ENOTSUP, "/dev/kvm: bad KVM_GET_VCPU_MMAP_SIZE %d", hv->run_size);
		goto fail;
	}
	int xs2 = ioctl(hv->fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	hv->xsave_size = xs2 > (int)sizeof(struct kvm_xsave) ? xs2 : (int)sizeof(struct kvm_xsave);
	*out = hv;
	return 0;
fail:
	close(hv->fd);
	free(hv);
	return err ? err->code : -ENOTSUP;
}

static void kvm_close(struct hv *hv)
{
	if (!hv)
		return;
	close(hv->fd);
	free(hv);
}

static int kvm_supported_cpuid(struct hv *hv, struct hv_cpuid_entry *e, uint32_t *n)
{
	uint32_t cap = *n;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + cap * sizeof(struct kvm_cpuid_entry2));
	if (!c)
		return -ENOMEM;
	c->nent = cap;
	if (ioctl(hv->fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		int r = -errno;
		free(c);
		return r;
	}
	for (uint32_t i = 0; i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *k = &c->entries[i];
		e[i] = (struct hv_cpuid_entry){
		    .function = k->function,
		    .index = k->index,
		    .flags =
			(k->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) ? HV_CPUID_FLAG_INDEXED : 0,
		    .eax = k->eax,
		    .ebx = k->ebx,
		    .ecx = k->ecx,
		    .edx = k->edx,
		};
	}
	*n = c->nent;
	free(c);
	return 0;
}

static int kvm_msr_index_list(struct hv *hv, uint32_t *idx, uint32_t *n)
{
	uint32_t cap = *n;
	struct kvm_msr_list *l = calloc(1, sizeof(*l) + cap * sizeof(uint32_t));
	if (!l)
		return -ENOMEM;
	l->nmsrs = cap;
	if (ioctl(hv->fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		int r = -errno;
		free(l);
		return r;
	}
	memcpy(idx, l->indices, l->nmsrs * sizeof(uint32_t));
	*n = l->nmsrs;
	free(l);
	return 0;
}

static int kvm_commit_routes(struct hv_vm *vm)
{
	struct kvm_irq_routing *r =
	    calloc(1, sizeof(*r) + vm->nroutes * sizeof(struct kvm_irq_routing_entry));
	if (!r)
		return -ENOMEM;
	r->nr = vm->nroutes;
	memcpy(r->entries, vm->routes, vm->nroutes * sizeof(vm->routes[0]));
	int ret = ioctl(vm->fd, KVM_SET_GSI_ROUTING, r) < 0 ? -errno : 0;
	free(r);
	return ret;
}

static void kvm_vm_destroy(struct hv_vm *vm)
{
	if (!vm)
		return;
	if (vm->fd >= 0)
		close(vm->fd);
	pthread_mutex_destroy(&vm->route_lock);
	free(vm);
}

static int kvm_vm_create(struct hv *hv, struct hv_vm **out, struct chv_err *err)
{
	struct hv_vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return chv_err_set(err, -ENOMEM, "out of memory");
	vm->hv = hv;
	pthread_mutex_init(&vm->route_lock, NULL);
	vm->fd = ioctl(hv->fd, KVM_CREATE_VM, 0);
	if (vm->fd < 0) {
		int e = errno;
		kvm_vm_destroy(vm);
		return chv_err_set(err, -e, "KVM_CREATE_VM: %s", strerror(e));
	}
	(void)fcntl(vm->fd, F_SETFD, FD_CLOEXEC);
	/* VMX needs these pages for real-mode emulation; place them inside the
	 * 32-bit hole, clear of devices (SVM ignores them). */
	if (ioctl(vm->fd, KVM_SET_TSS_ADDR, (unsigned long)LAYOUT_KVM_TSS) < 0) {
		int e = errno;
		kvm_vm_destroy(vm);
		return chv_err_set(err, -e, "KVM_SET_TSS_ADDR: %s", strerror(e));
	}
	uint64_t ident = LAYOUT_KVM_IDENTITY;
	if (ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0) {
		int e = errno;
		kvm_vm_destroy(vm);
		return chv_err_set(err, -e, "KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(e));
	}
	/* The default routes, kept here so MSI routes can be added to them:
	 * GSI n -> IOAPIC pin n, and PIC pin n for 0-15 (KVM's own default). */
	for (uint32_t gsi = 0; gsi < 24; gsi++) {
		if (gsi < 16) {
			vm->routes[vm->nroutes++] = (struct kvm_irq_routing_entry){
			    .gsi = gsi,
			    .type = KVM_IRQ_ROUTING_IRQCHIP,
			    .u.irqchip = {.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER
							     : KVM_IRQCHIP_PIC_SLAVE,
					  .pin = gsi % 8},
			};
		}
		vm->routes[vm->nroutes++] = (struct kvm_irq_routing_entry){
		    .gsi = gsi,
		    .type = KVM_IRQ_ROUTING_IRQCHIP,
		    .u.irqchip = {.irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi},
		};
	}
	*out = vm;
	return 0;
}

/* The in-kernel irqchip is created on first need (the first vCPU, interrupt
 * or route), not with the VM: memory slots added after it cost a KVM SRCU
 * grace period each (measured here: 6-7 ms instead of 0.2 ms for the first
 * 128 MiB slot), so the boot memory goes in first. */
int hv_kvm_ensure_irqchip(struct hv_vm *vm)
{
	int r = 0;
	pthread_mutex_lock(&vm->route_lock);
	if (!vm->irqchip) {
		if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0)
			r = -errno;
		else
			vm->irqchip = true;
	}
	pthread_mutex_unlock(&vm->route_lock);
	return r;
}

static int kvm_set_memory(struct hv_vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *hva,
			  unsigned flags)
{
	struct kvm_userspace_memory_region r = {
	    .slot = slot,
	    .flags = (flags & HV_MEM_READONLY) ? KVM_MEM_READONLY : 0,
	    .guest_phys_addr = gpa,
	    .memory_size = size,
	    .userspace_addr = (uintptr_t)hva,
	};
	return ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}

static int kvm_irq_line(struct hv_vm *vm, uint32_t gsi, bool level)
{
	int r = hv_kvm_ensure_irqchip(vm);
	if (r < 0)
		return r;
	struct kvm_irq_level l = {.irq = gsi, .level = level};
	return ioctl(vm->fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}

static int kvm_route_msi(struct hv_vm *vm, uint32_t gsi, const struct hv_msi *msi)
{
	int r = hv_kvm_ensure_irqchip(vm);
	if (r < 0)
		return r;
	pthread_mutex_lock(&vm->route_lock);
	uint32_t i;
	for (i = 0; i < vm->nroutes; i++)
		if (vm->routes[i].gsi == gsi && vm->routes[i].type == KVM_IRQ_ROUTING_MSI)
			break;
	if (i == vm->nroutes) {
		if (vm->nroutes == KVM_MAX_ROUTES) {
			pthread_mutex_unlock(&vm->route_lock);
			return -ENOSPC;
		}
		vm->nroutes++;
	}
	vm->routes[i] = (struct kvm_irq_routing_entry){
	    .gsi = gsi,
	    .type = KVM_IRQ_ROUTING_MSI,
	    .u.msi = {.address_lo = (uint32_t)msi->address,
		      .address_hi = (uint32_t)(msi->address >> 32),
		      .data = msi->data},
	};
	r = kvm_commit_routes(vm);
	pthread_mutex_unlock(&vm->route_lock);
	return r;
}

static int kvm_irqfd(struct hv_vm *vm, int fd, uint32_t gsi, bool assign)
{
	int r = hv_kvm_ensure_irqchip(vm);
	if (r < 0)
		return r;
	struct kvm_irqfd i = {
	    .fd = (uint32_t)fd, .gsi = gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN};
	return ioctl(vm->fd, KVM_IRQFD, &i) < 0 ? -errno : 0;
}

static int kvm_ioeventfd(struct hv_vm *vm, int fd, uint64_t addr, uint32_t len, bool pio,
			 int64_t match_data, bool assign)
{
	struct kvm_ioeventfd e = {
	    .datamatch = match_data < 0 ? 0 : (uint64_t)match_data,
	    .addr = addr,
	    .len = len,
	    .fd = fd,
	    .flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
		     (match_data >= 0 ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) |
		     (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};
	return ioctl(vm->fd, KVM_IOEVENTFD, &e) < 0 ? -errno : 0;
}

const struct hv_ops hv_kvm_ops = {
    .name = "kvm",
    .open = kvm_open,
    .close = kvm_close,
    .supported_cpuid = kvm_supported_cpuid,
    .msr_index_list = kvm_msr_index_list,
    .vm_create = kvm_vm_create,
    .vm_destroy = kvm_vm_destroy,
    .set_memory = kvm_set_memory,
    .irq_line = kvm_irq_line,
    .route_msi = kvm_route_msi,
    .irqfd = kvm_irqfd,
    .ioeventfd = kvm_ioeventfd,
    .vcpu_create = hv_kvm_vcpu_create,
    .vcpu_destroy = hv_kvm_vcpu_destroy,
    .set_cpuid = hv_kvm_set_cpuid,
    .get_regs = hv_kvm_get_regs,
    .set_regs = hv_kvm_set_regs,
    .get_sregs = hv_kvm_get_sregs,
    .set_sregs = hv_kvm_set_sregs,
    .get_fpu = hv_kvm_get_fpu,
    .set_fpu = hv_kvm_set_fpu,
    .get_msrs = hv_kvm_get_msrs,
    .set_msrs = hv_kvm_set_msrs,
    .get_xsave = hv_kvm_get_xsave,
    .set_xsave = hv_kvm_set_xsave,
    .get_lapic = hv_kvm_get_lapic,
    .set_lapic = hv_kvm_set_lapic,
    .lapic_init = hv_kvm_lapic_init,
    .get_mp_state = hv_kvm_get_mp_state,
    .set_mp_state = hv_kvm_set_mp_state,
    .run = hv_kvm_run,
    .kick = hv_kvm_kick,
    .unkick = hv_kvm_unkick,
};
