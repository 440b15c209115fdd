/* vm/seccomp.c: every filter is installed in a forked child (a filter cannot
 * be removed); the child's stderr comes back through a pipe so the kill
 * message can be checked. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "virtio/blk_io.h"
#include "vm/log.h"
#include "vm/seccomp.h"
#include "vm/sink.h"

struct outcome {
	int status;
	char err[4096];
};

static pid_t parent_pid;

/* Forks; the child installs (kind, mode), then runs body, whose return value
 * is its exit status (90: the install failed). */
static void run_child(enum seccomp_thread kind, enum seccomp_mode mode, int (*body)(void),
		      struct outcome *o)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	parent_pid = getpid();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], STDERR_FILENO);
		struct chv_err err = {0};
		if (chv_seccomp_install(kind, mode, &err) < 0) {
			dprintf(STDERR_FILENO, "install: %s\n", err.msg);
			_exit(90);
		}
		_exit(body());
	}
	close(p[1]);
	size_t n = 0;
	for (;;) {
		ssize_t r = read(p[0], o->err + n, sizeof(o->err) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	o->err[n] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &o->status, 0), pid);
}

static void assert_exit_ok(const struct outcome *o)
{
	if (!WIFEXITED(o->status) || WEXITSTATUS(o->status) != 0)
		fail_msg("child status 0x%x, stderr: %s", o->status, o->err);
}

static void assert_killed_naming(const struct outcome *o, const char *kind, const char *call)
{
	if (!WIFSIGNALED(o->status) || WTERMSIG(o->status) != SIGSYS)
		fail_msg("child status 0x%x (want SIGSYS), stderr: %s", o->status, o->err);
	char want[128];
	snprintf(want, sizeof(want), "chv: seccomp: %s thread made the forbidden system call %s (",
		 kind, call);
	if (!strstr(o->err, want))
		fail_msg("stderr lacks \"%s\": %s", want, o->err);
}

/* ---- bodies ---- */

static int fds[2];

static int body_runtime(void)
{
	if (write(fds[1], "x", 1) != 1)
		return 11;
	/* A fresh mapping and a large malloc (mmap) and free (munmap). */
	void *m = malloc(8 << 20);
	if (!m)
		return 12;
	memset(m, 1, 8 << 20);
	free(m);
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return 13;
	return 0;
}

static int body_socket_inet(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	return s >= 0 ? 0 : 20;
}

static int body_socket_unix(void)
{
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return 21;
	close(s);
	int d = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (d < 0)
		return 22;
	close(d);
	return 0;
}

static int body_execve(void)
{
	char *argv[] = {(char *)"true", NULL};
	char *envp[] = {NULL};
	execve("/bin/true", argv, envp);
	return 30;
}

static int body_ptrace(void)
{
	ptrace(PTRACE_TRACEME, 0, NULL, NULL);
	return 31;
}

static int body_vcpu_ioctls(void)
{
	/* Allowed request, bad fd: the kernel runs it and says EBADF. */
	if (ioctl(-1, KVM_RUN, 0) != -1 || errno != EBADF)
		return 40;
	if (ioctl(-1, KVM_IRQ_LINE, NULL) != -1 || errno != EBADF)
		return 41;
	ioctl(-1, KVM_CREATE_VM, 0);
	return 42;
}

static int body_vcpu_ioctl_set_regs(void)
{
	ioctl(-1, KVM_SET_REGS, NULL);
	return 43;
}

static int body_ioctl_high_bits(void)
{
	syscall(SYS_ioctl, -1, (unsigned long)KVM_RUN | (1UL << 32), 0);
	return 44;
}

static int body_tty_ioctl(void)
{
	struct winsize ws;
	ioctl(STDERR_FILENO, TIOCGWINSZ, &ws);
	return 45;
}

static int body_mmap_exec(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 50;
	mprotect(p, 4096, PROT_READ | PROT_EXEC);
	return 51;
}

static int body_fork(void)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	return 52;
}

static void *thread_fn(void *arg)
{
	return arg;
}

static int body_thread(void)
{
	pthread_t t;
	int marker = 7;
	if (pthread_create(&t, NULL, thread_fn, &marker) != 0)
		return 53;
	void *ret = NULL;
	if (pthread_join(t, &ret) != 0 || ret != &marker)
		return 54;
	return 0;
}

static int body_kill_parent(void)
{
	syscall(SYS_tgkill, parent_pid, parent_pid, 0);
	return 60;
}

static int body_kick_self(void)
{
	/* pthread_kill with signal 0: tgkill on this process, allowed. */
	return pthread_kill(pthread_self(), 0) == 0 ? 0 : 61;
}

static int body_seccomp_state(void)
{
	return prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
}

static int body_status_filtered(void)
{
	/* The control list can open files: the kernel's own view. */
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return 70;
	char line[256];
	int mode = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Seccomp: %d", &mode) == 1)
			break;
	fclose(f);
	return mode == 2 ? 0 : 71;
}

static void *vcpu_like_thread(void *arg)
{
	struct chv_err err = {0};
	*(int *)arg = chv_seccomp_install(SECCOMP_VCPU, SECCOMP_TRUE, &err);
	return NULL;
}

/* Installed via SECCOMP_FALSE on the main thread; a second thread filters
 * itself only. */
static int body_per_thread(void)
{
	pthread_t t;
	int rc = -1;
	if (pthread_create(&t, NULL, vcpu_like_thread, &rc) != 0)
		return 80;
	pthread_join(t, NULL);
	if (rc != 0)
		return 81;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	return s >= 0 ? 0 : 82;
}

static void *vcpu_after_control(void *arg)
{
	struct chv_err err = {0};
	int *rc = arg;
	*rc = chv_seccomp_install(SECCOMP_VCPU, SECCOMP_TRUE, &err);
	if (*rc == 0 && (ioctl(-1, KVM_RUN, 0) != -1 || errno != EBADF))
		*rc = 1;
	return NULL;
}

/* Under the control filter: a thread is created, names itself and stacks
 * the vCPU filter on the inherited one; the control thread carries on. */
static int body_stacked(void)
{
	pthread_t t;
	int rc = -1;
	if (pthread_create(&t, NULL, vcpu_after_control, &rc) != 0)
		return 100;
	pthread_join(t, NULL);
	if (rc != 0)
		return 101;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	return s >= 0 ? 0 : 102;
}

static void *vcpu_opens_file(void *arg)
{
	struct chv_err err = {0};
	pthread_setname_np(pthread_self(), "vcpu0");
	if (chv_seccomp_install(SECCOMP_VCPU, SECCOMP_TRUE, &err) == 0)
		open("/dev/null", O_RDONLY | O_CLOEXEC); /* control may; a vCPU may not */
	return arg;
}

static int body_stacked_open(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, vcpu_opens_file, NULL) != 0)
		return 103;
	pthread_join(t, NULL);
	return 104;
}

/* ---- real code paths under their filters ---- */

static char tmpdir[64];

/* The process as chv-vmm runs it: mode true, the blk hook, the log, and the
 * control filter on this (the main) thread; every thread started from here
 * stacks its own. */
static int as_chv_vmm(void)
{
	chv_seccomp_set_mode(SECCOMP_TRUE);
	blk_io_set_thread_start(chv_seccomp_blk_hook, NULL);
	char logp[128];
	snprintf(logp, sizeof(logp), "%s/log", tmpdir);
	if (log_init(3, logp) < 0)
		return 1;
	struct chv_err err = {0};
	return chv_seccomp_thread(SECCOMP_CONTROL, &err) < 0 ? 2 : 0;
}

static void op_done(struct blk_io_op *op, int res)
{
	*(int *)op->opaque = res;
}

/* One op at a time, each completed on a backend thread (io_uring reaper or
 * a pool worker) that runs under the io-worker filter. */
static int blk_ops(struct blk_io *io, uint8_t seed)
{
	static uint8_t wbuf[64 * 1024], rbuf[64 * 1024];
	memset(wbuf, seed, sizeof(wbuf));
	memset(rbuf, 0, sizeof(rbuf));
	struct iovec wv = {wbuf, sizeof(wbuf)}, rv = {rbuf, sizeof(rbuf)};
	struct blk_io_op ops[5] = {
	    {.kind = BLK_IO_WRITE, .off = 4096, .len = sizeof(wbuf), .iov = &wv, .iovcnt = 1},
	    {.kind = BLK_IO_FLUSH},
	    {.kind = BLK_IO_DISCARD, .off = 1 << 20, .len = 1 << 16},
	    {.kind = BLK_IO_WRITE_ZEROES, .off = 2 << 20, .len = 1 << 16},
	    {.kind = BLK_IO_READ, .off = 4096, .len = sizeof(rbuf), .iov = &rv, .iovcnt = 1},
	};
	for (int i = 0; i < 5; i++) {
		int res = 1;
		ops[i].done = op_done;
		ops[i].opaque = &res;
		if (blk_io_submit(io, &ops[i]) < 0)
			return 10 + i;
		blk_io_drain(io);
		if (res != 0)
			return 20 + i;
	}
	return memcmp(wbuf, rbuf, sizeof(rbuf)) == 0 ? 0 : 30;
}

static int blk_image(bool no_uring, bool direct)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/img", tmpdir);
	struct blk_io_opts o = {.path = path, .no_uring = no_uring, .direct = direct};
	struct blk_io io;
	struct chv_err err = {0};
	if (blk_io_open(&io, &o, &err) < 0) {
		dprintf(STDERR_FILENO, "blk_io_open: %s\n", err.msg);
		blk_io_close(&io);
		return 40;
	}
	if (!no_uring && !blk_io_uses_uring(&io))
		dprintf(STDERR_FILENO, "note: no io_uring here; the pool ran instead\n");
	int r = blk_ops(&io, (uint8_t)(no_uring ? 0x5a : 0xa5));
	blk_io_close(&io);
	return r;
}

static int body_blk_uring(void)
{
	int r = as_chv_vmm();
	return r ? r : blk_image(false, false);
}

static int body_blk_pool(void)
{
	int r = as_chv_vmm();
	if (r == 0)
		r = blk_image(true, false);
	return r ? r : blk_image(true, true); /* direct: bounce buffers, /proc reopen */
}

/* The device loop's part: an epoll over eventfds, the rng's reads of its
 * source, block requests submitted to io_uring, the log. */
static void *device_loop_like(void *arg)
{
	int *rc = arg;
	struct chv_err err = {0};
	*rc = 1;
	if (chv_seccomp_thread(SECCOMP_DEVICE_LOOP, &err) < 0)
		return NULL;
	int ep = *(rc + 1), efd = *(rc + 2), rng = *(rc + 3);
	struct epoll_event ev;
	uint64_t v;
	*rc = 2;
	if (epoll_wait(ep, &ev, 1, 1000) != 1 || read(efd, &v, sizeof(v)) != sizeof(v))
		return NULL;
	uint8_t buf[64];
	struct iovec iov = {buf, sizeof(buf)};
	*rc = 3;
	if (readv(rng, &iov, 1) <= 0)
		return NULL;
	log_info("device loop: %llu kicks, %zu random bytes", (unsigned long long)v, sizeof(buf));
	*rc = 4;
	struct blk_io *io = *(struct blk_io **)(rc + 4);
	if (blk_ops(io, 0x3c) != 0)
		return NULL;
	*rc = 0;
	return NULL;
}

static int body_device_loop(void)
{
	int r = as_chv_vmm();
	if (r)
		return r;
	/* The control thread opens the image (as vm_create does); the loop
	 * submits to it inline. */
	char path[128];
	snprintf(path, sizeof(path), "%s/img", tmpdir);
	struct blk_io_opts o = {.path = path};
	static struct blk_io io;
	struct chv_err err = {0};
	if (blk_io_open(&io, &o, &err) < 0)
		return 59;
	int st[4 + sizeof(void *) / sizeof(int)] = {-1, epoll_create1(EPOLL_CLOEXEC),
						    eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
						    open("/dev/urandom", O_RDONLY | O_CLOEXEC)};
	struct blk_io *iop = &io;
	memcpy(st + 4, &iop, sizeof(iop));
	struct epoll_event ev = {.events = EPOLLIN};
	if (st[1] < 0 || st[2] < 0 || st[3] < 0 || epoll_ctl(st[1], EPOLL_CTL_ADD, st[2], &ev) < 0)
		return 60;
	pthread_t t;
	if (pthread_create(&t, NULL, device_loop_like, st) != 0)
		return 61;
	uint64_t one = 1;
	if (write(st[2], &one, sizeof(one)) != sizeof(one))
		return 62;
	pthread_join(t, NULL);
	blk_io_close(&io);
	return st[0] == 0 ? 0 : 70 + st[0];
}

/* The sink's thread: a file, and a socket with a client reading and writing. */
static void sink_in(void *ctx, const uint8_t *buf, size_t n)
{
	__atomic_add_fetch((size_t *)ctx, n, __ATOMIC_RELAXED);
	(void)buf;
}

static int body_sink(void)
{
	int r = as_chv_vmm();
	if (r)
		return r;
	char path[128];
	snprintf(path, sizeof(path), "%s/con", tmpdir);
	struct console_config file = {.mode = CONSOLE_FILE, .path = path};
	struct chv_err err = {0};
	struct sink *f = sink_open(&file, &err);
	if (!f)
		return 80;
	sink_write(f, (const uint8_t *)"to the file\n", 12);
	sink_close(f);
	snprintf(path, sizeof(path), "%s/con.sock", tmpdir);
	struct console_config sock = {.mode = CONSOLE_SOCKET, .path = path};
	struct sink *s = sink_open(&sock, &err);
	if (!s) {
		dprintf(STDERR_FILENO, "%s\n", err.msg);
		return 81;
	}
	size_t got_in = 0;
	sink_set_input(s, sink_in, &got_in);
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, path, strlen(path) + 1); /* tmpdir is short */
	if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return 82;
	if (write(c, "typed", 5) != 5)
		return 83;
	char buf[64] = {0};
	size_t n = 0;
	for (int i = 0; i < 200 && n < 6; i++) {
		sink_write(s, (const uint8_t *)"hello\n", i == 0 ? 6 : 0);
		struct timespec ts = {0, 5000000};
		nanosleep(&ts, NULL);
		ssize_t k = recv(c, buf + n, sizeof(buf) - 1 - n, MSG_DONTWAIT);
		if (k > 0)
			n += (size_t)k;
	}
	for (int i = 0; i < 200 && __atomic_load_n(&got_in, __ATOMIC_RELAXED) < 5; i++) {
		struct timespec ts = {0, 5000000};
		nanosleep(&ts, NULL);
	}
	close(c);
	sink_close(s);
	if (strcmp(buf, "hello\n") != 0)
		return 84;
	return got_in == 5 ? 0 : 85;
}

static void *malloc_heavy(void *arg)
{
	struct chv_err err = {0};
	int *rc = arg;
	if (chv_seccomp_thread((enum seccomp_thread) * rc, &err) < 0)
		return NULL;
	/* Small and large blocks, an arena of its own, realloc growth. */
	void *keep[256] = {0};
	for (int round = 0; round < 4; round++)
		for (int i = 0; i < 256; i++) {
			size_t n = (size_t)(16 << (i % 17));
			free(keep[i]);
			keep[i] = malloc(n);
			if (!keep[i])
				return NULL;
			memset(keep[i], i, n < 4096 ? n : 4096);
			keep[i] = realloc(keep[i], n * 2);
		}
	for (int i = 0; i < 256; i++)
		free(keep[i]);
	log_debug("malloc-heavy thread done");
	*rc = 0;
	return NULL;
}

static int body_malloc_every_kind(void)
{
	int r = as_chv_vmm();
	if (r)
		return r;
	for (int k = 0; k < SECCOMP_THREAD__COUNT; k++) {
		int rc = k;
		pthread_t t;
		if (pthread_create(&t, NULL, malloc_heavy, &rc) != 0)
			return 90;
		pthread_join(t, NULL);
		if (rc != 0)
			return 91 + k;
	}
	return 0;
}

static void make_tmp(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/chv-seccomp.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	char img[128];
	snprintf(img, sizeof(img), "%s/img", tmpdir);
	int fd = open(img, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4 << 20), 0);
	close(fd);
}

static void rm_tmp(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	assert_int_equal(system(cmd), 0);
}

static void run_real(int (*body)(void))
{
	make_tmp();
	struct outcome o;
	run_child(SECCOMP_CONTROL, SECCOMP_FALSE, body, &o);
	assert_exit_ok(&o);
	rm_tmp();
}

static void test_blk_uring_under_filters(void **state)
{
	(void)state;
	run_real(body_blk_uring);
}

static void test_blk_pool_under_filters(void **state)
{
	(void)state;
	run_real(body_blk_pool);
}

static void test_device_loop_under_filters(void **state)
{
	(void)state;
	run_real(body_device_loop);
}

static void test_sink_under_filters(void **state)
{
	(void)state;
	run_real(body_sink);
}

static void test_malloc_under_every_filter(void **state)
{
	(void)state;
	run_real(body_malloc_every_kind);
}

static int hook_fails(void *ctx, struct chv_err *err)
{
	(void)ctx;
	return chv_err_set(err, -ENOMEM, "seccomp: io-worker thread: test failure");
}

/* A thread-start hook that fails fails the open, with its message. */
static void test_blk_hook_failure_fails_open(void **state)
{
	(void)state;
	make_tmp();
	char path[128];
	snprintf(path, sizeof(path), "%s/img", tmpdir);
	for (int pool = 0; pool < 2; pool++) {
		blk_io_set_thread_start(hook_fails, NULL);
		struct blk_io_opts o = {.path = path, .no_uring = pool};
		struct blk_io io;
		struct chv_err err = {0};
		assert_int_equal(blk_io_open(&io, &o, &err), -ENOMEM);
		blk_io_close(&io);
		blk_io_set_thread_start(NULL, NULL);
		assert_non_null(
		    strstr(err.msg, "I/O thread: seccomp: io-worker thread: test failure"));
		assert_non_null(strstr(err.msg, path));
	}
	rm_tmp();
}

static int body_test_violation(void)
{
	setenv(CHV_SECCOMP_TEST_ENV, "here", 1);
	chv_seccomp_test_violation("elsewhere"); /* not this one: nothing */
	chv_seccomp_test_violation("here");
	return 0;
}

static void test_violation_trigger(void **state)
{
	(void)state;
	struct outcome o;
	run_child(SECCOMP_CONTROL, SECCOMP_TRUE, body_test_violation, &o);
	assert_killed_naming(&o, "control", "ptrace");
	run_child(SECCOMP_CONTROL, SECCOMP_LOG, body_test_violation, &o);
	assert_exit_ok(&o);
}

/* ---- tests ---- */

static void test_every_kind_allows_its_runtime(void **state)
{
	(void)state;
	for (int k = 0; k < SECCOMP_THREAD__COUNT; k++) {
		assert_int_equal(pipe(fds), 0);
		struct outcome o;
		run_child((enum seccomp_thread)k, SECCOMP_TRUE, body_runtime, &o);
		assert_exit_ok(&o);
		char c = 0;
		close(fds[1]);
		assert_int_equal(read(fds[0], &c, 1), 1);
		assert_int_equal(c, 'x');
		close(fds[0]);
	}
}

static void test_filter_is_really_installed(void **state)
{
	(void)state;
	struct outcome o;
	run_child(SECCOMP_CONTROL, SECCOMP_TRUE, body_status_filtered, &o);
	assert_exit_ok(&o);
}

static void test_socket_kills_vcpu_and_names_it(void **state)
{
	(void)state;
	struct outcome o;
	run_child(SECCOMP_VCPU, SECCOMP_TRUE, body_socket_inet, &o);
	assert_killed_naming(&o, "vcpu", "socket");
}

static void test_execve_kills_control(void **state)
{
	(void)state;
	struct outcome o;
	run_child(SECCOMP_CONTROL, SECCOMP_TRUE, body_execve, &o);
	assert_killed_naming(&o, "control", "execve");
}

static void test_ptrace_kills_every_kind(void **state)
{
	(void)state;
	for (int k = 0; k < SECCOMP_THREAD__COUNT; k++) {
		struct outcome o;
		run_child((enum seccomp_thread)k, SECCOMP_TRUE, body_ptrace, &o);
		assert_killed_naming(&o, chv_seccomp_thread_name((enum seccomp_thread)k), "ptrace");
	}
}

static void test_vcpu_ioctl_filter(void **state)
{
	(void)state;
	struct outcome o;
	run_child(SECCOMP_VCPU, SECCOMP_TRUE, body_vcpu_ioctls, &o);
	assert_killed_naming(&o, "vcpu", "ioctl");
	run_child(SECCOMP_VCPU, SECCOMP_TRUE, body_vcpu_ioctl_set_regs, &o);
	assert_killed_naming(&o, "vcpu", "ioctl");
	run_child(SECCOMP_VCPU, SECCOMP_TRUE, body_ioctl_high_bits, &o);
	assert_killed_naming(&o, "vcpu", "ioctl");
	run_child(SECCOMP_DEVICE_LOOP, SECCOMP_TRUE, body_tty_ioctl, &o);
	assert_killed_naming(&o, "device-loop", "ioctl");
	/* The device loop raises interrupts but never runs a vCPU. */
	run_child(SECCOMP_DEVICE_LOOP, SECCOMP_TRUE, body_ioctl_high_bits, &o);
	assert_killed_naming(&o, "device-loop", "ioctl");
}

static void test_control_sockets(void **state)
{
	(void)state;
	struct outcome o;
	run_child(SECCOMP_CONTROL, SECCOMP_TRUE, body_socket_unix, &o);
	assert_exit_ok(&o);
	run_child(SECCOMP_CONTROL, SECCOMP_TRUE, body_socket_inet, &o);
	assert_killed_naming(&o, "control", "socket");
}

static void test_control_threads_but_no_fork(void **state)
{
	(void)state;
	struct outcome o;
	run_child(SECCOMP_CONTROL, SECCOMP_TRUE, body_thread, &o);
	assert_exit_ok(&o);
	run_child(SECCOMP_CONTROL, SECCOMP_TRUE, body_fork, &o);
	assert_killed_naming(&o, "control", "clone");
}

static void test_no_executable_memory(void **state)
{
	(void)state;
	struct outcome o;
	run_child(SECCOMP_CONTROL, SECCOMP_TRUE, body_mmap_exec, &o);
	assert_killed_naming(&o, "control", "mprotect");
}

static void test_tgkill_only_this_process(void **state)
{
	(void)state;
	struct outcome o;
	run_child(SECCOMP_SIGNAL, SECCOMP_TRUE, body_kick_self, &o);
	assert_exit_ok(&o);
	run_child(SECCOMP_SIGNAL, SECCOMP_TRUE, body_kill_parent, &o);
	assert_killed_naming(&o, "signal", "tgkill");
	/* The sink never signals anyone. */
	run_child(SECCOMP_SINK, SECCOMP_TRUE, body_kick_self, &o);
	assert_killed_naming(&o, "sink", "tgkill");
}

static void test_log_mode_lets_it_through(void **state)
{
	(void)state;
	struct outcome o;
	run_child(SECCOMP_VCPU, SECCOMP_LOG, body_socket_inet, &o);
	assert_exit_ok(&o);
	assert_int_equal(o.err[0], '\0'); /* the kernel logs it, we do not */
	run_child(SECCOMP_VCPU, SECCOMP_LOG, body_seccomp_state, &o);
	assert_true(WIFEXITED(o.status));
	assert_int_equal(WEXITSTATUS(o.status), 2); /* filter mode */
}

static void test_false_installs_nothing(void **state)
{
	(void)state;
	struct outcome o;
	run_child(SECCOMP_VCPU, SECCOMP_FALSE, body_seccomp_state, &o);
	assert_exit_ok(&o); /* PR_GET_SECCOMP: 0, no filter */
	run_child(SECCOMP_VCPU, SECCOMP_FALSE, body_socket_inet, &o);
	assert_exit_ok(&o);
}

static void test_filter_binds_calling_thread_only(void **state)
{
	(void)state;
	struct outcome o;
	run_child(SECCOMP_CONTROL, SECCOMP_FALSE, body_per_thread, &o);
	assert_exit_ok(&o);
}

static void test_filters_stack_on_control(void **state)
{
	(void)state;
	struct outcome o;
	run_child(SECCOMP_CONTROL, SECCOMP_TRUE, body_stacked, &o);
	assert_exit_ok(&o);
	run_child(SECCOMP_CONTROL, SECCOMP_TRUE, body_stacked_open, &o);
	assert_killed_naming(&o, "vcpu", "openat");
}

static void test_bad_arguments(void **state)
{
	(void)state;
	struct chv_err err = {0};
	assert_int_equal(chv_seccomp_install(SECCOMP_THREAD__COUNT, SECCOMP_TRUE, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "unknown thread kind 6"));
	memset(&err, 0, sizeof(err));
	assert_int_equal(chv_seccomp_install((enum seccomp_thread) - 1, SECCOMP_FALSE, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "thread kind"));
	memset(&err, 0, sizeof(err));
	assert_int_equal(chv_seccomp_install(SECCOMP_VCPU, (enum seccomp_mode)7, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--seccomp: unknown mode 7"));
	assert_int_equal(chv_seccomp_install(SECCOMP_VCPU, (enum seccomp_mode)7, NULL), -EINVAL);
	/* And nothing was installed on this (the test's) thread. */
	assert_int_equal(prctl(PR_GET_SECCOMP, 0, 0, 0, 0), 0);
}

static void test_thread_names(void **state)
{
	(void)state;
	assert_string_equal(chv_seccomp_thread_name(SECCOMP_VCPU), "vcpu");
	assert_string_equal(chv_seccomp_thread_name(SECCOMP_DEVICE_LOOP), "device-loop");
	assert_string_equal(chv_seccomp_thread_name(SECCOMP_IO_WORKER), "io-worker");
	assert_string_equal(chv_seccomp_thread_name(SECCOMP_CONTROL), "control");
	assert_string_equal(chv_seccomp_thread_name(SECCOMP_SIGNAL), "signal");
	assert_string_equal(chv_seccomp_thread_name(SECCOMP_SINK), "sink");
	assert_string_equal(chv_seccomp_thread_name(SECCOMP_THREAD__COUNT), "?");
	assert_string_equal(chv_seccomp_thread_name((enum seccomp_thread) - 3), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_kind_allows_its_runtime),
	    cmocka_unit_test(test_filter_is_really_installed),
	    cmocka_unit_test(test_socket_kills_vcpu_and_names_it),
	    cmocka_unit_test(test_execve_kills_control),
	    cmocka_unit_test(test_ptrace_kills_every_kind),
	    cmocka_unit_test(test_vcpu_ioctl_filter),
	    cmocka_unit_test(test_control_sockets),
	    cmocka_unit_test(test_control_threads_but_no_fork),
	    cmocka_unit_test(test_no_executable_memory),
	    cmocka_unit_test(test_tgkill_only_this_process),
	    cmocka_unit_test(test_log_mode_lets_it_through),
	    cmocka_unit_test(test_false_installs_nothing),
	    cmocka_unit_test(test_filter_binds_calling_thread_only),
	    cmocka_unit_test(test_filters_stack_on_control),
	    cmocka_unit_test(test_bad_arguments),
	    cmocka_unit_test(test_thread_names),
	    cmocka_unit_test(test_blk_uring_under_filters),
	    cmocka_unit_test(test_blk_pool_under_filters),
	    cmocka_unit_test(test_device_loop_under_filters),
	    cmocka_unit_test(test_sink_under_filters),
	    cmocka_unit_test(test_malloc_under_every_filter),
	    cmocka_unit_test(test_blk_hook_failure_fails_open),
	    cmocka_unit_test(test_violation_trigger),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
