/* Persistent VM definitions: <state_dir>/vms/<id>.pb holds a chv.v1.VmInfo
 * (config, state, failure reason, times), rewritten atomically on change. */
#ifndef CHV_DAEMON_STORE_H
#define CHV_DAEMON_STORE_H

#include "chv/v1/vm.pb-c.h"
#include "vm/err.h"

chv_must_check int store_init(const char *state_dir, struct chv_err *err);
/* Writes info (tmp file, fsync, rename). */
int store_save(const Chv__V1__VmInfo *info);
int store_remove(const char *id);
/* Calls fn for every stored definition that decodes (bad files are logged
 * and skipped); fn takes ownership of info. Returns the count loaded. */
int store_load_all(void (*fn)(void *ctx, Chv__V1__VmInfo *info), void *ctx);

#endif
