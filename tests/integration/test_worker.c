/* chv-vmm --worker end to end: a real worker process on real KVM with the
 * test guest, driven over its control socket as chvd would. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "chv/worker/v1/worker.pb-c.h"

#define ST_OK		       0
#define ST_INVALID_ARGUMENT    3
#define ST_FAILED_PRECONDITION 9
#define ST_UNIMPLEMENTED       12

#define S_CREATED  CHV__V1__VM_STATE__VM_STATE_CREATED
#define S_RUNNING  CHV__V1__VM_STATE__VM_STATE_RUNNING
#define S_PAUSED   CHV__V1__VM_STATE__VM_STATE_PAUSED
#define S_SHUTDOWN CHV__V1__VM_STATE__VM_STATE_SHUTDOWN

#define GUEST_TIMEOUT_MS 60000

static char vmm[512], guest[512], dir[256];

static long long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- the worker process ---- */

struct worker {
	pid_t pid;
	char sock[300];
	char log[300];
};

static int try_connect(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	assert_true(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static pid_t spawn(const char *log, char *const argv[])
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(vmm, argv);
		_exit(127);
	}
	return pid;
}

static void dump_log(const char *log)
{
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "tail -n 30 %s >&2", log);
	if (system(cmd) != 0)
		fprintf(stderr, "(no log)\n");
}

static void worker_start(struct worker *w, const char *name)
{
	snprintf(w->sock, sizeof(w->sock), "%s/%s.sock", dir, name);
	snprintf(w->log, sizeof(w->log), "%s/%s.log", dir, name);
	char *argv[] = {"chv-vmm", "--worker", "--control", w->sock, "-vv", NULL};
	w->pid = spawn(w->log, argv);
	for (int i = 0; i < 500; i++) {
		/* Ready once it accepts (bind comes a moment before listen). */
		struct stat st;
		int fd = try_connect(w->sock);
		if (fd >= 0) {
			close(fd);
			assert_int_equal(lstat(w->sock, &st), 0);
			assert_true(S_ISSOCK(st.st_mode));
			assert_int_equal(st.st_mode & 0777, 0600);
			return;
		}
		int status;
		if (waitpid(w->pid, &status, WNOHANG) == w->pid) {
			dump_log(w->log);
			fail_msg("the worker exited before listening (status %#x)", status);
		}
		usleep(10000);
	}
	fail_msg("the worker did not listen at %s", w->sock);
}

/* The exit status once it exits within ms; -1 if it does not (then killed). */
static int worker_wait_exit(struct worker *w, int ms)
{
	long long end = now_ms() + ms;
	while (now_ms() < end) {
		int status;
		if (waitpid(w->pid, &status, WNOHANG) == w->pid) {
			w->pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
		usleep(10000);
	}
	return -1;
}

static void worker_kill(struct worker *w)
{
	if (w->pid > 0) {
		kill(w->pid, SIGKILL);
		waitpid(w->pid, NULL, 0);
		w->pid = 0;
	}
	unlink(w->sock);
}

/* ---- the controller's side ---- */

struct ctl {
	int fd;
	uint64_t seq;
	char *console; /* every console_output byte so far, NUL-terminated */
	size_t console_len;
	Chv__V1__VmState states[64]; /* StateChange notices, in order */
	Chv__V1__EventKind events[64];
	unsigned nstates;
};

static void ctl_open(struct ctl *c, const struct worker *w)
{
	c->fd = try_connect(w->sock);
	assert_true(c->fd >= 0);
}

static void ctl_close(struct ctl *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static void ctl_free(struct ctl *c)
{
	ctl_close(c);
	free(c->console);
	c->console = NULL;
}

static void ctl_note(struct ctl *c, const Chv__Worker__V1__Notice *n)
{
	if (n->kind_case == CHV__WORKER__V1__NOTICE__KIND_CONSOLE_OUTPUT) {
		size_t len = n->console_output.len;
		c->console = realloc(c->console, c->console_len + len + 1);
		assert_non_null(c->console);
		memcpy(c->console + c->console_len, n->console_output.data, len);
		c->console_len += len;
		c->console[c->console_len] = 0;
	} else if (n->kind_case == CHV__WORKER__V1__NOTICE__KIND_STATE && c->nstates < 64) {
		c->states[c->nstates] = n->state->state;
		c->events[c->nstates] = n->state->event;
		c->nstates++;
	}
}

/* One message within ms: 1, 0 on timeout, -1 when the worker closed. */
static int ctl_read(struct ctl *c, int ms, Chv__Worker__V1__WorkerMessage **out)
{
	*out = NULL;
	struct pollfd p = {.fd = c->fd, .events = POLLIN};
	int r = poll(&p, 1, ms);
	if (r == 0)
		return 0;
	static uint8_t buf[(1 << 20) + 1];
	ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
	if (n <= 0)
		return -1;
	*out = chv__worker__v1__worker_message__unpack(NULL, (size_t)n, buf);
	assert_non_null(*out);
	return 1;
}

static void ctl_send(struct ctl *c, Chv__Worker__V1__Request *req)
{
	req->seq = ++c->seq;
	size_t len = chv__worker__v1__request__get_packed_size(req);
	uint8_t *buf = malloc(len + 1);
	assert_non_null(buf);
	chv__worker__v1__request__pack(req, buf);
	assert_int_equal(send(c->fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
	free(buf);
}

/* Sends req and returns its reply (notices on the way are recorded). */
static Chv__Worker__V1__Reply *ctl_call(struct ctl *c, Chv__Worker__V1__Request *req, int ms)
{
	ctl_send(c, req);
	long long end = now_ms() + ms;
	for (;;) {
		long long left = end - now_ms();
		if (left <= 0)
			fail_msg("no reply to request %llu", (unsigned long long)req->seq);
		Chv__Worker__V1__WorkerMessage *m;
		int r = ctl_read(c, (int)left, &m);
		if (r < 0)
			fail_msg("the worker closed the connection");
		if (r == 0)
			continue;
		if (m->msg_case == CHV__WORKER__V1__WORKER_MESSAGE__MSG_NOTICE) {
			ctl_note(c, m->notice);
		} else if (m->msg_case == CHV__WORKER__V1__WORKER_MESSAGE__MSG_REPLY &&
			   m->reply->seq == req->seq) {
			Chv__Worker__V1__Reply *rep = m->reply;
			m->reply = NULL; /* detach, the caller frees it */
			m->msg_case = CHV__WORKER__V1__WORKER_MESSAGE__MSG__NOT_SET;
			chv__worker__v1__worker_message__free_unpacked(m, NULL);
			return rep;
		}
		chv__worker__v1__worker_message__free_unpacked(m, NULL);
	}
}

static Chv__Worker__V1__Reply *call_op(struct ctl *c, Chv__Worker__V1__Request__OpCase op)
{
	Chv__Worker__V1__Empty e = CHV__WORKER__V1__EMPTY__INIT;
	Chv__Worker__V1__Request req = CHV__WORKER__V1__REQUEST__INIT;
	req.op_case = op;
	req.boot = &e; /* every Empty op shares the union */
	return ctl_call(c, &req, 20000);
}

/* Calls op and checks the reply's status and state. */
static void expect_op(struct ctl *c, Chv__Worker__V1__Request__OpCase op, int status,
		      Chv__V1__VmState state)
{
	Chv__Worker__V1__Reply *r = call_op(c, op);
	if (r->status != status || r->state != state)
		fail_msg("op %d: status %d state %d (%s), expected status %d state %d", (int)op,
			 r->status, r->state, r->message, status, state);
	chv__worker__v1__reply__free_unpacked(r, NULL);
}

/* Waits until the (from+1)th.. StateChange notices include state. */
static void wait_state(struct ctl *c, unsigned from, Chv__V1__VmState state, int ms)
{
	long long end = now_ms() + ms;
	for (;;) {
		for (unsigned i = from; i < c->nstates; i++)
			if (c->states[i] == state)
				return;
		long long left = end - now_ms();
		if (left <= 0)
			fail_msg("no StateChange to %d within %d ms; console:\n%s", state, ms,
				 c->console ? c->console : "");
		Chv__Worker__V1__WorkerMessage *m;
		int r = ctl_read(c, (int)left, &m);
		if (r < 0)
			fail_msg("the worker closed the connection");
		if (r > 0) {
			if (m->msg_case == CHV__WORKER__V1__WORKER_MESSAGE__MSG_NOTICE)
				ctl_note(c, m->notice);
			chv__worker__v1__worker_message__free_unpacked(m, NULL);
		}
	}
}

/* Reads a one-line /proc file into buf (newline removed); "" if unreadable. */
static void read_line(const char *path, char *buf, size_t len)
{
	buf[0] = 0;
	FILE *fp = fopen(path, "r");
	if (!fp)
		return;
	if (!fgets(buf, (int)len, fp))
		buf[0] = 0;
	fclose(fp);
	buf[strcspn(buf, "\n")] = 0;
}

/* How many vCPU threads of pid wait on a futex (parked), and how many there
 * are: from /proc, so it sees where the threads really are. */
static void vcpu_waits(pid_t pid, unsigned *parked, unsigned *total)
{
	char path[64];
	*parked = *total = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char f[400], comm[32], wchan[64];
		snprintf(f, sizeof(f), "%s/%s/comm", path, e->d_name);
		read_line(f, comm, sizeof(comm));
		if (strncmp(comm, "vcpu", 4) != 0)
			continue;
		snprintf(f, sizeof(f), "%s/%s/wchan", path, e->d_name);
		read_line(f, wchan, sizeof(wchan));
		++*total;
		if (strstr(wchan, "futex"))
			++*parked;
	}
	closedir(d);
}

static unsigned count_summaries(const struct ctl *c)
{
	unsigned n = 0;
	for (const char *p = c->console; p && (p = strstr(p, "# chv-testguest: ")); p++) {
		const char *eol = strchr(p, '\n');
		if (!eol)
			break; /* the rest of the line is still on its way */
		const char *f = strstr(p, " 0 failed");
		if (!f || f > eol)
			fail_msg("a guest summary reports failures:\n%s", c->console);
		n++;
	}
	return n;
}

/* create with the test guest; cmdline extra, serial TTY. */
static Chv__Worker__V1__Reply *create(struct ctl *c, const char *extra, uint32_t boot_vcpus)
{
	char cmdline[256];
	snprintf(cmdline, sizeof(cmdline), "chv.mem=64M chv.cpus=1%s%s", extra ? " " : "",
		 extra ? extra : "");
	Chv__V1__PayloadConfig pl = CHV__V1__PAYLOAD_CONFIG__INIT;
	pl.kernel = guest;
	pl.cmdline = cmdline;
	Chv__V1__CpusConfig cpus = CHV__V1__CPUS_CONFIG__INIT;
	cpus.boot_vcpus = boot_vcpus;
	Chv__V1__MemoryConfig mem = CHV__V1__MEMORY_CONFIG__INIT;
	mem.size = 64ULL << 20;
	Chv__V1__ConsoleConfig serial = CHV__V1__CONSOLE_CONFIG__INIT;
	serial.mode = CHV__V1__CONSOLE_MODE__CONSOLE_MODE_TTY;
	Chv__V1__VmConfig cfg = CHV__V1__VM_CONFIG__INIT;
	cfg.payload = &pl;
	cfg.cpus = &cpus;
	cfg.memory = &mem;
	cfg.serial = &serial;
	Chv__Worker__V1__Request req = CHV__WORKER__V1__REQUEST__INIT;
	req.op_case = CHV__WORKER__V1__REQUEST__OP_CREATE;
	req.create = &cfg;
	return ctl_call(c, &req, 20000);
}

static void create_ok(struct ctl *c, const char *extra)
{
	Chv__Worker__V1__Reply *r = create(c, extra, 1);
	if (r->status != ST_OK)
		fail_msg("create: status %d: %s", r->status, r->message);
	assert_int_equal(r->state, S_CREATED);
	chv__worker__v1__reply__free_unpacked(r, NULL);
}

static void shutdown_req(struct ctl *c, bool force, uint32_t timeout_ms, int wait_ms)
{
	Chv__Worker__V1__Shutdown sd = CHV__WORKER__V1__SHUTDOWN__INIT;
	sd.force = force;
	sd.timeout_ms = timeout_ms;
	Chv__Worker__V1__Request req = CHV__WORKER__V1__REQUEST__INIT;
	req.op_case = CHV__WORKER__V1__REQUEST__OP_SHUTDOWN;
	req.shutdown = &sd;
	Chv__Worker__V1__Reply *r = ctl_call(c, &req, wait_ms);
	assert_int_equal(r->status, ST_OK);
	assert_int_equal(r->state, S_SHUTDOWN);
	chv__worker__v1__reply__free_unpacked(r, NULL);
}

static void expect_gone(struct worker *w)
{
	int st = worker_wait_exit(w, 10000);
	if (st != 0) {
		dump_log(w->log);
		fail_msg("worker exit status %d, expected 0", st);
	}
	struct stat sb;
	assert_int_equal(lstat(w->sock, &sb), -1);
	assert_int_equal(errno, ENOENT);
}

/* ---- tests ---- */

/* Every test needs KVM, the worker binary and the test guest. */
static void need_all(void)
{
	if (access("/dev/kvm", R_OK | W_OK) != 0 || access(vmm, X_OK) != 0 ||
	    access(guest, R_OK) != 0) {
		fprintf(stderr, "SKIP: needs /dev/kvm, %s and %s\n", vmm, guest);
		skip();
	}
}

static void test_boot_poweroff_boot_again(void **state)
{
	(void)state;
	need_all();
	struct worker w;
	struct ctl c = {.fd = -1};
	worker_start(&w, "boot");
	ctl_open(&c, &w);
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_INFO, ST_OK,
		  CHV__V1__VM_STATE__VM_STATE_UNSPECIFIED);
	create_ok(&c, NULL);
	assert_true(c.nstates >= 1);
	assert_int_equal(c.states[c.nstates - 1], S_CREATED);
	/* A second create is refused in this state. */
	Chv__Worker__V1__Reply *r = create(&c, NULL, 1);
	assert_int_equal(r->status, ST_FAILED_PRECONDITION);
	assert_string_equal(r->message, "VM is created");
	chv__worker__v1__reply__free_unpacked(r, NULL);

	unsigned mark = c.nstates;
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_BOOT, ST_OK, S_RUNNING);
	wait_state(&c, mark, S_SHUTDOWN, GUEST_TIMEOUT_MS);
	assert_int_equal(count_summaries(&c), 1);
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_INFO, ST_OK, S_SHUTDOWN);
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_PAUSE, ST_FAILED_PRECONDITION, S_SHUTDOWN);

	/* Boot again: the VM is rebuilt and runs to the end once more, this
	 * time with nobody connected: its output is kept and comes on
	 * reconnection, before the reply to the first request. */
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_BOOT, ST_OK, S_RUNNING);
	ctl_close(&c);
	long long end = now_ms() + GUEST_TIMEOUT_MS;
	Chv__V1__VmState st = S_RUNNING;
	while (st != S_SHUTDOWN && now_ms() < end) {
		usleep(50000);
		ctl_open(&c, &w);
		r = call_op(&c, CHV__WORKER__V1__REQUEST__OP_INFO);
		st = r->state;
		chv__worker__v1__reply__free_unpacked(r, NULL);
		if (st != S_SHUTDOWN)
			ctl_close(&c);
	}
	assert_int_equal(st, S_SHUTDOWN);
	assert_int_equal(count_summaries(&c), 2);

	r = call_op(&c, CHV__WORKER__V1__REQUEST__OP_COUNTERS);
	bool pio = false, tx = false;
	for (size_t i = 0; i < r->n_counters; i++) {
		if (!strcmp(r->counters[i]->key, "exits.pio") && r->counters[i]->value > 0)
			pio = true;
		if (!strcmp(r->counters[i]->key, "serial.tx_bytes") &&
		    r->counters[i]->value >= c.console_len)
			tx = true;
	}
	assert_true(pio);
	assert_true(tx);
	chv__worker__v1__reply__free_unpacked(r, NULL);

	shutdown_req(&c, true, 0, 10000);
	expect_gone(&w);
	ctl_free(&c);
	worker_kill(&w);
}

static void test_pause_resume_readopt(void **state)
{
	(void)state;
	need_all();
	struct worker w;
	struct ctl c = {.fd = -1};
	worker_start(&w, "hang");
	ctl_open(&c, &w);
	create_ok(&c, "chv.action=hang");
	unsigned mark = c.nstates;
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_BOOT, ST_OK, S_RUNNING);
	/* The guest reports, then hangs instead of powering off. */
	long long end = now_ms() + GUEST_TIMEOUT_MS;
	while (count_summaries(&c) == 0 && now_ms() < end) {
		Chv__Worker__V1__WorkerMessage *m;
		if (ctl_read(&c, 200, &m) > 0) {
			if (m->msg_case == CHV__WORKER__V1__WORKER_MESSAGE__MSG_NOTICE)
				ctl_note(&c, m->notice);
			chv__worker__v1__worker_message__free_unpacked(m, NULL);
		}
	}
	assert_int_equal(count_summaries(&c), 1);
	for (unsigned i = mark; i < c.nstates; i++)
		assert_int_not_equal(c.states[i], S_SHUTDOWN);

	unsigned parked, total;
	vcpu_waits(w.pid, &parked, &total);
	assert_int_equal(total, 1);
	assert_int_equal(parked, 0); /* in the guest (halted), not parked */
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_PAUSE, ST_OK, S_PAUSED);
	/* Out of the guest already; asleep on its condition variable a moment
	 * later. */
	for (int i = 0; i < 100; i++) {
		vcpu_waits(w.pid, &parked, &total);
		if (parked == 1)
			break;
		usleep(10000);
	}
	assert_int_equal(total, 1);
	assert_int_equal(parked, 1);
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_PAUSE, ST_FAILED_PRECONDITION, S_PAUSED);
	assert_int_equal(c.states[c.nstates - 1], S_PAUSED);
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_RESUME, ST_OK, S_RUNNING);
	assert_int_equal(c.events[c.nstates - 1], CHV__V1__EVENT_KIND__EVENT_KIND_RESUMED);
	/* Pause and resume again: parking is repeatable. */
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_PAUSE, ST_OK, S_PAUSED);
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_RESUME, ST_OK, S_RUNNING);
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_RESUME, ST_FAILED_PRECONDITION, S_RUNNING);

	Chv__Worker__V1__Reply *r = call_op(&c, CHV__WORKER__V1__REQUEST__OP_COUNTERS);
	assert_true(r->n_counters > 0);
	chv__worker__v1__reply__free_unpacked(r, NULL);

	/* Console input reaches the UART (the guest ignores it; no crash). */
	Chv__Worker__V1__Request in = CHV__WORKER__V1__REQUEST__INIT;
	in.op_case = CHV__WORKER__V1__REQUEST__OP_CONSOLE_INPUT;
	in.console_input.data = (uint8_t *)"hello\r";
	in.console_input.len = 6;
	r = ctl_call(&c, &in, 5000);
	assert_int_equal(r->status, ST_OK);
	chv__worker__v1__reply__free_unpacked(r, NULL);

	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_POWER_BUTTON, ST_UNIMPLEMENTED, S_RUNNING);

	/* The controller goes away; the VM keeps running; a new one adopts it. */
	ctl_close(&c);
	usleep(100000);
	assert_int_equal(worker_wait_exit(&w, 0), -1);
	ctl_open(&c, &w);
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_INFO, ST_OK, S_RUNNING);
	/* A newer controller replaces this one. */
	struct ctl c2 = {.fd = -1};
	ctl_open(&c2, &w);
	expect_op(&c2, CHV__WORKER__V1__REQUEST__OP_INFO, ST_OK, S_RUNNING);
	Chv__Worker__V1__WorkerMessage *m;
	assert_int_equal(ctl_read(&c, 2000, &m), -1);
	ctl_free(&c);

	mark = c2.nstates;
	expect_op(&c2, CHV__WORKER__V1__REQUEST__OP_REBOOT, ST_OK, S_RUNNING);
	assert_true(c2.nstates > mark);
	assert_int_equal(c2.events[c2.nstates - 1], CHV__V1__EVENT_KIND__EVENT_KIND_REBOOTED);

	shutdown_req(&c2, true, 0, 10000);
	expect_gone(&w);
	ctl_free(&c2);
	worker_kill(&w);
}

static void test_errors_and_garbage(void **state)
{
	(void)state;
	need_all();
	struct worker w;
	struct ctl c = {.fd = -1};
	worker_start(&w, "bad");
	ctl_open(&c, &w);

	Chv__Worker__V1__Reply *r = call_op(&c, CHV__WORKER__V1__REQUEST__OP_BOOT);
	assert_int_equal(r->status, ST_FAILED_PRECONDITION);
	assert_string_equal(r->message, "VM is not created");
	chv__worker__v1__reply__free_unpacked(r, NULL);

	r = create(&c, NULL, 300);
	assert_int_equal(r->status, ST_INVALID_ARGUMENT);
	assert_string_equal(r->message, "config.cpus.boot_vcpus: 300 is out of range (1..255)");
	assert_int_equal(r->state, CHV__V1__VM_STATE__VM_STATE_UNSPECIFIED);
	chv__worker__v1__reply__free_unpacked(r, NULL);

	/* A packet that is not a Request: the connection is dropped. */
	static const uint8_t garbage[] = {0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
	assert_int_equal(send(c.fd, garbage, sizeof(garbage), MSG_NOSIGNAL), sizeof(garbage));
	Chv__Worker__V1__WorkerMessage *m;
	assert_int_equal(ctl_read(&c, 5000, &m), -1);
	ctl_close(&c);
	/* An oversized one too. */
	ctl_open(&c, &w);
	size_t big = (1 << 20) + 10;
	uint8_t *bigbuf = calloc(1, big);
	assert_non_null(bigbuf);
	if (send(c.fd, bigbuf, big, MSG_NOSIGNAL) == (ssize_t)big)
		assert_int_equal(ctl_read(&c, 5000, &m), -1);
	free(bigbuf);
	ctl_close(&c);

	/* The worker is alive; a new connection works and a good create too. */
	assert_int_equal(worker_wait_exit(&w, 0), -1);
	ctl_open(&c, &w);
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_INFO, ST_OK,
		  CHV__V1__VM_STATE__VM_STATE_UNSPECIFIED);
	create_ok(&c, "chv.action=hang");
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_BOOT, ST_OK, S_RUNNING);

	/* Graceful: the guest never powers off, so it is stopped at the timeout. */
	long long t0 = now_ms();
	shutdown_req(&c, false, 300, 10000);
	assert_true(now_ms() - t0 >= 250);
	expect_gone(&w);
	ctl_free(&c);
	worker_kill(&w);
}

static void test_sigterm(void **state)
{
	(void)state;
	need_all();
	struct worker w;
	struct ctl c = {.fd = -1};
	worker_start(&w, "term");
	ctl_open(&c, &w);
	create_ok(&c, "chv.action=hang");
	unsigned mark = c.nstates;
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_BOOT, ST_OK, S_RUNNING);
	kill(w.pid, SIGTERM);
	wait_state(&c, mark, S_SHUTDOWN, 10000);
	expect_gone(&w);
	ctl_free(&c);
	worker_kill(&w);
}

/* create with control_path set (a pooled worker handed to a VM). */
static Chv__Worker__V1__Reply *create_moved(struct ctl *c, const char *to)
{
	Chv__V1__PayloadConfig pl = CHV__V1__PAYLOAD_CONFIG__INIT;
	pl.kernel = guest;
	pl.cmdline = "chv.mem=64M chv.cpus=1 chv.action=hang";
	Chv__V1__MemoryConfig mem = CHV__V1__MEMORY_CONFIG__INIT;
	mem.size = 64ULL << 20;
	Chv__V1__VmConfig cfg = CHV__V1__VM_CONFIG__INIT;
	cfg.payload = &pl;
	cfg.memory = &mem;
	Chv__Worker__V1__Request req = CHV__WORKER__V1__REQUEST__INIT;
	req.op_case = CHV__WORKER__V1__REQUEST__OP_CREATE;
	req.create = &cfg;
	req.control_path = (char *)to;
	return ctl_call(c, &req, 20000);
}

static void expect_create_refused(struct ctl *c, const char *to, int status, const char *msg)
{
	Chv__Worker__V1__Reply *r = create_moved(c, to);
	if (r->status != status || !strstr(r->message, msg))
		fail_msg("create to %s: status %d \"%s\", expected %d with \"%s\"", to, r->status,
			 r->message, status, msg);
	assert_int_equal(r->state, CHV__V1__VM_STATE__VM_STATE_UNSPECIFIED);
	chv__worker__v1__reply__free_unpacked(r, NULL);
}

/* A pre-started worker moves its socket on create: refused onto a live
 * socket, a non-socket or an over-long path (it stays where it was and can
 * still be created); moved atomically otherwise (the connection stays, a
 * new controller finds it at the new path, and the new path is what it
 * removes at exit). */
static void test_control_path_move(void **state)
{
	(void)state;
	need_all();
	struct worker w, busy;
	struct ctl c = {.fd = -1}, c2 = {.fd = -1};
	worker_start(&w, "pool0");
	worker_start(&busy, "busy");
	ctl_open(&c, &w);
	struct stat before, st;
	assert_int_equal(lstat(w.sock, &before), 0);

	expect_create_refused(&c, busy.sock, ST_FAILED_PRECONDITION,
			      "another process is listening");
	char file[300], long_path[400], moved[300];
	snprintf(file, sizeof(file), "%s/plain-file", dir);
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	expect_create_refused(&c, file, ST_INVALID_ARGUMENT, "is not a socket");
	assert_int_equal(lstat(file, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = 0;
	expect_create_refused(&c, long_path, ST_INVALID_ARGUMENT, "control_path");
	assert_int_equal(lstat(w.sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));

	/* A stale socket at the target is replaced. */
	snprintf(moved, sizeof(moved), "%s/vm-moved.sock", dir);
	int stale = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	assert_true(strlen(moved) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, moved, strlen(moved) + 1);
	assert_int_equal(bind(stale, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(stale);
	Chv__Worker__V1__Reply *r = create_moved(&c, moved);
	if (r->status != ST_OK)
		fail_msg("create: status %d: %s", r->status, r->message);
	assert_int_equal(r->state, S_CREATED);
	chv__worker__v1__reply__free_unpacked(r, NULL);
	assert_int_equal(lstat(w.sock, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(lstat(moved, &st), 0);
	assert_int_equal(st.st_ino, before.st_ino);
	assert_int_equal(st.st_mode & 0777, 0600);
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_BOOT, ST_OK, S_RUNNING);

	/* A second create, moved or not, is refused: the socket stays. */
	char again[300];
	snprintf(again, sizeof(again), "%s/again.sock", dir);
	r = create_moved(&c, again);
	assert_int_equal(r->status, ST_FAILED_PRECONDITION);
	chv__worker__v1__reply__free_unpacked(r, NULL);
	assert_int_equal(lstat(again, &st), -1);

	snprintf(w.sock, sizeof(w.sock), "%s", moved);
	ctl_open(&c2, &w); /* re-adoption finds it at its new path */
	expect_op(&c2, CHV__WORKER__V1__REQUEST__OP_INFO, ST_OK, S_RUNNING);
	shutdown_req(&c2, true, 0, 10000);
	expect_gone(&w);
	ctl_free(&c);
	ctl_free(&c2);
	worker_kill(&w);
	ctl_open(&c, &busy);
	shutdown_req(&c, true, 0, 10000);
	expect_gone(&busy);
	ctl_free(&c);
	worker_kill(&busy);
	unlink(file);
}

/* A guest reset rebuilds the VM: a REBOOTED notice, still Running. */
static void test_guest_reset(void **state)
{
	(void)state;
	need_all();
	struct worker w;
	struct ctl c = {.fd = -1};
	worker_start(&w, "reset");
	ctl_open(&c, &w);
	create_ok(&c, "chv.action=reset");
	unsigned mark = c.nstates;
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_BOOT, ST_OK, S_RUNNING);
	long long end = now_ms() + GUEST_TIMEOUT_MS;
	unsigned reboots = 0;
	while (reboots < 2 && now_ms() < end) {
		Chv__Worker__V1__WorkerMessage *m;
		if (ctl_read(&c, 200, &m) > 0) {
			if (m->msg_case == CHV__WORKER__V1__WORKER_MESSAGE__MSG_NOTICE)
				ctl_note(&c, m->notice);
			chv__worker__v1__worker_message__free_unpacked(m, NULL);
		}
		reboots = 0;
		for (unsigned i = mark; i < c.nstates; i++) {
			assert_int_equal(c.states[i], S_RUNNING);
			reboots += c.events[i] == CHV__V1__EVENT_KIND__EVENT_KIND_REBOOTED;
		}
	}
	assert_int_equal(reboots, 2);
	assert_true(count_summaries(&c) >= 2);
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_INFO, ST_OK, S_RUNNING);
	shutdown_req(&c, true, 0, 10000);
	expect_gone(&w);
	ctl_free(&c);
	worker_kill(&w);
}

static int run_status(char *const argv[])
{
	char log[300];
	snprintf(log, sizeof(log), "%s/args.log", dir);
	pid_t pid = spawn(log, argv);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_bad_arguments(void **state)
{
	(void)state;
	need_all();
	char sock[300], file[300];
	snprintf(sock, sizeof(sock), "%s/args.sock", dir);
	snprintf(file, sizeof(file), "%s/not-a-socket", dir);
	char *a1[] = {"chv-vmm", "--worker", NULL};
	assert_int_equal(run_status(a1), 2);
	char *a2[] = {"chv-vmm", "--worker", "--control", sock, "--kernel", guest, NULL};
	assert_int_equal(run_status(a2), 2);
	char *a3[] = {"chv-vmm", "--worker", "--control", NULL};
	assert_int_equal(run_status(a3), 2);

	/* An existing file that is not a socket is refused and left alone. */
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fputs("keep me", f);
	fclose(f);
	char *a4[] = {"chv-vmm", "--worker", "--control", file, NULL};
	assert_int_equal(run_status(a4), 2);
	struct stat st;
	assert_int_equal(stat(file, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 7);
	unlink(file);

	/* A live worker's socket is not taken over by a second worker. */
	struct worker w;
	worker_start(&w, "live");
	char *a5[] = {"chv-vmm", "--worker", "--control", w.sock, NULL};
	assert_int_equal(run_status(a5), 2);
	struct ctl c = {.fd = -1};
	ctl_open(&c, &w);
	expect_op(&c, CHV__WORKER__V1__REQUEST__OP_INFO, ST_OK,
		  CHV__V1__VM_STATE__VM_STATE_UNSPECIFIED);
	shutdown_req(&c, false, 0, 5000); /* nothing runs: at once */
	expect_gone(&w);
	ctl_free(&c);
	worker_kill(&w);
}

static int setup(void **state)
{
	(void)state;
	const char *b = getenv("CHV_BUILD_DIR");
	if (!b)
		b = "build";
	snprintf(vmm, sizeof(vmm), "%s/bin/chv-vmm", b);
	snprintf(guest, sizeof(guest), "%s/guest/chv-testguest.elf", b);
	snprintf(dir, sizeof(dir), "/tmp/chv-worker-test.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_arguments),
	    cmocka_unit_test(test_boot_poweroff_boot_again),
	    cmocka_unit_test(test_pause_resume_readopt),
	    cmocka_unit_test(test_errors_and_garbage),
	    cmocka_unit_test(test_sigterm),
	    cmocka_unit_test(test_guest_reset),
	    cmocka_unit_test(test_control_path_move),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
