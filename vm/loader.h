/* Kernel loaders: PVH ELF (tried first) and bzImage (Linux boot protocol
 * 2.12+, 64-bit entry), as Cloud Hypervisor does. The image and initramfs are
 * untrusted input: every malformed one is refused with a message. */
#ifndef CHV_VM_LOADER_H
#define CHV_VM_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "vm/e820.h"
#include "vm/err.h"
#include "vm/mem.h"

enum boot_proto {
	BOOT_PVH = 1,	  /* 32-bit protected mode entry, rbx = hvm_start_info */
	BOOT_LINUX64 = 2, /* 64-bit entry (load address + 0x200), rsi = zero page */
};

struct load_request {
	const uint8_t *kernel;
	size_t kernel_len;
	const uint8_t *initramfs; /* NULL when none */
	size_t initramfs_len;
	const char *cmdline; /* never NULL; "" when none */
	const struct e820_table *e820;
	uint64_t rsdp_gpa; /* 0 when there are no ACPI tables */
};

struct load_result {
	enum boot_proto proto;
	uint64_t entry;			   /* guest-physical entry point */
	uint64_t boot_info;		   /* hvm_start_info (PVH) or zero page (Linux) */
	uint64_t kernel_start, kernel_end; /* [start, end) occupied by the image */
	uint64_t initramfs_gpa;		   /* 0 when none */
};

/* PVH first, then bzImage; anything else fails with a message naming --kernel. */
chv_must_check int loader_load(struct vm_mem *m, const struct load_request *req,
			       struct load_result *res, struct chv_err *err);
/* -ENOEXEC (with err set) when the image is not of this format at all, so
 * loader_load() can try the next one; -EINVAL when it is but is malformed. */
chv_must_check int loader_load_pvh(struct vm_mem *m, const struct load_request *req,
				   struct load_result *res, struct chv_err *err);
chv_must_check int loader_load_bzimage(struct vm_mem *m, const struct load_request *req,
				       struct load_result *res, struct chv_err *err);

#endif
