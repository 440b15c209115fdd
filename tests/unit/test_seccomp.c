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
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "vm/seccomp.h"

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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
