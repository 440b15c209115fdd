/* vCPU threads: set-up, the run loop and the exit dispatch table. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm/cpuid.h"
#include "vm/log.h"
#include "vm/seccomp.h"
#include "vm/vm_internal.h"

enum vcpu_action { VCPU_CONTINUE = 0, VCPU_POWEROFF, VCPU_RESET, VCPU_FAIL };

typedef enum vcpu_action (*exit_fn)(struct vcpu *v, struct hv_exit *e);

static enum vcpu_action exit_pio(struct vcpu *v, struct hv_exit *e)
{
	struct vm *vm = v->vm;
	for (uint32_t i = 0; i < e->pio.count; i++) {
		uint8_t *d = e->pio.data + (size_t)i * e->pio.size;
		if (!bus_dispatch(&vm->pio, e->pio.port, d, e->pio.size, e->pio.is_write) &&
		    log_enabled(LOG_DEBUG))
			log_debug("vcpu%u: unhandled port %s 0x%x size %u", v->index,
				  e->pio.is_write ? "write" : "read", e->pio.port, e->pio.size);
	}
	return VCPU_CONTINUE;
}

static enum vcpu_action exit_mmio(struct vcpu *v, struct hv_exit *e)
{
	if (!bus_dispatch(&v->vm->mmio, e->mmio.gpa, e->mmio.data, e->mmio.len, e->mmio.is_write) &&
	    log_enabled(LOG_DEBUG))
		log_debug("vcpu%u: unhandled MMIO %s 0x%llx len %u", v->index,
			  e->mmio.is_write ? "write" : "read", (unsigned long long)e->mmio.gpa,
			  e->mmio.len);
	return VCPU_CONTINUE;
}

static enum vcpu_action exit_continue(struct vcpu *v, struct hv_exit *e)
{
	(void)v;
	(void)e;
	return VCPU_CONTINUE;
}

static enum vcpu_action exit_triple_fault(struct vcpu *v, struct hv_exit *e)
{
	(void)e;
	char dump[1024];
	vcpu_dump(v, dump, sizeof(dump));
	log_warn("vcpu%u: triple fault, treated as a reset; %s", v->index, dump);
	return VCPU_RESET;
}

static enum vcpu_action exit_system_reset(struct vcpu *v, struct hv_exit *e)
{
	(void)e;
	log_info("vcpu%u: reset requested through the hypervisor", v->index);
	return VCPU_RESET;
}

static enum vcpu_action exit_system_off(struct vcpu *v, struct hv_exit *e)
{
	(void)e;
	log_info("vcpu%u: power-off requested through the hypervisor", v->index);
	return VCPU_POWEROFF;
}

static enum vcpu_action exit_failure(struct vcpu *v, struct hv_exit *e)
{
	static const char *const what[HV_EXIT__COUNT] = {
	    [HV_EXIT_INTERNAL_ERROR] =
		"internal error (the hypervisor could not emulate the guest)",
	    [HV_EXIT_FAIL_ENTRY] = "failed entry (the hardware refused the guest state)",
	    [HV_EXIT_UNKNOWN] = "unexpected exit",
	};
	char dump[1024], msg[1400];
	vcpu_dump(v, dump, sizeof(dump));
	snprintf(msg, sizeof(msg),
		 "vcpu%u: %s, reason 0x%llx suberror %u data [%llx %llx %llx %llx]; %s", v->index,
		 what[e->kind], (unsigned long long)e->fail.reason, e->fail.suberror,
		 (unsigned long long)e->fail.data[0], (unsigned long long)e->fail.data[1],
		 (unsigned long long)e->fail.data[2], (unsigned long long)e->fail.data[3], dump);
	log_error("%s", msg);
	vm_stop(v->vm, VM_OUT_FAILED, msg);
	return VCPU_FAIL;
}

static enum vcpu_action exit_hlt(struct vcpu *v, struct hv_exit *e)
{
	/* Only seen without an in-kernel LAPIC, which chv always has. */
	return exit_failure(v, e);
}

static const exit_fn exit_handlers[HV_EXIT__COUNT] = {
    [HV_EXIT_PIO] = exit_pio,
    [HV_EXIT_MMIO] = exit_mmio,
    [HV_EXIT_HLT] = exit_hlt,
    [HV_EXIT_INTR] = exit_continue,
    [HV_EXIT_SHUTDOWN] = exit_triple_fault,
    [HV_EXIT_SYSTEM_RESET] = exit_system_reset,
    [HV_EXIT_SYSTEM_OFF] = exit_system_off,
    [HV_EXIT_INTERNAL_ERROR] = exit_failure,
    [HV_EXIT_FAIL_ENTRY] = exit_failure,
    [HV_EXIT_UNKNOWN] = exit_failure,
};

static void kick_handler(int sig)
{
	(void)sig;
}

/* Waits, out of the guest, until the pause is lifted or the VM ends. The
 * kick that took us out of the guest is cleared under the lock, and vm_stop()
 * and vm_pause() kick under it too: a stop or pause requested after this
 * still cuts the next run short. */
static void vcpu_park(struct vcpu *v)
{
	struct vm *vm = v->vm;
	pthread_mutex_lock(&vm->lock);
	vm->parked++;
	pthread_cond_broadcast(&vm->cond);
	while (vm->pause_req && vm->outcome == VM_OUT_NONE)
		pthread_cond_wait(&vm->cond, &vm->lock);
	vm->parked--;
	if (vm->outcome == VM_OUT_NONE)
		vm->ops->unkick(v->hv);
	pthread_mutex_unlock(&vm->lock);
}

/* A kick from a pause that was lifted before this thread saw it leaves
 * the hypervisor's immediate-exit flag set: clear it, or every run would
 * return at once. */
static void vcpu_clear_stale_kick(struct vcpu *v)
{
	struct vm *vm = v->vm;
	pthread_mutex_lock(&vm->lock);
	if (vm->outcome == VM_OUT_NONE && !vm->pause_req)
		vm->ops->unkick(v->hv);
	pthread_mutex_unlock(&vm->lock);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	char name[16];
	snprintf(name, sizeof(name), "vcpu%u", v->index);
	pthread_setname_np(pthread_self(), name);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	struct chv_err err = {0};
	if (chv_seccomp_thread(SECCOMP_VCPU, &err) < 0)
		vm_stop(vm, VM_OUT_FAILED, err.msg); /* the loop below does not run */

	while (__atomic_load_n(&vm->outcome, __ATOMIC_ACQUIRE) == VM_OUT_NONE) {
		if (__atomic_load_n(&vm->pause_req, __ATOMIC_ACQUIRE)) {
			vcpu_park(v);
			continue;
		}
		struct hv_exit e = {0};
		int r = vm->ops->run(v->hv, &e);
		if (r < 0) {
			char msg[128];
			snprintf(msg, sizeof(msg), "vcpu%u: run failed: %s", v->index,
				 strerror(-r));
			log_error("%s", msg);
			vm_stop(vm, VM_OUT_FAILED, msg);
			break;
		}
		if ((unsigned)e.kind >= HV_EXIT__COUNT || !exit_handlers[e.kind]) {
			e.kind = HV_EXIT_UNKNOWN;
		}
		__atomic_store_n(&v->exits[e.kind], v->exits[e.kind] + 1, __ATOMIC_RELAXED);
		if (e.kind == HV_EXIT_INTR)
			vcpu_clear_stale_kick(v);
		switch (exit_handlers[e.kind](v, &e)) {
		case VCPU_CONTINUE:
			break;
		case VCPU_POWEROFF:
			vm_stop(vm, VM_OUT_POWEROFF, "guest powered off");
			break;
		case VCPU_RESET:
			vm_stop(vm, VM_OUT_RESET, "guest reset");
			break;
		case VCPU_FAIL:
			break; /* vm_stop already called with the reason */
		}
	}
	pthread_mutex_lock(&vm->lock);
	vm->live--;
	pthread_cond_broadcast(&vm->cond); /* a pause may wait for this thread */
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

int vcpu_setup(struct vm *vm, struct vcpu *v, uint32_t index, struct chv_err *err)
{
	const struct vm_config *cfg = vm->cfg;
	v->vm = vm;
	v->index = index;
	int r = vm->ops->vcpu_create(vm->hvm, index, &v->hv);
	if (r < 0)
		return chv_err_set(err, r, "vcpu%u: create: %s", index, strerror(-r));

	struct hv_cpuid_entry *sup = calloc(CPUID_MAX_ENTRIES, sizeof(*sup));
	struct hv_cpuid_entry *mine = calloc(CPUID_MAX_ENTRIES, sizeof(*mine));
	uint32_t n = CPUID_MAX_ENTRIES;
	if (!sup || !mine) {
		r = chv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = vm->ops->supported_cpuid(vm->hv, sup, &n);
	if (r < 0) {
		chv_err_set(err, r, "vcpu%u: supported CPUID: %s", index, strerror(-r));
		goto out;
	}
	struct cpuid_params p = {
	    .vcpu_index = index,
	    .max_cpus = cfg->cpus.max,
	    .topo = cfg->cpus.topology,
	    .phys_bits = cfg->cpus.max_phys_bits,
	};
	int m = cpuid_shape(sup, n, &p, mine, CPUID_MAX_ENTRIES);
	if (m < 0) {
		r = chv_err_set(err, m, "vcpu%u: CPUID shaping: %s", index, strerror(-m));
		goto out;
	}
	r = vm->ops->set_cpuid(v->hv, mine, (uint32_t)m);
	if (r < 0) {
		chv_err_set(err, r, "vcpu%u: set CPUID: %s", index, strerror(-r));
		goto out;
	}
	struct hv_msr msrs[32];
	int nm = cpuid_boot_msrs(msrs, 32);
	if (nm < 0 || (r = vm->ops->set_msrs(v->hv, msrs, (uint32_t)nm)) != nm) {
		r = chv_err_set(err, -EIO, "vcpu%u: boot MSRs: set %d of %d", index, r, nm);
		goto out;
	}
	r = vm->ops->lapic_init(v->hv);
	if (r < 0) {
		chv_err_set(err, r, "vcpu%u: LAPIC: %s", index, strerror(-r));
		goto out;
	}
	struct hv_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
	r = vm->ops->set_fpu(v->hv, &fpu);
	if (r < 0)
		chv_err_set(err, r, "vcpu%u: FPU: %s", index, strerror(-r));
out:
	free(sup);
	free(mine);
	return r < 0 ? r : 0;
}

/* The kick signal: no handler work, it only cuts KVM_RUN short (no SA_RESTART). */
static void kick_signal_install(void)
{
	struct sigaction sa = {.sa_handler = kick_handler};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGRTMIN, &sa, NULL);
}

int vcpu_start(struct vcpu *v)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, kick_signal_install);
	int r = pthread_create(&v->thread, NULL, vcpu_thread, v);
	if (r)
		return -r;
	v->started = true;
	return 0;
}

void vcpu_kick(struct vcpu *v)
{
	if (!v->hv)
		return;
	v->vm->ops->kick(v->hv);
	if (v->started)
		pthread_kill(v->thread, SIGRTMIN);
}

void vcpu_join(struct vcpu *v)
{
	if (v->started) {
		pthread_join(v->thread, NULL);
		v->started = false;
	}
}

void vcpu_teardown(struct vcpu *v)
{
	vcpu_join(v);
	if (v->hv)
		v->vm->ops->vcpu_destroy(v->hv);
	v->hv = NULL;
}

void vcpu_dump(struct vcpu *v, char *buf, size_t len)
{
	struct hv_regs r;
	struct hv_sregs s;
	if (v->vm->ops->get_regs(v->hv, &r) < 0 || v->vm->ops->get_sregs(v->hv, &s) < 0) {
		snprintf(buf, len, "registers unavailable");
		return;
	}
	snprintf(buf, len,
		 "rip=%#llx rsp=%#llx rflags=%#llx rax=%#llx rbx=%#llx rcx=%#llx rdx=%#llx "
		 "rsi=%#llx rdi=%#llx rbp=%#llx cs=%#x(base %#llx l%u db%u dpl%u) ss=%#x "
		 "cr0=%#llx cr2=%#llx cr3=%#llx cr4=%#llx efer=%#llx gdt=%#llx/%#x idt=%#llx/%#x",
		 (unsigned long long)r.rip, (unsigned long long)r.rsp, (unsigned long long)r.rflags,
		 (unsigned long long)r.rax, (unsigned long long)r.rbx, (unsigned long long)r.rcx,
		 (unsigned long long)r.rdx, (unsigned long long)r.rsi, (unsigned long long)r.rdi,
		 (unsigned long long)r.rbp, s.cs.selector, (unsigned long long)s.cs.base, s.cs.l,
		 s.cs.db, s.cs.dpl, s.ss.selector, (unsigned long long)s.cr0,
		 (unsigned long long)s.cr2, (unsigned long long)s.cr3, (unsigned long long)s.cr4,
		 (unsigned long long)s.efer, (unsigned long long)s.gdt.base, s.gdt.limit,
		 (unsigned long long)s.idt.base, s.idt.limit);
}
