/* Guest memory: one memfd mapped once, cut into the regions of the layout.
 * vm_mem_ptr() is the one checked accessor: everything that touches guest
 * memory goes through it, and every guest-supplied address is hostile. */
#ifndef CHV_VM_MEM_H
#define CHV_VM_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vm/err.h"
#include "vm/layout.h"

#define VM_MEM_MAX_REGIONS 4

struct vm_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
	uint64_t fd_offset;
};

struct vm_mem {
	struct vm_mem_region region[VM_MEM_MAX_REGIONS];
	unsigned nregions;
	int fd;	      /* memfd backing all regions, -1 when none */
	uint8_t *map; /* one mapping of the whole memfd */
	size_t map_size;
	bool shared;
	bool hugepages;
};

/* Creates the backing memfd and maps it. hugepages uses MFD_HUGETLB (2 MiB):
 * the size must then be a multiple of 2 MiB and the host must have free huge pages. */
chv_must_check int vm_mem_create(struct vm_mem *m, const struct mem_layout *l, bool shared,
				 bool hugepages, struct chv_err *err);
/* Safe on a zeroed or half-built object. */
void vm_mem_destroy(struct vm_mem *m);

/* Host pointer for [gpa, gpa + len) when the whole range lies inside one RAM
 * region (no wrap-around), else NULL. len 0 is refused. */
void *vm_mem_ptr(const struct vm_mem *m, uint64_t gpa, uint64_t len);

/* Copy helpers over vm_mem_ptr(): 0 or -EFAULT. */
chv_must_check int vm_mem_read(const struct vm_mem *m, uint64_t gpa, void *dst, size_t len);
chv_must_check int vm_mem_write(const struct vm_mem *m, uint64_t gpa, const void *src, size_t len);

#endif
