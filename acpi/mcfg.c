/* The MCFG (PCI Firmware Specification 3.2, 4.1.2): one ECAM allocation
 * for segment 0. Its base address is the one for bus 0 even when the bus
 * range starts higher. */
#include <errno.h>
#include <string.h>

#include "acpi/sdt.h"
#include "acpi/tables.h"

int acpi_mcfg_write(const struct acpi_platform *p, uint8_t *t, size_t cap, size_t *len)
{
	uint8_t *alloc = t + 44; /* after the header and 8 reserved bytes */

	if (cap < ACPI_MCFG_LEN)
		return -ENOSPC;
	memset(t, 0, ACPI_MCFG_LEN);
	acpi_sdt_header(t, "MCFG", ACPI_MCFG_LEN, 1);
	acpi_put_le(alloc, p->ecam_base, 8);
	acpi_put_le(alloc + 8, 0, 2); /* PCI segment group */
	alloc[10] = p->ecam_bus_start;
	alloc[11] = p->ecam_bus_end;
	acpi_sdt_seal(t);
	*len = ACPI_MCFG_LEN;
	return 0;
}
