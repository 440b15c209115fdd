/* The common table header, checksums and GAS encoding. */
#include "acpi/sdt.h"

#include <string.h>

#include "acpi/acpi.h"

uint8_t acpi_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)(0 - sum);
}

void acpi_put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void acpi_sdt_header(uint8_t *t, const char sig[4], uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	acpi_put_le(t + 4, len, 4);
	t[8] = rev;
	t[ACPI_SDT_CHECKSUM_OFF] = 0;
	memcpy(t + 10, ACPI_OEM_ID, 6);
	memcpy(t + 16, ACPI_OEM_TABLE_ID, 8);
	acpi_put_le(t + 24, 1, 4); /* OEM revision */
	memcpy(t + 28, ACPI_CREATOR_ID, 4);
	acpi_put_le(t + 32, 1, 4); /* creator revision */
}

void acpi_sdt_seal(uint8_t *t)
{
	uint32_t len =
	    (uint32_t)t[4] | (uint32_t)t[5] << 8 | (uint32_t)t[6] << 16 | (uint32_t)t[7] << 24;

	t[ACPI_SDT_CHECKSUM_OFF] = 0;
	t[ACPI_SDT_CHECKSUM_OFF] = acpi_checksum(t, len);
}

void acpi_gas_io8(uint8_t *g, uint16_t port)
{
	g[0] = 1; /* system I/O space */
	g[1] = 8; /* register bit width */
	g[2] = 0; /* bit offset */
	g[3] = 1; /* access size: byte */
	acpi_put_le(g + 4, port, 8);
}
