/* Helpers shared by the PVH and bzImage loaders; not part of vm/loader.h. */
#ifndef CHV_VM_LOADER_PRIV_H
#define CHV_VM_LOADER_PRIV_H

#include <stdint.h>

#include "vm/loader.h"

#define LOADER_PAGE 0x1000ULL
#define LOADER_4G   0x100000000ULL

/* The request is complete (memory, result, command line, e820 table that
 * fits the boot structures); -EINVAL naming who called otherwise. */
chv_must_check int loader_check_request(const struct vm_mem *m, const struct load_request *req,
					const struct load_result *res, const char *who,
					struct chv_err *err);

/* End of the RAM region that starts at guest-physical 0 (0 when none). */
uint64_t loader_low_ram_end(const struct vm_mem *m);

/* Copies req->cmdline to LAYOUT_CMDLINE; max_len counts the NUL and is
 * lowered to LAYOUT_CMDLINE_MAX. */
chv_must_check int loader_put_cmdline(struct vm_mem *m, const char *cmdline, uint64_t max_len,
				      struct chv_err *err);

/* Places req->initramfs page aligned, as high as possible in low RAM below
 * limit (exclusive) and at or above 1 MiB, outside [kstart, kend); copies it
 * there and stores its address in *gpa (0 when there is no initramfs). */
chv_must_check int loader_put_initramfs(struct vm_mem *m, const struct load_request *req,
					uint64_t limit, uint64_t kstart, uint64_t kend,
					uint64_t *gpa, struct chv_err *err);

#endif
