/* The parts of the Linux x86 boot protocol (Documentation/arch/x86/boot.rst,
 * zero-page.rst) that chv reads from a bzImage or writes into the zero page.
 * Fields chv never touches are kept as padding so the offsets stay right;
 * the _Static_asserts pin every offset to the documented one. */
#ifndef CHV_VM_BOOTPARAM_H
#define CHV_VM_BOOTPARAM_H

#include <stddef.h>
#include <stdint.h>

#define BP_BOOT_FLAG	  0xaa55
#define BP_HDRS_MAGIC	  0x53726448u /* "HdrS" read as a little-endian u32 */
#define BP_MIN_VERSION	  0x020c      /* 2.12: xloadflags, the 64-bit entry */
#define BP_HDR_OFFSET	  0x1f1	      /* the setup header inside the image and the zero page */
#define BP_HDR_JUMP_END	  0x202	      /* the header ends at 0x202 + the byte at 0x201 */
#define BP_HDR_SPACE_END  0x290	      /* what follows the header in the zero page */
#define BP_SECTOR	  512
#define BP_DEFAULT_SECTS  4	/* setup_sects 0 means 4 */
#define BP_E820_MAX	  128	/* entries in the zero page's table */
#define BP_ENTRY64_OFFSET 0x200 /* startup_64 relative to the load address */
#define BP_LOADER_UNKNOWN 0xff	/* type_of_loader: no assigned id */

/* loadflags */
#define LOADED_HIGH   (1u << 0)
#define KEEP_SEGMENTS (1u << 6)
#define CAN_USE_HEAP  (1u << 7)

/* xloadflags */
#define XLF_KERNEL_64		   (1u << 0)
#define XLF_CAN_BE_LOADED_ABOVE_4G (1u << 1)

struct setup_header {
	uint8_t setup_sects;
	uint16_t root_flags;
	uint32_t syssize; /* protected-mode code size in 16-byte units */
	uint16_t ram_size;
	uint16_t vid_mode;
	uint16_t root_dev;
	uint16_t boot_flag;
	uint16_t jump;
	uint32_t header;
	uint16_t version;
	uint32_t realmode_swtch;
	uint16_t start_sys_seg;
	uint16_t kernel_version;
	uint8_t type_of_loader;
	uint8_t loadflags;
	uint16_t setup_move_size;
	uint32_t code32_start;
	uint32_t ramdisk_image;
	uint32_t ramdisk_size;
	uint32_t bootsect_kludge;
	uint16_t heap_end_ptr;
	uint8_t ext_loader_ver;
	uint8_t ext_loader_type;
	uint32_t cmd_line_ptr;
	uint32_t initrd_addr_max; /* highest address the initramfs may occupy */
	uint32_t kernel_alignment;
	uint8_t relocatable_kernel;
	uint8_t min_alignment;
	uint16_t xloadflags;
	uint32_t cmdline_size; /* longest command line, without the NUL */
	uint32_t hardware_subarch;
	uint64_t hardware_subarch_data;
	uint32_t payload_offset;
	uint32_t payload_length;
	uint64_t setup_data;
	uint64_t pref_address;
	uint32_t init_size; /* memory needed from the runtime start address */
	uint32_t handover_offset;
	uint32_t kernel_info_offset;
} __attribute__((packed));

struct boot_e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

/* The zero page. */
struct boot_params {
	uint8_t _pad0[0x070]; /* screen_info, apm_bios_info, tboot_addr, ist_info */
	uint64_t acpi_rsdp_addr;
	uint8_t _pad1[0x0c0 - 0x078];
	uint32_t ext_ramdisk_image; /* high 32 bits */
	uint32_t ext_ramdisk_size;
	uint32_t ext_cmd_line_ptr;
	uint8_t _pad2[0x1e8 - 0x0cc];
	uint8_t e820_entries;
	uint8_t _pad3[BP_HDR_OFFSET - 0x1e9];
	struct setup_header hdr;
	uint8_t _pad4[0x2d0 - 0x26c]; /* rest of the header space, edd_mbr_sig_buffer */
	struct boot_e820_entry e820_table[BP_E820_MAX];
	uint8_t _pad5[0x1000 - 0xcd0]; /* eddbuf */
} __attribute__((packed));

#define BP_ASSERT_AT(type, field, off)                                                             \
	_Static_assert(offsetof(type, field) == (off), #type "." #field " offset")

BP_ASSERT_AT(struct setup_header, syssize, 0x1f4 - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, vid_mode, 0x1fa - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, boot_flag, 0x1fe - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, header, 0x202 - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, version, 0x206 - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, type_of_loader, 0x210 - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, loadflags, 0x211 - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, code32_start, 0x214 - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, ramdisk_image, 0x218 - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, ramdisk_size, 0x21c - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, heap_end_ptr, 0x224 - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, cmd_line_ptr, 0x228 - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, initrd_addr_max, 0x22c - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, kernel_alignment, 0x230 - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, relocatable_kernel, 0x234 - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, xloadflags, 0x236 - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, cmdline_size, 0x238 - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, setup_data, 0x250 - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, pref_address, 0x258 - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, init_size, 0x260 - BP_HDR_OFFSET);
BP_ASSERT_AT(struct setup_header, kernel_info_offset, 0x268 - BP_HDR_OFFSET);
_Static_assert(sizeof(struct setup_header) == 0x26c - BP_HDR_OFFSET, "setup_header size");
_Static_assert(sizeof(struct boot_e820_entry) == 20, "boot_e820_entry size");
BP_ASSERT_AT(struct boot_params, acpi_rsdp_addr, 0x070);
BP_ASSERT_AT(struct boot_params, ext_ramdisk_image, 0x0c0);
BP_ASSERT_AT(struct boot_params, ext_ramdisk_size, 0x0c4);
BP_ASSERT_AT(struct boot_params, ext_cmd_line_ptr, 0x0c8);
BP_ASSERT_AT(struct boot_params, e820_entries, 0x1e8);
BP_ASSERT_AT(struct boot_params, hdr, BP_HDR_OFFSET);
BP_ASSERT_AT(struct boot_params, e820_table, 0x2d0);
_Static_assert(sizeof(struct boot_params) == 4096, "boot_params is one page");

#endif
