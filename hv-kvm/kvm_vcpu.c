/* KVM backend: vCPUs, their state, and the run loop's exit normalisation. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hv-kvm/kvm.h"

int hv_kvm_vcpu_create(struct hv_vm *vm, uint32_t index, struct hv_vcpu **out)
{
	int r = hv_kvm_ensure_irqchip(vm);
	if (r < 0)
		return r;
	struct hv_vcpu *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->vm = vm;
	v->index = index;
	v->fd = ioctl(vm->fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (v->fd < 0) {
		r = -errno;
		free(v);
		return r;
	}
	(void)fcntl(v->fd, F_SETFD, FD_CLOEXEC);
	v->run = mmap(NULL, vm->hv->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		r = -errno;
		close(v->fd);
		free(v);
		return r;
	}
	*out = v;
	return 0;
}

void hv_kvm_vcpu_destroy(struct hv_vcpu *v)
{
	if (!v)
		return;
	munmap(v->run, v->vm->hv->run_size);
	close(v->fd);
	free(v);
}

int hv_kvm_set_cpuid(struct hv_vcpu *v, const struct hv_cpuid_entry *e, uint32_t n)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
	if (!c)
		return -ENOMEM;
	c->nent = n;
	for (uint32_t i = 0; i < n; i++) {
		c->entries[i] = (struct kvm_cpuid_entry2){
		    .function = e[i].function,
		    .index = e[i].index,
		    .flags =
			(e[i].flags & HV_CPUID_FLAG_INDEXED) ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0,
		    .eax = e[i].eax,
		    .ebx = e[i].ebx,
		    .ecx = e[i].ecx,
		    .edx = e[i].edx,
		};
	}
	int r = ioctl(v->fd, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
	free(c);
	return r;
}

int hv_kvm_get_regs(struct hv_vcpu *v, struct hv_regs *r)
{
	struct kvm_regs k;
	if (ioctl(v->fd, KVM_GET_REGS, &k) < 0)
		return -errno;
	*r = (struct hv_regs){k.rax, k.rbx, k.rcx, k.rdx, k.rsi, k.rdi, k.rsp, k.rbp, k.r8,
			      k.r9,  k.r10, k.r11, k.r12, k.r13, k.r14, k.r15, k.rip, k.rflags};
	return 0;
}

int hv_kvm_set_regs(struct hv_vcpu *v, const struct hv_regs *r)
{
	struct kvm_regs k = {r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi,
			     r->rsp, r->rbp, r->r8,  r->r9,  r->r10, r->r11,
			     r->r12, r->r13, r->r14, r->r15, r->rip, r->rflags};
	return ioctl(v->fd, KVM_SET_REGS, &k) < 0 ? -errno : 0;
}

static void seg_from_kvm(struct hv_segment *h, const struct kvm_segment *k)
{
	*h = (struct hv_segment){
	    .base = k->base,
	    .limit = k->limit,
	    .selector = k->selector,
	    .type = k->type,
	    .present = k->present,
	    .dpl = k->dpl,
	    .db = k->db,
	    .s = k->s,
	    .l = k->l,
	    .g = k->g,
	    .avl = k->avl,
	    .unusable = k->unusable,
	};
}

static void seg_to_kvm(struct kvm_segment *k, const struct hv_segment *h)
{
	*k = (struct kvm_segment){
	    .base = h->base,
	    .limit = h->limit,
	    .selector = h->selector,
	    .type = h->type,
	    .present = h->present,
	    .dpl = h->dpl,
	    .db = h->db,
	    .s = h->s,
	    .l = h->l,
	    .g = h->g,
	    .avl = h->avl,
	    .unusable = h->unusable,
	};
}

int hv_kvm_get_sregs(struct hv_vcpu *v, struct hv_sregs *s)
{
	struct kvm_sregs k;
	if (ioctl(v->fd, KVM_GET_SREGS, &k) < 0)
		return -errno;
	seg_from_kvm(&s->cs, &k.cs);
	seg_from_kvm(&s->ds, &k.ds);
	seg_from_kvm(&s->es, &k.es);
	seg_from_kvm(&s->fs, &k.fs);
	seg_from_kvm(&s->gs, &k.gs);
	seg_from_kvm(&s->ss, &k.ss);
	seg_from_kvm(&s->tr, &k.tr);
	seg_from_kvm(&s->ldt, &k.ldt);
	s->gdt = (struct hv_dtable){k.gdt.base, k.gdt.limit};
	s->idt = (struct hv_dtable){k.idt.base, k.idt.limit};
	s->cr0 = k.cr0;
	s->cr2 = k.cr2;
	s->cr3 = k.cr3;
	s->cr4 = k.cr4;
	s->cr8 = k.cr8;
	s->efer = k.efer;
	s->apic_base = k.apic_base;
	return 0;
}

int hv_kvm_set_sregs(struct hv_vcpu *v, const struct hv_sregs *s)
{
	struct kvm_sregs k;
	/* Read first so the pending-interrupt bitmap is kept as KVM has it. */
	if (ioctl(v->fd, KVM_GET_SREGS, &k) < 0)
		return -errno;
	seg_to_kvm(&k.cs, &s->cs);
	seg_to_kvm(&k.ds, &s->ds);
	seg_to_kvm(&k.es, &s->es);
	seg_to_kvm(&k.fs, &s->fs);
	seg_to_kvm(&k.gs, &s->gs);
	seg_to_kvm(&k.ss, &s->ss);
	seg_to_kvm(&k.tr, &s->tr);
	seg_to_kvm(&k.ldt, &s->ldt);
	k.gdt.base = s->gdt.base;
	k.gdt.limit = s->gdt.limit;
	k.idt.base = s->idt.base;
	k.idt.limit = s->idt.limit;
	k.cr0 = s->cr0;
	k.cr2 = s->cr2;
	k.cr3 = s->cr3;
	k.cr4 = s->cr4;
	k.cr8 = s->cr8;
	k.efer = s->efer;
	k.apic_base = s->apic_base;
	return ioctl(v->fd, KVM_SET_SREGS, &k) < 0 ? -errno : 0;
}

int hv_kvm_get_fpu(struct hv_vcpu *v, struct hv_fpu *f)
{
	struct kvm_fpu k;
	if (ioctl(v->fd, KVM_GET_FPU, &k) < 0)
		return -errno;
	memcpy(f->fpr, k.fpr, sizeof(f->fpr));
	memcpy(f->xmm, k.xmm, sizeof(f->xmm));
	f->fcw = k.fcw;
	f->fsw = k.fsw;
	f->ftwx = k.ftwx;
	f->last_opcode = k.last_opcode;
	f->last_ip = k.last_ip;
	f->last_dp = k.last_dp;
	f->mxcsr = k.mxcsr;
	return 0;
}

int hv_kvm_set_fpu(struct hv_vcpu *v, const struct hv_fpu *f)
{
	struct kvm_fpu k = {0};
	memcpy(k.fpr, f->fpr, sizeof(k.fpr));
	memcpy(k.xmm, f->xmm, sizeof(k.xmm));
	k.fcw = f->fcw;
	k.fsw = f->fsw;
	k.ftwx = f->ftwx;
	k.last_opcode = f->last_opcode;
	k.last_ip = f->last_ip;
	k.last_dp = f->last_dp;
	k.mxcsr = f->mxcsr;
	return ioctl(v->fd, KVM_SET_FPU, &k) < 0 ? -errno : 0;
}

static struct kvm_msrs *msrs_alloc(uint32_t n)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(struct kvm_msr_entry));
	if (m)
		m->nmsrs = n;
	return m;
}

int hv_kvm_get_msrs(struct hv_vcpu *v, struct hv_msr *m, uint32_t n)
{
	struct kvm_msrs *k = msrs_alloc(n);
	if (!k)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		k->entries[i].index = m[i].index;
	int r = ioctl(v->fd, KVM_GET_MSRS, k);
	if (r < 0)
		r = -errno;
	for (int i = 0; i < r; i++)
		m[i].value = k->entries[i].data;
	free(k);
	return r;
}

int hv_kvm_set_msrs(struct hv_vcpu *v, const struct hv_msr *m, uint32_t n)
{
	struct kvm_msrs *k = msrs_alloc(n);
	if (!k)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		k->entries[i].index = m[i].index;
		k->entries[i].data = m[i].value;
	}
	int r = ioctl(v->fd, KVM_SET_MSRS, k);
	if (r < 0)
		r = -errno;
	free(k);
	return r;
}

static int blob_get(struct hv_vcpu *v, unsigned long req, size_t size, struct hv_blob *b)
{
	b->data = calloc(1, size);
	if (!b->data)
		return -ENOMEM;
	b->size = size;
	if (ioctl(v->fd, req, b->data) < 0) {
		int r = -errno;
		free(b->data);
		b->data = NULL;
		b->size = 0;
		return r;
	}
	return 0;
}

int hv_kvm_get_xsave(struct hv_vcpu *v, struct hv_blob *b)
{
	size_t size = (size_t)v->vm->hv->xsave_size;
	return blob_get(v, size > sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, size,
			b);
}

int hv_kvm_set_xsave(struct hv_vcpu *v, const struct hv_blob *b)
{
	if (b->size < sizeof(struct kvm_xsave))
		return -EINVAL;
	return ioctl(v->fd, KVM_SET_XSAVE, b->data) < 0 ? -errno : 0;
}

int hv_kvm_get_lapic(struct hv_vcpu *v, struct hv_blob *b)
{
	return blob_get(v, KVM_GET_LAPIC, sizeof(struct kvm_lapic_state), b);
}

int hv_kvm_set_lapic(struct hv_vcpu *v, const struct hv_blob *b)
{
	if (b->size != sizeof(struct kvm_lapic_state))
		return -EINVAL;
	return ioctl(v->fd, KVM_SET_LAPIC, b->data) < 0 ? -errno : 0;
}

#define APIC_LVT_LINT0	 0x350
#define APIC_LVT_LINT1	 0x360
#define APIC_MODE_NMI	 0x4
#define APIC_MODE_EXTINT 0x7

static void lvt_set_mode(struct kvm_lapic_state *s, unsigned reg, uint32_t mode)
{
	uint32_t v;
	memcpy(&v, &s->regs[reg], 4);
	v = (v & ~0x700u) | (mode << 8);
	memcpy(&s->regs[reg], &v, 4);
}

int hv_kvm_lapic_init(struct hv_vcpu *v)
{
	struct kvm_lapic_state s;
	if (ioctl(v->fd, KVM_GET_LAPIC, &s) < 0)
		return -errno;
	lvt_set_mode(&s, APIC_LVT_LINT0, APIC_MODE_EXTINT);
	lvt_set_mode(&s, APIC_LVT_LINT1, APIC_MODE_NMI);
	return ioctl(v->fd, KVM_SET_LAPIC, &s) < 0 ? -errno : 0;
}

int hv_kvm_get_mp_state(struct hv_vcpu *v, enum hv_mp_state *s)
{
	struct kvm_mp_state m;
	if (ioctl(v->fd, KVM_GET_MP_STATE, &m) < 0)
		return -errno;
	switch (m.mp_state) {
	case KVM_MP_STATE_RUNNABLE:
		*s = HV_MP_RUNNABLE;
		break;
	case KVM_MP_STATE_UNINITIALIZED:
		*s = HV_MP_UNINITIALIZED;
		break;
	case KVM_MP_STATE_INIT_RECEIVED:
		*s = HV_MP_INIT_RECEIVED;
		break;
	case KVM_MP_STATE_HALTED:
		*s = HV_MP_HALTED;
		break;
	case KVM_MP_STATE_SIPI_RECEIVED:
		*s = HV_MP_SIPI_RECEIVED;
		break;
	default:
		*s = HV_MP_OTHER;
		break;
	}
	return 0;
}

int hv_kvm_set_mp_state(struct hv_vcpu *v, enum hv_mp_state s)
{
	static const uint32_t map[] = {
	    [HV_MP_RUNNABLE] = KVM_MP_STATE_RUNNABLE,
	    [HV_MP_UNINITIALIZED] = KVM_MP_STATE_UNINITIALIZED,
	    [HV_MP_INIT_RECEIVED] = KVM_MP_STATE_INIT_RECEIVED,
	    [HV_MP_HALTED] = KVM_MP_STATE_HALTED,
	    [HV_MP_SIPI_RECEIVED] = KVM_MP_STATE_SIPI_RECEIVED,
	};
	if ((unsigned)s >= sizeof(map) / sizeof(map[0]))
		return -EINVAL;
	struct kvm_mp_state m = {.mp_state = map[s]};
	return ioctl(v->fd, KVM_SET_MP_STATE, &m) < 0 ? -errno : 0;
}

static void exit_fail(struct hv_exit *e, enum hv_exit_kind kind, uint64_t reason)
{
	e->kind = kind;
	e->fail.reason = reason;
	e->fail.suberror = 0;
	e->fail.ndata = 0;
}

int hv_kvm_run(struct hv_vcpu *v, struct hv_exit *e)
{
	struct kvm_run *run = v->run;
	if (ioctl(v->fd, KVM_RUN, 0) < 0) {
		if (errno == EINTR || errno == EAGAIN) {
			e->kind = HV_EXIT_INTR;
			return 0;
		}
		return -errno;
	}
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		e->kind = HV_EXIT_PIO;
		e->pio.port = run->io.port;
		e->pio.size = run->io.size;
		e->pio.is_write = run->io.direction == KVM_EXIT_IO_OUT;
		e->pio.count = run->io.count;
		e->pio.data = (uint8_t *)run + run->io.data_offset;
		break;
	case KVM_EXIT_MMIO:
		e->kind = HV_EXIT_MMIO;
		e->mmio.gpa = run->mmio.phys_addr;
		e->mmio.len = run->mmio.len > 8 ? 8 : run->mmio.len;
		e->mmio.is_write = run->mmio.is_write;
		e->mmio.data = run->mmio.data;
		break;
	case KVM_EXIT_HLT:
		e->kind = HV_EXIT_HLT;
		break;
	case KVM_EXIT_INTR:
		e->kind = HV_EXIT_INTR;
		break;
	case KVM_EXIT_SHUTDOWN:
		e->kind = HV_EXIT_SHUTDOWN;
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_SHUTDOWN:
			e->kind = HV_EXIT_SYSTEM_OFF;
			break;
		case KVM_SYSTEM_EVENT_RESET:
			e->kind = HV_EXIT_SYSTEM_RESET;
			break;
		default:
			exit_fail(e, HV_EXIT_UNKNOWN, 0x10000u | run->system_event.type);
			break;
		}
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		exit_fail(e, HV_EXIT_INTERNAL_ERROR, KVM_EXIT_INTERNAL_ERROR);
		e->fail.suberror = run->internal.suberror;
		e->fail.ndata = run->internal.ndata < 4 ? run->internal.ndata : 4;
		for (uint32_t i = 0; i < e->fail.ndata; i++)
			e->fail.data[i] = run->internal.data[i];
		break;
	case KVM_EXIT_FAIL_ENTRY:
		exit_fail(e, HV_EXIT_FAIL_ENTRY, run->fail_entry.hardware_entry_failure_reason);
		break;
	default:
		exit_fail(e, HV_EXIT_UNKNOWN, run->exit_reason);
		break;
	}
	return 0;
}

void hv_kvm_kick(struct hv_vcpu *v)
{
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
}

void hv_kvm_unkick(struct hv_vcpu *v)
{
	__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
}
