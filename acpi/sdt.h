/* Pieces shared by the table writers: the common System Description Table
 * header (ACPI 6.5 5.2.6), little-endian stores and Generic Address
 * Structures. Private to acpi/. */
#ifndef CHV_ACPI_SDT_H
#define CHV_ACPI_SDT_H

#include <stddef.h>
#include <stdint.h>

#define ACPI_SDT_HDR_LEN      36
#define ACPI_SDT_CHECKSUM_OFF 9
#define ACPI_GAS_LEN	      12

#define ACPI_OEM_ID	  "CHV   "
#define ACPI_OEM_TABLE_ID "CHVTABLE"
#define ACPI_CREATOR_ID	  "CHV "

void acpi_put_le(uint8_t *p, uint64_t v, unsigned n);
/* Fills the header of a table of len bytes; the checksum stays 0. */
void acpi_sdt_header(uint8_t *t, const char sig[4], uint32_t len, uint8_t rev);
/* Sets the checksum once the table (of the length in its header) is complete. */
void acpi_sdt_seal(uint8_t *t);
/* A GAS for a byte-wide register in system I/O space. */
void acpi_gas_io8(uint8_t *g, uint16_t port);

#endif
