/* The x86-64 guest-physical layout, the same shape as Cloud Hypervisor's:
 * RAM below the 32-bit MMIO hole (which starts at 3 GiB), the rest above 4 GiB. */
#ifndef CHV_VM_LAYOUT_H
#define CHV_VM_LAYOUT_H

#include <stdint.h>

/* Low memory: boot structures written by the VMM. */
#define LAYOUT_GDT	      0x0500ULL /* boot GDT (4 entries) */
#define LAYOUT_IDT	      0x0520ULL /* empty boot IDT */
#define LAYOUT_PVH_INFO	      0x6000ULL /* struct hvm_start_info */
#define LAYOUT_PVH_MODLIST    0x6040ULL /* struct hvm_modlist_entry[] */
#define LAYOUT_PVH_MEMMAP     0x6100ULL /* struct hvm_memmap_table_entry[], up to 0x7000 */
#define LAYOUT_ZERO_PAGE      0x7000ULL /* Linux struct boot_params (4 KiB) */
#define LAYOUT_BOOT_STACK     0x8ff0ULL /* initial rsp for the 64-bit Linux entry */
#define LAYOUT_PML4	      0x9000ULL /* identity map for the 64-bit Linux entry */
#define LAYOUT_PDPT	      0xa000ULL
#define LAYOUT_PD	      0xb000ULL /* 4 pages: 4 GiB of 2 MiB pages, up to 0xf000 */
#define LAYOUT_CMDLINE	      0x20000ULL
#define LAYOUT_CMDLINE_MAX    0x10000ULL /* including the terminating NUL */
#define LAYOUT_LOW_RAM_END    0xa0000ULL /* e820 RAM [0, 640 KiB) */
#define LAYOUT_ACPI_START     0xe0000ULL /* RSDP and tables, found by the legacy scan too */
#define LAYOUT_ACPI_SIZE      0x20000ULL
#define LAYOUT_HIGH_RAM_START 0x100000ULL /* kernels load at or above 1 MiB */

/* The 32-bit hole. */
#define LAYOUT_MMIO32_START 0xc0000000ULL /* end of low RAM */
#define LAYOUT_MMIO32_SIZE  0x28000000ULL /* 640 MiB of device MMIO */
#define LAYOUT_ECAM_START   0xe8000000ULL /* PCI MMCONFIG, e820-reserved */
#define LAYOUT_ECAM_SIZE    0x10000000ULL
#define LAYOUT_IOAPIC	    0xfec00000ULL
#define LAYOUT_LAPIC	    0xfee00000ULL
#define LAYOUT_KVM_TSS	    0xfffbd000ULL /* 3 pages KVM needs for real mode on VMX */
#define LAYOUT_KVM_IDENTITY 0xfffbc000ULL

#define LAYOUT_RAM64_START 0x100000000ULL

/* Legacy ports. */
#define PORT_DEBUG	 0x80
#define PORT_COM1	 0x3f8
#define IRQ_COM1	 4
#define PORT_I8042_DATA	 0x60
#define PORT_I8042_CMD	 0x64
#define PORT_CMOS	 0x70
#define PORT_ACPI_PM	 0x600 /* sleep control/status and reset register */
#define ACPI_RESET_VALUE 1
#define ACPI_S5_SLP_TYP	 5

/* Where guest RAM goes: [0, low_size) and [4 GiB, 4 GiB + high_size). */
struct mem_layout {
	uint64_t ram_size;
	uint64_t low_size;
	uint64_t high_size;
};

static inline void layout_compute(uint64_t ram_size, struct mem_layout *l)
{
	l->ram_size = ram_size;
	l->low_size = ram_size < LAYOUT_MMIO32_START ? ram_size : LAYOUT_MMIO32_START;
	l->high_size = ram_size - l->low_size;
}

#endif
