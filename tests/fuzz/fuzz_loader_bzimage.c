/* The bzImage loader (vm/loader_bzimage.c): the input is the kernel image;
 * see fz_loader.h for the guest and the checks after a successful load. */
#include "fz_common.h"
#include "fz_loader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_load(data, size, loader_load_bzimage, BOOT_LINUX64);
	return 0;
}
