/* The two loader targets' shared body: the input is the kernel image. */
#ifndef CHV_FZ_LOADER_H
#define CHV_FZ_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "vm/loader.h"

/* Loads data with load (loader_load_pvh or loader_load_bzimage) into a
 * 4 MiB guest; an initramfs of (size % 7) pages goes along (none for 0),
 * so both placements are exercised without taking bytes from the image.
 * A successful load is checked against the guest's RAM. */
void fz_load(const uint8_t *data, size_t size,
	     int (*load)(struct vm_mem *, const struct load_request *, struct load_result *,
			 struct chv_err *),
	     enum boot_proto proto);

#endif
