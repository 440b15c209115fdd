/* ACPI tables and the AML writer: the tables are parsed back field by field,
 * and, where acpica-tools is installed, disassembled by iasl, recompiled
 * and compared byte for byte, and evaluated by acpiexec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acpi/acpi.h"
#include "acpi/aml.h"

#define BASE 0xe0000ull
#define CAP  0x20000

static uint8_t tables[CAP];

static uint64_t rd(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void platform_init(struct acpi_platform *p, uint32_t boot, uint32_t max)
{
	memset(p, 0, sizeof(*p));
	p->boot_cpus = boot;
	p->max_cpus = max;
	for (uint32_t i = 0; i < max; i++)
		p->apic_id[i] = i;
	p->lapic_addr = 0xfee00000;
	p->ioapic_addr = 0xfec00000;
	p->ioapic_id = 0;
	p->ioapic_gsi_base = 0;
	p->pm_port = 0x600;
	p->reset_value = 1;
	p->s5_slp_typ = 5;
	p->com1.port = 0x3f8;
	p->com1.irq = 4;
}

static void platform_ecam(struct acpi_platform *p)
{
	p->ecam_base = 0xe8000000;
	p->ecam_bus_start = 0;
	p->ecam_bus_end = 255;
}

/* The VM's root bridge: ECAM, both windows, INTx on GSIs 16-23. */
static void platform_pci(struct acpi_platform *p)
{
	platform_ecam(p);
	p->pci.present = true;
	p->pci.mem32_base = 0xc0000000;
	p->pci.mem32_size = 0x28000000;
	p->pci.mem64_base = 0x140000000ull;
	p->pci.mem64_size = 0x400000000000ull - 0x140000000ull;
	p->pci.intx_gsi_base = 16;
	p->pci.intx_gsi_count = 8;
}

/* A parsed build: where each table sits in the buffer. */
struct parsed {
	size_t size;
	size_t xsdt, fadt, dsdt, madt, mcfg; /* offsets; 0 when absent */
	unsigned n_xsdt;
};

static uint32_t sdt_len(const uint8_t *t)
{
	return (uint32_t)rd(t + 4, 4);
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

/* Checks a table's header and checksum and that it lies inside the build. */
static void check_sdt(const uint8_t *buf, size_t size, size_t off, const char *sig, uint8_t rev)
{
	const uint8_t *t = buf + off;

	assert_true(off % 8 == 0);
	assert_true(off + 36 <= size);
	assert_memory_equal(t, sig, 4);
	assert_true(sdt_len(t) >= 36);
	assert_true(off + sdt_len(t) <= size);
	assert_int_equal(t[8], rev);
	assert_int_equal(sum(t, sdt_len(t)), 0);
	assert_memory_equal(t + 10, "CHV   ", 6);
	assert_memory_equal(t + 16, "CHVTABLE", 8);
	assert_memory_equal(t + 28, "CHV ", 4);
}

static size_t gpa_to_off(uint64_t gpa, size_t size)
{
	assert_true(gpa >= BASE);
	assert_true(gpa - BASE < size);
	return (size_t)(gpa - BASE);
}

static void parse(const uint8_t *buf, const struct acpi_tables *out, struct parsed *r)
{
	const uint8_t *x;

	memset(r, 0, sizeof(*r));
	r->size = out->size;
	assert_int_equal(out->rsdp_gpa, BASE);
	assert_true(out->size <= CAP);

	/* RSDP */
	assert_memory_equal(buf, "RSD PTR ", 8);
	assert_int_equal(sum(buf, 20), 0);
	assert_int_equal(sum(buf, 36), 0);
	assert_memory_equal(buf + 9, "CHV   ", 6);
	assert_int_equal(buf[15], 2);
	assert_int_equal(rd(buf + 16, 4), 0);
	assert_int_equal(rd(buf + 20, 4), 36);
	assert_int_equal(buf[33] | buf[34] | buf[35], 0);

	r->xsdt = gpa_to_off(rd(buf + 24, 8), out->size);
	check_sdt(buf, out->size, r->xsdt, "XSDT", 1);
	x = buf + r->xsdt;
	assert_int_equal((sdt_len(x) - 36) % 8, 0);
	r->n_xsdt = (sdt_len(x) - 36) / 8;
	for (unsigned i = 0; i < r->n_xsdt; i++) {
		size_t off = gpa_to_off(rd(x + 36 + 8 * i, 8), out->size);

		if (!memcmp(buf + off, "FACP", 4)) {
			assert_int_equal(r->fadt, 0);
			r->fadt = off;
			check_sdt(buf, out->size, off, "FACP", 6);
		} else if (!memcmp(buf + off, "APIC", 4)) {
			assert_int_equal(r->madt, 0);
			r->madt = off;
			check_sdt(buf, out->size, off, "APIC", 5);
		} else if (!memcmp(buf + off, "MCFG", 4)) {
			assert_int_equal(r->mcfg, 0);
			r->mcfg = off;
			check_sdt(buf, out->size, off, "MCFG", 1);
		} else {
			fail_msg("unexpected table in the XSDT at offset %zu", off);
		}
	}
	assert_int_not_equal(r->fadt, 0);
	assert_int_not_equal(r->madt, 0);
	r->dsdt = gpa_to_off(rd(buf + r->fadt + 140, 8), out->size);
	assert_int_equal(rd(buf + r->fadt + 40, 4), BASE + r->dsdt);
	check_sdt(buf, out->size, r->dsdt, "DSDT", 2);
}

/* The tables must not overlap one another. */
static void check_disjoint(const uint8_t *buf, const struct parsed *r)
{
	size_t offs[6] = {0, r->xsdt, r->fadt, r->dsdt, r->madt, r->mcfg};
	size_t lens[6] = {36};
	unsigned n = r->mcfg ? 6 : 5;

	for (unsigned i = 1; i < n; i++)
		lens[i] = sdt_len(buf + offs[i]);
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = i + 1; j < n; j++)
			assert_true(offs[i] + lens[i] <= offs[j] || offs[j] + lens[j] <= offs[i]);
}

static void build_ok(const struct acpi_platform *p, struct parsed *r)
{
	struct acpi_tables out;

	memset(tables, 0xa5, sizeof(tables));
	assert_int_equal(acpi_build(p, tables, sizeof(tables), BASE, &out), 0);
	parse(tables, &out, r);
	check_disjoint(tables, r);
}

/* ---- checksum ---- */

static void test_checksum(void **state)
{
	static const uint8_t v[] = {1, 2, 3};
	uint8_t t[5] = {0x10, 0x20, 0xff, 0, 0x7f};

	(void)state;
	assert_int_equal(acpi_checksum(v, 0), 0);
	assert_int_equal(acpi_checksum(v, 3), 0xfa);
	t[3] = acpi_checksum(t, sizeof(t));
	assert_int_equal(sum(t, sizeof(t)), 0);
}

/* ---- layout ---- */

static void test_layout_without_mcfg(void **state)
{
	struct acpi_platform p;
	struct parsed r;

	(void)state;
	platform_init(&p, 1, 1);
	build_ok(&p, &r);
	assert_int_equal(r.n_xsdt, 2);
	assert_int_equal(r.mcfg, 0);
	assert_int_equal(r.xsdt, 40);
	/* Everything reported as used ends with the last table. */
	assert_int_equal(r.size, r.madt + sdt_len(tables + r.madt));
	assert_false(memmem(tables, r.size, "MCFG", 4));
}

static void test_layout_with_mcfg(void **state)
{
	struct acpi_platform p;
	struct parsed r;
	const uint8_t *m;

	(void)state;
	platform_init(&p, 2, 2);
	p.ecam_base = 0xb0000000;
	p.ecam_bus_start = 0x10;
	p.ecam_bus_end = 0x3f;
	build_ok(&p, &r);
	assert_int_equal(r.n_xsdt, 3);
	assert_int_equal(r.size, r.mcfg + sdt_len(tables + r.mcfg));
	m = tables + r.mcfg;
	assert_int_equal(sdt_len(m), 60);
	assert_int_equal(rd(m + 36, 8), 0);
	assert_int_equal(rd(m + 44, 8), 0xb0000000);
	assert_int_equal(rd(m + 52, 2), 0);
	assert_int_equal(m[54], 0x10);
	assert_int_equal(m[55], 0x3f);
	assert_int_equal(rd(m + 56, 4), 0);
}

static void test_other_base(void **state)
{
	struct acpi_platform p;
	struct acpi_tables out;
	uint64_t base = 0x100000000ull;
	uint64_t fadt, dsdt;

	(void)state;
	platform_init(&p, 1, 1);
	assert_int_equal(acpi_build(&p, tables, sizeof(tables), base, &out), 0);
	assert_int_equal(out.rsdp_gpa, base);
	assert_int_equal(rd(tables + 24, 8), base + 40);
	fadt = rd(tables + 40 + 36, 8);
	assert_true(fadt > base && fadt - base < out.size);
	assert_memory_equal(tables + (fadt - base), "FACP", 4);
	/* A DSDT above 4 GiB has only the 64-bit pointer. */
	assert_int_equal(rd(tables + (fadt - base) + 40, 4), 0);
	dsdt = rd(tables + (fadt - base) + 140, 8);
	assert_true(dsdt > base && dsdt - base < out.size);
	assert_memory_equal(tables + (dsdt - base), "DSDT", 4);
}

/* ---- FADT ---- */

static void test_fadt_fields(void **state)
{
	struct acpi_platform p;
	struct parsed r;
	const uint8_t *f;
	static const uint8_t gas[12] = {1, 8, 0, 1, 0x34, 0x12, 0, 0, 0, 0, 0, 0};

	(void)state;
	platform_init(&p, 1, 1);
	p.pm_port = 0x1234;
	p.reset_value = 0xab;
	build_ok(&p, &r);
	f = tables + r.fadt;
	assert_int_equal(sdt_len(f), 276);
	assert_int_equal(f[131], 5);
	assert_int_equal(rd(f + 112, 4), (1u << 20) | (1u << 10));
	assert_int_equal(rd(f + 36, 4), 0);    /* FIRMWARE_CTRL: no FACS */
	assert_int_equal(rd(f + 132, 8), 0);   /* X_FIRMWARE_CTRL */
	assert_int_equal(rd(f + 109, 2), 0);   /* IAPC_BOOT_ARCH */
	assert_int_equal(rd(f + 46, 2), 0);    /* SCI_INT */
	assert_int_equal(rd(f + 56, 4), 0);    /* PM1a_EVT_BLK */
	assert_int_equal(rd(f + 148, 8), 0);   /* X_PM1a_EVT_BLK */
	assert_memory_equal(f + 116, gas, 12); /* RESET_REG */
	assert_int_equal(f[128], 0xab);
	assert_memory_equal(f + 244, gas, 12); /* SLEEP_CONTROL_REG */
	assert_memory_equal(f + 256, gas, 12); /* SLEEP_STATUS_REG */
	assert_memory_equal(f + 268, "CHVHV\0\0\0", 8);
	assert_int_equal(rd(f + 140, 8), BASE + r.dsdt);
	assert_int_equal(rd(f + 40, 4), BASE + r.dsdt);
}

/* ---- MADT ---- */

/* Walks the MADT and checks it against the description. */
static void check_madt(const struct acpi_platform *p, const uint8_t *m)
{
	uint32_t len = sdt_len(m);
	size_t off = 44;
	uint32_t cpu = 0;
	bool ioapic = false, iso = false;

	assert_int_equal(rd(m + 36, 4), p->lapic_addr);
	assert_int_equal(rd(m + 40, 4), 0);
	while (off < len) {
		const uint8_t *e = m + off;
		uint32_t want_flags = cpu < p->boot_cpus ? 1 : 2;

		assert_true(off + 2 <= len);
		assert_true(e[1] >= 2 && off + e[1] <= len);
		switch (e[0]) {
		case 0:
			assert_int_equal(e[1], 8);
			assert_true(cpu < p->max_cpus);
			assert_true(p->apic_id[cpu] < 255);
			assert_int_equal(e[2], cpu);
			assert_int_equal(e[3], p->apic_id[cpu]);
			assert_int_equal(rd(e + 4, 4), want_flags);
			cpu++;
			break;
		case 9:
			assert_int_equal(e[1], 16);
			assert_true(cpu < p->max_cpus);
			assert_true(p->apic_id[cpu] >= 255);
			assert_int_equal(rd(e + 2, 2), 0);
			assert_int_equal(rd(e + 4, 4), p->apic_id[cpu]);
			assert_int_equal(rd(e + 8, 4), want_flags);
			assert_int_equal(rd(e + 12, 4), cpu);
			cpu++;
			break;
		case 1:
			assert_false(ioapic);
			ioapic = true;
			assert_int_equal(e[1], 12);
			assert_int_equal(e[2], p->ioapic_id);
			assert_int_equal(e[3], 0);
			assert_int_equal(rd(e + 4, 4), p->ioapic_addr);
			assert_int_equal(rd(e + 8, 4), p->ioapic_gsi_base);
			break;
		case 2:
			assert_false(iso);
			iso = true;
			assert_int_equal(e[1], 10);
			assert_int_equal(e[2], 0); /* ISA */
			assert_int_equal(e[3], 0); /* IRQ0 */
			assert_int_equal(rd(e + 4, 4), 2);
			/* edge-triggered (bits 2-3 = 01), active high (bits 0-1 = 01) */
			assert_int_equal(rd(e + 8, 2), 0x5);
			break;
		default:
			fail_msg("unexpected MADT entry type %u", e[0]);
		}
		off += e[1];
	}
	assert_int_equal(off, len);
	assert_int_equal(cpu, p->max_cpus);
	assert_true(ioapic);
	assert_true(iso);
}

static void test_madt_one_cpu(void **state)
{
	struct acpi_platform p;
	struct parsed r;

	(void)state;
	platform_init(&p, 1, 1);
	build_ok(&p, &r);
	assert_int_equal(sdt_len(tables + r.madt), 44 + 8 + 12 + 10);
	check_madt(&p, tables + r.madt);
}

static void test_madt_four_cpus(void **state)
{
	struct acpi_platform p;
	struct parsed r;

	(void)state;
	platform_init(&p, 4, 4);
	p.ioapic_id = 4;
	p.ioapic_gsi_base = 0;
	p.lapic_addr = 0xfee01000;
	p.ioapic_addr = 0xfec01000;
	/* Topology-shaped ids (2 threads per core, 2 cores per package). */
	p.apic_id[0] = 0;
	p.apic_id[1] = 1;
	p.apic_id[2] = 4;
	p.apic_id[3] = 5;
	build_ok(&p, &r);
	check_madt(&p, tables + r.madt);
	p.boot_cpus = 2;
	build_ok(&p, &r);
	check_madt(&p, tables + r.madt);
}

static void test_madt_max_cpus(void **state)
{
	struct acpi_platform p;
	struct parsed r;

	(void)state;
	/* ids 0..255: the last one needs an x2APIC entry. */
	platform_init(&p, 3, ACPI_MAX_CPUS);
	platform_ecam(&p);
	build_ok(&p, &r);
	assert_int_equal(sdt_len(tables + r.madt), 44 + 255 * 8 + 16 + 12 + 10);
	check_madt(&p, tables + r.madt);
}

static void test_madt_x2apic_ids(void **state)
{
	struct acpi_platform p;
	struct parsed r;
	const uint8_t *m;

	(void)state;
	platform_init(&p, 2, 4);
	p.apic_id[0] = 0;
	p.apic_id[1] = 254; /* still xAPIC */
	p.apic_id[2] = 255; /* the xAPIC broadcast id: x2APIC entry */
	p.apic_id[3] = 0x10000;
	build_ok(&p, &r);
	m = tables + r.madt;
	check_madt(&p, m);
	assert_int_equal(m[44], 0);
	assert_int_equal(m[52], 0);
	assert_int_equal(m[60], 9);
	assert_int_equal(m[76], 9);
	assert_int_equal(rd(m + 76 + 8, 4), 2); /* online capable, not enabled */
}

/* ---- DSDT contents (semantics are checked by acpiexec below) ---- */

static int count(const uint8_t *hay, size_t n, const void *needle, size_t len)
{
	int c = 0;

	for (size_t i = 0; i + len <= n; i++)
		if (!memcmp(hay + i, needle, len))
			c++;
	return c;
}

static void test_dsdt_contents(void **state)
{
	/* Name(\_S5_, Package(4){5, 0, 0, 0}) */
	static const uint8_t s5[] = {0x08, '\\', '_',  'S',  '5',  '_',	 0x12,
				     0x07, 0x04, 0x0a, 0x05, 0x00, 0x00, 0x00};
	/* IO(Decode16, 0x2f8, 0x2f8, 0, 8), IRQNoFlags(){3}, EndTag */
	static const uint8_t com[] = {0x47, 0x01, 0xf8, 0x02, 0xf8, 0x02, 0x00,
				      0x08, 0x22, 0x08, 0x00, 0x79, 0x00};
	/* Interrupt(ResourceConsumer, Edge, ActiveHigh, Exclusive){20} */
	static const uint8_t gsi[] = {0x89, 0x06, 0x00, 0x03, 0x01, 0x14, 0x00, 0x00, 0x00};
	/* Memory32Fixed(ReadWrite, 0xe8100000, 0x00300000) */
	static const uint8_t mbrd[] = {0x86, 0x09, 0x00, 0x01, 0x00, 0x00,
				       0x10, 0xe8, 0x00, 0x00, 0x30, 0x00};
	static const uint8_t sta_on[] = {'_', 'S', 'T', 'A', 0x00, 0xa4, 0x0a, 0x0f};
	static const uint8_t sta_off[] = {'_', 'S', 'T', 'A', 0x00, 0xa4, 0x00};
	struct acpi_platform p;
	struct parsed r;
	const uint8_t *d;
	size_t n;

	(void)state;
	platform_init(&p, 3, 7);
	p.com1.port = 0x2f8;
	p.com1.irq = 3;
	p.ecam_base = 0xe8000000;
	p.ecam_bus_start = 1;
	p.ecam_bus_end = 3;
	build_ok(&p, &r);
	d = tables + r.dsdt;
	n = sdt_len(d);
	assert_int_equal(count(d, n, s5, sizeof(s5)), 1);
	assert_int_equal(count(d, n, "COM1", 4), 1);
	assert_int_equal(count(d, n, com, sizeof(com)), 1);
	assert_int_equal(count(d, n, "PWRB", 4), 1);
	assert_int_equal(count(d, n, "\x0c\x41\xd0\x0c\x0c", 5), 1); /* EISAID PNP0C0C */
	assert_int_equal(count(d, n, "\x0c\x41\xd0\x05\x01", 5), 1); /* EISAID PNP0501 */
	assert_int_equal(count(d, n, "\x0c\x41\xd0\x0c\x02", 5), 1); /* EISAID PNP0C02 */
	assert_int_equal(count(d, n, "ACPI0007", 8), 7);
	assert_int_equal(count(d, n, "CP0", 3), 7);
	assert_int_equal(count(d, n, "CP06", 4), 1);
	assert_int_equal(count(d, n, sta_on, sizeof(sta_on)), 3);
	assert_int_equal(count(d, n, sta_off, sizeof(sta_off)), 4);
	assert_int_equal(count(d, n, mbrd, sizeof(mbrd)), 1);

	/* No serial port, no ECAM: neither device. A GSI above 15 for COM1
	 * needs an Extended Interrupt descriptor. */
	p.com1.port = 0;
	p.ecam_base = 0;
	build_ok(&p, &r);
	d = tables + r.dsdt;
	n = sdt_len(d);
	assert_int_equal(count(d, n, "COM1", 4), 0);
	assert_int_equal(count(d, n, "MBRD", 4), 0);
	p.com1.port = 0x3f8;
	p.com1.irq = 20;
	build_ok(&p, &r);
	d = tables + r.dsdt;
	assert_int_equal(count(d, sdt_len(d), gsi, sizeof(gsi)), 1);
}

static void test_dsdt_ecam_above_4g(void **state)
{
	/* QWordMemory(ResourceConsumer, PosDecode, MinFixed, MaxFixed, NonCacheable,
	 * ReadWrite, 0, 0x10_0000_0000, 0x10_0FFF_FFFF, 0, 0x1000_0000) */
	static const uint8_t q[] = {0x8a, 0x2b, 0x00, 0x00, 0x0d, 0x01};
	struct acpi_platform p;
	struct parsed r;
	const uint8_t *d;
	const uint8_t *hit;

	(void)state;
	platform_init(&p, 1, 1);
	p.ecam_base = 0x1000000000ull;
	p.ecam_bus_end = 255;
	build_ok(&p, &r);
	assert_int_equal(rd(tables + r.mcfg + 44, 8), 0x1000000000ull);
	d = tables + r.dsdt;
	hit = memmem(d, sdt_len(d), q, sizeof(q));
	assert_non_null(hit);
	assert_int_equal(rd(hit + 6, 8), 0);
	assert_int_equal(rd(hit + 14, 8), 0x1000000000ull);
	assert_int_equal(rd(hit + 22, 8), 0x100fffffffull);
	assert_int_equal(rd(hit + 30, 8), 0);
	assert_int_equal(rd(hit + 38, 8), 0x10000000ull);
}

/* ---- invalid descriptions ---- */

static void expect_einval(const struct acpi_platform *p, uint64_t base)
{
	struct acpi_tables out = {.rsdp_gpa = 0x1234, .size = 0x5678};

	assert_int_equal(acpi_build(p, tables, sizeof(tables), base, &out), -EINVAL);
	assert_int_equal(out.rsdp_gpa, 0x1234);
	assert_int_equal(out.size, 0x5678);
}

static void test_invalid(void **state)
{
	struct acpi_platform good, p;
	struct acpi_tables out;

	(void)state;
	platform_init(&good, 2, 4);
	platform_pci(&good);
	assert_int_equal(acpi_build(&good, tables, sizeof(tables), BASE, &out), 0);

	assert_int_equal(acpi_build(NULL, tables, sizeof(tables), BASE, &out), -EINVAL);
	assert_int_equal(acpi_build(&good, NULL, sizeof(tables), BASE, &out), -EINVAL);
	assert_int_equal(acpi_build(&good, tables, sizeof(tables), BASE, NULL), -EINVAL);
	expect_einval(&good, 0);
	expect_einval(&good, BASE + 8);
	expect_einval(&good, UINT64_MAX - 15); /* the tables would wrap */

#define BAD(stmt)                                                                                  \
	do {                                                                                       \
		p = good;                                                                          \
		stmt;                                                                              \
		expect_einval(&p, BASE);                                                           \
	} while (0)
	BAD(p.boot_cpus = 0);
	BAD(p.boot_cpus = 5);
	BAD(p.max_cpus = 0);
	BAD(p.max_cpus = 1);		     /* < boot_cpus */
	BAD(p.max_cpus = ACPI_MAX_CPUS + 1); /* and boot_cpus <= it */
	BAD((p.max_cpus = UINT32_MAX, p.boot_cpus = 1));
	BAD(p.apic_id[3] = 1);		/* duplicate */
	BAD(p.apic_id[0] = UINT32_MAX); /* x2APIC broadcast */
	BAD(p.lapic_addr = 0);
	BAD(p.lapic_addr = 0x100000000ull);
	BAD(p.ioapic_addr = 0);
	BAD(p.ioapic_addr = 0x1fec00000ull);
	BAD(p.pm_port = 0);
	BAD(p.s5_slp_typ = 8);
	BAD(p.com1.port = 0xfff9);     /* 8 ports would pass 0xffff */
	BAD(p.ecam_base = 0xe8080000); /* not 1 MiB aligned */
	BAD((p.ecam_bus_start = 2, p.ecam_bus_end = 1));
	BAD(p.ecam_base = 0xfffffffff0000000ull + 0x100000); /* window wraps */
	BAD(p.ecam_base = 0);				     /* a root bridge needs ECAM */
	BAD(p.pci.mem32_size = 0);
	BAD(p.pci.mem32_base = 0x100000000ull);
	BAD((p.pci.mem32_base = 0xf0000000, p.pci.mem32_size = 0x10000001));
	BAD((p.pci.mem64_base = UINT64_MAX - 0xfff, p.pci.mem64_size = 0x2000));
	BAD(p.pci.intx_gsi_count = 0);
	BAD(p.pci.intx_gsi_count = 33);
	BAD((p.pci.intx_gsi_base = UINT32_MAX - 2, p.pci.intx_gsi_count = 8));
	/* Edges that are fine. */
	p = good;
	p.pci.mem32_base = 0xf0000000;
	p.pci.mem32_size = 0x10000000; /* ends at 4 GiB exactly */
	p.pci.mem64_base = UINT64_MAX - 0xfff;
	p.pci.mem64_size = 0x1000;
	assert_int_equal(acpi_build(&p, tables, sizeof(tables), BASE, &out), 0);
	p.pci.present = false;
	p.pci.mem32_size = 0; /* ignored without the root bridge */
	assert_int_equal(acpi_build(&p, tables, sizeof(tables), BASE, &out), 0);
#undef BAD

	/* Values at the edge of each range are fine. */
	p = good;
	p.com1.port = 0xfff8;
	p.s5_slp_typ = 7;
	p.boot_cpus = p.max_cpus;
	p.ecam_base = 0xfffffffff0000000ull;
	p.ecam_bus_start = p.ecam_bus_end = 255;
	assert_int_equal(acpi_build(&p, tables, sizeof(tables), BASE, &out), 0);
	/* An ECAM description is ignored when there is no ECAM. */
	p = good;
	p.pci.present = false;
	p.ecam_base = 0;
	p.ecam_bus_start = 9;
	p.ecam_bus_end = 1;
	assert_int_equal(acpi_build(&p, tables, sizeof(tables), BASE, &out), 0);
}

/* ---- too small buffers ---- */

static void check_every_short_size(const struct acpi_platform *p)
{
	struct acpi_tables out;
	size_t need;
	uint8_t *ref;

	assert_int_equal(acpi_build(p, tables, sizeof(tables), BASE, &out), 0);
	need = out.size;
	ref = malloc(need);
	assert_non_null(ref);
	memcpy(ref, tables, need);
	for (size_t cap = 0; cap <= need; cap++) {
		/* Exactly cap bytes on the heap, so ASan sees any overflow. */
		uint8_t *b = malloc(cap ? cap : 1);
		struct acpi_tables o = {0};
		int ret;

		assert_non_null(b);
		ret = acpi_build(p, b, cap, BASE, &o);
		if (cap < need) {
			if (ret != -ENOSPC)
				fail_msg("cap %zu of %zu: got %d, not -ENOSPC", cap, need, ret);
		} else {
			assert_int_equal(ret, 0);
			assert_int_equal(o.size, need);
			assert_memory_equal(b, ref, need);
		}
		free(b);
	}
	free(ref);
}

static void test_enospc_small(void **state)
{
	struct acpi_platform p;

	(void)state;
	platform_init(&p, 1, 1);
	check_every_short_size(&p);
}

static void test_enospc_large(void **state)
{
	struct acpi_platform p;

	(void)state;
	platform_init(&p, 5, ACPI_MAX_CPUS);
	platform_ecam(&p);
	p.apic_id[7] = 0x12345;
	check_every_short_size(&p);
}

/* ---- AML writer ---- */

/* Decodes a PkgLength; returns the bytes it takes. */
static unsigned pkglen_decode(const uint8_t *b, size_t *total)
{
	unsigned n = (b[0] >> 6) + 1;

	if (n == 1) {
		*total = b[0] & 0x3f;
		return 1;
	}
	assert_int_equal(b[0] & 0x30, 0);
	*total = b[0] & 0x0f;
	for (unsigned i = 1; i < n; i++)
		*total |= (size_t)b[i] << (4 + 8 * (i - 1));
	return n;
}

static void test_pkglen_encode(void **state)
{
	static const struct {
		size_t body;
		int n;
	} cases[] = {
	    {0, 1},	  {62, 1},	  {63, 2},	  /* total 63 fits 6 bits, 64 does not */
	    {64, 2},	  {4093, 2},	  {4094, 3},	  /* total 4095 fits 12 bits, 4096 not */
	    {4095, 3},	  {4096, 3},	  {0xffffc, 3},	  /* total 0xfffff */
	    {0xffffd, 4}, {0x1000000, 4}, {0xffffffb, 4}, /* total 0xfffffff */
	};
	static const size_t class_max[] = {0, 0x3f, 0xfff, 0xfffff};
	uint8_t b[4];
	size_t total;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = aml_pkglen_encode(cases[i].body, b);

		assert_int_equal(n, cases[i].n);
		assert_int_equal(pkglen_decode(b, &total), (unsigned)n);
		assert_int_equal(total, cases[i].body + (size_t)n);
	}
	assert_int_equal(aml_pkglen_encode(0xffffffc, b), -E2BIG);
	assert_int_equal(aml_pkglen_encode(SIZE_MAX, b), -E2BIG);
	/* Every size past the 3-byte class round-trips with the fewest bytes. */
	for (size_t body = 0; body < 0x101000; body++) {
		int n = aml_pkglen_encode(body, b);

		assert_true(n >= 1 && n <= 4);
		pkglen_decode(b, &total);
		assert_int_equal(total, body + (size_t)n);
		/* one byte fewer would not have held the total */
		if (n > 1)
			assert_true(body + (size_t)n - 1 > class_max[n - 1]);
	}
}

/* Buffers of n bytes inside a scope: both PkgLengths, the BufferSize and
 * the payload must come out right, including across size-class edges. */
static void test_aml_nested_lengths(void **state)
{
	static const size_t sizes[] = {0,      1,	50,	  54,	   55,	 56,   57,
				       60,     61,	62,	  63,	   64,	 4080, 4085,
				       4086,   4087,	4088,	  4089,	   4095, 4096, 70000,
				       0xffff, 0x10000, 0x100000, 0x200000};
	const size_t cap = 0x200100;
	uint8_t *buf = malloc(cap);
	uint8_t *data = malloc(0x200000);

	(void)state;
	assert_non_null(buf);
	assert_non_null(data);
	for (size_t i = 0; i < 0x200000; i++)
		data[i] = (uint8_t)(i * 7);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t n = sizes[s], total, off = 0;
		struct aml a;
		unsigned k;

		aml_init(&a, buf, cap);
		aml_scope_begin(&a, "\\_SB");
		aml_name_decl(&a, "BUF0");
		aml_buffer_begin(&a);
		aml_bytes(&a, data, n);
		aml_end(&a);
		aml_end(&a);
		assert_int_equal(aml_finish(&a), 0);

		assert_int_equal(buf[off++], 0x10);
		k = pkglen_decode(buf + off, &total);
		assert_int_equal(1 + total, a.len);
		off += k;
		assert_memory_equal(buf + off, "\\_SB_", 5);
		off += 5;
		assert_int_equal(buf[off++], 0x08);
		assert_memory_equal(buf + off, "BUF0", 4);
		off += 4;
		assert_int_equal(buf[off++], 0x11);
		k = pkglen_decode(buf + off, &total);
		assert_int_equal(off + total, a.len);
		off += k;
		/* BufferSize: the shortest integer */
		if (n == 0) {
			assert_int_equal(buf[off++], 0x00);
		} else if (n == 1) {
			assert_int_equal(buf[off++], 0x01);
		} else if (n <= 0xff) {
			assert_int_equal(buf[off++], 0x0a);
			assert_int_equal(buf[off++], n);
		} else if (n <= 0xffff) {
			assert_int_equal(buf[off++], 0x0b);
			assert_int_equal(rd(buf + off, 2), n);
			off += 2;
		} else {
			assert_int_equal(buf[off++], 0x0c);
			assert_int_equal(rd(buf + off, 4), n);
			off += 4;
		}
		assert_int_equal(off + n, a.len);
		assert_memory_equal(buf + off, data, n);
	}
	free(data);
	free(buf);
}

static void expect_aml(struct aml *a, const uint8_t *want, size_t n)
{
	assert_int_equal(aml_finish(a), 0);
	assert_int_equal(a->len, n);
	assert_memory_equal(a->buf, want, n);
}

static void test_aml_integers(void **state)
{
	static const uint8_t want[] = {0x00, 0x01, 0xff, 0x0a, 0x02, 0x0a, 0xff, 0x0b, 0x00, 0x01,
				       0x0b, 0xff, 0xff, 0x0c, 0x00, 0x00, 0x01, 0x00, 0x0c, 0xff,
				       0xff, 0xff, 0xff, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
				       0x00, 0x00, 0x0e, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
				       0xff, 0x0d, 'h',	 'i',  ' ',  '!',  0x00, 0x0d, 0x00};
	uint8_t buf[64];
	struct aml a;

	(void)state;
	aml_init(&a, buf, sizeof(buf));
	aml_int(&a, 0);
	aml_int(&a, 1);
	aml_int(&a, UINT64_MAX);
	aml_int(&a, 2);
	aml_int(&a, 0xff);
	aml_int(&a, 0x100);
	aml_int(&a, 0xffff);
	aml_int(&a, 0x10000);
	aml_int(&a, 0xffffffff);
	aml_int(&a, 0x100000000ull);
	aml_int(&a, UINT64_MAX - 1);
	aml_string(&a, "hi !");
	aml_string(&a, "");
	expect_aml(&a, want, sizeof(want));

	aml_init(&a, buf, sizeof(buf));
	aml_string(&a, "tab\t");
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_init(&a, buf, sizeof(buf));
	aml_string(&a, "\x80");
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_init(&a, buf, sizeof(buf));
	aml_string(&a, NULL);
	assert_int_equal(aml_finish(&a), -EINVAL);
}

static void test_aml_names(void **state)
{
	static const uint8_t want[] = {
	    0x08, 'A',	'_',  '_',  '_',  0x00,					/* Name(A, 0) */
	    0x08, 0x5c, '_',  'S',  'B',  '_',	0x01,				/* \_SB */
	    0x08, 0x5c, 0x2e, '_',  'S',  'B',	'_',  'P', 'C', 'I', '0', 0x01, /* \_SB.PCI0 */
	    0x08, 0x2f, 0x03, 'A',  '_',  '_',	'_',  'B', '1', '_', '_', 'C',
	    '_',  '2',	'_',  0x01, 0x08, 0x5e, 0x5e, 'F', 'O', 'O', '_', 0x01, /* ^^FOO */
	    0x08, 0x5c, 0x2e, 'A',  '_',  '_',	'_',  'B', '_', '_', '_', 0x01, /* \A.B */
	};
	static const char *const bad[] = {"",	"a",	 "1ABC", "ABCDE", "A..B", "A.",	    ".A",
					  "\\", "\\\\A", "^",	 "^\\A",  "AB-C", "A.B.C.", "\\^A"};
	uint8_t buf[128];
	struct aml a;

	(void)state;
	aml_init(&a, buf, sizeof(buf));
	aml_name_decl(&a, "A");
	aml_int(&a, 0);
	aml_name_decl(&a, "\\_SB");
	aml_int(&a, 1);
	aml_name_decl(&a, "\\_SB.PCI0");
	aml_int(&a, 1);
	aml_name_decl(&a, "A.B1.C_2");
	aml_int(&a, 1);
	aml_name_decl(&a, "^^FOO");
	aml_int(&a, 1);
	aml_name_decl(&a, "\\A.B");
	aml_int(&a, 1);
	expect_aml(&a, want, sizeof(want));

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		aml_init(&a, buf, sizeof(buf));
		aml_name_decl(&a, bad[i]);
		if (aml_finish(&a) != -EINVAL)
			fail_msg("name \"%s\" was accepted", bad[i]);
	}
	aml_init(&a, buf, sizeof(buf));
	aml_name_ref(&a, NULL);
	assert_int_equal(aml_finish(&a), -EINVAL);
}

static void test_aml_eisaid(void **state)
{
	static const uint8_t want[] = {0x0c, 0x41, 0xd0, 0x05, 0x01, 0x0c, 0x41, 0xd0, 0x0c, 0x0c,
				       0x0c, 0x41, 0xd0, 0x0a, 0x08, 0x0c, 0x04, 0x5a, 0xff, 0xfe};
	static const char *const bad[] = {"PNP050",  "PNP05011", "pnp0501", "PNP050g",
					  "1NP0501", "PN@0501",	 "",	    NULL};
	uint8_t buf[32];
	struct aml a;

	(void)state;
	aml_init(&a, buf, sizeof(buf));
	aml_eisaid(&a, "PNP0501");
	aml_eisaid(&a, "PNP0C0C");
	aml_eisaid(&a, "PNP0A08");
	aml_eisaid(&a, "ABZFFFE");
	expect_aml(&a, want, sizeof(want));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		aml_init(&a, buf, sizeof(buf));
		aml_eisaid(&a, bad[i]);
		assert_int_equal(aml_finish(&a), -EINVAL);
	}
}

static void test_aml_packages_and_methods(void **state)
{
	static const uint8_t want[] = {
	    0x08, 'P',	'K',  'G',  '_',  0x12, 0x12, 0x04,	  /* Package(4) */
	    0x0a, 0x07, 0x0d, 'x',  0x00,			  /* 7, "x" */
	    0x12, 0x04, 0x02, 0x00, 0x01,			  /* Package(2){0, 1} */
	    0x11, 0x05, 0x0a, 0x02, 0xaa, 0xbb,			  /* Buffer(2){0xaa, 0xbb} */
	    0x5b, 0x82, 0x1b, 'D',  'E',  'V',	'0',		  /* Device(DEV0) */
	    0x14, 0x0c, 'M',  'T',  'H',  '_',	0x0b,		  /* Method(MTH, 3, Serialized) */
	    0xa4, 0x0c, 0x78, 0x56, 0x34, 0x12,			  /* Return(0x12345678) */
	    0x14, 0x08, '_',  'S',  'T',  'A',	0x00, 0xa4, 0x00, /* Return(Zero) */
	};
	uint8_t buf[128];
	struct aml a;

	(void)state;
	aml_init(&a, buf, sizeof(buf));
	aml_name_decl(&a, "PKG");
	aml_package_begin(&a);
	aml_int(&a, 7);
	aml_string(&a, "x");
	aml_package_begin(&a);
	aml_int(&a, 0);
	aml_int(&a, 1);
	aml_end(&a);
	aml_buffer_begin(&a);
	aml_bytes(&a, "\xaa\xbb", 2);
	aml_end(&a);
	aml_end(&a);
	aml_device_begin(&a, "DEV0");
	aml_method_begin(&a, "MTH", 3, true);
	aml_return(&a);
	aml_int(&a, 0x12345678);
	aml_end(&a);
	aml_method_return_int(&a, "_STA", 0);
	aml_end(&a);
	expect_aml(&a, want, sizeof(want));

	aml_init(&a, buf, sizeof(buf));
	aml_method_begin(&a, "M", 8, false);
	assert_int_equal(aml_finish(&a), -EINVAL);
}

static void test_aml_package_limits(void **state)
{
	uint8_t buf[1024];
	struct aml a;

	(void)state;
	aml_init(&a, buf, sizeof(buf));
	aml_package_begin(&a);
	for (int i = 0; i < 255; i++)
		aml_int(&a, 0);
	aml_end(&a);
	assert_int_equal(aml_finish(&a), 0);
	assert_int_equal(buf[0], 0x12);
	assert_int_equal(buf[3], 255);

	aml_init(&a, buf, sizeof(buf));
	aml_package_begin(&a);
	for (int i = 0; i < 256; i++)
		aml_int(&a, 0);
	aml_end(&a);
	assert_int_equal(aml_finish(&a), -E2BIG);
}

static void test_aml_structure_errors(void **state)
{
	uint8_t buf[256];
	struct aml a;

	(void)state;
	/* aml_end() with nothing open */
	aml_init(&a, buf, sizeof(buf));
	aml_end(&a);
	assert_int_equal(aml_finish(&a), -EINVAL);
	/* something left open */
	aml_init(&a, buf, sizeof(buf));
	aml_scope_begin(&a, "\\_SB");
	assert_int_equal(aml_finish(&a), -EINVAL);
	/* aml_res_end() on something that is not a resource template */
	aml_init(&a, buf, sizeof(buf));
	aml_buffer_begin(&a);
	aml_res_end(&a);
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_init(&a, buf, sizeof(buf));
	aml_res_end(&a);
	assert_int_equal(aml_finish(&a), -EINVAL);
	/* nesting deeper than AML_MAX_DEPTH */
	aml_init(&a, buf, sizeof(buf));
	for (int i = 0; i <= AML_MAX_DEPTH; i++)
		aml_scope_begin(&a, "S");
	assert_int_equal(aml_finish(&a), -E2BIG);
	/* The first error sticks. */
	aml_init(&a, buf, sizeof(buf));
	aml_name_decl(&a, "bad");
	aml_int(&a, 1);
	aml_bytes(&a, buf, sizeof(buf) + 1);
	assert_int_equal(aml_finish(&a), -EINVAL);
	assert_int_equal(a.len, 1); /* only the NameOp */
}

/* A small DSDT-like program; every capacity short of its size must fail
 * with -ENOSPC and write nothing past the end. */
static size_t build_sample(uint8_t *buf, size_t cap, int *ret)
{
	struct aml a;

	aml_init(&a, buf, cap);
	aml_name_decl(&a, "\\_S5_");
	aml_package_begin(&a);
	aml_int(&a, 5);
	aml_int(&a, 0);
	aml_end(&a);
	aml_scope_begin(&a, "\\_SB");
	aml_device_begin(&a, "COM1");
	aml_name_decl(&a, "_HID");
	aml_eisaid(&a, "PNP0501");
	aml_name_decl(&a, "_CRS");
	aml_res_begin(&a);
	aml_res_io(&a, true, 0x3f8, 0x3f8, 0, 8);
	aml_res_irq_noflags(&a, 4);
	aml_res_end(&a);
	aml_method_return_int(&a, "_STA", 0xf);
	aml_end(&a);
	aml_end(&a);
	*ret = aml_finish(&a);
	return a.len;
}

static void test_aml_enospc(void **state)
{
	uint8_t ref[256];
	size_t need;
	int ret;

	(void)state;
	need = build_sample(ref, sizeof(ref), &ret);
	assert_int_equal(ret, 0);
	for (size_t cap = 0; cap <= need; cap++) {
		uint8_t *b = malloc(cap ? cap : 1);

		assert_non_null(b);
		build_sample(b, cap, &ret);
		if (cap < need) {
			assert_int_equal(ret, -ENOSPC);
		} else {
			assert_int_equal(ret, 0);
			assert_memory_equal(b, ref, need);
		}
		free(b);
	}
}

static void test_aml_resources(void **state)
{
	static const uint8_t body[] = {
	    /* IO(Decode10, 0x60, 0x64, 1, 5) */
	    0x47, 0x00, 0x60, 0x00, 0x64, 0x00, 0x01, 0x05,
	    /* IRQNoFlags(){15} */
	    0x22, 0x00, 0x80,
	    /* Interrupt(ResourceConsumer, Level, ActiveLow, Shared){0x12345678} */
	    0x89, 0x06, 0x00, 0x0d, 0x01, 0x78, 0x56, 0x34, 0x12,
	    /* Memory32Fixed(ReadOnly, 0xfed00000, 0x400) */
	    0x86, 0x09, 0x00, 0x00, 0x00, 0x00, 0xd0, 0xfe, 0x00, 0x04, 0x00, 0x00,
	    /* WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode,
	     * 0, 0, 0xff, 0, 0x100) */
	    0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00,
	    0x00, 0x01,
	    /* WordIO(..., EntireRange, 0, 0x1000, 0xffff, 0, 0xf000) */
	    0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x10, 0xff, 0xff, 0x00, 0x00,
	    0x00, 0xf0,
	    /* DWordIO(..., EntireRange, 0, 0xd00, 0xffff, 0, 0xf300) */
	    0x87, 0x17, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x00,
	    0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf3, 0x00, 0x00,
	    /* DWordMemory(ResourceProducer, ..., Cacheable, ReadWrite, 0, 0xc0000000,
	     * 0xe7ffffff, 0, 0x28000000) */
	    0x87, 0x17, 0x00, 0x00, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0,
	    0xff, 0xff, 0xff, 0xe7, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x28,
	    /* QWordMemory(ResourceConsumer, ..., NonCacheable, ReadOnly, 0,
	     * 0x100000000, 0x1ffffffff, 0, 0x100000000) */
	    0x8a, 0x2b, 0x00, 0x00, 0x0d, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, /* granularity */
	    0, 0, 0, 0, 1, 0, 0, 0,					/* min */
	    0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0,				/* max */
	    0, 0, 0, 0, 0, 0, 0, 0,					/* translation */
	    0, 0, 0, 0, 1, 0, 0, 0,					/* length */
	    /* EndTag */
	    0x79, 0x00};
	uint8_t buf[512];
	struct aml a;
	size_t total;
	unsigned k;

	(void)state;
	aml_init(&a, buf, sizeof(buf));
	aml_res_begin(&a);
	aml_res_io(&a, false, 0x60, 0x64, 1, 5);
	aml_res_irq_noflags(&a, 15);
	aml_res_interrupt(&a, false, true, true, 0x12345678);
	aml_res_mem32_fixed(&a, false, 0xfed00000, 0x400);
	aml_res_word_bus(&a, 0, 0xff);
	aml_res_word_io(&a, 0x1000, 0xffff);
	aml_res_dword_io(&a, 0xd00, 0xffff);
	aml_res_dword_mem(&a, true, true, true, 0xc0000000, 0xe7ffffff);
	aml_res_qword_mem(&a, false, false, false, 0x100000000ull, 0x1ffffffffull);
	aml_res_end(&a);
	assert_int_equal(aml_finish(&a), 0);
	assert_int_equal(buf[0], 0x11);
	k = pkglen_decode(buf + 1, &total);
	assert_int_equal(1 + total, a.len);
	assert_int_equal(buf[1 + k], 0x0a); /* ByteConst size */
	assert_int_equal(buf[2 + k], sizeof(body));
	assert_int_equal(a.len, 3 + k + sizeof(body));
	assert_memory_equal(buf + 3 + k, body, sizeof(body));

#define BAD_RES(call)                                                                              \
	do {                                                                                       \
		aml_init(&a, buf, sizeof(buf));                                                    \
		aml_res_begin(&a);                                                                 \
		call;                                                                              \
		aml_res_end(&a);                                                                   \
		assert_int_equal(aml_finish(&a), -EINVAL);                                         \
	} while (0)
	BAD_RES(aml_res_io(&a, true, 0x100, 0xff, 0, 1));
	BAD_RES(aml_res_irq_noflags(&a, 16));
	BAD_RES(aml_res_mem32_fixed(&a, true, 0xfffff000, 0x2000));
	BAD_RES(aml_res_word_bus(&a, 2, 1));
	BAD_RES(aml_res_word_io(&a, 0, 0xffff));      /* length 0x10000 does not fit */
	BAD_RES(aml_res_dword_io(&a, 0, UINT32_MAX)); /* nor does 2^32 */
	BAD_RES(aml_res_dword_mem(&a, true, false, true, 5, 4));
	BAD_RES(aml_res_qword_mem(&a, true, false, true, 0, UINT64_MAX));
#undef BAD_RES
	/* The largest ranges that fit. */
	aml_init(&a, buf, sizeof(buf));
	aml_res_begin(&a);
	aml_res_mem32_fixed(&a, true, 0xfffff000, 0x1000);
	aml_res_word_io(&a, 1, 0xffff);
	aml_res_qword_mem(&a, true, false, true, 1, UINT64_MAX);
	aml_res_end(&a);
	assert_int_equal(aml_finish(&a), 0);
}

/* ---- acpica-tools: iasl and acpiexec ---- */

static bool have_tool(const char *name)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *s;
	long n;

	if (!f)
		fail_msg("cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	s = malloc((size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return s;
}

static void write_blob(const char *dir, const char *name, const void *p, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* What acpica prints about bad checksums, bad AML or bad fields. Lines
 * containing `allowed` (when not NULL) are not looked at. */
static void assert_clean_but(const char *dir, const char *file, const char *allowed)
{
	static const char *const bad[] = {"rror", "arning", "ncorrect", "nvalid", "AE_"};
	char path[512];
	char *s;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	s = slurp(path, NULL);
	for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
		if (allowed && strstr(line, allowed))
			continue;
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			if (strstr(line, bad[i])) {
				print_error("%s: %s\n", path, line);
				free(s);
				fail_msg("%s mentions \"%s\"", path, bad[i]);
			}
		}
	}
	free(s);
}

static void assert_clean(const char *dir, const char *file)
{
	assert_clean_but(dir, file, NULL);
}

static void assert_contains(const char *dir, const char *file, const char *want)
{
	char path[512];
	char *s;
	bool found;

	if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
		fail_msg("path too long: %s/%s", dir, file);
	s = slurp(path, NULL);
	found = strstr(s, want) != NULL;
	if (!found)
		print_error("%s:\n%s\n", path, s);
	free(s);
	if (!found)
		fail_msg("%s lacks \"%s\"", path, want);
}

/* Disassembles a table, checks the output is clean, compiles the listing
 * back with optimisations off and compares the bytes after the header
 * (iasl puts its own compiler id into the header). */
static void iasl_round_trip(const char *dir, const char *name, const uint8_t *t, bool compare)
{
	char path[512];
	char *re;
	size_t len;

	write_blob(dir, name, t, sdt_len(t));
	assert_int_equal(run("cd %s && iasl -d %s > %s.dis.log 2>&1", dir, name, name), 0);
	snprintf(path, sizeof(path), "%s.dis.log", name);
	assert_clean(dir, path);
	snprintf(path, sizeof(path), "%.4s.dsl", name);
	assert_clean(dir, path);
	if (!compare)
		return;
	assert_int_equal(
	    run("cd %s && iasl -oa -p re-%.4s %.4s.dsl > %s.asl.log 2>&1", dir, name, name, name),
	    0);
	snprintf(path, sizeof(path), "%s.asl.log", name);
	assert_contains(dir, path, "0 Errors, 0 Warnings, 0 Remarks");
	snprintf(path, sizeof(path), "%s/re-%.4s.aml", dir, name);
	re = slurp(path, &len);
	assert_int_equal(len, sdt_len(t));
	assert_memory_equal(re + 36, t + 36, len - 36);
	free(re);
}

/* iasl cannot read a bare RSDP, but its data-table compiler can build one
 * from the field values: the bytes, checksums included, must match. */
static void iasl_rsdp(const char *dir, const uint8_t *r)
{
	char path[512];
	FILE *f;
	char *re;
	size_t len;

	snprintf(path, sizeof(path), "%s/rsdp.asl", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f,
		"[0008] Signature : \"RSD PTR \"\n"
		"[0001] Checksum : 00\n"
		"[0006] Oem ID : \"CHV   \"\n"
		"[0001] Revision : 02\n"
		"[0004] RSDT Address : 00000000\n"
		"[0004] Length : 00000024\n"
		"[0008] XSDT Address : %016llX\n"
		"[0001] Extended Checksum : 00\n"
		"[0003] Reserved : 000000\n",
		(unsigned long long)rd(r + 24, 8));
	assert_int_equal(fclose(f), 0);
	assert_int_equal(run("cd %s && iasl rsdp.asl > rsdp.log 2>&1", dir), 0);
	assert_contains(dir, "rsdp.log", "0 Errors, 0 Warnings, 0 Remarks");
	snprintf(path, sizeof(path), "%s/rsdp.aml", dir);
	re = slurp(path, &len);
	assert_int_equal(len, 36);
	assert_memory_equal(re, r, 36);
	free(re);
}

static void check_with_iasl(const struct acpi_platform *p, bool compare_madt)
{
	char dir[] = "/tmp/chv-acpi-XXXXXX";
	struct parsed r;

	build_ok(p, &r);
	assert_non_null(mkdtemp(dir));
	iasl_rsdp(dir, tables);
	iasl_round_trip(dir, "xsdt.dat", tables + r.xsdt, true);
	iasl_round_trip(dir, "facp.dat", tables + r.fadt, true);
	iasl_round_trip(dir, "dsdt.dat", tables + r.dsdt, true);
	iasl_round_trip(dir, "apic.dat", tables + r.madt, compare_madt);
	if (r.mcfg)
		iasl_round_trip(dir, "mcfg.dat", tables + r.mcfg, true);
	/* Disassembling the DSDT with the other tables present. */
	assert_int_equal(
	    run("cd %s && iasl -p all -e facp.dat apic.dat -d dsdt.dat > all.log 2>&1", dir), 0);
	assert_clean(dir, "all.log");
	assert_int_equal(run("rm -rf %s", dir), 0);
}

static void test_iasl(void **state)
{
	struct acpi_platform p;

	(void)state;
	if (!have_tool("iasl")) {
		print_message("iasl (acpica-tools) is not installed\n");
		skip();
	}
	platform_init(&p, 2, 4);
	platform_ecam(&p);
	check_with_iasl(&p, true);

	platform_init(&p, 2, 4);
	platform_pci(&p);
	check_with_iasl(&p, true);
	p.pci.mem64_size = 0;
	check_with_iasl(&p, true);

	platform_init(&p, 1, 1);
	p.com1.port = 0;
	check_with_iasl(&p, true);

	/* iasl 20200925 does not know the x2APIC online-capable flag and
	 * drops it when compiling back, so the MADT is only disassembled. */
	platform_init(&p, 9, ACPI_MAX_CPUS);
	for (uint32_t i = 0; i < ACPI_MAX_CPUS; i++)
		p.apic_id[i] = i * 2;
	p.ecam_base = 0x4000000000ull;
	p.ecam_bus_end = 7;
	p.com1.irq = 22;
	check_with_iasl(&p, false);
}

static void test_acpiexec(void **state)
{
	char dir[] = "/tmp/chv-acpi-XXXXXX";
	struct acpi_platform p;
	struct parsed r;

	(void)state;
	if (!have_tool("acpiexec")) {
		print_message("acpiexec (acpica-tools) is not installed\n");
		skip();
	}
	platform_init(&p, 2, 3);
	platform_pci(&p);
	build_ok(&p, &r);
	assert_non_null(mkdtemp(dir));
	write_blob(dir, "dsdt.dat", tables + r.dsdt, sdt_len(tables + r.dsdt));
	write_blob(dir, "facp.dat", tables + r.fadt, sdt_len(tables + r.fadt));
	write_blob(dir, "apic.dat", tables + r.madt, sdt_len(tables + r.madt));
	write_blob(dir, "mcfg.dat", tables + r.mcfg, sdt_len(tables + r.mcfg));
	assert_int_equal(run("cd %s && acpiexec -b \"evaluate \\_S5_; evaluate \\_SB.CP00._STA; "
			     "evaluate \\_SB.CP01._UID; evaluate \\_SB.CP02._STA; "
			     "evaluate \\_SB.CP02._HID; evaluate \\_SB.COM1._HID; "
			     "evaluate \\_SB.PWRB._HID; resources \\_SB.COM1; "
			     "resources \\_SB.MBRD; evaluate \\_SB.PCI0._HID; "
			     "evaluate \\_SB.PCI0._CID; evaluate \\_SB.PCI0._SEG; "
			     "evaluate \\_SB.PCI0._PRT; resources \\_SB.PCI0\" dsdt.dat facp.dat "
			     "apic.dat mcfg.dat "
			     "> exec.log 2>&1",
			     dir),
			 0);
	/* "resources" also tries _SRS, which these devices do not have. */
	assert_clean_but(dir, "exec.log", "AcpiSetCurrentResources failed: AE_NOT_FOUND");
	assert_contains(dir, "exec.log", "Evaluation of \\_S5_ returned object");
	assert_contains(dir, "exec.log",
			"[Package] Contains 4 Elements:\n"
			"    [Integer] = 0000000000000005\n"
			"    [Integer] = 0000000000000000\n"
			"    [Integer] = 0000000000000000\n"
			"    [Integer] = 0000000000000000\n");
	assert_contains(dir, "exec.log",
			"Evaluating \\_SB.CP00._STA\n"
			"Evaluation of \\_SB.CP00._STA returned object");
	assert_contains(dir, "exec.log", "  [Integer] = 000000000000000F");
	assert_contains(dir, "exec.log", "  [Integer] = 0000000000000001");
	assert_contains(dir, "exec.log", "  [String] Length 08 = \"ACPI0007\"");
	assert_contains(dir, "exec.log", "  [Integer] = 000000000105D041");
	assert_contains(dir, "exec.log", "  [Integer] = 000000000C0CD041");
	assert_contains(dir, "exec.log", "Address Minimum : 03F8");
	assert_contains(dir, "exec.log", "Interrupt List : 4");
	assert_contains(dir, "exec.log", "Address : E8000000");
	assert_contains(dir, "exec.log", "Address Length : 10000000");
	/* PCI0: PNP0A08 / PNP0A03, and its _CRS windows. */
	assert_contains(dir, "exec.log", "  [Integer] = 00000000080AD041");
	assert_contains(dir, "exec.log", "  [Integer] = 00000000030AD041");
	assert_contains(dir, "exec.log", "Address Minimum : C0000000");
	assert_contains(dir, "exec.log", "Address Maximum : E7FFFFFF");
	assert_contains(dir, "exec.log", "Address Minimum : 0000000140000000");
	assert_contains(dir, "exec.log", "Address Maximum : 00003FFFFFFFFFFF");
	assert_contains(dir, "exec.log", "Address Minimum : 0CF8");
	assert_contains(dir, "exec.log", "Address Minimum : 0D00");
	/* _PRT: 128 entries; slot 0 INTA -> 16, slot 31 INTD -> 16 + (31 + 3) % 8 = 18. */
	assert_contains(dir, "exec.log", "[Package] Contains 128 Elements:");
	assert_contains(dir, "exec.log",
			"[Package] Contains 4 Elements:\n"
			"      [Integer] = 000000000000FFFF\n"
			"      [Integer] = 0000000000000000\n"
			"      [Integer] = 0000000000000000\n"
			"      [Integer] = 0000000000000010\n");
	assert_contains(dir, "exec.log",
			"      [Integer] = 00000000001FFFFF\n"
			"      [Integer] = 0000000000000003\n"
			"      [Integer] = 0000000000000000\n"
			"      [Integer] = 0000000000000012\n");
	assert_int_equal(run("rm -rf %s", dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_checksum),
	    cmocka_unit_test(test_layout_without_mcfg),
	    cmocka_unit_test(test_layout_with_mcfg),
	    cmocka_unit_test(test_other_base),
	    cmocka_unit_test(test_fadt_fields),
	    cmocka_unit_test(test_madt_one_cpu),
	    cmocka_unit_test(test_madt_four_cpus),
	    cmocka_unit_test(test_madt_max_cpus),
	    cmocka_unit_test(test_madt_x2apic_ids),
	    cmocka_unit_test(test_dsdt_contents),
	    cmocka_unit_test(test_dsdt_ecam_above_4g),
	    cmocka_unit_test(test_invalid),
	    cmocka_unit_test(test_enospc_small),
	    cmocka_unit_test(test_enospc_large),
	    cmocka_unit_test(test_pkglen_encode),
	    cmocka_unit_test(test_aml_nested_lengths),
	    cmocka_unit_test(test_aml_integers),
	    cmocka_unit_test(test_aml_names),
	    cmocka_unit_test(test_aml_eisaid),
	    cmocka_unit_test(test_aml_packages_and_methods),
	    cmocka_unit_test(test_aml_package_limits),
	    cmocka_unit_test(test_aml_structure_errors),
	    cmocka_unit_test(test_aml_enospc),
	    cmocka_unit_test(test_aml_resources),
	    cmocka_unit_test(test_iasl),
	    cmocka_unit_test(test_acpiexec),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
