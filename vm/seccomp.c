/* Per-thread seccomp allow-lists.
 *
 * How the lists were made: `strace -f` of chv-vmm running the test guest
 * (chv-testguest.elf with chv.rng=1, and with a --disk and the blk checks)
 * and of the chvd workers in tests/integration/t_chvd_lifecycle.sh, split by
 * thread, plus a reading of what each thread's code can reach (vcpu.c's exit
 * handlers and the device callbacks they run, virtio_devices.c's event loop,
 * pci_setup.c's MSI-X glue, virtio/blk_io.c, sink.c, chv-vmm.c, worker.c).
 * Calls made only while a thread starts (rseq, set_robust_list, prctl
 * PR_SET_NAME) happen before its own filter and are not in its list.
 *
 * Kill path (SECCOMP_TRUE). SCMP_ACT_KILL_PROCESS alone would leave nothing
 * to say which call it was, so the default action is SCMP_ACT_TRAP: the
 * kernel skips the call and sends SIGSYS to the thread; our handler writes
 * the thread kind, syscall name and number to standard error with write(2)
 * only (async-signal-safe, names come from a table filled before any filter
 * exists), then makes the one call every filter maps to KILL_PROCESS
 * (KILL_TRIGGER below). The process then dies of SIGSYS, as a plain
 * KILL_PROCESS would, so a supervisor (chvd) sees WTERMSIG == SIGSYS and the
 * message is on the worker's standard error. The handler needs no call
 * beyond write, so it cannot itself trip the filter; it never returns into
 * the thread.
 *
 * Filters stack: a thread inherits its creator's and adds its own, and both
 * apply. The control thread creates all the others, so its list is the
 * union of every kind's plus its own (add_rules).
 *
 * Wiring (docs/security.md). The mode is a process option
 * (chv_seccomp_set_mode: chv-vmm --seccomp, and chvd --seccomp passed on each
 * worker's command line); each thread calls chv_seccomp_thread(kind) as the
 * first thing after its set-up: vcpu_thread() after its signal mask
 * (SECCOMP_VCPU), event_loop() (SECCOMP_DEVICE_LOOP), sink_thread()
 * (SECCOMP_SINK), chv-vmm's signal_thread() (SECCOMP_SIGNAL), chv-vmm's main
 * thread just before run_vm() and the worker just before worker_loop()
 * (SECCOMP_CONTROL). blk_io's pool workers and reaper (SECCOMP_IO_WORKER)
 * live in chv_virtio, below chv_vm: they run a thread-start hook
 * (blk_io_set_thread_start) that the VM layer sets to
 * chv_seccomp_blk_hook. An install failure is a VM failure with err's
 * message. Check a change with --seccomp log and the audit log (each SECCOMP
 * record is a missing entry), and with tests/unit/test_seccomp.c, which
 * runs each kind's real code paths under its filter. */
#include "vm/seccomp.h"

#include "vm/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <linux/sockios.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "vm/optparse.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The call the SIGSYS handler makes to get the process killed. uselib is
 * obsolete (no chv code, glibc or the kernel's own users call it), so
 * mapping it to KILL_PROCESS costs nothing. */
#define KILL_TRIGGER SCMP_SYS(uselib)

/* ---- The groups. Each thread kind is a union of some of them. ---- */

/* What any thread needs to exist: locks and condition variables (futex),
 * malloc (brk, mmap, munmap, mremap, madvise; mprotect when an arena grows),
 * leaving (exit; exit_group if a thread ends the process), signal plumbing
 * (rt_sigreturn after the vCPU kick handler, rt_sigprocmask in pthread
 * exit), clocks and sleeps (the log's timestamps; vDSO misses land here),
 * the log itself (write/writev to stderr or --log-file), and sigaltstack,
 * which the sanitizer runtimes (CHV_SANITIZE) call when a thread ends. mmap
 * and mprotect are added separately: never with PROT_EXEC. */
static const int grp_runtime[] = {
    SCMP_SYS(futex),	       SCMP_SYS(brk),		SCMP_SYS(munmap),
    SCMP_SYS(mremap),	       SCMP_SYS(madvise),	SCMP_SYS(exit),
    SCMP_SYS(exit_group),      SCMP_SYS(rt_sigreturn),	SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(restart_syscall), SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep),       SCMP_SYS(gettid),	SCMP_SYS(getpid),
    SCMP_SYS(sched_yield),     SCMP_SYS(write),		SCMP_SYS(writev),
    SCMP_SYS(sigaltstack),
};

/* Raising guest interrupts, from wherever a device completes a request
 * (vCPU exit handlers, the event loop, I/O workers): pci_setup.c's MSI-X glue
 * writes the vector's irqfd, and on a vector's first use creates the eventfd
 * and routes it (KVM_SET_GSI_ROUTING, KVM_IRQFD below); legacy devices pulse
 * KVM_IRQ_LINE. close drops an eventfd whose irqfd failed. */
static const int grp_irq[] = {
    SCMP_SYS(eventfd2),
    SCMP_SYS(close),
};
static const unsigned long ioc_irq[] = {
    KVM_IRQ_LINE,
    KVM_SET_GSI_ROUTING,
    KVM_IRQFD,
};

/* The vCPU itself: KVM_RUN, and the register reads of vcpu_dump() when an
 * exit fails (internal error, failed entry, triple fault). A virtio queue
 * enable, written by the guest, (de)assigns the queue's ioeventfd. Nothing
 * here creates VMs or vCPUs, maps memory or changes CPUID/MSRs. */
static const unsigned long ioc_vcpu[] = {
    KVM_RUN,
    KVM_GET_REGS,
    KVM_GET_SREGS,
    KVM_IOEVENTFD,
};

/* virtio-net activation, when the guest sets DRIVER_OK (on a vCPU, or on
 * the event loop when it serves the transport): the tap gets the
 * negotiated offloads and the virtio-net header size. */
static const unsigned long ioc_net_activate[] = {
    TUNSETOFFLOAD,
    TUNSETVNETHDRSZ,
};

/* vCPU-side device emulation: reads of a device's backing fd (the rng's
 * source when its queue is served inline), pausing and stopping (vm_stop
 * kicks the other vCPUs with pthread_kill: tgkill, added with its target
 * pinned to this process). In worker mode the serial output callback runs
 * here and arms the console flush timer (timerfd_settime; seen in strace of
 * a chvd worker). A rate limiter's refill timer is armed and read from
 * whichever thread serves the queue (timerfd_settime/gettime, read); a
 * virtio-net queue served inline writes frames to the tap (writev, in the
 * runtime group) and a device activated here registers its fds with the
 * event loop (epoll_ctl). */
static const int grp_vcpu[] = {
    SCMP_SYS(read),	 SCMP_SYS(readv), SCMP_SYS(timerfd_settime), SCMP_SYS(timerfd_gettime),
    SCMP_SYS(epoll_ctl),
};

/* The event loop: waits on the queue eventfds, reads them, serves the
 * queues: the rng reads its source (readv), virtio-net moves frames through
 * the tap (read, readv, writev), virtio-blk without workers does the I/O
 * inline (preadv/pwritev/pwrite, fdatasync, fallocate for
 * discard/write-zeroes) or submits it to io_uring (io_uring_enter); rate
 * limiters arm and read their refill timerfds. */
static const int grp_device_loop[] = {
    SCMP_SYS(epoll_wait),     SCMP_SYS(epoll_pwait),	 SCMP_SYS(epoll_ctl),
    SCMP_SYS(read),	      SCMP_SYS(readv),		 SCMP_SYS(preadv),
    SCMP_SYS(pwritev),	      SCMP_SYS(pwrite64),	 SCMP_SYS(pread64),
    SCMP_SYS(fdatasync),      SCMP_SYS(fsync),		 SCMP_SYS(fallocate),
    SCMP_SYS(io_uring_enter), SCMP_SYS(timerfd_settime), SCMP_SYS(timerfd_gettime),
};

/* Block I/O workers (blk_io.c): the thread pool does positional vector I/O,
 * flushes and discards; the io_uring reaper waits for completions
 * (io_uring_enter) and wakes the submitter through an eventfd (read). fstat
 * is the size check of a regular image. A disk's rate limiter, charged when
 * a request completes, re-arms its refill timerfd here. */
static const int grp_io_worker[] = {
    SCMP_SYS(read),
    SCMP_SYS(preadv),
    SCMP_SYS(pwritev),
    SCMP_SYS(pread64),
    SCMP_SYS(pwrite64),
    SCMP_SYS(fdatasync),
    SCMP_SYS(fsync),
    SCMP_SYS(fallocate),
    SCMP_SYS(io_uring_enter),
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(timerfd_settime),
    SCMP_SYS(timerfd_gettime),
};

/* The signal thread: sigwait, then vm_stop() (locks, and tgkill to kick the
 * vCPUs). strsignal() needs nothing from the kernel. */
static const int grp_signal[] = {
    SCMP_SYS(rt_sigtimedwait),
};

/* The serial/console sink: poll on the wake eventfd, the client socket and
 * the output fd; accept4 on --serial socket=PATH; read input from the client
 * or the tty, write output; close a client that went away; fstat the
 * output at (re)connection. */
static const int grp_sink[] = {
    SCMP_SYS(poll),  SCMP_SYS(ppoll), SCMP_SYS(read),	    SCMP_SYS(accept4),
    SCMP_SYS(close), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(fcntl),
};

/* The control thread builds (and, on a guest reboot, rebuilds) the whole VM,
 * and in worker mode serves chvd's SEQPACKET control socket: open the
 * payload, disks, tap and /dev/kvm; memfd_create/ftruncate/mmap guest RAM;
 * create threads (clone with CLONE_THREAD only, see allow_threads); epoll
 * over the control socket; sendmsg/recvmsg with SCM_RIGHTS; the worker's
 * console flush timer and signalfd. Never: execve, ptrace, fork, network
 * sockets other than the tap's configuration socket, mount, namespaces,
 * module or kexec calls. */
static const int grp_control[] = {
    SCMP_SYS(openat),
    SCMP_SYS(open),
    SCMP_SYS(close),
    SCMP_SYS(read),
    SCMP_SYS(readv),
    SCMP_SYS(pread64),
    SCMP_SYS(pwrite64),
    SCMP_SYS(preadv),
    SCMP_SYS(pwritev),
    SCMP_SYS(lseek),
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(statx),
    SCMP_SYS(access),
    SCMP_SYS(faccessat),
    SCMP_SYS(faccessat2),
    SCMP_SYS(fcntl),
    SCMP_SYS(flock),
    SCMP_SYS(ftruncate),
    SCMP_SYS(fallocate),
    SCMP_SYS(fdatasync),
    SCMP_SYS(fsync),
    SCMP_SYS(memfd_create),
    SCMP_SYS(eventfd2),
    SCMP_SYS(epoll_create1),
    SCMP_SYS(epoll_ctl),
    SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait),
    SCMP_SYS(poll),
    SCMP_SYS(ppoll),
    SCMP_SYS(accept4),
    SCMP_SYS(bind),
    SCMP_SYS(listen),
    SCMP_SYS(connect),
    SCMP_SYS(sendmsg),
    SCMP_SYS(recvmsg),
    SCMP_SYS(sendto),
    SCMP_SYS(recvfrom),
    SCMP_SYS(getsockopt),
    SCMP_SYS(setsockopt),
    SCMP_SYS(shutdown),
    SCMP_SYS(unlink),
    SCMP_SYS(unlinkat),
    SCMP_SYS(rename),
    SCMP_SYS(renameat),
    SCMP_SYS(renameat2),
    SCMP_SYS(umask),
    /* A console/serial socket is made owner-only after bind (sink.c); found
     * by test_seccomp's sink run under the control filter. */
    SCMP_SYS(chmod),
    SCMP_SYS(fchmodat),
    SCMP_SYS(getrandom),
    SCMP_SYS(rt_sigaction),
    SCMP_SYS(rt_sigtimedwait),
    SCMP_SYS(wait4),
    SCMP_SYS(prlimit64),
    SCMP_SYS(getrlimit),
    SCMP_SYS(sched_getaffinity),
    SCMP_SYS(io_uring_setup),
    SCMP_SYS(io_uring_enter),
    SCMP_SYS(io_uring_register),
    SCMP_SYS(mbind),
    SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq),
    SCMP_SYS(getuid),
    SCMP_SYS(geteuid),
    SCMP_SYS(getgid),
    SCMP_SYS(getegid),
    SCMP_SYS(uname),
    SCMP_SYS(timerfd_create),
    SCMP_SYS(timerfd_settime),
    SCMP_SYS(timerfd_gettime),
    SCMP_SYS(signalfd4),
    /* The worker's confinement at Create (vm/confine.c): Landlock and the
     * last capability drop. Each of these can only take rights away. */
    SCMP_SYS(landlock_create_ruleset),
    SCMP_SYS(landlock_add_rule),
    SCMP_SYS(landlock_restrict_self),
    SCMP_SYS(capget),
    SCMP_SYS(capset),
    /* --vm-user: the switch at Create. Without capabilities (after it, or
     * for a worker started unprivileged) these can only pick among the ids
     * the process already has. */
    SCMP_SYS(setgroups),
    SCMP_SYS(setresuid),
    SCMP_SYS(setresgid),
};

/* Every ioctl the control thread makes: /dev/kvm queries and VM creation,
 * VM set-up, vCPU set-up and reset, the tap (TUN*, and SIOC* on the
 * configuration socket), block device size, and the terminal for
 * --serial tty. */
static const unsigned long ioc_control[] = {
    KVM_GET_API_VERSION,
    KVM_CHECK_EXTENSION,
    KVM_GET_VCPU_MMAP_SIZE,
    KVM_GET_SUPPORTED_CPUID,
    KVM_GET_MSR_INDEX_LIST,
    KVM_CREATE_VM,
    KVM_SET_TSS_ADDR,
    KVM_SET_IDENTITY_MAP_ADDR,
    KVM_CREATE_IRQCHIP,
    KVM_SET_USER_MEMORY_REGION,
    KVM_SET_GSI_ROUTING,
    KVM_IRQ_LINE,
    KVM_IRQFD,
    KVM_IOEVENTFD,
    KVM_CREATE_VCPU,
    KVM_SET_CPUID2,
    KVM_GET_REGS,
    KVM_SET_REGS,
    KVM_GET_SREGS,
    KVM_SET_SREGS,
    KVM_GET_FPU,
    KVM_SET_FPU,
    KVM_GET_MSRS,
    KVM_SET_MSRS,
    KVM_GET_XSAVE,
    KVM_GET_XSAVE2,
    KVM_SET_XSAVE,
    KVM_GET_LAPIC,
    KVM_SET_LAPIC,
    KVM_GET_MP_STATE,
    KVM_SET_MP_STATE,
    TUNSETIFF,
    TUNGETIFF,
    TUNSETVNETHDRSZ,
    TUNSETOFFLOAD,
    SIOCSIFMTU,
    SIOCSIFADDR,
    SIOCSIFNETMASK,
    SIOCGIFFLAGS,
    SIOCSIFFLAGS,
    BLKGETSIZE64,
    TCGETS,
    TCSETS,
    FIONBIO,
};

/* ---- Names for the SIGSYS handler, resolved before any filter. ---- */

#define NAME_SLOTS 512
#define NAME_LEN   28
static char syscall_names[NAME_SLOTS][NAME_LEN];
static __thread int my_kind = -1;
static uint32_t native_arch; /* AUDIT_ARCH_* of this build, for siginfo's si_arch */

static const char *const kind_names[SECCOMP_THREAD__COUNT] = {
    [SECCOMP_VCPU] = "vcpu",	       [SECCOMP_DEVICE_LOOP] = "device-loop",
    [SECCOMP_IO_WORKER] = "io-worker", [SECCOMP_CONTROL] = "control",
    [SECCOMP_SIGNAL] = "signal",       [SECCOMP_SINK] = "sink",
};

const char *chv_seccomp_thread_name(enum seccomp_thread t)
{
	if ((unsigned)t >= SECCOMP_THREAD__COUNT)
		return "?";
	return kind_names[t];
}

static size_t put_str(char *buf, size_t at, size_t cap, const char *s)
{
	while (*s && at < cap)
		buf[at++] = *s++;
	return at;
}

static size_t put_num(char *buf, size_t at, size_t cap, unsigned long v)
{
	char tmp[24];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < sizeof(tmp));
	while (n && at < cap)
		buf[at++] = tmp[--n];
	return at;
}

/* Async-signal-safe: formats by hand, reads only static data, calls only
 * write() and the kill trigger. */
static void sigsys_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	char msg[160];
	size_t cap = sizeof(msg) - 1, n = 0;
	int nr = si->si_syscall;
	n = put_str(msg, n, cap, "chv: seccomp: ");
	n = put_str(msg, n, cap,
		    my_kind >= 0 ? chv_seccomp_thread_name((enum seccomp_thread)my_kind) : "?");
	n = put_str(msg, n, cap, " thread made the forbidden system call ");
	if (nr >= 0 && nr < NAME_SLOTS && syscall_names[nr][0])
		n = put_str(msg, n, cap, syscall_names[nr]);
	else
		n = put_str(msg, n, cap, "?");
	n = put_str(msg, n, cap, " (");
	if (nr < 0) {
		n = put_str(msg, n, cap, "-");
		nr = -nr;
	}
	n = put_num(msg, n, cap, (unsigned long)nr);
	n = put_str(msg, n, cap, ")");
	if (si->si_arch != native_arch) {
		n = put_str(msg, n, cap, ", foreign arch ");
		n = put_num(msg, n, cap, si->si_arch);
	}
	msg[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, msg, n);
	(void)w;

	/* Filtered thread: the trigger is KILL_PROCESS and never returns. */
	syscall(SYS_uselib, NULL);
	/* A SIGSYS from elsewhere (no filter here): die of it all the same. */
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, NULL);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, sig);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	raise(sig);
	_exit(128 + sig);
}

static int sigsys_ready_rc;

static void sigsys_prepare(void)
{
	native_arch = seccomp_arch_native();
	for (int nr = 0; nr < NAME_SLOTS; nr++) {
		char *s = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
		if (s) {
			snprintf(syscall_names[nr], NAME_LEN, "%s", s);
			free(s);
		}
	}
	struct sigaction sa = {.sa_sigaction = sigsys_handler, .sa_flags = SA_SIGINFO};
	sigfillset(&sa.sa_mask);
	sigsys_ready_rc = sigaction(SIGSYS, &sa, NULL) < 0 ? -errno : 0;
}

/* ---- Building a filter. ---- */

static int allow_all(scmp_filter_ctx ctx, const int *nrs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nrs[i], 0);
		if (r < 0 && r != -EEXIST)
			return r;
	}
	return 0;
}

/* ioctl(fd, req, ...) for exactly these request numbers; the whole 64-bit
 * argument must match, so junk in the upper half is refused too. */
static int allow_ioctls(scmp_filter_ctx ctx, const unsigned long *reqs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					 SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)reqs[i]));
		if (r < 0 && r != -EEXIST)
			return r;
	}
	return 0;
}

/* Memory, never executable: a guest-driven bug cannot map or flip pages to
 * executable through these threads. */
static int allow_mem(scmp_filter_ctx ctx)
{
	int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
				 SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
				     SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	return r;
}

/* Signals to threads of this process only (pthread_kill's tgkill). */
static int allow_self_tgkill(scmp_filter_ctx ctx)
{
	int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
				 SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
	return r == -EEXIST ? 0 : r;
}

/* Thread creation only (CLONE_THREAD set): no fork from the control thread.
 * clone3 passes its flags in memory the filter cannot read, so it fails with
 * ENOSYS and glibc falls back to clone, whose flags are checked. */
static int allow_threads(scmp_filter_ctx ctx)
{
	int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				 SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	return r;
}

/* What a thread created under the control filter does before and while it
 * installs its own: pthread_setname_np (prctl PR_SET_NAME), then libseccomp's
 * load (PR_SET_NO_NEW_PRIVS, seccomp(SET_MODE_FILTER), and the
 * GET_ACTION_AVAIL probe). A new filter can only narrow what is allowed. */
static int allow_child_setup(scmp_filter_ctx ctx)
{
	static const int prctls[] = {PR_SET_NAME, PR_SET_NO_NEW_PRIVS};
	static const int ops[] = {SECCOMP_SET_MODE_FILTER, SECCOMP_GET_ACTION_AVAIL};
	int r = 0;
	for (size_t i = 0; i < ARRAY_LEN(prctls) && r == 0; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
				     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)prctls[i]));
	for (size_t i = 0; i < ARRAY_LEN(ops) && r == 0; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(seccomp), 1,
				     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)ops[i]));
	return r;
}

/* Sockets: AF_UNIX (the serial socket, the worker's control socket) and the
 * AF_INET datagram socket the tap is configured through. */
static int allow_sockets(scmp_filter_ctx ctx)
{
	int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
				 SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
	if (r == 0)
		r = seccomp_rule_add(
		    ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2, SCMP_A0(SCMP_CMP_EQ, AF_INET),
		    SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_DGRAM)); /* SOCK_TYPE_MASK */
	return r;
}

#define ALLOW(ctx, a)  allow_all(ctx, a, ARRAY_LEN(a))
#define IOCTLS(ctx, a) allow_ioctls(ctx, a, ARRAY_LEN(a))

/* The rules of one thread kind, beyond the runtime group. */
static int kind_rules(scmp_filter_ctx ctx, enum seccomp_thread t)
{
	int r;
	switch (t) {
	case SECCOMP_VCPU:
		if ((r = ALLOW(ctx, grp_vcpu)) || (r = ALLOW(ctx, grp_irq)) ||
		    (r = IOCTLS(ctx, ioc_vcpu)) || (r = IOCTLS(ctx, ioc_irq)) ||
		    (r = IOCTLS(ctx, ioc_net_activate)))
			return r;
		return allow_self_tgkill(ctx);
	case SECCOMP_DEVICE_LOOP:
		if ((r = ALLOW(ctx, grp_device_loop)) || (r = ALLOW(ctx, grp_irq)) ||
		    (r = IOCTLS(ctx, ioc_net_activate)))
			return r;
		return IOCTLS(ctx, ioc_irq);
	case SECCOMP_IO_WORKER:
		if ((r = ALLOW(ctx, grp_io_worker)) || (r = ALLOW(ctx, grp_irq)))
			return r;
		return IOCTLS(ctx, ioc_irq);
	case SECCOMP_SIGNAL:
		if ((r = ALLOW(ctx, grp_signal)))
			return r;
		return allow_self_tgkill(ctx);
	case SECCOMP_SINK:
		return ALLOW(ctx, grp_sink);
	case SECCOMP_CONTROL:
		if ((r = ALLOW(ctx, grp_control)) || (r = IOCTLS(ctx, ioc_control)) ||
		    (r = allow_self_tgkill(ctx)) || (r = allow_threads(ctx)))
			return r;
		if ((r = allow_child_setup(ctx)))
			return r;
		return allow_sockets(ctx);
	case SECCOMP_THREAD__COUNT:
		break;
	}
	return -EINVAL;
}

/* A thread inherits its creator's filter and stacks its own on top (the
 * kernel applies both; the stricter action wins). The control thread
 * creates every other thread, again on each guest reboot, so its filter
 * must let through everything theirs do: it is the union of all kinds. */
static int add_rules(scmp_filter_ctx ctx, enum seccomp_thread t)
{
	int r = ALLOW(ctx, grp_runtime);
	if (r == 0)
		r = allow_mem(ctx);
	if (r < 0 || t != SECCOMP_CONTROL)
		return r < 0 ? r : kind_rules(ctx, t);
	for (int k = 0; k < SECCOMP_THREAD__COUNT; k++)
		if ((r = kind_rules(ctx, (enum seccomp_thread)k)) < 0)
			return r;
	return 0;
}

static int build_and_load(enum seccomp_thread t, enum seccomp_mode mode, const char **what)
{
	uint32_t deflt = mode == SECCOMP_LOG ? SCMP_ACT_LOG : SCMP_ACT_TRAP;
	*what = "seccomp_init";
	scmp_filter_ctx ctx = seccomp_init(deflt);
	if (!ctx)
		return -ENOMEM;
	/* Calls through another ABI (int 0x80): straight kill, or logged. */
	*what = "seccomp_attr_set";
	int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
				 mode == SECCOMP_LOG ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS);
	if (r == 0) {
		*what = "seccomp_rule_add";
		r = add_rules(ctx, t);
	}
	if (r == 0 && mode == SECCOMP_TRUE)
		r = seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, KILL_TRIGGER, 0);
	if (r == 0) {
		*what = "seccomp_load";
		r = seccomp_load(ctx);
	}
	seccomp_release(ctx);
	return r;
}

static bool any_installed; /* a filter is on some thread of this process */

#if defined(__SANITIZE_ADDRESS__)
/* The sanitizer build only (CHV_SANITIZE). LeakSanitizer's check at exit
 * stops the world from a tracer process it clones and ptraces, which no
 * filter allows (and must not, in a release build): it is skipped in a
 * process that installed one. Leaks are checked by the unit tests and by
 * runs with --seccomp false. An ASan report in a filtered process needs
 * ASAN_OPTIONS=symbolize=0 (the symbolizer is a child process). */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
	return __atomic_load_n(&any_installed, __ATOMIC_ACQUIRE);
}
#endif

int chv_seccomp_install(enum seccomp_thread t, enum seccomp_mode mode, struct chv_err *err)
{
	if ((unsigned)t >= SECCOMP_THREAD__COUNT)
		return chv_err_set(err, -EINVAL, "seccomp: unknown thread kind %d", (int)t);
	if (mode != SECCOMP_TRUE && mode != SECCOMP_LOG && mode != SECCOMP_FALSE)
		return chv_err_set(err, -EINVAL, "--seccomp: unknown mode %d", (int)mode);
	if (mode == SECCOMP_FALSE)
		return 0;

	/* localtime_r() (the CMOS clock, log time stamps) opens /etc/localtime
	 * on first use; load it now rather than allow openat everywhere. */
	tzset();
	if (mode == SECCOMP_TRUE) {
		static pthread_once_t once = PTHREAD_ONCE_INIT;
		pthread_once(&once, sigsys_prepare);
		if (sigsys_ready_rc < 0)
			return chv_err_set(err, sigsys_ready_rc,
					   "seccomp: %s thread: SIGSYS handler: %s",
					   chv_seccomp_thread_name(t), strerror(-sigsys_ready_rc));
		sigset_t s;
		sigemptyset(&s);
		sigaddset(&s, SIGSYS);
		pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	}
	my_kind = (int)t;
	const char *what = "";
	__atomic_store_n(&any_installed, true, __ATOMIC_RELEASE); /* before: a half-load too */
	int r = build_and_load(t, mode, &what);
	if (r < 0)
		return chv_err_set(err, r, "seccomp: %s thread (--seccomp %s): %s: %s",
				   chv_seccomp_thread_name(t), mode == SECCOMP_LOG ? "log" : "true",
				   what, strerror(-r));
	return 0;
}

/* Off until the program sets it: a library user (the unit tests) that never
 * asks for filters gets none. chv-vmm and the worker always set it, from
 * options whose default is SECCOMP_TRUE. */
static enum seccomp_mode process_mode = SECCOMP_FALSE;

void chv_seccomp_set_mode(enum seccomp_mode mode)
{
	__atomic_store_n(&process_mode, mode, __ATOMIC_RELEASE);
}

enum seccomp_mode chv_seccomp_mode(void)
{
	return __atomic_load_n(&process_mode, __ATOMIC_ACQUIRE);
}

const char *chv_seccomp_mode_name(enum seccomp_mode m)
{
	return m == SECCOMP_TRUE ? "true" : m == SECCOMP_LOG ? "log" : "false";
}

int chv_seccomp_mode_parse(const char *v, enum seccomp_mode *mode)
{
	bool on;
	if (strcmp(v, chv_seccomp_mode_name(SECCOMP_LOG)) == 0)
		*mode = SECCOMP_LOG;
	else if (optparse_bool("--seccomp", NULL, v, &on, NULL) == 0)
		*mode = on ? SECCOMP_TRUE : SECCOMP_FALSE;
	else
		return -EINVAL;
	return 0;
}

int chv_seccomp_thread(enum seccomp_thread t, struct chv_err *err)
{
	struct chv_err local = {0};
	struct chv_err *e = err ? err : &local;
	enum seccomp_mode m = chv_seccomp_mode();
	int r = chv_seccomp_install(t, m, e);
	if (r < 0) {
		log_error("%s", e->msg);
		return r;
	}
	if (m != SECCOMP_FALSE)
		log_debug("seccomp: %s thread filtered (--seccomp %s)", chv_seccomp_thread_name(t),
			  chv_seccomp_mode_name(m));
	return 0;
}

void chv_seccomp_thread_or_exit(enum seccomp_thread t)
{
	struct chv_err err = {0};
	if (chv_seccomp_thread(t, &err) == 0)
		return;
	fprintf(stderr, "chv-vmm: VM failed: %s\n", err.msg);
	exit(VMM_EXIT_FAILED);
}

int chv_seccomp_blk_hook(void *ctx, struct chv_err *err)
{
	(void)ctx;
	return chv_seccomp_thread(SECCOMP_IO_WORKER, err);
}

void chv_seccomp_test_violation(const char *who)
{
	const char *v = getenv(CHV_SECCOMP_TEST_ENV);
	if (!v || !who || strcmp(v, who) != 0)
		return;
	log_warn("seccomp: test violation requested (%s=%s): calling ptrace", CHV_SECCOMP_TEST_ENV,
		 v);
	long r = syscall(SYS_ptrace, 2L /* PTRACE_PEEKDATA */, 1L, 0L, 0L);
	log_warn("seccomp: the forbidden call returned %ld (%s): no filter stopped it", r,
		 r < 0 ? strerror(errno) : "ok");
}
