/* The hypervisor abstraction: one ops table per backend (KVM now, MSHV
 * later). Nothing here names a backend's types; backends include only this
 * header. Exits are normalised into struct hv_exit. All calls return 0 or
 * -errno unless stated. */
#ifndef CHV_VM_HV_H
#define CHV_VM_HV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vm/err.h"

struct hv;	/* an open hypervisor (e.g. /dev/kvm) */
struct hv_vm;	/* one VM */
struct hv_vcpu; /* one vCPU */

enum hv_exit_kind {
	HV_EXIT_NONE = 0,
	HV_EXIT_PIO,		/* port I/O: emulate, then run again */
	HV_EXIT_MMIO,		/* MMIO outside RAM */
	HV_EXIT_HLT,		/* only without an in-kernel LAPIC */
	HV_EXIT_INTR,		/* a signal or a kick interrupted the run */
	HV_EXIT_SHUTDOWN,	/* triple fault */
	HV_EXIT_SYSTEM_RESET,	/* the hypervisor saw a reset request */
	HV_EXIT_SYSTEM_OFF,	/* the hypervisor saw a power-off request */
	HV_EXIT_INTERNAL_ERROR, /* the hypervisor could not emulate the guest */
	HV_EXIT_FAIL_ENTRY,	/* the hardware refused to enter the guest */
	HV_EXIT_UNKNOWN,	/* anything else, with the raw reason */
	HV_EXIT__COUNT
};

struct hv_exit {
	enum hv_exit_kind kind;
	union {
		struct {
			uint16_t port;
			uint8_t size; /* 1, 2 or 4 */
			bool is_write;
			uint32_t count; /* > 1 for string I/O */
			uint8_t *data;	/* size * count bytes, owned by the backend */
		} pio;
		struct {
			uint64_t gpa;
			uint32_t len; /* 1..8 */
			bool is_write;
			uint8_t *data;
		} mmio;
		struct {
			uint64_t reason; /* backend's raw reason / hardware code */
			uint32_t suberror;
			uint32_t ndata;
			uint64_t data[4];
		} fail;
	};
};

struct hv_segment {
	uint64_t base;
	uint32_t limit;
	uint16_t selector;
	uint8_t type, present, dpl, db, s, l, g, avl, unusable;
};

struct hv_dtable {
	uint64_t base;
	uint16_t limit;
};

struct hv_regs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rip, rflags;
};

struct hv_sregs {
	struct hv_segment cs, ds, es, fs, gs, ss, tr, ldt;
	struct hv_dtable gdt, idt;
	uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
};

struct hv_fpu {
	uint8_t fpr[8][16];
	uint16_t fcw, fsw;
	uint8_t ftwx;
	uint16_t last_opcode;
	uint64_t last_ip, last_dp;
	uint8_t xmm[16][16];
	uint32_t mxcsr;
};

struct hv_msr {
	uint32_t index;
	uint64_t value;
};

/* One CPUID leaf, in x86 terms (not a backend's). */
#define HV_CPUID_FLAG_INDEXED 1u /* the leaf depends on ECX (index) */
struct hv_cpuid_entry {
	uint32_t function, index, flags;
	uint32_t eax, ebx, ecx, edx;
};

enum hv_mp_state {
	HV_MP_RUNNABLE = 0,
	HV_MP_UNINITIALIZED,
	HV_MP_INIT_RECEIVED,
	HV_MP_HALTED,
	HV_MP_SIPI_RECEIVED,
	HV_MP_OTHER,
};

/* Opaque state blobs for snapshot/migration (sized by the backend). */
struct hv_blob {
	void *data;
	size_t size;
};

struct hv_msi {
	uint64_t address;
	uint32_t data;
	uint32_t devid;
};

#define HV_MEM_READONLY 1u

struct hv_ops {
	const char *name;
	/* Opens the hypervisor device and checks every capability chv relies on;
	 * a missing one fails with a message naming it. */
	int (*open)(struct hv **out, struct chv_err *err);
	void (*close)(struct hv *hv);
	/* The CPUID leaves this hypervisor can expose; *n in: capacity, out: count. */
	int (*supported_cpuid)(struct hv *hv, struct hv_cpuid_entry *e, uint32_t *n);
	/* MSR indices the backend can save and restore. */
	int (*msr_index_list)(struct hv *hv, uint32_t *idx, uint32_t *n);

	/* A VM with the in-kernel interrupt controller (LAPICs, IOAPIC with
	 * GSIs 0-23 routed to it); the backend may create the controller on
	 * first need, so add the boot memory before the first vCPU. */
	int (*vm_create)(struct hv *hv, struct hv_vm **out, struct chv_err *err);
	void (*vm_destroy)(struct hv_vm *vm);
	int (*set_memory)(struct hv_vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *hva,
			  unsigned flags);
	int (*irq_line)(struct hv_vm *vm, uint32_t gsi, bool level);
	/* Routes gsi to an MSI message (added to the IOAPIC routes). */
	int (*route_msi)(struct hv_vm *vm, uint32_t gsi, const struct hv_msi *msi);
	int (*irqfd)(struct hv_vm *vm, int fd, uint32_t gsi, bool assign);
	/* len 0 matches any width; match_data < 0 means any value. */
	int (*ioeventfd)(struct hv_vm *vm, int fd, uint64_t addr, uint32_t len, bool pio,
			 int64_t match_data, bool assign);

	int (*vcpu_create)(struct hv_vm *vm, uint32_t index, struct hv_vcpu **out);
	void (*vcpu_destroy)(struct hv_vcpu *vcpu);
	int (*set_cpuid)(struct hv_vcpu *vcpu, const struct hv_cpuid_entry *e, uint32_t n);
	int (*get_regs)(struct hv_vcpu *vcpu, struct hv_regs *r);
	int (*set_regs)(struct hv_vcpu *vcpu, const struct hv_regs *r);
	int (*get_sregs)(struct hv_vcpu *vcpu, struct hv_sregs *s);
	int (*set_sregs)(struct hv_vcpu *vcpu, const struct hv_sregs *s);
	int (*get_fpu)(struct hv_vcpu *vcpu, struct hv_fpu *f);
	int (*set_fpu)(struct hv_vcpu *vcpu, const struct hv_fpu *f);
	/* Returns the number of MSRs read/written, or -errno. */
	int (*get_msrs)(struct hv_vcpu *vcpu, struct hv_msr *m, uint32_t n);
	int (*set_msrs)(struct hv_vcpu *vcpu, const struct hv_msr *m, uint32_t n);
	int (*get_xsave)(struct hv_vcpu *vcpu, struct hv_blob *b); /* b->data malloc'd */
	int (*set_xsave)(struct hv_vcpu *vcpu, const struct hv_blob *b);
	int (*get_lapic)(struct hv_vcpu *vcpu, struct hv_blob *b);
	int (*set_lapic)(struct hv_vcpu *vcpu, const struct hv_blob *b);
	/* Sets LINT0 to ExtINT and LINT1 to NMI, as firmware would. */
	int (*lapic_init)(struct hv_vcpu *vcpu);
	int (*get_mp_state)(struct hv_vcpu *vcpu, enum hv_mp_state *s);
	int (*set_mp_state)(struct hv_vcpu *vcpu, enum hv_mp_state s);

	/* Enters the guest until the next exit; fills *exit. -EINTR is reported as
	 * HV_EXIT_INTR with 0. Thread: the vCPU's own. */
	int (*run)(struct hv_vcpu *vcpu, struct hv_exit *exit);
	/* Makes the vCPU's current or next run return HV_EXIT_INTR. Any thread;
	 * the caller also signals the vCPU thread (SIGRTMIN) to cut a run short. */
	void (*kick)(struct hv_vcpu *vcpu);
	void (*unkick)(struct hv_vcpu *vcpu);
};

/* Backends built in, by name ("kvm"); NULL when unknown. */
const struct hv_ops *hv_backend(const char *name);

#endif
