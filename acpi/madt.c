/* The MADT (ACPI 6.5 5.2.12), revision 5 so that the online-capable flag
 * is defined: one processor entry per possible vCPU, the I/O APIC and the
 * ISA IRQ0 -> GSI2 override that PC firmware reports. No PIC is present,
 * so PCAT_COMPAT stays clear. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "acpi/sdt.h"
#include "acpi/tables.h"

enum {
	MADT_LAPIC = 0,
	MADT_IOAPIC = 1,
	MADT_ISO = 2,
	MADT_X2APIC = 9,
};

enum {
	MADT_FIXED_LEN = ACPI_SDT_HDR_LEN + 8,
	MADT_LAPIC_LEN = 8,
	MADT_X2APIC_LEN = 16,
	MADT_IOAPIC_LEN = 12,
	MADT_ISO_LEN = 10,
};

#define LAPIC_ENABLED	     (1u << 0)
#define LAPIC_ONLINE_CAPABLE (1u << 1)
/* MPS INTI flags: active high (01), edge triggered (01 << 2). */
#define ISO_EDGE_HIGH 0x0005
/* 0xff in an xAPIC entry means "broadcast"; such ids need x2APIC entries. */
#define XAPIC_MAX_ID 254

/* The xAPIC entry has 8-bit APIC id and UID fields. */
static bool needs_x2apic(const struct acpi_platform *p, uint32_t i)
{
	return p->apic_id[i] > XAPIC_MAX_ID || i > UINT8_MAX;
}

static size_t madt_size(const struct acpi_platform *p)
{
	size_t n = MADT_FIXED_LEN + MADT_IOAPIC_LEN + MADT_ISO_LEN;

	for (uint32_t i = 0; i < p->max_cpus; i++)
		n += needs_x2apic(p, i) ? MADT_X2APIC_LEN : MADT_LAPIC_LEN;
	return n;
}

int acpi_madt_write(const struct acpi_platform *p, uint8_t *t, size_t cap, size_t *len)
{
	size_t size = madt_size(p);
	uint8_t *e = t + MADT_FIXED_LEN;

	if (cap < size)
		return -ENOSPC;
	memset(t, 0, size);
	acpi_sdt_header(t, "APIC", (uint32_t)size, 5);
	acpi_put_le(t + ACPI_SDT_HDR_LEN, p->lapic_addr, 4);
	acpi_put_le(t + ACPI_SDT_HDR_LEN + 4, 0, 4); /* flags: no PCAT_COMPAT */

	for (uint32_t i = 0; i < p->max_cpus; i++) {
		uint32_t flags = i < p->boot_cpus ? LAPIC_ENABLED : LAPIC_ONLINE_CAPABLE;

		if (needs_x2apic(p, i)) {
			e[0] = MADT_X2APIC;
			e[1] = MADT_X2APIC_LEN;
			acpi_put_le(e + 4, p->apic_id[i], 4);
			acpi_put_le(e + 8, flags, 4);
			acpi_put_le(e + 12, i, 4); /* ACPI processor UID */
			e += MADT_X2APIC_LEN;
		} else {
			e[0] = MADT_LAPIC;
			e[1] = MADT_LAPIC_LEN;
			e[2] = (uint8_t)i; /* ACPI processor UID */
			e[3] = (uint8_t)p->apic_id[i];
			acpi_put_le(e + 4, flags, 4);
			e += MADT_LAPIC_LEN;
		}
	}

	e[0] = MADT_IOAPIC;
	e[1] = MADT_IOAPIC_LEN;
	e[2] = p->ioapic_id;
	acpi_put_le(e + 4, p->ioapic_addr, 4);
	acpi_put_le(e + 8, p->ioapic_gsi_base, 4);
	e += MADT_IOAPIC_LEN;

	e[0] = MADT_ISO;
	e[1] = MADT_ISO_LEN;
	e[2] = 0; /* bus: ISA */
	e[3] = 0; /* source: IRQ0 */
	acpi_put_le(e + 4, 2, 4);
	acpi_put_le(e + 8, ISO_EDGE_HIGH, 2);

	acpi_sdt_seal(t);
	*len = size;
	return 0;
}
