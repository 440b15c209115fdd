/* The FADT (ACPI 6.5 5.2.9), revision 6.5, for a hardware-reduced platform:
 * no PM1/GPE blocks and no FACS; sleep and reset go through one byte-wide
 * I/O register that the VMM decodes. */
#include <errno.h>
#include <string.h>

#include "acpi/sdt.h"
#include "acpi/tables.h"

enum {
	FADT_DSDT = 40,
	FADT_IAPC_BOOT_ARCH = 109,
	FADT_FLAGS = 112,
	FADT_RESET_REG = 116,
	FADT_RESET_VALUE = 128,
	FADT_MINOR_VERSION = 131,
	FADT_X_DSDT = 140,
	FADT_SLEEP_CONTROL_REG = 244,
	FADT_SLEEP_STATUS_REG = 256,
	FADT_HYPERVISOR_ID = 268,
};

#define FADT_RESET_REG_SUP   (1u << 10)
#define FADT_HW_REDUCED_ACPI (1u << 20)

int acpi_fadt_write(const struct acpi_platform *p, uint64_t dsdt_gpa, uint8_t *t, size_t cap,
		    size_t *len)
{
	if (cap < ACPI_FADT_LEN)
		return -ENOSPC;
	memset(t, 0, ACPI_FADT_LEN);
	acpi_sdt_header(t, "FACP", ACPI_FADT_LEN, 6);
	/* The 32-bit DSDT pointer is only usable below 4 GiB; X_DSDT always is. */
	if (dsdt_gpa <= UINT32_MAX)
		acpi_put_le(t + FADT_DSDT, dsdt_gpa, 4);
	acpi_put_le(t + FADT_IAPC_BOOT_ARCH, 0, 2);
	acpi_put_le(t + FADT_FLAGS, FADT_HW_REDUCED_ACPI | FADT_RESET_REG_SUP, 4);
	acpi_gas_io8(t + FADT_RESET_REG, p->pm_port);
	t[FADT_RESET_VALUE] = p->reset_value;
	t[FADT_MINOR_VERSION] = 5;
	acpi_put_le(t + FADT_X_DSDT, dsdt_gpa, 8);
	acpi_gas_io8(t + FADT_SLEEP_CONTROL_REG, p->pm_port);
	acpi_gas_io8(t + FADT_SLEEP_STATUS_REG, p->pm_port);
	memcpy(t + FADT_HYPERVISOR_ID, "CHVHV\0\0\0", 8);
	acpi_sdt_seal(t);
	*len = ACPI_FADT_LEN;
	return 0;
}
