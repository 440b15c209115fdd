/* bzImage loader: Linux boot protocol 2.12+, entered at the 64-bit entry
 * point (load address + 0x200) with rsi pointing at the zero page. The
 * real-mode setup code is never run, so only the setup header matters. */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "vm/bootparam.h"
#include "vm/loader.h"
#include "vm/loader_priv.h"

#define BZ_MIN_IMAGE   1024
#define BZ_LOAD_ADDR   LAYOUT_HIGH_RAM_START
#define BZ_INITRD_DFLT 0x37ffffffULL /* initrd_addr_max before it was declared */

_Static_assert(E820_MAX <= BP_E820_MAX, "the zero page holds every e820 entry");
_Static_assert(LAYOUT_ZERO_PAGE + sizeof(struct boot_params) <= LAYOUT_BOOT_STACK,
	       "zero page overlaps the boot stack");

/* The header fields the loader uses, in host order. */
struct bz_hdr {
	uint8_t setup_sects, loadflags, relocatable;
	uint16_t boot_flag, version, xloadflags;
	uint32_t syssize, initrd_addr_max, kernel_alignment, cmdline_size, init_size;
	uint64_t pref_address;
};

static void read_hdr(const uint8_t *img, struct bz_hdr *h)
{
	struct setup_header raw;

	/* The image is at least BZ_MIN_IMAGE bytes, past the end of the header. */
	memcpy(&raw, img + BP_HDR_OFFSET, sizeof(raw));
	h->setup_sects = raw.setup_sects;
	h->loadflags = raw.loadflags;
	h->relocatable = raw.relocatable_kernel;
	h->boot_flag = le16toh(raw.boot_flag);
	h->version = le16toh(raw.version);
	h->xloadflags = le16toh(raw.xloadflags);
	h->syssize = le32toh(raw.syssize);
	h->initrd_addr_max = le32toh(raw.initrd_addr_max);
	h->kernel_alignment = le32toh(raw.kernel_alignment);
	h->cmdline_size = le32toh(raw.cmdline_size);
	h->init_size = le32toh(raw.init_size);
	h->pref_address = le64toh(raw.pref_address);
}

static int check_hdr(const struct bz_hdr *h, size_t len, uint64_t *pm_off, struct chv_err *err)
{
	unsigned sects = h->setup_sects ? h->setup_sects : BP_DEFAULT_SECTS;

	if (h->boot_flag != BP_BOOT_FLAG)
		return chv_err_set(err, -EINVAL,
				   "--kernel: bzImage boot_flag is 0x%04x, not 0xaa55",
				   h->boot_flag);
	if (h->version < BP_MIN_VERSION)
		return chv_err_set(
		    err, -EINVAL,
		    "--kernel: Linux boot protocol %u.%02u is too old (2.12 or later "
		    "is needed for the 64-bit entry)",
		    h->version >> 8, h->version & 0xff);
	if (!(h->xloadflags & XLF_KERNEL_64))
		return chv_err_set(err, -EINVAL,
				   "--kernel: bzImage has no 64-bit entry point (xloadflags 0x%x "
				   "lacks XLF_KERNEL_64)",
				   h->xloadflags);
	if (!(h->loadflags & LOADED_HIGH))
		return chv_err_set(err, -EINVAL,
				   "--kernel: loadflags 0x%x lacks LOADED_HIGH: a zImage loaded at "
				   "0x10000 is not supported",
				   h->loadflags);
	*pm_off = (uint64_t)(sects + 1) * BP_SECTOR;
	if (*pm_off >= len)
		return chv_err_set(err, -EINVAL,
				   "--kernel: setup_sects %u puts the kernel at offset 0x%llx, "
				   "beyond the %zu-byte image",
				   h->setup_sects, (unsigned long long)*pm_off, len);
	/* The 64-bit entry point must lie in the code that gets loaded. */
	if (len - *pm_off <= BP_ENTRY64_OFFSET)
		return chv_err_set(err, -EINVAL,
				   "--kernel: the %llu-byte kernel ends before its 64-bit entry "
				   "point at offset 0x%x",
				   (unsigned long long)(len - *pm_off), BP_ENTRY64_OFFSET);
	/* syssize counts 16-byte paragraphs, rounded up, so the last one may be
	 * partial; a file longer than syssize says (an appended signature) is
	 * fine, one that ends before the last paragraph starts is cut. */
	if (h->syssize == 0 || ((uint64_t)h->syssize - 1) * 16 >= len - *pm_off)
		return chv_err_set(
		    err, -EINVAL,
		    "--kernel: syssize %u (%llu bytes) does not match the %llu bytes "
		    "of kernel in the image",
		    h->syssize, (unsigned long long)h->syssize * 16,
		    (unsigned long long)(len - *pm_off));
	if (h->relocatable &&
	    (h->kernel_alignment == 0 || (h->kernel_alignment & (h->kernel_alignment - 1))))
		return chv_err_set(err, -EINVAL,
				   "--kernel: kernel_alignment 0x%x is not a power of two",
				   h->kernel_alignment);
	return 0;
}

/* The kernel decompresses itself to max(load address aligned up to
 * kernel_alignment, pref_address) and needs init_size bytes from there; the
 * loaded image itself starts at BZ_LOAD_ADDR. */
static int kernel_extent(const struct bz_hdr *h, uint64_t pm_len, uint64_t low_end, uint64_t *kend,
			 struct chv_err *err)
{
	uint64_t align = h->relocatable ? h->kernel_alignment : 1;
	uint64_t run = (BZ_LOAD_ADDR + align - 1) & ~(align - 1);

	if (h->pref_address > run)
		run = h->pref_address;
	if (low_end <= BZ_LOAD_ADDR || pm_len > low_end - BZ_LOAD_ADDR)
		return chv_err_set(
		    err, -ENOSPC,
		    "--kernel: the %llu-byte kernel does not fit at 0x%llx: RAM below "
		    "4 GiB ends at 0x%llx (raise --memory)",
		    (unsigned long long)pm_len, (unsigned long long)BZ_LOAD_ADDR,
		    (unsigned long long)low_end);
	if (run >= low_end || h->init_size > low_end - run)
		return chv_err_set(
		    err, -ENOSPC,
		    "--kernel: the kernel needs init_size 0x%x bytes from 0x%llx but "
		    "RAM below 4 GiB ends at 0x%llx (raise --memory)",
		    h->init_size, (unsigned long long)run, (unsigned long long)low_end);
	*kend = run + h->init_size;
	if (BZ_LOAD_ADDR + pm_len > *kend)
		*kend = BZ_LOAD_ADDR + pm_len;
	return 0;
}

static int write_zero_page(struct vm_mem *m, const struct load_request *req, uint64_t initrd,
			   struct chv_err *err)
{
	/* Packed, so it can be filled in place whatever the alignment. */
	struct boot_params *bp = vm_mem_ptr(m, LAYOUT_ZERO_PAGE, sizeof(*bp));
	const struct e820_table *t = req->e820;
	uint64_t hdr_end = BP_HDR_JUMP_END + req->kernel[BP_HDR_JUMP_END - 1];
	uint64_t rd_size = initrd ? req->initramfs_len : 0;

	if (!bp)
		return chv_err_set(err, -EFAULT,
				   "--memory: guest RAM is too small for the zero page at 0x%llx",
				   (unsigned long long)LAYOUT_ZERO_PAGE);
	memset(bp, 0, sizeof(*bp));
	/* The header's own length is the byte after its 2-byte jump at 0x200. */
	if (hdr_end > BP_HDR_SPACE_END)
		hdr_end = BP_HDR_SPACE_END;
	memcpy((uint8_t *)bp + BP_HDR_OFFSET, req->kernel + BP_HDR_OFFSET, hdr_end - BP_HDR_OFFSET);

	/* loadflags are left as the kernel set them: CAN_USE_HEAP and
	 * heap_end_ptr describe the real-mode setup code's heap, which the
	 * 64-bit entry never runs. */
	bp->hdr.type_of_loader = BP_LOADER_UNKNOWN;
	bp->hdr.code32_start = htole32((uint32_t)BZ_LOAD_ADDR);
	bp->hdr.cmd_line_ptr = htole32((uint32_t)LAYOUT_CMDLINE);
	bp->ext_cmd_line_ptr = 0;
	bp->hdr.ramdisk_image = htole32((uint32_t)initrd);
	bp->ext_ramdisk_image = htole32((uint32_t)(initrd >> 32));
	bp->hdr.ramdisk_size = htole32((uint32_t)rd_size);
	bp->ext_ramdisk_size = htole32((uint32_t)(rd_size >> 32));
	bp->acpi_rsdp_addr = htole64(req->rsdp_gpa);
	bp->e820_entries = (uint8_t)t->n;
	for (unsigned i = 0; i < t->n; i++) {
		bp->e820_table[i].addr = htole64(t->e[i].addr);
		bp->e820_table[i].size = htole64(t->e[i].size);
		bp->e820_table[i].type = htole32(t->e[i].type);
	}
	return 0;
}

int loader_load_bzimage(struct vm_mem *m, const struct load_request *req, struct load_result *res,
			struct chv_err *err)
{
	uint64_t pm_off = 0, pm_len, kend = 0, initrd, limit;
	const uint8_t *img;
	struct bz_hdr h;
	uint32_t magic;
	size_t len;
	int rc;

	rc = loader_check_request(m, req, res, "loader_load_bzimage", err);
	if (rc)
		return rc;
	img = req->kernel;
	len = img ? req->kernel_len : 0;
	if (len >= BP_HDR_JUMP_END + sizeof(magic))
		memcpy(&magic, img + BP_HDR_JUMP_END, sizeof(magic));
	if (len < BP_HDR_JUMP_END + sizeof(magic) || le32toh(magic) != BP_HDRS_MAGIC)
		return chv_err_set(err, -ENOEXEC, "--kernel: not a bzImage (no HdrS header)");
	if (len < BZ_MIN_IMAGE)
		return chv_err_set(err, -EINVAL,
				   "--kernel: bzImage truncated: %zu bytes, at least %d expected",
				   len, BZ_MIN_IMAGE);
	read_hdr(img, &h);
	rc = check_hdr(&h, len, &pm_off, err);
	if (rc)
		return rc;
	pm_len = len - pm_off;
	rc = kernel_extent(&h, pm_len, loader_low_ram_end(m), &kend, err);
	if (rc)
		return rc;

	rc = loader_put_cmdline(m, req->cmdline, (uint64_t)h.cmdline_size + 1, err);
	if (rc)
		return rc;
	if (h.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G)
		limit = UINT64_MAX;
	else
		limit = (h.initrd_addr_max ? h.initrd_addr_max : BZ_INITRD_DFLT) + 1ULL;
	rc = loader_put_initramfs(m, req, limit, BZ_LOAD_ADDR, kend, &initrd, err);
	if (rc)
		return rc;
	if (vm_mem_write(m, BZ_LOAD_ADDR, img + pm_off, pm_len))
		return chv_err_set(err, -EFAULT, "--kernel: cannot write the kernel at 0x%llx",
				   (unsigned long long)BZ_LOAD_ADDR);
	rc = write_zero_page(m, req, initrd, err);
	if (rc)
		return rc;

	*res = (struct load_result){
	    .proto = BOOT_LINUX64,
	    .entry = BZ_LOAD_ADDR + BP_ENTRY64_OFFSET,
	    .boot_info = LAYOUT_ZERO_PAGE,
	    .kernel_start = BZ_LOAD_ADDR,
	    .kernel_end = kend,
	    .initramfs_gpa = initrd,
	};
	return 0;
}
