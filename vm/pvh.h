/* The PVH boot ABI (Xen's hvm_start_info, used by Linux, FreeBSD and QEMU's
 * microvm): the VMM loads an ELF whose XEN_ELFNOTE_PHYS32_ENTRY note gives a
 * 32-bit protected-mode entry point and passes this structure in ebx.
 * Written from xen/include/public/arch-x86/hvm/start_info.h's documented
 * layout; version 1 adds the memory map. Private to the loader. */
#ifndef CHV_VM_PVH_H
#define CHV_VM_PVH_H

#include <stdint.h>

#define XEN_HVM_START_MAGIC_VALUE 0x336ec578u
#define XEN_ELFNOTE_PHYS32_ENTRY  18

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr; /* struct hvm_modlist_entry[nr_modules] */
	uint64_t cmdline_paddr; /* NUL-terminated */
	uint64_t rsdp_paddr;	/* 0: the guest scans for it */
	uint64_t memmap_paddr;	/* version 1 */
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

/* type uses the e820 numbers (1 RAM, 2 reserved, 3 ACPI ...). */
struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info layout");
_Static_assert(__builtin_offsetof(struct hvm_start_info, memmap_paddr) == 40,
	       "hvm_start_info.memmap_paddr");
_Static_assert(__builtin_offsetof(struct hvm_start_info, memmap_entries) == 48,
	       "hvm_start_info.memmap_entries");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry layout");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry layout");

#endif
