/* CPUID shaping and boot MSRs against synthetic Intel-like and AMD-like
 * "supported" tables. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vm/cpuid.h"

#define IDX  HV_CPUID_FLAG_INDEXED
#define B(n) (1u << (n))

/* Host bits the shaping must keep. */
#define L1_ECX_KEEP                                                                                \
	(B(0) | B(9) | B(21) | B(24) | B(26) | B(28)) /* SSE3 SSSE3 x2APIC TSC-dl XSAVE AVX */
#define L1_ECX_HIDE (B(3) | B(5) | B(15))	      /* MONITOR VMX PDCM */
#define L7_EBX_KEEP (B(0) | B(5) | B(9) | B(16))      /* FSGSBASE AVX2 ERMS AVX512F */
#define L7_EDX_KEEP (B(4) | B(10) | B(26))
#define L7_EDX_AMX  (B(22) | B(24) | B(25))
#define XCR0_KEEP   (B(0) | B(1) | B(2) | B(5) | B(6) | B(7))
#define XCR0_HIDDEN (B(3) | B(4) | B(17) | B(18))

/* Leaf 4 / 0x8000001D EAX: type, level, and the host's sharing fields. */
#define CACHE_EAX(type, level) ((type) | (level) << 5 | B(8) | 0x3fu << 26 | 0xfu << 14)

static const struct hv_cpuid_entry intel_host[] = {
    {0x0, 0, 0, 0x16, 0x756e6547, 0x6c65746e, 0x49656e69}, /* GenuineIntel */
    {0x1, 0, 0, 0x000806f8, 0x07100800, L1_ECX_KEEP | L1_ECX_HIDE, B(0) | B(28) | B(25)},
    {0x4, 0, IDX, CACHE_EAX(1, 1), 0x02c0003f, 63, 0},
    {0x4, 1, IDX, CACHE_EAX(2, 1), 0x01c0003f, 63, 0},
    {0x4, 2, IDX, CACHE_EAX(3, 2), 0x03c0003f, 2047, 0},
    {0x4, 3, IDX, CACHE_EAX(3, 3), 0x03c0003f, 0x1ffff, 4},
    {0x4, 4, IDX, 0, 0, 0, 0},
    {0x5, 0, 0, 0x40, 0x40, 3, 0x2020},
    {0x6, 0, 0, 0x77, 2, 9, 0},
    {0x7, 0, IDX, 1, L7_EBX_KEEP | B(14), 0x12, L7_EDX_KEEP | L7_EDX_AMX},
    {0x7, 1, IDX, B(4) | B(21), 0, 0, B(8) | B(4)},
    {0xa, 0, 0, 0x07300805, 0, 0, 0x603},
    {0xb, 0, IDX, 1, 2, 0x100, 7},
    {0xb, 1, IDX, 7, 112, 0x201, 7},
    {0xd, 0, IDX, XCR0_KEEP | XCR0_HIDDEN, 0x2b00, 0x2b00, 0},
    {0xd, 1, IDX, 0xf, 0x2b00, 0, 0},
    {0xd, 3, IDX, 0x40, 0x3c0, 0, 0},
    {0xd, 17, IDX, 0x40, 0xac0, 2, 0},
    {0xd, 18, IDX, 0x2000, 0xb00, 6, 0},
    {0x1d, 0, IDX, 1, 0, 0, 0},
    {0x1d, 1, IDX, 0x4002000, 0x80040, 0x10, 0},
    {0x1e, 0, IDX, 0, 0x4010, 0, 0},
    {0x1f, 0, IDX, 1, 2, 0x100, 7},
    {0x1f, 1, IDX, 7, 112, 0x201, 7},
    {0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d},
    {0x40000001, 0, 0, 0x01007afb, 0, 0, 0},
    {0x80000000, 0, 0, 0x80000008, 0, 0, 0},
    {0x80000001, 0, 0, 0, 0, B(0) | B(5) | B(8), B(11) | B(20) | B(29)},
    {0x80000008, 0, 0, 0x3027, 0x100d000, 0, 0},
};

static const struct hv_cpuid_entry amd_host[] = {
    {0x0, 0, 0, 0x10, 0x68747541, 0x444d4163, 0x69746e65}, /* AuthenticAMD */
    {0x1, 0, 0, 0x00a00f11, 0x0a100800, L1_ECX_KEEP | B(3), B(0) | B(28)},
    {0x7, 0, IDX, 0, L7_EBX_KEEP, 0, L7_EDX_KEEP},
    {0xd, 0, IDX, XCR0_KEEP, 0x988, 0x988, 0},
    {0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d},
    {0x40000001, 0, 0, 0x01007afb, 0, 0, 0},
    {0x80000000, 0, 0, 0x8000001f, 0x68747541, 0x444d4163, 0x69746e65},
    {0x80000001, 0, 0, 0x00a00f11, 0, B(0) | B(2) | B(22), B(11) | B(29)},
    {0x80000008, 0, 0, 0x3030, 0x100d000, 0x1400f | B(16), 0},
    {0x8000000a, 0, 0, 1, 0x8000, 0, 0x1ebfbcff},
    {0x8000001d, 0, IDX, CACHE_EAX(1, 1), 0x01c0003f, 63, 0},
    {0x8000001d, 1, IDX, CACHE_EAX(2, 1), 0x01c0003f, 63, 0},
    {0x8000001d, 2, IDX, CACHE_EAX(3, 2), 0x01c0003f, 1023, 2},
    {0x8000001d, 3, IDX, CACHE_EAX(3, 3), 0x03c0003f, 16383, 1},
    {0x8000001d, 4, IDX, 0, 0, 0, 0},
    {0x8000001e, 0, 0, 3, 0x101, 0, 0},
};

#define N(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))

static const struct cpu_topology topologies[] = {
    {1, 1, 1, 1},
    {2, 2, 1, 1},
    {1, 4, 1, 2},
    {2, 1, 1, 4},
};

static uint32_t topo_count(const struct cpu_topology *t)
{
	return (uint32_t)t->threads_per_core * t->cores_per_die * t->dies_per_package * t->packages;
}

/* The one entry for (function, index); fails on none or two. */
static const struct hv_cpuid_entry *find(const struct hv_cpuid_entry *e, int n, uint32_t fn,
					 uint32_t index)
{
	const struct hv_cpuid_entry *hit = NULL;
	for (int i = 0; i < n; i++) {
		if (e[i].function != fn || e[i].index != index)
			continue;
		if (hit)
			fail_msg("leaf %#x.%u appears twice", fn, index);
		hit = &e[i];
	}
	if (!hit)
		fail_msg("leaf %#x.%u missing", fn, index);
	return hit;
}

static const struct hv_cpuid_entry *host_leaf(const struct hv_cpuid_entry *in, uint32_t n,
					      uint32_t fn, uint32_t index)
{
	return find(in, (int)n, fn, index);
}

static void test_apic_ids(void **state)
{
	(void)state;
	/* Expected ids, by topology: the fields pack thread, core, die, package. */
	static const uint32_t want[4][8] = {
	    {0},
	    {0, 1, 2, 3},
	    {0, 1, 2, 3, 4, 5, 6, 7},
	    {0, 1, 2, 3, 4, 5, 6, 7},
	};
	for (size_t t = 0; t < 4; t++)
		for (uint32_t i = 0; i < topo_count(&topologies[t]); i++)
			assert_int_equal(cpuid_apic_id(&topologies[t], i), want[t][i]);

	/* Counts that are not powers of two leave holes, as leaf 0xB says. */
	struct cpu_topology t3 = {1, 3, 1, 2};
	static const uint32_t want3[] = {0, 1, 2, 4, 5, 6};
	for (uint32_t i = 0; i < 6; i++)
		assert_int_equal(cpuid_apic_id(&t3, i), want3[i]);
	struct cpu_topology t23 = {2, 3, 1, 2};
	/* thread bit 0, core bits 1-2, package bit 3 */
	assert_int_equal(cpuid_apic_id(&t23, 0), 0);
	assert_int_equal(cpuid_apic_id(&t23, 1), 1);
	assert_int_equal(cpuid_apic_id(&t23, 2), 2);
	assert_int_equal(cpuid_apic_id(&t23, 5), 5);
	assert_int_equal(cpuid_apic_id(&t23, 6), 8);
	assert_int_equal(cpuid_apic_id(&t23, 11), 13);
	/* Dies take their own field between cores and packages. */
	struct cpu_topology td = {2, 2, 2, 2};
	assert_int_equal(cpuid_apic_id(&td, 4), 4); /* die 1 */
	assert_int_equal(cpuid_apic_id(&td, 8), 8); /* package 1 */
	assert_int_equal(cpuid_apic_id(&td, 15), 15);
	struct cpu_topology td3 = {1, 1, 3, 2};
	assert_int_equal(cpuid_apic_id(&td3, 2), 2);
	assert_int_equal(cpuid_apic_id(&td3, 3), 4);
	struct cpu_topology big = {1, 255, 1, 1};
	assert_int_equal(cpuid_apic_id(&big, 254), 254);
}

static void test_apic_ids_unique(void **state)
{
	(void)state;
	for (size_t t = 0; t < 4; t++) {
		uint32_t n = topo_count(&topologies[t]);
		for (uint32_t i = 0; i < n; i++) {
			uint32_t id = cpuid_apic_id(&topologies[t], i);
			assert_true(id < n); /* dense: every count here is a power of two */
			for (uint32_t j = 0; j < i; j++)
				assert_int_not_equal(id, cpuid_apic_id(&topologies[t], j));
		}
	}
}

static unsigned bits_for(uint32_t n)
{
	unsigned b = 0;
	while ((1u << b) < n)
		b++;
	return b;
}

static void check_topology_leaves(const struct hv_cpuid_entry *out, int n,
				  const struct cpu_topology *t, uint32_t apic)
{
	unsigned smt = bits_for(t->threads_per_core);
	unsigned core = smt + bits_for(t->cores_per_die);
	uint32_t per_pkg = (uint32_t)t->threads_per_core * t->cores_per_die;
	const struct hv_cpuid_entry *e;

	e = find(out, n, 0xb, 0);
	assert_int_equal(e->flags & IDX, IDX);
	assert_int_equal(e->eax, smt);
	assert_int_equal(e->ebx, t->threads_per_core);
	assert_int_equal(e->ecx, 1 << 8 | 0);
	assert_int_equal(e->edx, apic);
	e = find(out, n, 0xb, 1);
	assert_int_equal(e->eax, core);
	assert_int_equal(e->ebx, per_pkg);
	assert_int_equal(e->ecx, 2 << 8 | 1);
	assert_int_equal(e->edx, apic);
	e = find(out, n, 0xb, 2);
	assert_int_equal(e->eax, 0);
	assert_int_equal(e->ebx, 0);
	assert_int_equal(e->ecx, 2);
	assert_int_equal(e->edx, apic);

	e = find(out, n, 0x1f, 0);
	assert_int_equal(e->flags & IDX, IDX);
	assert_int_equal(e->eax, smt);
	assert_int_equal(e->ebx, t->threads_per_core);
	assert_int_equal(e->ecx, 1 << 8 | 0);
	assert_int_equal(e->edx, apic);
	e = find(out, n, 0x1f, 1);
	assert_int_equal(e->eax, core);
	assert_int_equal(e->ebx, per_pkg);
	assert_int_equal(e->ecx, 2 << 8 | 1);
	e = find(out, n, 0x1f, 2);
	assert_int_equal(e->eax, core); /* one die: no die bits */
	assert_int_equal(e->ebx, per_pkg);
	assert_int_equal(e->ecx, 5 << 8 | 2);
	assert_int_equal(e->edx, apic);
	e = find(out, n, 0x1f, 3);
	assert_int_equal(e->eax, 0);
	assert_int_equal(e->ecx, 3);
	assert_int_equal(e->edx, apic);

	/* Decoded as Linux does, the id gives back this vCPU's place. */
	uint32_t thread = apic & ((1u << smt) - 1);
	uint32_t core_id = (apic >> smt) & ((1u << (core - smt)) - 1);
	assert_true(thread < t->threads_per_core);
	assert_true(core_id < t->cores_per_die);
	assert_true((apic >> core) < t->packages);
}

static void check_common(const struct hv_cpuid_entry *in, uint32_t n_in,
			 const struct hv_cpuid_entry *out, int n, const struct cpu_topology *t,
			 uint32_t index)
{
	uint32_t apic = cpuid_apic_id(t, index);
	uint32_t per_pkg = (uint32_t)t->threads_per_core * t->cores_per_die;
	const struct hv_cpuid_entry *h, *e;

	/* Leaf 0: vendor kept, room for 0x1F. */
	h = host_leaf(in, n_in, 0, 0);
	e = find(out, n, 0, 0);
	assert_int_equal(e->eax, 0x1f);
	assert_int_equal(e->ebx, h->ebx);
	assert_int_equal(e->ecx, h->ecx);
	assert_int_equal(e->edx, h->edx);

	h = host_leaf(in, n_in, 1, 0);
	e = find(out, n, 1, 0);
	assert_int_equal(e->eax, h->eax);
	assert_int_equal(e->ebx >> 24, apic);
	assert_int_equal((e->ebx >> 16) & 0xff, per_pkg);
	assert_int_equal(e->ebx & 0xffff, h->ebx & 0xffff);
	assert_true(e->ecx & B(31));
	assert_int_equal(e->ecx & L1_ECX_KEEP, L1_ECX_KEEP); /* TSC-deadline among them */
	assert_int_equal(e->ecx & L1_ECX_HIDE, 0);
	assert_int_equal(!!(e->edx & B(28)), per_pkg > 1);
	assert_int_equal(e->edx & ~B(28), h->edx & ~B(28));

	e = find(out, n, 7, 0);
	assert_int_equal(e->ebx, L7_EBX_KEEP);
	assert_int_equal(e->edx, L7_EDX_KEEP);
	e = find(out, n, 0xd, 0);
	assert_int_equal(e->eax, XCR0_KEEP);

	check_topology_leaves(out, n, t, apic);

	/* Hypervisor leaves as supplied. */
	for (uint32_t fn = 0x40000000; fn <= 0x40000001; fn++)
		assert_memory_equal(find(out, n, fn, 0), host_leaf(in, n_in, fn, 0),
				    sizeof(struct hv_cpuid_entry));

	/* SVM hidden, the rest of 0x80000001 kept. */
	h = host_leaf(in, n_in, 0x80000001, 0);
	e = find(out, n, 0x80000001, 0);
	assert_int_equal(e->ecx, h->ecx & ~B(2));
	assert_int_equal(e->edx, h->edx);

	/* Every host leaf except 0xB/0x1F is there, plus exactly our 7. */
	uint32_t host_topo = 0;
	for (uint32_t i = 0; i < n_in; i++)
		host_topo += in[i].function == 0xb || in[i].function == 0x1f;
	assert_int_equal(n, n_in - host_topo + 7);
}

static int shape(const struct hv_cpuid_entry *in, uint32_t n_in, const struct cpu_topology *t,
		 uint32_t index, uint32_t phys_bits, struct hv_cpuid_entry *out)
{
	struct cpuid_params p = {
	    .vcpu_index = index,
	    .max_cpus = topo_count(t),
	    .topo = *t,
	    .phys_bits = phys_bits,
	};
	return cpuid_shape(in, n_in, &p, out, CPUID_MAX_ENTRIES);
}

static void test_intel(void **state)
{
	(void)state;
	static struct hv_cpuid_entry out[CPUID_MAX_ENTRIES];
	for (size_t ti = 0; ti < 4; ti++) {
		const struct cpu_topology *t = &topologies[ti];
		for (uint32_t i = 0; i < topo_count(t); i++) {
			int n = shape(intel_host, N(intel_host), t, i, 0, out);
			assert_true(n > 0);
			check_common(intel_host, N(intel_host), out, n, t, i);

			/* Leaf 4: cores - 1, and sharing by level. */
			for (uint32_t sub = 0; sub < 4; sub++) {
				const struct hv_cpuid_entry *h =
				    host_leaf(intel_host, N(intel_host), 4, sub);
				const struct hv_cpuid_entry *e = find(out, n, 4, sub);
				uint32_t level = (h->eax >> 5) & 7;
				uint32_t share = level <= 2
						     ? t->threads_per_core
						     : t->threads_per_core * t->cores_per_die;
				assert_int_equal(e->eax >> 26, t->cores_per_die - 1);
				assert_int_equal((e->eax >> 14) & 0xfff, share - 1);
				assert_int_equal(e->eax & 0x3fff, h->eax & 0x3fff);
				assert_int_equal(e->ebx, h->ebx);
				assert_int_equal(e->ecx, h->ecx);
			}
			assert_int_equal(find(out, n, 4, 4)->eax, 0);

			/* Hidden: MONITOR params, thermal (ARAT kept), PMU, MPX and AMX. */
			const struct hv_cpuid_entry *e = find(out, n, 5, 0);
			assert_int_equal(e->eax | e->ebx | e->ecx | e->edx, 0);
			e = find(out, n, 6, 0);
			assert_int_equal(e->eax, B(2));
			assert_int_equal(e->ebx | e->ecx | e->edx, 0);
			e = find(out, n, 0xa, 0);
			assert_int_equal(e->eax | e->ebx | e->ecx | e->edx, 0);
			e = find(out, n, 7, 1);
			assert_int_equal(e->eax, B(4));
			assert_int_equal(e->edx, B(4));
			for (uint32_t sub = 0; sub < 2; sub++) {
				e = find(out, n, 0x1d, sub);
				assert_int_equal(e->eax | e->ebx | e->ecx | e->edx, 0);
			}
			e = find(out, n, 0x1e, 0);
			assert_int_equal(e->eax | e->ebx | e->ecx | e->edx, 0);
			static const uint32_t xsub[] = {3, 17, 18};
			for (size_t k = 0; k < 3; k++) {
				e = find(out, n, 0xd, xsub[k]);
				assert_int_equal(e->eax | e->ebx | e->ecx | e->edx, 0);
			}
			assert_memory_equal(find(out, n, 0xd, 1),
					    host_leaf(intel_host, N(intel_host), 0xd, 1),
					    sizeof(*e));

			/* Intel's 0x80000008 ECX is reserved: untouched. */
			e = find(out, n, 0x80000008, 0);
			assert_int_equal(e->eax, 0x3027);
			assert_int_equal(e->ecx, 0);
		}
	}
}

static void test_amd(void **state)
{
	(void)state;
	static struct hv_cpuid_entry out[CPUID_MAX_ENTRIES];
	for (size_t ti = 0; ti < 4; ti++) {
		const struct cpu_topology *t = &topologies[ti];
		uint32_t per_pkg = (uint32_t)t->threads_per_core * t->cores_per_die;
		for (uint32_t i = 0; i < topo_count(t); i++) {
			int n = shape(amd_host, N(amd_host), t, i, 0, out);
			assert_true(n > 0);
			/* The host lacks 0xB and 0x1F; check_common sees them added. */
			check_common(amd_host, N(amd_host), out, n, t, i);

			const struct hv_cpuid_entry *e = find(out, n, 0x80000008, 0);
			assert_int_equal(e->eax, 0x3030);
			assert_int_equal(e->ecx & 0xff, per_pkg - 1);
			assert_int_equal((e->ecx >> 12) & 0xf, bits_for(t->threads_per_core) +
								   bits_for(t->cores_per_die));
			assert_int_equal(e->ecx & ~0xf0ffu, B(16));

			e = find(out, n, 0x8000001e, 0);
			uint32_t apic = cpuid_apic_id(t, i);
			assert_int_equal(e->eax, apic);
			assert_int_equal((e->ebx >> 8) & 0xff, t->threads_per_core - 1);
			assert_int_equal(e->ebx & 0xff, i / t->threads_per_core % t->cores_per_die);
			assert_int_equal(e->ecx & 0xff, i / per_pkg);

			for (uint32_t sub = 0; sub < 4; sub++) {
				const struct hv_cpuid_entry *h =
				    host_leaf(amd_host, N(amd_host), 0x8000001d, sub);
				e = find(out, n, 0x8000001d, sub);
				uint32_t share =
				    ((h->eax >> 5) & 7) <= 2 ? t->threads_per_core : per_pkg;
				assert_int_equal((e->eax >> 14) & 0xfff, share - 1);
				assert_int_equal(e->eax & ~(0xfffu << 14),
						 h->eax & ~(0xfffu << 14));
			}

			e = find(out, n, 0x8000000a, 0);
			assert_int_equal(e->eax | e->ebx | e->ecx | e->edx, 0);
		}
	}
}

/* (0x8000001E's core id counts cores in the package across dies.) */
static void test_amd_unique_core_ids(void **state)
{
	(void)state;
	static struct hv_cpuid_entry out[CPUID_MAX_ENTRIES];
	struct cpu_topology t = {2, 4, 1, 2};
	uint32_t seen[2] = {0};
	for (uint32_t i = 0; i < 16; i++) {
		int n = shape(amd_host, N(amd_host), &t, i, 0, out);
		assert_true(n > 0);
		const struct hv_cpuid_entry *e = find(out, n, 0x8000001e, 0);
		seen[e->ecx & 0xff] |= 1u << (e->ebx & 0xff);
	}
	assert_int_equal(seen[0], 0xf);
	assert_int_equal(seen[1], 0xf);
}

static void test_leaf0_not_lowered(void **state)
{
	(void)state;
	struct hv_cpuid_entry in[] = {
	    {0x0, 0, 0, 0x23, 0x756e6547, 0x6c65746e, 0x49656e69},
	    {0x1, 0, 0, 0, 0, 0, 0},
	};
	struct hv_cpuid_entry out[16];
	struct cpu_topology t = {1, 1, 1, 1};
	int n = shape(in, 2, &t, 0, 0, out);
	assert_int_equal(n, 9);
	assert_int_equal(find(out, n, 0, 0)->eax, 0x23);
	const struct hv_cpuid_entry *e = find(out, n, 1, 0);
	assert_int_equal(e->ecx, B(31));
	assert_int_equal(e->edx, 0); /* no HTT for one logical processor */
	assert_int_equal(e->ebx, 1 << 16);
}

static void test_phys_bits(void **state)
{
	(void)state;
	static struct hv_cpuid_entry out[CPUID_MAX_ENTRIES];
	struct cpu_topology t = {1, 1, 1, 1};
	static const struct {
		uint32_t cap, want;
	} cases[] = {{0, 39}, {36, 36}, {39, 39}, {46, 39}, {52, 39}};
	for (size_t k = 0; k < 5; k++) {
		int n = shape(intel_host, N(intel_host), &t, 0, cases[k].cap, out);
		assert_true(n > 0);
		const struct hv_cpuid_entry *e = find(out, n, 0x80000008, 0);
		assert_int_equal(e->eax & 0xff, cases[k].want);
		assert_int_equal(e->eax & ~0xffu, 0x3000); /* linear bits kept */
	}
	/* A guest physical size in EAX[23:16] is capped too. */
	struct hv_cpuid_entry in[] = {{0x80000008, 0, 0, 0x2d3034, 0, 0, 0}};
	struct hv_cpuid_entry small[8];
	int n = shape(in, 1, &t, 0, 40, small);
	assert_int_equal(n, 8);
	assert_int_equal(find(small, n, 0x80000008, 0)->eax, 0x283028);
}

static void test_enospc_einval(void **state)
{
	(void)state;
	static struct hv_cpuid_entry out[CPUID_MAX_ENTRIES];
	struct cpu_topology t = {2, 2, 1, 1};
	struct cpuid_params p = {.vcpu_index = 3, .max_cpus = 4, .topo = t};
	int need = cpuid_shape(intel_host, N(intel_host), &p, out, CPUID_MAX_ENTRIES);
	assert_true(need > 0);
	assert_int_equal(cpuid_shape(intel_host, N(intel_host), &p, out, (uint32_t)need), need);
	/* Short by one: at the end (topology leaves) and well before it. */
	assert_int_equal(cpuid_shape(intel_host, N(intel_host), &p, out, (uint32_t)need - 1),
			 -ENOSPC);
	assert_int_equal(cpuid_shape(intel_host, N(intel_host), &p, out, 3), -ENOSPC);
	assert_int_equal(cpuid_shape(intel_host, N(intel_host), &p, NULL, 0), -ENOSPC);
	assert_int_equal(cpuid_shape(NULL, 0, &p, out, 6), -ENOSPC);
	assert_int_equal(cpuid_shape(NULL, 0, &p, out, 7), 7);

	p.vcpu_index = 4;
	assert_int_equal(cpuid_shape(intel_host, N(intel_host), &p, out, CPUID_MAX_ENTRIES),
			 -EINVAL);
	p.vcpu_index = 0;
	p.max_cpus = 8;
	assert_int_equal(cpuid_shape(intel_host, N(intel_host), &p, out, CPUID_MAX_ENTRIES),
			 -EINVAL);
	p.max_cpus = 0;
	p.topo = (struct cpu_topology){0, 0, 0, 0};
	assert_int_equal(cpuid_shape(intel_host, N(intel_host), &p, out, CPUID_MAX_ENTRIES),
			 -EINVAL);
}

static void test_boot_msrs(void **state)
{
	(void)state;
	struct hv_msr m[16];
	memset(m, 0xff, sizeof(m));
	int n = cpuid_boot_msrs(m, 16);
	assert_int_equal(n, 11);
	static const struct hv_msr want[] = {
	    {0x174, 0},	     {0x175, 0},      {0x176, 0},      {0xc0000081, 0},
	    {0xc0000082, 0}, {0xc0000083, 0}, {0xc0000084, 0}, {0xc0000102, 0},
	    {0x10, 0},	     {0x1a0, 1},      {0x2ff, 0x806},
	};
	for (size_t w = 0; w < 11; w++) {
		int found = 0;
		for (int i = 0; i < n; i++)
			if (m[i].index == want[w].index) {
				found++;
				assert_int_equal(m[i].value, want[w].value);
			}
		if (found != 1)
			fail_msg("MSR %#x found %d times", want[w].index, found);
	}
	assert_int_equal(m[11].index, 0xffffffff); /* nothing past the count */
	assert_int_equal(cpuid_boot_msrs(m, 11), 11);
	assert_int_equal(cpuid_boot_msrs(m, 10), -ENOSPC);
	assert_int_equal(cpuid_boot_msrs(NULL, 0), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_apic_ids),
	    cmocka_unit_test(test_apic_ids_unique),
	    cmocka_unit_test(test_intel),
	    cmocka_unit_test(test_amd),
	    cmocka_unit_test(test_amd_unique_core_ids),
	    cmocka_unit_test(test_leaf0_not_lowered),
	    cmocka_unit_test(test_phys_bits),
	    cmocka_unit_test(test_enospc_einval),
	    cmocka_unit_test(test_boot_msrs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
