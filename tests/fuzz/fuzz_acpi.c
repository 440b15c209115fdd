/* The ACPI table builders (acpi/) over fuzzed platform descriptions:
 * CPU counts and APIC ids, addresses, ports, the ECAM range and the PCI root
 * windows, the buffer's size (an exactly sized heap buffer, so ASan sees
 * any write past it) and the base address. acpi_build() must refuse what it
 * cannot describe; what it builds must hold together: RSDP checksums, the
 * XSDT's entries and the FADT's DSDT pointer inside the built range, every
 * table's length inside it and its checksum zero. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "acpi/acpi.h"
#include "fz_common.h"

static uint64_t rd(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void fill(struct acpi_platform *p, struct fz *f)
{
	memset(p, 0, sizeof(*p));
	p->boot_cpus = fz_u16(f) % (ACPI_MAX_CPUS + 4);
	p->max_cpus = fz_u16(f) % (ACPI_MAX_CPUS + 4);
	uint8_t ids = fz_u8(f);
	for (uint32_t i = 0; i < ACPI_MAX_CPUS; i++)
		p->apic_id[i] = ids & 1 ? fz_u32(f) : (ids & 2 ? 2 * i : i);
	p->lapic_addr = fz_u8(f) & 1 ? fz_u64(f) : 0xfee00000;
	p->ioapic_addr = fz_u8(f) & 1 ? fz_u64(f) : 0xfec00000;
	p->ioapic_id = fz_u8(f);
	p->ioapic_gsi_base = fz_u32(f);
	p->pm_port = fz_u16(f);
	p->reset_value = fz_u8(f);
	p->s5_slp_typ = fz_u8(f);
	p->com1.port = fz_u16(f);
	p->com1.irq = fz_u8(f);
	p->ecam_base = fz_u8(f) & 1 ? fz_u64(f) : 0xe8000000;
	p->ecam_bus_start = fz_u8(f);
	p->ecam_bus_end = fz_u8(f);
	p->pci.present = fz_u8(f) & 1;
	p->pci.mem32_base = fz_u64(f);
	p->pci.mem32_size = fz_u64(f);
	p->pci.mem64_base = fz_u64(f);
	p->pci.mem64_size = fz_u64(f);
	p->pci.intx_gsi_base = fz_u32(f);
	p->pci.intx_gsi_count = fz_u8(f);
}

/* The table at guest-physical gpa: inside [base, base + size), its length
 * too, its checksum zero. Returns its offset in buf. */
static size_t check_table(const uint8_t *buf, size_t size, uint64_t base, uint64_t gpa,
			  const char *what)
{
	if (gpa < base || gpa - base > size || size - (gpa - base) < 36)
		fz_fail("%s at 0x%llx is outside the tables", what, (unsigned long long)gpa);
	size_t off = (size_t)(gpa - base);
	uint32_t len = (uint32_t)rd(buf + off + 4, 4);
	if (len < 36 || len > size - off)
		fz_fail("%s of %u bytes at offset %zu runs past %zu", what, len, off, size);
	uint8_t sum = 0;
	for (uint32_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + buf[off + i]);
	if (sum)
		fz_fail("%s does not sum to zero", what);
	return off;
}

static void check(const uint8_t *buf, const struct acpi_tables *t, size_t cap, uint64_t base)
{
	if (t->size > cap || t->size < 36 || t->rsdp_gpa != base)
		fz_fail("built %zu bytes into %zu, RSDP at 0x%llx", t->size, cap,
			(unsigned long long)t->rsdp_gpa);
	uint8_t s1 = 0, s2 = 0;
	for (unsigned i = 0; i < 36; i++) {
		if (i < 20)
			s1 = (uint8_t)(s1 + buf[i]);
		s2 = (uint8_t)(s2 + buf[i]);
	}
	if (s1 || s2 || memcmp(buf, "RSD PTR ", 8) != 0)
		fz_fail("RSDP signature or checksums");
	size_t x = check_table(buf, t->size, base, rd(buf + 24, 8), "XSDT");
	uint32_t xlen = (uint32_t)rd(buf + x + 4, 4);
	if ((xlen - 36) % 8)
		fz_fail("XSDT length %u", xlen);
	for (uint32_t e = 36; e < xlen; e += 8) {
		size_t o = check_table(buf, t->size, base, rd(buf + x + e, 8), "XSDT entry");
		if (memcmp(buf + o, "FACP", 4) == 0) {
			if (rd(buf + o + 4, 4) < 148)
				fz_fail("FADT too short for X_DSDT");
			check_table(buf, t->size, base, rd(buf + o + 140, 8), "DSDT");
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct acpi_platform *p = malloc(sizeof(*p));
	struct acpi_tables t;
	struct fz f;

	if (!p)
		return 0;
	fz_init(&f, data, size);
	size_t cap = fz_u16(&f);
	uint64_t base = fz_u8(&f) & 1 ? fz_u64(&f) : 0xe0000;
	fill(p, &f);
	uint8_t *buf = malloc(cap ? cap : 1);
	if (buf) {
		int rc = acpi_build(p, buf, cap, base, &t);
		if (rc == 0)
			check(buf, &t, cap, base);
		else if (rc != -EINVAL && rc != -ENOSPC)
			fz_fail("acpi_build returned %d", rc);
		free(buf);
	}
	free(p);
	return 0;
}
