/* The loader targets' shared body (see fz_loader.h). */
#include "fz_loader.h"

#include <string.h>

#include "fz_common.h"
#include "vm/e820.h"

#define LOADER_RAM (4u << 20)

static struct vm_mem mem;
static struct e820_table e820;
static uint8_t initrd[6 * 4096];

static void setup(void)
{
	struct mem_layout l;
	struct chv_err err = {0};
	layout_compute(LOADER_RAM, &l);
	if (vm_mem_create(&mem, &l, false, false, &err))
		fz_fail("guest memory: %s", err.msg);
	e820_build(&l, &e820);
	for (size_t i = 0; i < sizeof(initrd); i++)
		initrd[i] = (uint8_t)(i * 7);
	fz_quiet_log();
}

void fz_load(const uint8_t *data, size_t size,
	     int (*load)(struct vm_mem *, const struct load_request *, struct load_result *,
			 struct chv_err *),
	     enum boot_proto proto)
{
	if (!mem.map)
		setup();
	size_t rd = (size % 7) * 4096;
	const struct load_request req = {
	    .kernel = data,
	    .kernel_len = size,
	    .initramfs = rd ? initrd : NULL,
	    .initramfs_len = rd,
	    .cmdline = "console=ttyS0 chv.fuzz=1",
	    .e820 = &e820,
	    .rsdp_gpa = LAYOUT_ACPI_START,
	};
	struct load_result res;
	struct chv_err err = {0};
	int rc = load(&mem, &req, &res, &err);
	if (rc) {
		if (rc > 0 || !err.msg[0])
			fz_fail("load failed with %d and message \"%s\"", rc, err.msg);
		fz_debug("refused: %s", err.msg);
		return;
	}
	if (res.proto != proto)
		fz_fail("loaded as protocol %d", res.proto);
	if (res.kernel_start >= res.kernel_end || res.kernel_start < LAYOUT_HIGH_RAM_START ||
	    !vm_mem_ptr(&mem, res.kernel_start, res.kernel_end - res.kernel_start))
		fz_fail("kernel [0x%llx, 0x%llx) is not in guest RAM above 1 MiB",
			(unsigned long long)res.kernel_start, (unsigned long long)res.kernel_end);
	if (res.entry < res.kernel_start || res.entry >= res.kernel_end)
		fz_fail("entry 0x%llx outside the kernel", (unsigned long long)res.entry);
	if (!vm_mem_ptr(&mem, res.boot_info, 64))
		fz_fail("boot information at 0x%llx", (unsigned long long)res.boot_info);
	if (rd) {
		const uint8_t *p = vm_mem_ptr(&mem, res.initramfs_gpa, rd);
		if (!p || res.initramfs_gpa % 4096)
			fz_fail("initramfs at 0x%llx", (unsigned long long)res.initramfs_gpa);
		if (res.initramfs_gpa < res.kernel_end && res.initramfs_gpa + rd > res.kernel_start)
			fz_fail("initramfs [0x%llx, +0x%zx) overlaps the kernel [0x%llx, 0x%llx)",
				(unsigned long long)res.initramfs_gpa, rd,
				(unsigned long long)res.kernel_start,
				(unsigned long long)res.kernel_end);
		if (memcmp(p, initrd, rd) != 0)
			fz_fail("initramfs contents overwritten");
	} else if (res.initramfs_gpa) {
		fz_fail("initramfs placed without one");
	}
	fz_debug("loaded: kernel [0x%llx, 0x%llx) entry 0x%llx initramfs 0x%llx",
		 (unsigned long long)res.kernel_start, (unsigned long long)res.kernel_end,
		 (unsigned long long)res.entry, (unsigned long long)res.initramfs_gpa);
}
