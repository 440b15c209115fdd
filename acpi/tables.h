/* The per-table writers behind acpi_build(). Each writes one complete,
 * checksummed table at t (cap bytes available) and stores its length in
 * *len; -ENOSPC when it does not fit. The description is already valid. */
#ifndef CHV_ACPI_TABLES_H
#define CHV_ACPI_TABLES_H

#include <stddef.h>
#include <stdint.h>

#include "acpi/acpi.h"
#include "vm/err.h"

#define ACPI_FADT_LEN 276
#define ACPI_MCFG_LEN (44 + 16)

chv_must_check int acpi_fadt_write(const struct acpi_platform *p, uint64_t dsdt_gpa, uint8_t *t,
				   size_t cap, size_t *len);
chv_must_check int acpi_dsdt_write(const struct acpi_platform *p, uint8_t *t, size_t cap,
				   size_t *len);
chv_must_check int acpi_madt_write(const struct acpi_platform *p, uint8_t *t, size_t cap,
				   size_t *len);
chv_must_check int acpi_mcfg_write(const struct acpi_platform *p, uint8_t *t, size_t cap,
				   size_t *len);

#endif
