/* The e820 map that describes the layout to the guest (zero page, PVH memmap). */
#ifndef CHV_VM_E820_H
#define CHV_VM_E820_H

#include <stdint.h>

#include "vm/layout.h"

#define E820_RAM      1
#define E820_RESERVED 2
#define E820_ACPI     3
#define E820_MAX      32

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

struct e820_table {
	unsigned n;
	struct e820_entry e[E820_MAX];
};

/* RAM [0, 640 KiB), reserved [ACPI_START, 1 MiB) for the ACPI tables,
 * RAM [1 MiB, low_size), reserved ECAM, RAM [4 GiB, 4 GiB + high_size);
 * sorted by address, no overlaps. */
void e820_build(const struct mem_layout *l, struct e820_table *t);

#endif
