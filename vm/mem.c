/* Guest memory: one memfd, one mapping, cut into the layout's regions.
 *
 * Ownership rule that makes vm_mem_destroy() safe on a zeroed struct (where fd
 * reads 0): the memfd belongs to the object only while map is non-NULL.
 * vm_mem_create() either builds everything or releases everything and leaves
 * {fd = -1, map = NULL}, so there is no half-built state in which a descriptor
 * must be closed without a mapping, and descriptor 0 is never closed by mistake. */
#include "vm/mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MEM_PAGE     0x1000ULL
#define MEM_HUGEPAGE 0x200000ULL

static void mem_reset(struct vm_mem *m)
{
	memset(m->region, 0, sizeof(m->region));
	m->nregions = 0;
	m->fd = -1;
	m->map = NULL;
	m->map_size = 0;
}

static int check_layout(const struct mem_layout *l, bool hugepages, struct chv_err *err)
{
	if (l->ram_size == 0)
		return chv_err_set(err, -EINVAL, "--memory: size=0: guest memory cannot be empty");
	if (l->low_size == 0 || l->low_size > LAYOUT_MMIO32_START ||
	    l->high_size != l->ram_size - l->low_size || l->low_size > l->ram_size ||
	    (l->high_size && l->low_size != LAYOUT_MMIO32_START))
		return chv_err_set(err, -EINVAL,
				   "--memory: inconsistent layout (size=%llu low=%llu high=%llu)",
				   (unsigned long long)l->ram_size, (unsigned long long)l->low_size,
				   (unsigned long long)l->high_size);
	if (l->ram_size % MEM_PAGE)
		return chv_err_set(err, -EINVAL, "--memory: size=%llu is not a multiple of 4 KiB",
				   (unsigned long long)l->ram_size);
	if (hugepages && l->ram_size % MEM_HUGEPAGE)
		return chv_err_set(
		    err, -EINVAL,
		    "--memory: hugepages=on needs a size that is a multiple of 2 MiB, "
		    "size=%llu is not",
		    (unsigned long long)l->ram_size);
	/* The high region must not wrap, and the file size must fit off_t and size_t. */
	if (l->high_size > UINT64_MAX - LAYOUT_RAM64_START || l->ram_size > (uint64_t)INT64_MAX ||
	    l->ram_size > SIZE_MAX)
		return chv_err_set(err, -EINVAL, "--memory: size=%llu is too large",
				   (unsigned long long)l->ram_size);
	return 0;
}

static int map_error(struct vm_mem *m, int code, struct chv_err *err, const char *what,
		     const struct mem_layout *l, bool hugepages)
{
	int e = -code;

	if (m->fd >= 0)
		close(m->fd);
	mem_reset(m);
	if (hugepages && (e == ENOMEM || e == ENOSPC))
		return chv_err_set(err, code,
				   "--memory: hugepages=on: %s of %llu bytes failed: no free huge "
				   "pages (see /proc/sys/vm/nr_hugepages): %s",
				   what, (unsigned long long)l->ram_size, strerror(e));
	return chv_err_set(err, code, "--memory: %s of %llu bytes%s failed: %s", what,
			   (unsigned long long)l->ram_size, hugepages ? " (hugepages=on)" : "",
			   strerror(e));
}

int vm_mem_create(struct vm_mem *m, const struct mem_layout *l, bool shared, bool hugepages,
		  struct chv_err *err)
{
	unsigned flags = MFD_CLOEXEC;
	int mflags, rc;
	void *p;

	if (!m || !l)
		return chv_err_set(err, -EINVAL, "vm_mem_create: no object or layout");
	mem_reset(m);
	m->shared = shared;
	m->hugepages = hugepages;
	rc = check_layout(l, hugepages, err);
	if (rc)
		return rc;

	if (hugepages) {
		flags |= MFD_HUGETLB;
#ifdef MFD_HUGE_2MB
		flags |= MFD_HUGE_2MB;
#endif
	}
	m->fd = memfd_create("chv-guest", flags);
	if (m->fd < 0)
		return map_error(m, -errno, err, "memfd_create", l, hugepages);
	if (ftruncate(m->fd, (off_t)l->ram_size) < 0)
		return map_error(m, -errno, err, "ftruncate", l, hugepages);

	/* MAP_PRIVATE keeps the guest's pages anonymous (copy-on-write over the
	 * empty file) while the memfd stays available to snapshot code. Huge
	 * pages are reserved at mmap time instead (no MAP_NORESERVE), so a host
	 * without free huge pages fails here with ENOMEM rather than with a
	 * SIGBUS on the guest's first touch. */
	mflags = shared ? MAP_SHARED : MAP_PRIVATE;
	if (!hugepages)
		mflags |= MAP_NORESERVE;
	p = mmap(NULL, (size_t)l->ram_size, PROT_READ | PROT_WRITE, mflags, m->fd, 0);
	if (p == MAP_FAILED)
		return map_error(m, -errno, err, "mmap", l, hugepages);
	m->map = p;
	m->map_size = (size_t)l->ram_size;

	m->region[0] =
	    (struct vm_mem_region){.gpa = 0, .size = l->low_size, .hva = m->map, .fd_offset = 0};
	m->nregions = 1;
	if (l->high_size) {
		m->region[1] = (struct vm_mem_region){.gpa = LAYOUT_RAM64_START,
						      .size = l->high_size,
						      .hva = m->map + l->low_size,
						      .fd_offset = l->low_size};
		m->nregions = 2;
	}
	return 0;
}

void vm_mem_destroy(struct vm_mem *m)
{
	if (!m)
		return;
	if (m->map) {
		munmap(m->map, m->map_size);
		if (m->fd >= 0)
			close(m->fd);
	}
	mem_reset(m);
}

void *vm_mem_ptr(const struct vm_mem *m, uint64_t gpa, uint64_t len)
{
	if (!m || len == 0)
		return NULL;
	for (unsigned i = 0; i < m->nregions && i < VM_MEM_MAX_REGIONS; i++) {
		const struct vm_mem_region *r = &m->region[i];
		uint64_t off;

		if (gpa < r->gpa)
			continue;
		off = gpa - r->gpa;
		/* Written as differences so neither gpa + len nor off + len can wrap. */
		if (off >= r->size || len > r->size - off)
			continue;
		return r->hva + off;
	}
	return NULL;
}

int vm_mem_read(const struct vm_mem *m, uint64_t gpa, void *dst, size_t len)
{
	const void *p = vm_mem_ptr(m, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int vm_mem_write(const struct vm_mem *m, uint64_t gpa, const void *src, size_t len)
{
	void *p = vm_mem_ptr(m, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}
