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
 * Not wired into the threads yet: see the plan at the top of vm/seccomp.c. */
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

#endif
