/* The guest's e820 map, derived from the layout alone. */
#include "vm/e820.h"

#include <string.h>

static void add(struct e820_table *t, uint64_t addr, uint64_t end, uint32_t type)
{
	if (end <= addr || t->n >= E820_MAX)
		return;
	t->e[t->n++] = (struct e820_entry){.addr = addr, .size = end - addr, .type = type};
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

void e820_build(const struct mem_layout *l, struct e820_table *t)
{
	memset(t, 0, sizeof(*t));
	/* Entries are clipped to the RAM that exists, so a layout smaller than
	 * 1 MiB never advertises memory vm_mem_ptr() would refuse. */
	add(t, 0, min_u64(LAYOUT_LOW_RAM_END, l->low_size), E820_RAM);
	add(t, LAYOUT_ACPI_START, LAYOUT_ACPI_START + LAYOUT_ACPI_SIZE, E820_RESERVED);
	add(t, LAYOUT_HIGH_RAM_START, l->low_size, E820_RAM);
	add(t, LAYOUT_ECAM_START, LAYOUT_ECAM_START + LAYOUT_ECAM_SIZE, E820_RESERVED);
	if (l->high_size)
		add(t, LAYOUT_RAM64_START, LAYOUT_RAM64_START + l->high_size, E820_RAM);
}
