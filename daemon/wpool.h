/* Pre-started workers: chvd keeps a few `chv-vmm --worker` processes idle in
 * <runtime>/pool/<chvd-pid>-<n>.sock, connected already, so that Create skips the
 * worker's exec, dynamic loading and first connect. A background thread
 * keeps the pool full and replaces workers that die while idle; nothing
 * here ever runs on a caller's path except taking one. */
#ifndef CHV_DAEMON_WPOOL_H
#define CHV_DAEMON_WPOOL_H

#include <sys/types.h>

#include "daemon/wconn.h"
#include "vm/err.h"

struct wpool_config {
	const char *vmm_path;
	const char *runtime_dir; /* the pool lives in <runtime_dir>/pool */
	unsigned size;		 /* idle workers kept; 0: no pool */
};

/* Kills the idle workers a previous chvd left in the pool directory and
 * starts the refill thread (none when size is 0). Needs the wconn
 * supervisor running. */
chv_must_check int wpool_start(const struct wpool_config *c, struct chv_err *err);

/* Takes an idle worker for a VM: from now on its callbacks go to ops/ctx
 * and its log file is renamed to log_to. Its control socket is still in
 * the pool: the Create request moves it (control_path). -EAGAIN when none is
 * ready (the caller starts one itself). */
chv_must_check int wpool_take(const struct wconn_ops *ops, void *ctx, const char *log_to,
			      struct wconn **w, pid_t *pid);

/* Idle workers now, for logs and tests. */
unsigned wpool_idle(void);

/* Stops the refill thread and kills the idle workers. */
void wpool_stop(void);

#endif
