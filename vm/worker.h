/* chv-vmm --worker: one VM driven by chvd over a private SOCK_SEQPACKET
 * control socket (docs/daemon.md; api/chv/worker/v1/worker.proto). The
 * worker listens at the control path, serves one controller at a time (a new
 * connection replaces the old one: that is how a restarted chvd re-adopts a
 * VM that kept running), and exits 0 after a Shutdown request or SIGTERM. */
#ifndef CHV_VM_WORKER_H
#define CHV_VM_WORKER_H

#include <stdbool.h>

#include "vm/config.h"
#include "vm/err.h"

struct worker_opts {
	const char *control; /* the socket path (--control) */
	int verbosity;	     /* -v count, 0..3 */
	const char *log_file;
	enum seccomp_mode seccomp; /* --seccomp true|log|false (default true) */
	const char *vm_user;	   /* --vm-user USER: the uid the VM runs as */
};

/* True when argv asks for worker mode (any argument is "--worker"). */
bool worker_requested(int argc, char **argv);

/* Parses "--worker --control PATH [-v...] [--log-file PATH]
 * [--seccomp true|log|false] [--vm-user USER]" (nothing else; "--opt=value"
 * also works). The strings point into argv. 0 or -EINVAL with
 * err naming the option and the value. */
chv_must_check int worker_parse_args(struct worker_opts *o, int argc, char **argv,
				     struct chv_err *err);

/* Runs the worker until it is shut down; returns the process exit status
 * (0, or VMM_EXIT_CONFIG when the control socket cannot be set up). */
int worker_main(const struct worker_opts *o);

#endif
