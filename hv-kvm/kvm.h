/* Private to the KVM backend: the objects behind the opaque hv handles. */
#ifndef CHV_HV_KVM_KVM_H
#define CHV_HV_KVM_KVM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdint.h>

#include "vm/hv.h"

#define KVM_MAX_ROUTES 1024

struct hv {
	int fd;		/* /dev/kvm */
	int run_size;	/* KVM_GET_VCPU_MMAP_SIZE */
	int xsave_size; /* bytes of KVM_GET_XSAVE(2) state */
};

struct hv_vm {
	struct hv *hv;
	int fd;
	pthread_mutex_t route_lock; /* also guards irqchip creation */
	bool irqchip;
	uint32_t nroutes;
	struct kvm_irq_routing_entry routes[KVM_MAX_ROUTES];
};

struct hv_vcpu {
	struct hv_vm *vm;
	uint32_t index;
	int fd;
	struct kvm_run *run;
};

extern const struct hv_ops hv_kvm_ops;

int hv_kvm_ensure_irqchip(struct hv_vm *vm);
int hv_kvm_vcpu_create(struct hv_vm *vm, uint32_t index, struct hv_vcpu **out);
void hv_kvm_vcpu_destroy(struct hv_vcpu *vcpu);
int hv_kvm_set_cpuid(struct hv_vcpu *vcpu, const struct hv_cpuid_entry *e, uint32_t n);
int hv_kvm_get_regs(struct hv_vcpu *vcpu, struct hv_regs *r);
int hv_kvm_set_regs(struct hv_vcpu *vcpu, const struct hv_regs *r);
int hv_kvm_get_sregs(struct hv_vcpu *vcpu, struct hv_sregs *s);
int hv_kvm_set_sregs(struct hv_vcpu *vcpu, const struct hv_sregs *s);
int hv_kvm_get_fpu(struct hv_vcpu *vcpu, struct hv_fpu *f);
int hv_kvm_set_fpu(struct hv_vcpu *vcpu, const struct hv_fpu *f);
int hv_kvm_get_msrs(struct hv_vcpu *vcpu, struct hv_msr *m, uint32_t n);
int hv_kvm_set_msrs(struct hv_vcpu *vcpu, const struct hv_msr *m, uint32_t n);
int hv_kvm_get_xsave(struct hv_vcpu *vcpu, struct hv_blob *b);
int hv_kvm_set_xsave(struct hv_vcpu *vcpu, const struct hv_blob *b);
int hv_kvm_get_lapic(struct hv_vcpu *vcpu, struct hv_blob *b);
int hv_kvm_set_lapic(struct hv_vcpu *vcpu, const struct hv_blob *b);
int hv_kvm_lapic_init(struct hv_vcpu *vcpu);
int hv_kvm_get_mp_state(struct hv_vcpu *vcpu, enum hv_mp_state *s);
int hv_kvm_set_mp_state(struct hv_vcpu *vcpu, enum hv_mp_state s);
int hv_kvm_run(struct hv_vcpu *vcpu, struct hv_exit *exit);
void hv_kvm_kick(struct hv_vcpu *vcpu);
void hv_kvm_unkick(struct hv_vcpu *vcpu);

#endif
