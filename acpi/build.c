/* acpi_build(): checks the description, then lays the tables out one after
 * another, each 8-byte aligned:
 *
 *   RSDP (at base, so the legacy scan of 0xE0000-0xFFFFF finds it)
 *   XSDT -> FADT, MADT[, MCFG]
 *   FADT -> DSDT
 *   DSDT, MADT[, MCFG]
 *
 * The XSDT and RSDP are written last, once every table's address is known. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "acpi/acpi.h"
#include "acpi/sdt.h"
#include "acpi/tables.h"

#define RSDP_LEN	 36
#define RSDP_V1_LEN	 20
#define TABLE_ALIGN	 8
#define ECAM_BUS_SHIFT	 20
#define XSDT_MAX_ENTRIES 3
/* 0xffffffff is the x2APIC broadcast id, never a CPU's. */
#define APIC_ID_BROADCAST UINT32_MAX

static bool cpus_valid(const struct acpi_platform *p)
{
	if (p->max_cpus < 1 || p->max_cpus > ACPI_MAX_CPUS)
		return false;
	if (p->boot_cpus < 1 || p->boot_cpus > p->max_cpus)
		return false;
	for (uint32_t i = 0; i < p->max_cpus; i++) {
		if (p->apic_id[i] == APIC_ID_BROADCAST)
			return false;
		for (uint32_t j = 0; j < i; j++)
			if (p->apic_id[j] == p->apic_id[i])
				return false;
	}
	return true;
}

static bool ecam_valid(const struct acpi_platform *p)
{
	uint64_t end_bus = (uint64_t)p->ecam_bus_end + 1;

	if (!p->ecam_base)
		return true;
	if (p->ecam_base & ((1ull << ECAM_BUS_SHIFT) - 1))
		return false;
	if (p->ecam_bus_start > p->ecam_bus_end)
		return false;
	return p->ecam_base <= UINT64_MAX - (end_bus << ECAM_BUS_SHIFT) + 1;
}

/* The root bridge decodes the ECAM bus range, so it needs one; its windows
 * must be non-empty, must not wrap, and the 32-bit one must stay below 4 GiB. */
static bool pci_valid(const struct acpi_platform *p)
{
	const struct acpi_pci_root *r = &p->pci;

	if (!r->present)
		return true;
	if (!p->ecam_base)
		return false;
	if (!r->mem32_size || r->mem32_base > UINT32_MAX ||
	    r->mem32_size > (uint64_t)UINT32_MAX + 1 - r->mem32_base)
		return false;
	if (r->mem64_size && r->mem64_base > UINT64_MAX - (r->mem64_size - 1))
		return false;
	if (r->intx_gsi_count < 1 || r->intx_gsi_count > 32)
		return false;
	return r->intx_gsi_base <= UINT32_MAX - (r->intx_gsi_count - 1);
}

static bool platform_valid(const struct acpi_platform *p)
{
	/* The MADT has 32-bit fields for both APIC addresses. */
	if (!p->lapic_addr || p->lapic_addr > UINT32_MAX)
		return false;
	if (!p->ioapic_addr || p->ioapic_addr > UINT32_MAX)
		return false;
	if (!p->pm_port)
		return false;
	/* SLP_TYP is bits 2-4 of the sleep control register. */
	if (p->s5_slp_typ > 7)
		return false;
	/* COM1 decodes 8 ports. */
	if (p->com1.port && p->com1.port > UINT16_MAX - 7)
		return false;
	return cpus_valid(p) && ecam_valid(p) && pci_valid(p);
}

static size_t align_up(size_t v)
{
	return (v + TABLE_ALIGN - 1) & ~(size_t)(TABLE_ALIGN - 1);
}

/* Moves *off past a table of len bytes and the padding after it, which is
 * zeroed as far as the buffer goes; *end is where the table stops. */
static void advance(uint8_t *buf, size_t cap, size_t *off, size_t len, size_t *end)
{
	size_t next;

	*end = *off + len;
	next = align_up(*end);
	if (*end < cap)
		memset(buf + *end, 0, (next < cap ? next : cap) - *end);
	*off = next;
}

static void write_xsdt(uint8_t *t, const uint64_t *entries, size_t n)
{
	uint32_t len = (uint32_t)(ACPI_SDT_HDR_LEN + 8 * n);

	acpi_sdt_header(t, "XSDT", len, 1);
	for (size_t i = 0; i < n; i++)
		acpi_put_le(t + ACPI_SDT_HDR_LEN + 8 * i, entries[i], 8);
	acpi_sdt_seal(t);
}

static void write_rsdp(uint8_t *r, uint64_t xsdt_gpa)
{
	memset(r, 0, RSDP_LEN);
	memcpy(r, "RSD PTR ", 8);
	memcpy(r + 9, ACPI_OEM_ID, 6);
	r[15] = 2; /* revision: ACPI 2.0+, XSDT */
	/* RsdtAddress (offset 16) stays 0: there is no RSDT. */
	acpi_put_le(r + 20, RSDP_LEN, 4);
	acpi_put_le(r + 24, xsdt_gpa, 8);
	r[8] = acpi_checksum(r, RSDP_V1_LEN);
	r[32] = acpi_checksum(r, RSDP_LEN);
}

int acpi_build(const struct acpi_platform *p, uint8_t *buf, size_t cap, uint64_t base_gpa,
	       struct acpi_tables *out)
{
	uint64_t xsdt_entries[XSDT_MAX_ENTRIES];
	size_t n_entries = 0;
	size_t off, end, xsdt_off, xsdt_len, fadt_off, dsdt_off, len;
	int ret;

	if (!p || !buf || !out || !platform_valid(p))
		return -EINVAL;
	/* The legacy RSDP scan looks at 16-byte boundaries only, and a table
	 * at address 0 would read as a null pointer. */
	if (!base_gpa || base_gpa % 16)
		return -EINVAL;

	if (cap < RSDP_LEN)
		return -ENOSPC;
	off = 0;
	advance(buf, cap, &off, RSDP_LEN, &end);

	xsdt_off = off;
	xsdt_len = ACPI_SDT_HDR_LEN + 8 * (p->ecam_base ? 3 : 2);
	if (xsdt_off > cap || cap - xsdt_off < xsdt_len)
		return -ENOSPC;
	advance(buf, cap, &off, xsdt_len, &end);

	fadt_off = off;
	dsdt_off = align_up(fadt_off + ACPI_FADT_LEN);
	if (fadt_off > cap)
		return -ENOSPC;
	ret = acpi_fadt_write(p, base_gpa + dsdt_off, buf + fadt_off, cap - fadt_off, &len);
	if (ret)
		return ret;
	advance(buf, cap, &off, len, &end);
	xsdt_entries[n_entries++] = base_gpa + fadt_off;

	if (off > cap)
		return -ENOSPC;
	ret = acpi_dsdt_write(p, buf + off, cap - off, &len);
	if (ret)
		return ret;
	advance(buf, cap, &off, len, &end);

	if (off > cap)
		return -ENOSPC;
	ret = acpi_madt_write(p, buf + off, cap - off, &len);
	if (ret)
		return ret;
	xsdt_entries[n_entries++] = base_gpa + off;
	advance(buf, cap, &off, len, &end);

	if (p->ecam_base) {
		if (off > cap)
			return -ENOSPC;
		ret = acpi_mcfg_write(p, buf + off, cap - off, &len);
		if (ret)
			return ret;
		xsdt_entries[n_entries++] = base_gpa + off;
		advance(buf, cap, &off, len, &end);
	}

	/* The tables must not wrap around the guest-physical address space. */
	if (base_gpa > UINT64_MAX - end)
		return -EINVAL;

	write_xsdt(buf + xsdt_off, xsdt_entries, n_entries);
	write_rsdp(buf, base_gpa + xsdt_off);
	out->rsdp_gpa = base_gpa;
	out->size = end;
	return 0;
}
