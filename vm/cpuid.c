/* What each vCPU sees from CPUID: the hypervisor's supported leaves, with
 * this vCPU's APIC id, a topology that matches --cpus, and the features the
 * VMM cannot support hidden. Also the MSRs a vCPU starts with. */
#include "vm/cpuid.h"

#include <errno.h>
#include <string.h>

#define BIT(n) (1u << (n))

/* Leaf 1 */
#define L1_ECX_MONITOR	  BIT(3)
#define L1_ECX_VMX	  BIT(5)
#define L1_ECX_PDCM	  BIT(15)
#define L1_ECX_HYPERVISOR BIT(31)
#define L1_EDX_HTT	  BIT(28)
/* Leaf 6 */
#define L6_EAX_ARAT BIT(2)
/* Leaf 7 subleaf 0 / 1 */
#define L7_EBX_MPX	  BIT(14)
#define L7_EDX_AMX_BF16	  BIT(22)
#define L7_EDX_AMX_TILE	  BIT(24)
#define L7_EDX_AMX_INT8	  BIT(25)
#define L7_1_EAX_AMX_FP16 BIT(21)
#define L7_1_EDX_AMX_CPLX BIT(8)
/* Leaf 0xD: XCR0 state components */
#define XFEATURE_BNDREGS  3
#define XFEATURE_BNDCSR	  4
#define XFEATURE_XTILECFG 17
#define XFEATURE_XTILEDAT 18
/* 0x80000001 */
#define E1_ECX_SVM BIT(2)

#define TOPO_LEVEL_INVALID 0
#define TOPO_LEVEL_SMT	   1
#define TOPO_LEVEL_CORE	   2
#define TOPO_LEVEL_DIE	   5

#define LEAF_0B_ENTRIES 3 /* SMT, core, terminator */
#define LEAF_1F_ENTRIES 4 /* SMT, core, die, terminator */

/* Bits needed to number n things: ceil(log2(n)). */
static unsigned count_bits(uint32_t n)
{
	return n <= 1 ? 0 : 32 - (unsigned)__builtin_clz(n - 1);
}

struct topo_pos {
	unsigned thread_bits, core_bits, die_bits;
	uint32_t thread, core, die, package;
};

static void topo_locate(const struct cpu_topology *t, uint32_t index, struct topo_pos *p)
{
	uint32_t threads = t->threads_per_core ? t->threads_per_core : 1;
	uint32_t cores = t->cores_per_die ? t->cores_per_die : 1;
	uint32_t dies = t->dies_per_package ? t->dies_per_package : 1;

	p->thread_bits = count_bits(threads);
	p->core_bits = count_bits(cores);
	p->die_bits = count_bits(dies);
	p->thread = index % threads;
	p->core = index / threads % cores;
	p->die = index / (threads * cores) % dies;
	p->package = index / (threads * cores * dies);
}

uint32_t cpuid_apic_id(const struct cpu_topology *topo, uint32_t index)
{
	struct topo_pos p;
	topo_locate(topo, index, &p);
	unsigned die_shift = p.thread_bits + p.core_bits;
	unsigned pkg_shift = die_shift + p.die_bits;
	return p.thread | p.core << p.thread_bits | p.die << die_shift | p.package << pkg_shift;
}

/* Everything one vCPU's leaves are computed from. */
struct shape_ctx {
	const struct cpuid_params *p;
	const struct cpu_topology *t;
	uint32_t apic_id;
	uint32_t per_core;    /* logical processors per core */
	uint32_t per_die;     /* ... per die */
	uint32_t per_package; /* ... per package */
	unsigned thread_bits, core_bits, die_bits;
	bool amd;
};

static bool vendor_is_amd(const struct hv_cpuid_entry *in, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		if (in[i].function != 0)
			continue;
		/* "AuthenticAMD" / "HygonGenuine" in EBX, EDX, ECX. */
		return (in[i].ebx == 0x68747541 && in[i].edx == 0x69746e65 &&
			in[i].ecx == 0x444d4163) ||
		       (in[i].ebx == 0x6f677948 && in[i].edx == 0x6e65476e &&
			in[i].ecx == 0x656e6975);
	}
	return false;
}

static void shape_leaf1(const struct shape_ctx *s, struct hv_cpuid_entry *e)
{
	uint32_t count = s->per_package > 0xff ? 0xff : s->per_package;
	e->ebx = (e->ebx & 0xffff) | count << 16 | (s->apic_id & 0xff) << 24;
	/* TSC-deadline (bit 24) and x2APIC stay as the hypervisor reports them. */
	e->ecx |= L1_ECX_HYPERVISOR;
	/* MONITOR/MWAIT: KVM exits on MWAIT and treats it as a NOP by default,
	 * so a guest idling with it would spin; the guest should use HLT. */
	e->ecx &= ~L1_ECX_MONITOR;
	/* No nested virtualization. */
	e->ecx &= ~L1_ECX_VMX;
	/* PDCM advertises IA32_PERF_CAPABILITIES, part of the PMU we hide. */
	e->ecx &= ~L1_ECX_PDCM;
	if (s->per_package > 1)
		e->edx |= L1_EDX_HTT;
	else
		e->edx &= ~L1_EDX_HTT;
}

/* Cache leaves (Intel 4, AMD 0x8000001D) share EAX[25:14], the threads
 * sharing the cache - 1: L1 and L2 belong to a core, L3 to the package. */
static uint32_t cache_sharing(const struct shape_ctx *s, uint32_t eax)
{
	uint32_t level = (eax >> 5) & 7;
	uint32_t sharing = level <= 2 ? s->per_core : s->per_package;
	if (sharing > 0x1000)
		sharing = 0x1000;
	return (eax & ~(0xfffu << 14)) | (sharing - 1) << 14;
}

static void shape_leaf4(const struct shape_ctx *s, struct hv_cpuid_entry *e)
{
	if ((e->eax & 0x1f) == 0) /* cache type 0: no more caches */
		return;
	uint32_t cores = s->t->cores_per_die * s->t->dies_per_package;
	e->eax = cache_sharing(s, e->eax);
	e->eax = (e->eax & ~(0x3fu << 26)) | ((cores - 1) & 0x3f) << 26;
}

static void shape_leaf7(struct hv_cpuid_entry *e)
{
	if (e->index == 0) {
		/* MPX is gone from Linux (5.6) and from new CPUs; its xsave state
		 * would only grow the save area. */
		e->ebx &= ~L7_EBX_MPX;
		/* AMX needs the VMM to request the guest permission
		 * (ARCH_REQ_XCOMP_GUEST_PERM) and 8 KiB xsave buffers before vCPUs
		 * exist; chv does neither yet (Cloud Hypervisor: features=amx). */
		e->edx &= ~(L7_EDX_AMX_BF16 | L7_EDX_AMX_TILE | L7_EDX_AMX_INT8);
	} else if (e->index == 1) {
		e->eax &= ~L7_1_EAX_AMX_FP16;
		e->edx &= ~L7_1_EDX_AMX_CPLX;
	}
}

static void zero_regs(struct hv_cpuid_entry *e)
{
	e->eax = e->ebx = e->ecx = e->edx = 0;
}

static void shape_leafd(struct hv_cpuid_entry *e)
{
	/* The xsave components of the features hidden in leaf 7. */
	if (e->index == 0)
		e->eax &= ~(BIT(XFEATURE_BNDREGS) | BIT(XFEATURE_BNDCSR) | BIT(XFEATURE_XTILECFG) |
			    BIT(XFEATURE_XTILEDAT));
	else if (e->index == XFEATURE_BNDREGS || e->index == XFEATURE_BNDCSR ||
		 e->index == XFEATURE_XTILECFG || e->index == XFEATURE_XTILEDAT)
		zero_regs(e);
}

static void shape_ext8(const struct shape_ctx *s, struct hv_cpuid_entry *e)
{
	uint32_t bits = s->p->phys_bits;
	if (bits && (e->eax & 0xff) > bits)
		e->eax = (e->eax & ~0xffu) | bits;
	/* A non-zero guest physical size (EAX[23:16]) overrides EAX[7:0]. */
	if (bits && ((e->eax >> 16) & 0xff) > bits)
		e->eax = (e->eax & ~(0xffu << 16)) | bits << 16;
	if (s->amd) {
		/* NC: logical processors per package - 1; ApicIdSize: the APIC
		 * id bits below the package field. */
		uint32_t nc = (s->per_package - 1) & 0xff;
		uint32_t size = s->thread_bits + s->core_bits + s->die_bits;
		e->ecx = (e->ecx & ~0xf0ffu) | (size & 0xf) << 12 | nc;
	}
}

static void shape_ext1e(const struct shape_ctx *s, struct hv_cpuid_entry *e)
{
	struct topo_pos pos;
	topo_locate(s->t, s->p->vcpu_index, &pos);
	uint32_t core_id = pos.die * s->t->cores_per_die + pos.core;
	e->eax = s->apic_id;
	e->ebx = (e->ebx & ~0xffffu) | (s->per_core - 1) << 8 | (core_id & 0xff);
	/* One node per package, numbered by package. */
	e->ecx = (e->ecx & ~0x7ffu) | (pos.package & 0xff);
}

static void shape_entry(const struct shape_ctx *s, struct hv_cpuid_entry *e)
{
	switch (e->function) {
	case 0x0:
		/* 0xB and 0x1F are always supplied, so the guest must be able to
		 * ask for them. */
		if (e->eax < 0x1f)
			e->eax = 0x1f;
		break;
	case 0x1:
		shape_leaf1(s, e);
		break;
	case 0x4:
		shape_leaf4(s, e);
		break;
	case 0x5:
		/* MONITOR/MWAIT parameters, meaningless with MONITOR hidden. */
		zero_regs(e);
		break;
	case 0x6:
		/* Thermal and power management has no MSRs behind it here; the
		 * always-running APIC timer is true of KVM's emulated one. */
		e->eax &= L6_EAX_ARAT;
		e->ebx = e->ecx = e->edx = 0;
		break;
	case 0x7:
		shape_leaf7(e);
		break;
	case 0xa:
	case 0x1c:
	case 0x23:
		/* Architectural PMU, arch LBRs, PMU extensions: chv does not
		 * configure, save or migrate performance counters yet. */
		zero_regs(e);
		break;
	case 0xd:
		shape_leafd(e);
		break;
	case 0x1d:
	case 0x1e:
		/* AMX tile and TMUL information (see leaf 7). */
		zero_regs(e);
		break;
	case 0x80000001:
		/* No nested virtualization. */
		e->ecx &= ~E1_ECX_SVM;
		break;
	case 0x80000008:
		shape_ext8(s, e);
		break;
	case 0x8000000a:
		/* SVM features, meaningless with SVM hidden. */
		zero_regs(e);
		break;
	case 0x8000001d:
		if (e->eax & 0x1f)
			e->eax = cache_sharing(s, e->eax);
		break;
	case 0x8000001e:
		if (s->amd)
			shape_ext1e(s, e);
		break;
	default:
		/* Hypervisor leaves (0x40000000...) stay as the hypervisor supplied
		 * them: KVM's signature and paravirtual feature bits. */
		break;
	}
}

static void put_topo(struct hv_cpuid_entry *e, uint32_t function, uint32_t index, uint32_t shift,
		     uint32_t count, uint32_t type, uint32_t x2apic_id)
{
	*e = (struct hv_cpuid_entry){
	    .function = function,
	    .index = index,
	    .flags = HV_CPUID_FLAG_INDEXED,
	    .eax = shift,
	    .ebx = count,
	    .ecx = type << 8 | (index & 0xff),
	    .edx = x2apic_id,
	};
}

/* Leaf 0xB: SMT and core (the core level spans the whole package). Leaf
 * 0x1F: SMT, core and die. Both laid out as cpuid_apic_id() numbers. */
static void add_topology_leaves(const struct shape_ctx *s, struct hv_cpuid_entry *e)
{
	unsigned smt = s->thread_bits;
	unsigned core = smt + s->core_bits;
	unsigned die = core + s->die_bits;
	uint32_t id = s->apic_id;

	put_topo(&e[0], 0xb, 0, smt, s->per_core, TOPO_LEVEL_SMT, id);
	put_topo(&e[1], 0xb, 1, die, s->per_package, TOPO_LEVEL_CORE, id);
	put_topo(&e[2], 0xb, 2, 0, 0, TOPO_LEVEL_INVALID, id);

	put_topo(&e[3], 0x1f, 0, smt, s->per_core, TOPO_LEVEL_SMT, id);
	put_topo(&e[4], 0x1f, 1, core, s->per_die, TOPO_LEVEL_CORE, id);
	put_topo(&e[5], 0x1f, 2, die, s->per_package, TOPO_LEVEL_DIE, id);
	put_topo(&e[6], 0x1f, 3, 0, 0, TOPO_LEVEL_INVALID, id);
}

int cpuid_shape(const struct hv_cpuid_entry *in, uint32_t n_in, const struct cpuid_params *p,
		struct hv_cpuid_entry *out, uint32_t cap)
{
	const struct cpu_topology *t = &p->topo;
	if (!t->threads_per_core || !t->cores_per_die || !t->dies_per_package || !t->packages)
		return -EINVAL;
	uint32_t per_package =
	    (uint32_t)t->threads_per_core * t->cores_per_die * t->dies_per_package;
	if (per_package * t->packages != p->max_cpus || p->vcpu_index >= p->max_cpus)
		return -EINVAL;

	struct shape_ctx s = {
	    .p = p,
	    .t = t,
	    .apic_id = cpuid_apic_id(t, p->vcpu_index),
	    .per_core = t->threads_per_core,
	    .per_die = (uint32_t)t->threads_per_core * t->cores_per_die,
	    .per_package = per_package,
	    .thread_bits = count_bits(t->threads_per_core),
	    .core_bits = count_bits(t->cores_per_die),
	    .die_bits = count_bits(t->dies_per_package),
	    .amd = vendor_is_amd(in, n_in),
	};

	/* The hypervisor's own 0xB/0x1F describe the host; ours replace them. */
	uint32_t n = 0;
	for (uint32_t i = 0; i < n_in; i++) {
		if (in[i].function == 0xb || in[i].function == 0x1f)
			continue;
		if (n >= cap)
			return -ENOSPC;
		out[n] = in[i];
		shape_entry(&s, &out[n]);
		n++;
	}
	if (cap - n < LEAF_0B_ENTRIES + LEAF_1F_ENTRIES)
		return -ENOSPC;
	add_topology_leaves(&s, &out[n]);
	n += LEAF_0B_ENTRIES + LEAF_1F_ENTRIES;
	return (int)n;
}

#define MSR_IA32_TSC	      0x00000010
#define MSR_IA32_SYSENTER_CS  0x00000174
#define MSR_IA32_SYSENTER_ESP 0x00000175
#define MSR_IA32_SYSENTER_EIP 0x00000176
#define MSR_IA32_MISC_ENABLE  0x000001a0
#define MSR_MTRR_DEF_TYPE     0x000002ff
#define MSR_STAR	      0xc0000081
#define MSR_LSTAR	      0xc0000082
#define MSR_CSTAR	      0xc0000083
#define MSR_SYSCALL_MASK      0xc0000084
#define MSR_KERNEL_GS_BASE    0xc0000102

#define MISC_ENABLE_FAST_STRING (1ULL << 0)
#define MTRR_DEF_TYPE_ENABLE	(1ULL << 11)
#define MTRR_TYPE_WRBACK	6ULL

int cpuid_boot_msrs(struct hv_msr *out, uint32_t cap)
{
	/* As Cloud Hypervisor and Firecracker start a vCPU: syscall and
	 * sysenter state cleared, TSC at 0, fast strings on, and every MTRR
	 * default write-back so the guest does not run its memory uncached. */
	static const struct hv_msr boot[] = {
	    {MSR_IA32_SYSENTER_CS, 0},
	    {MSR_IA32_SYSENTER_ESP, 0},
	    {MSR_IA32_SYSENTER_EIP, 0},
	    {MSR_STAR, 0},
	    {MSR_CSTAR, 0},
	    {MSR_KERNEL_GS_BASE, 0},
	    {MSR_SYSCALL_MASK, 0},
	    {MSR_LSTAR, 0},
	    {MSR_IA32_TSC, 0},
	    {MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING},
	    {MSR_MTRR_DEF_TYPE, MTRR_DEF_TYPE_ENABLE | MTRR_TYPE_WRBACK},
	};
	uint32_t n = sizeof(boot) / sizeof(boot[0]);
	if (cap < n)
		return -ENOSPC;
	memcpy(out, boot, sizeof(boot));
	return (int)n;
}
