/* The worker side of chvd's per-VM processes: a control socket, the state
 * machine of docs/daemon.md, and serial output forwarded as notices. One
 * thread runs the control loop (epoll over the listening socket, the
 * controller's connection, the VM's outcome eventfd, the console flush timer
 * and kick, and a signalfd); the VM's own threads only append console output
 * and set the outcome. */
#include "vm/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "chv/worker/v1/worker.pb-c.h"
#include "virtio/blk_io.h"
#include "vm/byte_ring.h"
#include "vm/config.h"
#include "vm/config_proto.h"
#include "vm/confine.h"
#include "vm/log.h"
#include "vm/seccomp.h"
#include "vm/sink.h"
#include "vm/vm.h"

#define MAX_PACKET	    (1024 * 1024) /* the protocol's limit, both ways */
#define CONSOLE_KEEP	    (256 * 1024)  /* output kept while nobody is connected */
#define CONSOLE_BATCH	    4096	  /* send at once from this much on */
#define CONSOLE_FLUSH_MS    10		  /* else at most this late */
#define CONSOLE_CHUNK	    (64 * 1024)	  /* bytes per console_output notice */
#define SEND_TIMEOUT_MS	    5000	  /* a controller this slow is dropped */
#define SHUTDOWN_DEFAULT_MS 10000
#define MAX_COUNTERS	    256 /* exits, devices (8 disks, 8 nets), limiters */

/* gRPC status codes used in replies. */
enum {
	ST_OK = 0,
	ST_INVALID_ARGUMENT = 3,
	ST_RESOURCE_EXHAUSTED = 8,
	ST_FAILED_PRECONDITION = 9,
	ST_UNIMPLEMENTED = 12,
	ST_INTERNAL = 13,
};

enum tag { TAG_LISTEN = 1, TAG_CONN, TAG_VM, TAG_TIMER, TAG_KICK, TAG_SIGNAL };

/* An event names its source and fd: one handled earlier in the same batch
 * may have replaced the connection or the VM, and its stale events must not
 * act on the new one. */
static uint64_t ev_data(enum tag t, int fd)
{
	return (uint64_t)(uint32_t)fd << 32 | (uint32_t)t;
}

/* Serial output between the vCPU threads (writers) and the control loop. */
struct console_buf {
	pthread_mutex_t lock;
	struct byte_ring ring; /* [tail, head) is pending */
	uint64_t dropped;
	bool timer_armed, kicked;
	int timer_fd, kick_fd;
};

struct counter {
	char name[48];
	uint64_t value;
};

struct worker {
	const struct worker_opts *opts;
	int ep, listen_fd, conn_fd, sig_fd;
	dev_t sock_dev;
	ino_t sock_ino;
	bool sock_bound;
	/* Where the socket is now: --control, or the path a Create moved it to
	 * (a pre-started worker handed to a VM). */
	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

	struct vm_config cfg;
	struct sink *serial;
	Chv__V1__VmState state; /* UNSPECIFIED: no VM created yet */
	char failure[1536];
	/* Written by the loop only; locked for the socket sink's input thread. */
	pthread_mutex_t vm_lock;
	struct vm *vm;

	struct console_buf con;
	/* exits.* of VM instances already destroyed (reboots, power-offs). */
	struct counter base[MAX_COUNTERS];
	unsigned nbase;

	bool shutting; /* a graceful shutdown waits for the guest */
	uint64_t shutdown_seq;
	struct timespec deadline;
	bool exit_now;
	uint8_t *rx;
	uint8_t *tx_chunk; /* one console_output notice's bytes */
};

/* ---- arguments ---- */

bool worker_requested(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--worker") == 0)
			return true;
	return false;
}

/* "--name VALUE" or "--name=VALUE" at argv[*i]; 1 if matched, 0 if not. */
static int take_value(int argc, char **argv, int *i, const char *name, const char **out,
		      struct chv_err *err)
{
	const char *a = argv[*i];
	size_t n = strlen(name);
	if (strncmp(a, name, n) != 0 || (a[n] != '\0' && a[n] != '='))
		return 0;
	if (*out)
		return chv_err_set(err, -EINVAL, "%s given twice", name);
	const char *v;
	if (a[n] == '=')
		v = a + n + 1;
	else if (*i + 1 < argc)
		v = argv[++*i];
	else
		return chv_err_set(err, -EINVAL, "%s needs a value", name);
	if (!*v)
		return chv_err_set(err, -EINVAL, "%s: empty path", name);
	*out = v;
	return 1;
}

int worker_parse_args(struct worker_opts *o, int argc, char **argv, struct chv_err *err)
{
	memset(o, 0, sizeof(*o));
	o->seccomp = SECCOMP_TRUE;
	const char *seccomp = NULL;
	bool worker = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int r;
		if (strcmp(a, "--worker") == 0) {
			worker = true;
			continue;
		}
		if (strcmp(a, "--verbose") == 0) {
			o->verbosity += o->verbosity < 3;
			continue;
		}
		if (a[0] == '-' && a[1] == 'v' && strspn(a + 1, "v") == strlen(a + 1)) {
			for (const char *p = a + 1; *p; p++)
				o->verbosity += o->verbosity < 3;
			continue;
		}
		if ((r = take_value(argc, argv, &i, "--control", &o->control, err)) < 0)
			return r;
		if (r)
			continue;
		if ((r = take_value(argc, argv, &i, "--log-file", &o->log_file, err)) < 0)
			return r;
		if (r)
			continue;
		if ((r = take_value(argc, argv, &i, "--vm-user", &o->vm_user, err)) < 0)
			return r;
		if (r)
			continue;
		if ((r = take_value(argc, argv, &i, "--seccomp", &seccomp, err)) < 0)
			return r;
		if (r)
			continue;
		return chv_err_set(err, -EINVAL,
				   "--worker takes only --control PATH, -v, --log-file PATH, "
				   "--seccomp true|log|false and --vm-user USER (got \"%s\")",
				   a);
	}
	if (seccomp && chv_seccomp_mode_parse(seccomp, &o->seccomp) < 0)
		return chv_err_set(err, -EINVAL,
				   "--seccomp: unknown value \"%s\" (true, false or log)", seccomp);
	if (!worker)
		return chv_err_set(err, -EINVAL, "--worker is missing");
	if (!o->control)
		return chv_err_set(err, -EINVAL, "--worker needs --control PATH");
	if (strlen(o->control) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return chv_err_set(err, -EINVAL, "--control: %s is longer than %zu bytes",
				   o->control, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	return 0;
}

/* ---- names ---- */

static const char *state_name(Chv__V1__VmState s)
{
	switch (s) {
	case CHV__V1__VM_STATE__VM_STATE_UNSPECIFIED:
		return "not created";
	case CHV__V1__VM_STATE__VM_STATE_CREATED:
		return "created";
	case CHV__V1__VM_STATE__VM_STATE_RUNNING:
		return "running";
	case CHV__V1__VM_STATE__VM_STATE_PAUSED:
		return "paused";
	case CHV__V1__VM_STATE__VM_STATE_SHUTDOWN:
		return "shut down";
	case CHV__V1__VM_STATE__VM_STATE_FAILED:
		return "failed";
	default:
		return "in an unknown state";
	}
}

/* ---- console output ---- */

static void arm_timer(int fd, long ms)
{
	struct itimerspec its = {
	    .it_value = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000}};
	(void)timerfd_settime(fd, 0, &its, NULL);
}

/* The serial sink's output callback: on a vCPU thread, must not block. */
static void console_out(void *ctx, const uint8_t *buf, size_t n)
{
	struct console_buf *c = ctx;
	pthread_mutex_lock(&c->lock);
	c->dropped += byte_ring_put(&c->ring, buf, n);
	if (!c->timer_armed) {
		c->timer_armed = true;
		arm_timer(c->timer_fd, CONSOLE_FLUSH_MS);
	}
	if (!c->kicked && byte_ring_len(&c->ring) >= CONSOLE_BATCH) {
		c->kicked = true;
		uint64_t one = 1;
		ssize_t w = write(c->kick_fd, &one, sizeof(one));
		(void)w; /* a pending kick is enough */
	}
	pthread_mutex_unlock(&c->lock);
}

/* ---- sending ---- */

static void drop_conn(struct worker *w, const char *why)
{
	if (w->conn_fd < 0)
		return;
	log_info("worker: controller disconnected (%s)", why);
	epoll_ctl(w->ep, EPOLL_CTL_DEL, w->conn_fd, NULL);
	close(w->conn_fd);
	w->conn_fd = -1;
}

static int send_msg(struct worker *w, const Chv__Worker__V1__WorkerMessage *m)
{
	if (w->conn_fd < 0)
		return -ENOTCONN;
	size_t len = chv__worker__v1__worker_message__get_packed_size(m);
	if (len > MAX_PACKET) {
		log_error("worker: a message of %zu bytes exceeds the 1 MiB limit; not sent", len);
		return -EMSGSIZE;
	}
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return -ENOMEM;
	chv__worker__v1__worker_message__pack(m, buf);
	ssize_t r;
	do
		r = send(w->conn_fd, buf, len, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	int e = errno;
	free(buf);
	if (r < 0) {
		char why[96];
		snprintf(why, sizeof(why), "send: %s", strerror(e));
		drop_conn(w, why);
		return -e;
	}
	return 0;
}

/* Sends what is pending, oldest first, while a controller is connected. */
static void console_flush(struct worker *w)
{
	struct console_buf *c = &w->con;
	uint8_t *chunk = w->tx_chunk;
	for (;;) {
		pthread_mutex_lock(&c->lock);
		if (w->conn_fd < 0) {
			/* The flags stay set: no wake-ups until a controller
			 * connects, and on_accept() flushes then. */
			pthread_mutex_unlock(&c->lock);
			break;
		}
		c->timer_armed = false;
		c->kicked = false;
		uint64_t pos = c->ring.tail;
		size_t n = byte_ring_copy(&c->ring, pos, chunk, CONSOLE_CHUNK);
		pthread_mutex_unlock(&c->lock);
		if (!n)
			break;
		Chv__Worker__V1__Notice notice = CHV__WORKER__V1__NOTICE__INIT;
		notice.kind_case = CHV__WORKER__V1__NOTICE__KIND_CONSOLE_OUTPUT;
		notice.console_output.data = chunk;
		notice.console_output.len = n;
		Chv__Worker__V1__WorkerMessage m = CHV__WORKER__V1__WORKER_MESSAGE__INIT;
		m.msg_case = CHV__WORKER__V1__WORKER_MESSAGE__MSG_NOTICE;
		m.notice = &notice;
		if (send_msg(w, &m) < 0)
			break; /* kept for the next controller */
		pthread_mutex_lock(&c->lock);
		/* Writers may have pushed the tail past what we sent meanwhile. */
		if (c->ring.tail < pos + n)
			c->ring.tail = pos + n;
		pthread_mutex_unlock(&c->lock);
	}
}

/* A state change: the state, a notice (console output before it, so the
 * controller sees them in order). */
static void set_state(struct worker *w, Chv__V1__VmState s, Chv__V1__EventKind ev,
		      const char *reason)
{
	w->state = s;
	if (s == CHV__V1__VM_STATE__VM_STATE_FAILED)
		snprintf(w->failure, sizeof(w->failure), "%s", reason ? reason : "");
	log_info("worker: VM %s (%s)", state_name(s), reason ? reason : "");
	console_flush(w);
	Chv__Worker__V1__StateChange sc = CHV__WORKER__V1__STATE_CHANGE__INIT;
	sc.state = s;
	sc.event = ev;
	sc.reason = (char *)(reason ? reason : "");
	Chv__Worker__V1__Notice notice = CHV__WORKER__V1__NOTICE__INIT;
	notice.kind_case = CHV__WORKER__V1__NOTICE__KIND_STATE;
	notice.state = &sc;
	Chv__Worker__V1__WorkerMessage m = CHV__WORKER__V1__WORKER_MESSAGE__INIT;
	m.msg_case = CHV__WORKER__V1__WORKER_MESSAGE__MSG_NOTICE;
	m.notice = &notice;
	(void)send_msg(w, &m);
}

static void send_reply(struct worker *w, Chv__Worker__V1__Reply *r)
{
	r->state = w->state;
	console_flush(w);
	Chv__Worker__V1__WorkerMessage m = CHV__WORKER__V1__WORKER_MESSAGE__INIT;
	m.msg_case = CHV__WORKER__V1__WORKER_MESSAGE__MSG_REPLY;
	m.reply = r;
	(void)send_msg(w, &m);
}

static void reply_status(struct worker *w, uint64_t seq, int status, const char *msg)
{
	Chv__Worker__V1__Reply r = CHV__WORKER__V1__REPLY__INIT;
	r.seq = seq;
	r.status = status;
	r.message = (char *)(msg ? msg : "");
	send_reply(w, &r);
}

static void reply_wrong_state(struct worker *w, uint64_t seq)
{
	char msg[64];
	snprintf(msg, sizeof(msg), "VM is %s", state_name(w->state));
	reply_status(w, seq, ST_FAILED_PRECONDITION, msg);
}

/* ---- counters ---- */

static void counter_add(struct counter *list, unsigned *n, const char *name, uint64_t v)
{
	for (unsigned i = 0; i < *n; i++) {
		if (strcmp(list[i].name, name) == 0) {
			list[i].value += v;
			return;
		}
	}
	if (*n < MAX_COUNTERS) {
		snprintf(list[*n].name, sizeof(list[*n].name), "%s", name);
		list[*n].value = v;
		++*n;
	}
}

struct counter_set {
	struct counter c[MAX_COUNTERS];
	unsigned n;
};

/* What a VM instance counts (exits, device requests) adds up across the
 * instances a reboot or power-off creates; its instant values (debug.*)
 * describe one instance and are never carried over. The sink's byte count
 * lives beyond one instance: taken from the sink. */
static void counter_collect(void *ctx, const char *name, uint64_t v)
{
	struct counter_set *s = ctx;
	if (strncmp(name, "debug.", 6) != 0)
		counter_add(s->c, &s->n, name, v);
}

/* The live instance's view: everything it reports. */
static void counter_collect_live(void *ctx, const char *name, uint64_t v)
{
	struct counter_set *s = ctx;
	counter_add(s->c, &s->n, name, v);
}

/* ---- the VM instance ---- */

static void serial_input(void *ctx, const uint8_t *buf, size_t n)
{
	struct worker *w = ctx;
	pthread_mutex_lock(&w->vm_lock);
	if (w->vm)
		vm_serial_input(w->vm, buf, n);
	pthread_mutex_unlock(&w->vm_lock);
}

static int vm_build(struct worker *w, struct chv_err *err)
{
	struct vm *vm = NULL;
	int r = vm_create(&vm, &w->cfg, w->serial, err);
	if (r < 0)
		return r;
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ev_data(TAG_VM, vm_outcome_fd(vm))};
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, vm_outcome_fd(vm), &ev) < 0) {
		r = chv_err_set(err, -errno, "epoll: %s", strerror(errno));
		vm_destroy(vm);
		return r;
	}
	pthread_mutex_lock(&w->vm_lock);
	w->vm = vm;
	pthread_mutex_unlock(&w->vm_lock);
	return 0;
}

/* Stops (if running) and destroys the VM instance, keeping its counters. */
static void vm_teardown(struct worker *w)
{
	struct vm *vm = w->vm;
	if (!vm)
		return;
	epoll_ctl(w->ep, EPOLL_CTL_DEL, vm_outcome_fd(vm), NULL);
	pthread_mutex_lock(&w->vm_lock);
	w->vm = NULL;
	pthread_mutex_unlock(&w->vm_lock);
	vm_stop(vm, VM_OUT_STOPPED, "stopped by the controller");
	(void)vm_wait(vm, NULL, 0); /* joins the vCPUs: their counts are final */
	struct counter_set s = {.n = 0};
	vm_counters(vm, counter_collect, &s);
	for (unsigned i = 0; i < s.n; i++)
		counter_add(w->base, &w->nbase, s.c[i].name, s.c[i].value);
	vm_destroy(vm);
}

/* Errors in what the user gave (a garbage kernel, a path that is not
 * there) are INVALID_ARGUMENT; the host's trouble is not. */
static int create_status(int code)
{
	switch (code) {
	case -EINVAL:
	case -ENOEXEC:
	case -ENOENT:
	case -E2BIG:
	case -EFBIG:
	case -ENOSPC:
	case -ENAMETOOLONG:
	case -EEXIST:
	case -EISDIR:
	case -ENOTDIR:
		return ST_INVALID_ARGUMENT;
	case -ENOMEM:
		return ST_RESOURCE_EXHAUSTED;
	default:
		return ST_FAILED_PRECONDITION;
	}
}

static void fail_vm(struct worker *w, const char *reason)
{
	vm_teardown(w);
	set_state(w, CHV__V1__VM_STATE__VM_STATE_FAILED, CHV__V1__EVENT_KIND__EVENT_KIND_FAILED,
		  reason);
}

/* Builds (when needed) and starts the VM; on failure the VM is Failed and
 * err says why. */
static int start_vm(struct worker *w, struct chv_err *err)
{
	int r = 0;
	if (!w->vm)
		r = vm_build(w, err);
	if (r == 0 && (r = vm_start(w->vm)) < 0)
		chv_err_set(err, r, "starting the vCPUs: %s", strerror(-r));
	if (r < 0)
		fail_vm(w, err->msg);
	return r;
}

/* ---- shutdown ---- */

static void finish_shutdown(struct worker *w, const char *reason)
{
	vm_teardown(w);
	if (w->state != CHV__V1__VM_STATE__VM_STATE_SHUTDOWN)
		set_state(w, CHV__V1__VM_STATE__VM_STATE_SHUTDOWN,
			  CHV__V1__EVENT_KIND__EVENT_KIND_SHUTDOWN, reason);
	if (w->shutting) {
		reply_status(w, w->shutdown_seq, ST_OK, reason);
		w->shutting = false;
	}
	w->exit_now = true;
}

static long ms_until(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long ms = (long)(t->tv_sec - now.tv_sec) * 1000 + (t->tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : ms;
}

static void on_shutdown(struct worker *w, uint64_t seq, const Chv__Worker__V1__Shutdown *sd)
{
	bool force = sd && sd->force;
	uint32_t timeout = sd && sd->timeout_ms ? sd->timeout_ms : SHUTDOWN_DEFAULT_MS;
	if (w->shutting && !force) {
		reply_status(w, seq, ST_FAILED_PRECONDITION, "VM is already shutting down");
		return;
	}
	if (!force && w->state == CHV__V1__VM_STATE__VM_STATE_RUNNING) {
		/* No ACPI power button yet: the guest gets the time to power off
		 * by itself. */
		w->shutting = true;
		w->shutdown_seq = seq;
		clock_gettime(CLOCK_MONOTONIC, &w->deadline);
		w->deadline.tv_sec += timeout / 1000;
		w->deadline.tv_nsec += (long)(timeout % 1000) * 1000000;
		if (w->deadline.tv_nsec >= 1000000000) {
			w->deadline.tv_sec++;
			w->deadline.tv_nsec -= 1000000000;
		}
		log_info("worker: graceful shutdown, waiting %u ms for the guest", timeout);
		return;
	}
	if (w->shutting) /* force while a graceful one waits: answer both */
		reply_status(w, w->shutdown_seq, ST_OK, "shut down by a forced shutdown");
	w->shutting = true;
	w->shutdown_seq = seq;
	finish_shutdown(w, "shut down by the controller");
}

/* ---- the VM's outcome ---- */

static void on_vm_outcome(struct worker *w)
{
	char reason[1536];
	/* Only an outcome that is set: a VM built since the event never blocks us. */
	if (!w->vm || vm_outcome(w->vm, NULL, 0) == VM_OUT_NONE)
		return;
	enum vm_outcome o = vm_wait(w->vm, reason, sizeof(reason));
	if (w->shutting) {
		finish_shutdown(w, reason);
		return;
	}
	switch (o) {
	case VM_OUT_POWEROFF:
		vm_teardown(w);
		set_state(w, CHV__V1__VM_STATE__VM_STATE_SHUTDOWN,
			  CHV__V1__EVENT_KIND__EVENT_KIND_SHUTDOWN, reason);
		break;
	case VM_OUT_RESET: {
		vm_teardown(w);
		struct chv_err err = {0};
		if (start_vm(w, &err) == 0)
			set_state(w, CHV__V1__VM_STATE__VM_STATE_RUNNING,
				  CHV__V1__EVENT_KIND__EVENT_KIND_REBOOTED, reason);
		break;
	}
	case VM_OUT_NONE:
	case VM_OUT_STOPPED:
	case VM_OUT_FAILED:
		fail_vm(w, reason);
		break;
	}
}

/* ---- requests ---- */

static int check_control_path(const struct sockaddr_un *sa, const char *what, struct chv_err *err);

/* A pre-started worker becomes a VM's: its listening socket moves to the
 * VM's path. rename() keeps the socket (and the controller's connection) and
 * replaces the name atomically, so a client never finds the path missing or
 * half-set-up. */
static int move_socket(struct worker *w, const char *to, struct chv_err *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(to);
	if (n >= sizeof(sa.sun_path))
		return chv_err_set(err, -ENAMETOOLONG, "control_path: %s is longer than %zu bytes",
				   to, sizeof(sa.sun_path) - 1);
	if (strcmp(to, w->sock_path) == 0)
		return 0;
	memcpy(sa.sun_path, to, n + 1);
	int r = check_control_path(&sa, "control_path", err);
	if (r < 0)
		return r;
	if (rename(w->sock_path, to) < 0)
		return chv_err_set(err, -errno, "control_path: cannot move %s to %s: %s",
				   w->sock_path, to, strerror(errno));
	log_info("worker: control socket moved from %s to %s", w->sock_path, to);
	memcpy(w->sock_path, to, n + 1);
	return 0;
}

/* Landlock, once the first build has opened what the VM has: from here on
 * the control thread (the only one that opens files) and every thread it
 * starts reach only the VM's own files. */
static int confine_files(struct worker *w, struct chv_err *err)
{
	char dir[sizeof(w->sock_path)];
	snprintf(dir, sizeof(dir), "%s", w->sock_path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = 0;
	return confine_landlock(&w->cfg, slash ? dir : ".", err);
}

static void on_create(struct worker *w, uint64_t seq, const Chv__V1__VmConfig *cfg,
		      const char *control_path)
{
	struct chv_err err = {0};
	if (w->state != CHV__V1__VM_STATE__VM_STATE_UNSPECIFIED) {
		reply_wrong_state(w, seq);
		return;
	}
	int r = control_path && control_path[0] ? move_socket(w, control_path, &err) : 0;
	if (r < 0) {
		log_warn("worker: %s", err.msg);
		reply_status(w, seq,
			     r == -EADDRINUSE ? ST_FAILED_PRECONDITION : ST_INVALID_ARGUMENT,
			     err.msg);
		return;
	}
	vm_config_free(&w->cfg);
	vm_config_init(&w->cfg);
	r = vm_config_from_proto(&w->cfg, cfg, &err);
	if (r == 0)
		r = vm_config_validate(&w->cfg, &err);
	if (r < 0) {
		reply_status(w, seq, ST_INVALID_ARGUMENT, err.msg);
		return;
	}
	w->cfg.seccomp = w->opts->seccomp; /* a process option, not the API's */
	/* Before anything of the VM is opened: what the first build may open, a
	 * rebuild (reboot) may open again with the same rights. */
	if ((r = confine_vm(&w->cfg, &err)) < 0) {
		log_error("worker: %s", err.msg);
		reply_status(w, seq, ST_FAILED_PRECONDITION, err.msg);
		return;
	}
	/* Under chvd, TTY means "to the daemon": output as notices. */
	if (w->cfg.serial.mode == CONSOLE_TTY) {
		w->serial = sink_open_callback(console_out, &w->con);
		if (!w->serial)
			r = chv_err_set(&err, -errno, "config.serial: %s", strerror(errno));
	} else if (w->cfg.serial.mode != CONSOLE_OFF) {
		w->serial = sink_open_opt(&w->cfg.serial, "config.serial", &err);
		if (!w->serial)
			r = err.code ? err.code : -EINVAL;
		else
			sink_set_input(w->serial, serial_input, w);
	}
	if (r == 0)
		r = vm_build(w, &err);
	if (r == 0 && (r = confine_files(w, &err)) < 0)
		vm_teardown(w);
	if (r < 0) {
		log_warn("worker: create failed: %s", err.msg);
		sink_close(w->serial);
		w->serial = NULL;
		reply_status(w, seq, create_status(r), err.msg);
		return;
	}
	set_state(w, CHV__V1__VM_STATE__VM_STATE_CREATED, CHV__V1__EVENT_KIND__EVENT_KIND_CREATED,
		  "created");
	reply_status(w, seq, ST_OK, NULL);
}

/* Test only: CHV_TEST_SECCOMP_VIOLATION=<VM id> makes this VM's worker
 * break its filter once booted (tests/integration/t_seccomp.sh). */
static void test_violation_of(struct worker *w)
{
	const char *base = strrchr(w->sock_path, '/');
	char id[sizeof(w->sock_path)];
	snprintf(id, sizeof(id), "%s", base ? base + 1 : w->sock_path);
	size_t n = strlen(id);
	if (n > 5 && strcmp(id + n - 5, ".sock") == 0)
		id[n - 5] = 0;
	chv_seccomp_test_violation(id);
}

static void on_boot(struct worker *w, uint64_t seq)
{
	if (w->state != CHV__V1__VM_STATE__VM_STATE_CREATED &&
	    w->state != CHV__V1__VM_STATE__VM_STATE_SHUTDOWN) {
		reply_wrong_state(w, seq);
		return;
	}
	struct chv_err err = {0};
	if (start_vm(w, &err) < 0) {
		reply_status(w, seq, ST_INTERNAL, err.msg);
		return;
	}
	set_state(w, CHV__V1__VM_STATE__VM_STATE_RUNNING, CHV__V1__EVENT_KIND__EVENT_KIND_BOOTED,
		  "booted");
	reply_status(w, seq, ST_OK, NULL);
	test_violation_of(w);
}

static void on_pause_resume(struct worker *w, uint64_t seq, bool pause)
{
	Chv__V1__VmState from =
	    pause ? CHV__V1__VM_STATE__VM_STATE_RUNNING : CHV__V1__VM_STATE__VM_STATE_PAUSED;
	if (w->state != from || !w->vm) {
		reply_wrong_state(w, seq);
		return;
	}
	int r = pause ? vm_pause(w->vm) : vm_resume(w->vm);
	if (r < 0) {
		/* The guest ended meanwhile: that outcome is the news. */
		on_vm_outcome(w);
		reply_wrong_state(w, seq);
		return;
	}
	if (pause)
		set_state(w, CHV__V1__VM_STATE__VM_STATE_PAUSED,
			  CHV__V1__EVENT_KIND__EVENT_KIND_PAUSED, "paused");
	else
		set_state(w, CHV__V1__VM_STATE__VM_STATE_RUNNING,
			  CHV__V1__EVENT_KIND__EVENT_KIND_RESUMED, "resumed");
	reply_status(w, seq, ST_OK, NULL);
}

static void on_reboot(struct worker *w, uint64_t seq)
{
	if (w->state != CHV__V1__VM_STATE__VM_STATE_RUNNING &&
	    w->state != CHV__V1__VM_STATE__VM_STATE_PAUSED) {
		reply_wrong_state(w, seq);
		return;
	}
	vm_teardown(w);
	struct chv_err err = {0};
	if (start_vm(w, &err) < 0) {
		reply_status(w, seq, ST_INTERNAL, err.msg);
		return;
	}
	set_state(w, CHV__V1__VM_STATE__VM_STATE_RUNNING, CHV__V1__EVENT_KIND__EVENT_KIND_REBOOTED,
		  "rebooted by the controller");
	reply_status(w, seq, ST_OK, NULL);
}

static void on_counters(struct worker *w, uint64_t seq)
{
	struct counter_set s = {.n = 0};
	for (unsigned i = 0; i < w->nbase; i++)
		counter_add(s.c, &s.n, w->base[i].name, w->base[i].value);
	if (w->vm)
		vm_counters(w->vm, counter_collect_live, &s);
	if (w->serial)
		counter_add(s.c, &s.n, "serial.tx_bytes", sink_tx_bytes(w->serial));
	pthread_mutex_lock(&w->con.lock);
	uint64_t dropped = w->con.dropped;
	pthread_mutex_unlock(&w->con.lock);
	if (w->cfg.serial.mode == CONSOLE_TTY)
		counter_add(s.c, &s.n, "serial.dropped_bytes", dropped);

	Chv__Worker__V1__Reply__CountersEntry entries[MAX_COUNTERS];
	Chv__Worker__V1__Reply__CountersEntry *ptrs[MAX_COUNTERS];
	for (unsigned i = 0; i < s.n; i++) {
		chv__worker__v1__reply__counters_entry__init(&entries[i]);
		entries[i].key = s.c[i].name;
		entries[i].value = s.c[i].value;
		ptrs[i] = &entries[i];
	}
	Chv__Worker__V1__Reply r = CHV__WORKER__V1__REPLY__INIT;
	r.seq = seq;
	r.n_counters = s.n;
	r.counters = ptrs;
	send_reply(w, &r);
}

static void on_console_input(struct worker *w, uint64_t seq, ProtobufCBinaryData data)
{
	if (!w->vm) {
		reply_wrong_state(w, seq);
		return;
	}
	if (data.len)
		vm_serial_input(w->vm, data.data, data.len);
	reply_status(w, seq, ST_OK, NULL);
}

static void on_request(struct worker *w, const Chv__Worker__V1__Request *req)
{
	uint64_t seq = req->seq;
	log_debug("worker: request %llu op %d", (unsigned long long)seq, (int)req->op_case);
	switch (req->op_case) {
	case CHV__WORKER__V1__REQUEST__OP_CREATE:
		on_create(w, seq, req->create, req->control_path);
		break;
	case CHV__WORKER__V1__REQUEST__OP_BOOT:
		on_boot(w, seq);
		break;
	case CHV__WORKER__V1__REQUEST__OP_PAUSE:
		on_pause_resume(w, seq, true);
		break;
	case CHV__WORKER__V1__REQUEST__OP_RESUME:
		on_pause_resume(w, seq, false);
		break;
	case CHV__WORKER__V1__REQUEST__OP_SHUTDOWN:
		on_shutdown(w, seq, req->shutdown);
		break;
	case CHV__WORKER__V1__REQUEST__OP_REBOOT:
		on_reboot(w, seq);
		break;
	case CHV__WORKER__V1__REQUEST__OP_POWER_BUTTON:
		reply_status(w, seq, ST_UNIMPLEMENTED,
			     "power button needs ACPI GED (not built yet)");
		break;
	case CHV__WORKER__V1__REQUEST__OP_INFO:
		reply_status(w, seq, ST_OK,
			     w->state == CHV__V1__VM_STATE__VM_STATE_FAILED ? w->failure : NULL);
		break;
	case CHV__WORKER__V1__REQUEST__OP_COUNTERS:
		on_counters(w, seq);
		break;
	case CHV__WORKER__V1__REQUEST__OP_CONSOLE_INPUT:
		on_console_input(w, seq, req->console_input);
		break;
	default:
		/* A newer controller's request: unknown fields were skipped. */
		reply_status(w, seq, ST_UNIMPLEMENTED, "unknown request");
		break;
	}
}

/* ---- the connection ---- */

static void on_accept(struct worker *w)
{
	int fd = accept4(w->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return; /* gone already, or EMFILE: the next event retries */
	if (w->conn_fd >= 0)
		drop_conn(w, "replaced by a new controller");
	struct timeval tv = {.tv_sec = SEND_TIMEOUT_MS / 1000,
			     .tv_usec = (SEND_TIMEOUT_MS % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ev_data(TAG_CONN, fd)};
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		log_error("worker: epoll: %s", strerror(errno));
		close(fd);
		return;
	}
	w->conn_fd = fd;
	log_info("worker: controller connected (VM %s)", state_name(w->state));
	console_flush(w); /* what was kept while nobody listened */
}

static void on_conn(struct worker *w, uint32_t events)
{
	if (!(events & EPOLLIN)) {
		drop_conn(w, "hang-up");
		return;
	}
	ssize_t n = recv(w->conn_fd, w->rx, MAX_PACKET + 1, MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		char why[96];
		snprintf(why, sizeof(why), "recv: %s", strerror(errno));
		drop_conn(w, why);
		return;
	}
	if (n == 0) {
		drop_conn(w, "closed");
		return;
	}
	if (n > MAX_PACKET) {
		log_warn("worker: a packet of %zd bytes exceeds the 1 MiB limit", n);
		drop_conn(w, "oversized packet");
		return;
	}
	Chv__Worker__V1__Request *req = chv__worker__v1__request__unpack(NULL, (size_t)n, w->rx);
	if (!req) {
		log_warn("worker: a packet of %zd bytes is not a Request", n);
		drop_conn(w, "malformed packet");
		return;
	}
	on_request(w, req);
	chv__worker__v1__request__free_unpacked(req, NULL);
}

/* ---- set-up ---- */

/* A socket file left by a dead worker is replaced; a live one, or anything
 * that is not a socket, is not ours to remove. */
static int check_control_path(const struct sockaddr_un *sa, const char *what, struct chv_err *err)
{
	struct stat st;
	if (lstat(sa->sun_path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return chv_err_set(err, -errno, "%s: %s: %s", what, sa->sun_path, strerror(errno));
	}
	if (!S_ISSOCK(st.st_mode))
		return chv_err_set(err, -EEXIST,
				   "%s: %s exists and is not a socket; not replacing it", what,
				   sa->sun_path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return chv_err_set(err, -errno, "%s: socket: %s", what, strerror(errno));
	int rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	int e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS)
		return chv_err_set(err, -EADDRINUSE, "%s: %s: another process is listening on it",
				   what, sa->sun_path);
	if (e != ECONNREFUSED && e != EPROTOTYPE)
		return chv_err_set(err, -e, "%s: %s: cannot check the existing socket: %s", what,
				   sa->sun_path, strerror(e));
	if (unlink(sa->sun_path) < 0 && errno != ENOENT)
		return chv_err_set(err, -errno, "%s: %s: cannot remove the stale socket: %s", what,
				   sa->sun_path, strerror(errno));
	return 0;
}

static int listen_control(struct worker *w, struct chv_err *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *path = w->opts->control;
	memcpy(sa.sun_path, path, strlen(path) + 1); /* length checked by the parser */
	int r = check_control_path(&sa, "--control", err);
	if (r < 0)
		return r;
	w->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (w->listen_fd < 0)
		return chv_err_set(err, -errno, "--control: socket: %s", strerror(errno));
	/* Bound and listening under a temporary name, then renamed into place:
	 * the path appears only once connections are accepted, so chvd's first
	 * connect never lands between bind() and listen(). Owner only from the
	 * start: the socket controls the VM. */
	struct sockaddr_un tmp = sa;
	bool staged = strlen(path) + 5 < sizeof(tmp.sun_path);
	if (staged)
		snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s.new", path);
	unlink(tmp.sun_path);
	mode_t old = umask(0177);
	r = bind(w->listen_fd, (struct sockaddr *)&tmp, sizeof(tmp));
	int e = errno;
	umask(old);
	if (r < 0)
		return chv_err_set(err, -e, "--control: %s: bind: %s", tmp.sun_path, strerror(e));
	struct stat st;
	if (listen(w->listen_fd, 8) < 0 || (staged && rename(tmp.sun_path, path) < 0) ||
	    stat(path, &st) < 0) {
		e = errno;
		unlink(tmp.sun_path);
		return chv_err_set(err, -e, "--control: %s: %s", path, strerror(e));
	}
	w->sock_bound = true;
	memcpy(w->sock_path, path, strlen(path) + 1);
	w->sock_dev = st.st_dev;
	w->sock_ino = st.st_ino;
	return 0;
}

static int watch(struct worker *w, int fd, enum tag t, struct chv_err *err)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ev_data(t, fd)};
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		return chv_err_set(err, -errno, "epoll: %s", strerror(errno));
	return 0;
}

static int worker_setup(struct worker *w, struct chv_err *err)
{
	int r;
	w->rx = malloc(MAX_PACKET + 1);
	int rr = byte_ring_init(&w->con.ring, CONSOLE_KEEP);
	w->tx_chunk = malloc(CONSOLE_CHUNK);
	if (!w->rx || rr < 0 || !w->tx_chunk)
		return chv_err_set(err, -ENOMEM, "out of memory");
	w->ep = epoll_create1(EPOLL_CLOEXEC);
	w->con.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	w->con.kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	w->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (w->ep < 0 || w->con.timer_fd < 0 || w->con.kick_fd < 0 || w->sig_fd < 0)
		return chv_err_set(err, -errno, "event loop set-up: %s", strerror(errno));
	if ((r = listen_control(w, err)) < 0)
		return r;
	if ((r = watch(w, w->listen_fd, TAG_LISTEN, err)) ||
	    (r = watch(w, w->con.timer_fd, TAG_TIMER, err)) ||
	    (r = watch(w, w->con.kick_fd, TAG_KICK, err)) ||
	    (r = watch(w, w->sig_fd, TAG_SIGNAL, err)))
		return r;
	return 0;
}

static void worker_teardown(struct worker *w)
{
	vm_teardown(w);
	if (w->conn_fd >= 0)
		close(w->conn_fd);
	if (w->listen_fd >= 0)
		close(w->listen_fd);
	/* Remove the socket only if it is still the one we bound. */
	struct stat st;
	if (w->sock_bound && lstat(w->sock_path, &st) == 0 && st.st_dev == w->sock_dev &&
	    st.st_ino == w->sock_ino)
		unlink(w->sock_path);
	sink_close(w->serial);
	int fds[] = {w->ep, w->sig_fd, w->con.timer_fd, w->con.kick_fd};
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	vm_config_free(&w->cfg);
	pthread_mutex_destroy(&w->vm_lock);
	pthread_mutex_destroy(&w->con.lock);
	byte_ring_free(&w->con.ring);
	free(w->rx);
	free(w->tx_chunk);
}

static void on_signal(struct worker *w)
{
	struct signalfd_siginfo si;
	while (read(w->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		int sig = (int)si.ssi_signo;
		if (sig == SIGHUP) {
			/* A VM outlives the terminal or the daemon that started it. */
			log_info("worker: SIGHUP ignored");
			continue;
		}
		char msg[64];
		snprintf(msg, sizeof(msg), "stopped by %s", strsignal(sig));
		log_warn("worker: %s", msg);
		finish_shutdown(w, msg);
		return;
	}
}

static void drain_fd(int fd)
{
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof(v));
	(void)r; /* only clears readiness */
}

static void worker_loop(struct worker *w)
{
	while (!w->exit_now) {
		int timeout = w->shutting ? (int)ms_until(&w->deadline) : -1;
		struct epoll_event evs[8];
		int n = epoll_wait(w->ep, evs, 8, timeout);
		if (n < 0 && errno != EINTR) {
			log_error("worker: epoll_wait: %s", strerror(errno));
			finish_shutdown(w, "the worker's event loop failed");
			break;
		}
		for (int i = 0; i < n && !w->exit_now; i++) {
			int fd = (int)(evs[i].data.u64 >> 32);
			switch ((enum tag)(uint32_t)evs[i].data.u64) {
			case TAG_LISTEN:
				on_accept(w);
				break;
			case TAG_CONN:
				if (w->conn_fd >= 0 && fd == w->conn_fd)
					on_conn(w, evs[i].events);
				break;
			case TAG_VM:
				if (w->vm && fd == vm_outcome_fd(w->vm))
					on_vm_outcome(w);
				break;
			case TAG_TIMER:
				drain_fd(w->con.timer_fd);
				console_flush(w);
				break;
			case TAG_KICK:
				drain_fd(w->con.kick_fd);
				console_flush(w);
				break;
			case TAG_SIGNAL:
				on_signal(w);
				break;
			}
		}
		if (!w->exit_now && w->shutting && ms_until(&w->deadline) == 0) {
			log_info("worker: the guest did not power off in time; stopping it");
			finish_shutdown(w, "graceful shutdown timed out; stopped");
		}
	}
}

int worker_main(const struct worker_opts *o)
{
	struct chv_err cerr = {0};
	if (confine_close_fds(&cerr) < 0) {
		fprintf(stderr, "chv-vmm: %s\n", cerr.msg);
		return VMM_EXIT_FAILED;
	}
	int r = log_init(o->verbosity, o->log_file);
	if (r < 0) {
		fprintf(stderr, "chv-vmm: --log-file: cannot open %s: %s\n", o->log_file,
			strerror(-r));
		return VMM_EXIT_CONFIG;
	}
	/* Signals come through the signalfd; the kick signal is for vCPU
	 * threads only; a controller that died must not kill us. Threads
	 * created from here on inherit the mask. */
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGRTMIN);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct worker *w = calloc(1, sizeof(*w));
	if (!w) {
		fprintf(stderr, "chv-vmm: out of memory\n");
		log_close();
		return VMM_EXIT_FAILED;
	}
	w->opts = o;
	w->ep = w->listen_fd = w->conn_fd = w->sig_fd = -1;
	w->con.timer_fd = w->con.kick_fd = -1;
	pthread_mutex_init(&w->vm_lock, NULL);
	pthread_mutex_init(&w->con.lock, NULL);
	vm_config_init(&w->cfg);

	struct chv_err err = {0};
	int status = 0;
	chv_seccomp_set_mode(o->seccomp);
	blk_io_set_thread_start(chv_seccomp_blk_hook, NULL);
	struct confine_opts co = {.vm_user = o->vm_user};
	if (confine_start(&co, &err) < 0) {
		log_error("%s", err.msg);
		fprintf(stderr, "chv-vmm: %s\n", err.msg);
		status = VMM_EXIT_FAILED;
	} else if (worker_setup(w, &err) < 0) {
		log_error("%s", err.msg);
		fprintf(stderr, "chv-vmm: %s\n", err.msg);
		status = VMM_EXIT_CONFIG;
	} else if (chv_seccomp_thread(SECCOMP_CONTROL, &err) < 0) {
		fprintf(stderr, "chv-vmm: %s\n", err.msg);
		status = VMM_EXIT_FAILED;
	} else {
		log_info("worker: listening on %s", o->control);
		chv_seccomp_test_violation("worker-start");
		worker_loop(w);
	}
	worker_teardown(w);
	free(w);
	log_close();
	return status;
}
