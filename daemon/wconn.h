/* chvd's side of the worker protocol: spawning chv-vmm workers, the control
 * connection to each, request/reply matching, and one supervisor thread that
 * reads every worker's socket (replies, notices, death). */
#ifndef CHV_DAEMON_WCONN_H
#define CHV_DAEMON_WCONN_H

#include <stdbool.h>
#include <sys/types.h>

#include "chv/worker/v1/worker.pb-c.h"
#include "vm/err.h"

struct wconn;

struct wconn_ops {
	/* On the supervisor thread. */
	void (*on_notice)(void *ctx, const Chv__Worker__V1__Notice *n);
	/* Once, when the connection ends (the worker exited or closed it);
	 * reason says how (exit status or signal when the worker is our child,
	 * with the worker's last word from its log: the system call a seccomp
	 * filter killed it for, or the error it exited with). */
	void (*on_dead)(void *ctx, const char *reason);
};

/* Starts the supervisor thread. */
chv_must_check int wconn_supervisor_start(struct chv_err *err);
void wconn_supervisor_stop(void);

/* What every worker spawned from now on gets on its command line: chvd's
 * --seccomp (true, log or false; NULL: true) and --vm-user (NULL: none).
 * The strings are kept, not copied: they must live as long as chvd. */
void wconn_set_worker_options(const char *seccomp, const char *vm_user);

/* Spawns `vmm --worker --control sock_path [--seccomp M] [--vm-user U]` in
 * its own session, stdout and stderr to log_path, and waits until its socket
 * accepts (timeout_ms). */
chv_must_check int wconn_spawn(const char *vmm, const char *sock_path, const char *log_path,
			       int timeout_ms, pid_t *pid, struct chv_err *err);

/* Kills and reaps a worker wconn_spawn() started that has no connection
 * (wconn_connect() failed), and removes its cgroup directory. */
void wconn_kill_spawned(pid_t pid);

/* Connects to a worker's socket; pid 0 when unknown (re-adopted worker).
 * log_path: the worker's log, where the reason for its death is read
 * (NULL: unknown). */
chv_must_check int wconn_connect(struct wconn **out, const char *sock_path, pid_t pid,
				 const char *log_path, const struct wconn_ops *ops, void *ctx,
				 struct chv_err *err);

/* Sends req (seq is assigned) and waits for its reply (free with
 * chv__worker__v1__reply__free_unpacked). -ETIMEDOUT, -EPIPE (worker gone). */
chv_must_check int wconn_request(struct wconn *w, Chv__Worker__V1__Request *req,
				 Chv__Worker__V1__Reply **reply, int timeout_ms);

/* The same in two steps, so the caller can work while the worker does:
 * wconn_begin sends (req->seq assigned) and returns a handle that
 * wconn_finish, which must follow (also on the caller's error paths), waits
 * on and frees. */
struct wconn_call;
chv_must_check int wconn_begin(struct wconn *w, Chv__Worker__V1__Request *req,
			       struct wconn_call **call);
chv_must_check int wconn_finish(struct wconn *w, struct wconn_call *call,
				Chv__Worker__V1__Reply **reply, int timeout_ms);

/* Hands the connection to another owner: from when this returns, the new
 * ops and ctx get the callbacks (the old ones none). False when the
 * connection has already ended (the worker died): it is not handed over. */
bool wconn_rebind(struct wconn *w, const struct wconn_ops *ops, void *ctx);

/* Sends without waiting (console input). */
int wconn_send(struct wconn *w, Chv__Worker__V1__Request *req);

pid_t wconn_pid(const struct wconn *w);

/* The worker's log moved (a pool worker taken for a VM): where the reason
 * for a death by a seccomp violation is read from. */
void wconn_set_log(struct wconn *w, const char *log_path);
/* Closes our end; the worker keeps running. on_dead is not called after this
 * returns. Safe on NULL. */
void wconn_close(struct wconn *w);

#endif
