/* chvd's own system call filter.
 *
 * chvd runs gRPC (its threads and their system calls are gRPC's business and
 * change between releases), spawns workers and talks to them, so an
 * allow-list would break with the library. What chvd never needs is easier
 * to name: a deny-list of the calls an attacker who took over the daemon
 * would want (debugging other processes, mounting, loading kernel code or
 * BPF, changing the clock, new namespaces, ...). They fail with EPERM, so a
 * stray call inside a library is an error, never a dead daemon; every
 * thread gets the filter at once (TSYNC), and the workers inherit it under
 * their own per-thread allow-lists.
 *
 * Modes follow --seccomp: true (EPERM), log (let through and logged by the
 * kernel), false (nothing installed). */
#ifndef CHV_DAEMON_SANDBOX_H
#define CHV_DAEMON_SANDBOX_H

#include "vm/config.h"
#include "vm/err.h"

chv_must_check int chvd_sandbox(enum seccomp_mode mode, struct chv_err *err);

/* Test only: with CHV_TEST_SECCOMP_VIOLATION=chvd in the environment, makes
 * one denied call (acct(NULL), harmless when let through) and returns its
 * result: 0 or -errno. -ENOSYS when the variable is not set. */
int chvd_sandbox_probe(void);

#endif
