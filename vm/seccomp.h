/* System call filters (seccomp, through libseccomp), one allow-list per kind
 * of thread. A thread installs its own filter on itself, once it has done its
 * set-up and before it touches anything the guest controls; the filter binds
 * that thread only (no TSYNC), so each kind keeps its own list.
 *
 * Modes (vm/config.h, --seccomp):
 *   SECCOMP_TRUE   a forbidden call prints "chv: seccomp: <thread> thread made
 *                  the forbidden system call <name> (<nr>)" on standard error
 *                  and the whole process dies of SIGSYS (<thread> is "?"
 *                  in a thread that only inherited its creator's filter);
 *   SECCOMP_LOG    a forbidden call is let through and the kernel logs it
 *                  (audit log / dmesg);
 *   SECCOMP_FALSE  nothing is installed.
 *
 * Where each thread installs its filter: the comment at the top of
 * vm/seccomp.c, and docs/security.md. */
#ifndef CHV_VM_SECCOMP_H
#define CHV_VM_SECCOMP_H

#include "vm/config.h"
#include "vm/err.h"

enum seccomp_thread {
	SECCOMP_VCPU,	     /* vcpu.c: KVM_RUN and the exits it handles */
	SECCOMP_DEVICE_LOOP, /* virtio_devices.c: the virtio queue event loop */
	SECCOMP_IO_WORKER,   /* virtio/blk_io.c: block I/O pool and io_uring reaper */
	SECCOMP_CONTROL,     /* chv-vmm's main thread / worker.c's control loop */
	SECCOMP_SIGNAL,	     /* chv-vmm.c: the sigwait thread */
	SECCOMP_SINK,	     /* sink.c: the serial/console byte pump */
	SECCOMP_THREAD__COUNT
};

/* "vcpu", "device-loop", ...; "?" for a value out of range. */
const char *chv_seccomp_thread_name(enum seccomp_thread t);

/* Installs the filter for thread kind t on the calling thread in the given
 * mode. In SECCOMP_TRUE mode it also installs the process's SIGSYS handler
 * (once) and unblocks SIGSYS in the calling thread: a blocked SIGSYS would
 * kill silently. Sets no_new_privs on the calling thread. 0, or -EINVAL (t or
 * mode out of range) / the libseccomp error, with err saying which. */
chv_must_check int chv_seccomp_install(enum seccomp_thread t, enum seccomp_mode mode,
				       struct chv_err *err);

/* The process's mode, set once at start from its command line (chv-vmm
 * --seccomp; a chvd worker's --seccomp; both default to true). Until it is
 * set: SECCOMP_FALSE, so a library user that never asks gets no filter. */
void chv_seccomp_set_mode(enum seccomp_mode mode);
enum seccomp_mode chv_seccomp_mode(void);

/* A --seccomp value (chv-vmm, chvd and its workers alike): "log", or a
 * boolean as every option takes them (true/false, on/off, ...): 0, or
 * -EINVAL. chv_seccomp_mode_name() gives "true", "log" or "false". */
chv_must_check int chv_seccomp_mode_parse(const char *v, enum seccomp_mode *mode);
const char *chv_seccomp_mode_name(enum seccomp_mode m);

/* chv_seccomp_install(t, chv_seccomp_mode()) with a debug log line; on
 * failure err says which thread and why (err may be NULL: the message is
 * logged as an error either way). */
chv_must_check int chv_seccomp_thread(enum seccomp_thread t, struct chv_err *err);

/* For a thread that has no VM to fail (the device event loop): on an
 * install failure the message goes to the log and standard error and the
 * process exits with VMM_EXIT_FAILED, as chv-vmm does for a failed VM. */
void chv_seccomp_thread_or_exit(enum seccomp_thread t);

/* The blk_io thread-start hook (blk_io_set_thread_start): installs the
 * io-worker filter in the process's mode. ctx is unused. */
int chv_seccomp_blk_hook(void *ctx, struct chv_err *err);

/* Test only (tests/integration/t_seccomp.sh): when the environment variable
 * CHV_TEST_SECCOMP_VIOLATION equals who, the calling thread makes a system
 * call no filter allows (ptrace PEEKDATA of pid 1, harmless when it is let
 * through). A no-op otherwise; never set in production. */
#define CHV_SECCOMP_TEST_ENV "CHV_TEST_SECCOMP_VIOLATION"
void chv_seccomp_test_violation(const char *who);

#endif
