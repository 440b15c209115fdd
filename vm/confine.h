/* Worker confinement: what a chvd worker gives up before any guest code can
 * run (docs/security.md). Two steps, both on the worker's control thread
 * while it is the process's only thread (credentials, capabilities and
 * Landlock domains are per thread; threads created later inherit them):
 *
 *   confine_close_fds() first: every inherited fd but stdio closed;
 *   confine_start()  at the worker's start, before its control socket and
 *                    its seccomp filter: no_new_privs, its own cgroup (best
 *                    effort), capabilities cut to those Create may need
 *                    (CAP_NET_ADMIN for a tap; CAP_SETUID/CAP_SETGID only
 *                    with --vm-user), the --vm-user account looked up;
 *   confine_vm()     at Create, once the VM's configuration is known:
 *                    the switch to --vm-user, the last capabilities
 *                    dropped (CAP_NET_ADMIN stays only for a VM with a
 *                    --net, as its tap is reopened on every guest reboot),
 *                    and, after the first build has opened everything,
 *                    confine_landlock() limits the file system to the VM's
 *                    own files.
 *
 * Required steps fail with err naming the step; optional ones (Landlock not
 * in the kernel, no writable cgroup) are logged and skipped. */
#ifndef CHV_VM_CONFINE_H
#define CHV_VM_CONFINE_H

#include <stdbool.h>
#include <sys/types.h>

#include "vm/config.h"
#include "vm/err.h"

struct confine_opts {
	const char *vm_user; /* NULL: keep the uid the worker was started with */
	bool no_cgroup;	     /* do not move into a cgroup of its own */
};

/* Closes every fd above 2 (what chvd, or whoever started the worker, let
 * leak): first thing in the worker, before it opens its log. */
chv_must_check int confine_close_fds(struct chv_err *err);

chv_must_check int confine_start(const struct confine_opts *o, struct chv_err *err);

/* The user switch and capability drop for the VM cfg describes. */
chv_must_check int confine_vm(const struct vm_config *cfg, struct chv_err *err);

/* Landlock: from now on the calling thread and the threads it creates may
 * open only cfg's files (kernel, initramfs, disks, rng source, console and
 * serial files and socket directories, /dev/kvm, /dev/net/tun with a --net)
 * and remove files in control_dir (its control socket's directory; NULL:
 * none). 0 also when the kernel has no Landlock (logged). */
chv_must_check int confine_landlock(const struct vm_config *cfg, const char *control_dir,
				    struct chv_err *err);

/* The Landlock ABI version of the running kernel, or a -errno (-ENOSYS,
 * -EOPNOTSUPP: none). */
int confine_landlock_abi(void);

/* The cgroup (v2) directory confine_start() moves worker pid into, below
 * the cgroup of the calling process (for chvd, its own: call it there to
 * remove a dead worker's directory). 0, or -ENOENT when there is none. */
int confine_cgroup_dir(pid_t pid, char *buf, size_t len);

#endif
