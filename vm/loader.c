/* Kernel loading: format dispatch and the pieces both boot protocols share
 * (command line and initramfs placement). */
#include "vm/loader.h"

#include <errno.h>
#include <string.h>

#include "vm/loader_priv.h"

int loader_check_request(const struct vm_mem *m, const struct load_request *req,
			 const struct load_result *res, const char *who, struct chv_err *err)
{
	if (!m || !req || !res || !req->cmdline || !req->e820 || (!req->kernel && req->kernel_len))
		return chv_err_set(err, -EINVAL, "%s: incomplete request", who);
	if (req->e820->n > E820_MAX)
		return chv_err_set(err, -EINVAL, "%s: e820 table has %u entries (max %d)", who,
				   req->e820->n, E820_MAX);
	return 0;
}

uint64_t loader_low_ram_end(const struct vm_mem *m)
{
	for (unsigned i = 0; i < m->nregions && i < VM_MEM_MAX_REGIONS; i++)
		if (m->region[i].gpa == 0)
			return m->region[i].size;
	return 0;
}

int loader_put_cmdline(struct vm_mem *m, const char *cmdline, uint64_t max_len, struct chv_err *err)
{
	size_t len = strlen(cmdline);

	if (max_len > LAYOUT_CMDLINE_MAX)
		max_len = LAYOUT_CMDLINE_MAX;
	if (len >= max_len)
		return chv_err_set(err, -EINVAL,
				   "--cmdline: %zu bytes is too long, the kernel accepts at most "
				   "%llu",
				   len, (unsigned long long)(max_len ? max_len - 1 : 0));
	if (vm_mem_write(m, LAYOUT_CMDLINE, cmdline, len + 1))
		return chv_err_set(
		    err, -EFAULT, "--memory: guest RAM is too small for the command line at 0x%llx",
		    (unsigned long long)LAYOUT_CMDLINE);
	return 0;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return v > UINT64_MAX - (a - 1) ? UINT64_MAX & ~(a - 1) : (v + a - 1) & ~(a - 1);
}

/* Highest page-aligned spot for size bytes in [lo, hi), or 0; *room gets the
 * largest size that would have fitted. */
static uint64_t fit_in_gap(uint64_t lo, uint64_t hi, uint64_t size, uint64_t *room)
{
	uint64_t start;

	*room = 0;
	lo = align_up(lo, LOADER_PAGE);
	if (hi <= lo)
		return 0;
	*room = hi - lo; /* only the start must be page aligned */
	if (size > *room)
		return 0;
	start = (hi - size) & ~(LOADER_PAGE - 1);
	return start >= lo ? start : 0;
}

int loader_put_initramfs(struct vm_mem *m, const struct load_request *req, uint64_t limit,
			 uint64_t kstart, uint64_t kend, uint64_t *gpa, struct chv_err *err)
{
	uint64_t top = loader_low_ram_end(m), size = req->initramfs_len;
	uint64_t floor = LAYOUT_HIGH_RAM_START, above_room, below_room, at;

	*gpa = 0;
	if (!req->initramfs)
		return 0;
	if (size == 0)
		return chv_err_set(err, -EINVAL, "--initramfs: the file is empty");
	if (limit < top)
		top = limit;

	/* The gap above the kernel is higher, so it wins when both fit. */
	at = fit_in_gap(kend > floor ? kend : floor, top, size, &above_room);
	if (!at)
		at = fit_in_gap(floor, kstart < top ? kstart : top, size, &below_room);
	else
		below_room = 0;
	if (!at)
		return chv_err_set(
		    err, -ENOSPC,
		    "--initramfs: %llu bytes do not fit in guest RAM below 0x%llx "
		    "beside the kernel [0x%llx, 0x%llx): %llu bytes are available "
		    "(raise --memory)",
		    (unsigned long long)size, (unsigned long long)top, (unsigned long long)kstart,
		    (unsigned long long)kend,
		    (unsigned long long)(above_room > below_room ? above_room : below_room));
	if (vm_mem_write(m, at, req->initramfs, size))
		return chv_err_set(err, -EFAULT, "--initramfs: cannot write %llu bytes at 0x%llx",
				   (unsigned long long)size, (unsigned long long)at);
	*gpa = at;
	return 0;
}

int loader_load(struct vm_mem *m, const struct load_request *req, struct load_result *res,
		struct chv_err *err)
{
	int rc = loader_check_request(m, req, res, "loader_load", err);

	if (rc)
		return rc;
	rc = loader_load_pvh(m, req, res, err);
	if (rc != -ENOEXEC)
		return rc;
	rc = loader_load_bzimage(m, req, res, err);
	if (rc != -ENOEXEC)
		return rc;
	return chv_err_set(err, -ENOEXEC,
			   "--kernel: not a PVH ELF (no XEN_ELFNOTE_PHYS32_ENTRY note) nor a "
			   "bzImage (no HdrS header)");
}
