/* The streaming commands: events, console, and run (create + boot +
 * console until the VM stops). The console puts a terminal in raw mode and
 * must give it back on every way out, signals included. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "client/chvctl.h"
#include "client/json.h"

#define DETACH_KEY 0x1d /* Ctrl-] */
#define POLL_MS	   100
/* Output the guest wrote just before it stopped may arrive after the stop
 * event (two streams); keep reading this long once the stream goes quiet. */
#define STOP_GRACE_MS 300
/* How often the state is checked besides the events, which can be missed
 * when the VM stops before the event watch is in place. */
#define STATE_CHECK_MS 500
#define UNARY_WAIT_MS  10000

static long long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- events ---- */

static int open_events(struct ctl *c, const char *vm, int timeout_ms, struct rpc_stream **out)
{
	struct rpc_result res = {0};
	Chv__V1__WatchEventsRequest req = CHV__V1__WATCH_EVENTS_REQUEST__INIT;
	req.vm_id = (char *)(vm ? vm : "");
	*out = NULL;
	int rc = chvctl_channel(c);
	if (rc)
		return rc;
	if (rpc_stream_open(c->ch, "/chv.v1.Vm/WatchEvents", timeout_ms, out, &res) != 0) {
		*out = NULL;
		return chvctl_rpc_fail(c, -EIO, &res);
	}
	if (rpc_stream_write(*out, &req.base) != 0 || rpc_stream_close_write(*out) != 0) {
		rpc_stream_finish(*out, &res);
		*out = NULL;
		return chvctl_rpc_fail(c, -EIO, &res);
	}
	return 0;
}

int chvctl_cmd_events(struct ctl *c, const struct cmd_args *a)
{
	bool follow = chvctl_opt(a, "follow") != NULL;
	struct rpc_stream *s;
	struct rpc_result res = {0};
	bool cancelled = false;
	int status = CHVCTL_EXIT_OK;

	int rc = open_events(c, a->npos ? a->pos[0] : NULL,
			     c->opts.timeout_ms > 0 ? c->opts.timeout_ms : 0, &s);
	if (rc)
		return rc;
	for (;;) {
		ProtobufCMessage *m = NULL;
		rc = rpc_stream_read(s, &chv__v1__event__descriptor, &m, -1);
		if (rc <= 0)
			break;
		if (c->opts.json) {
			if (json_print(c->out, m, 0) != 0)
				status = CHVCTL_EXIT_RPC;
		} else
			chvctl_print_event(c->out, (const Chv__V1__Event *)m);
		fflush(c->out);
		protobuf_c_message_free_unpacked(m, NULL);
		if (!follow) {
			cancelled = true;
			break;
		}
	}
	rpc_stream_finish(s, &res);
	if (!cancelled && (rc < 0 || res.status != 0))
		status = chvctl_rpc_fail(c, rc, &res);
	return status;
}

/* ---- the terminal ---- */

static struct termios saved_tio;
static volatile sig_atomic_t tio_saved;

static void tty_restore(void)
{
	if (tio_saved) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
		tio_saved = 0;
	}
}

static void on_fatal_signal(int sig)
{
	/* tcsetattr is async-signal-safe; then die the way the signal meant. */
	tty_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void tty_raw(void)
{
	static const int sigs[] = {SIGTERM, SIGHUP, SIGINT, SIGQUIT};
	struct termios raw;
	if (tcgetattr(STDIN_FILENO, &saved_tio) != 0)
		return;
	raw = saved_tio;
	cfmakeraw(&raw);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct sigaction sa = {.sa_handler = on_fatal_signal};
		sigemptyset(&sa.sa_mask);
		sigaction(sigs[i], &sa, NULL);
	}
	tio_saved = 1;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) != 0)
		tty_restore();
}

/* ---- attaching to a console ---- */

struct attach {
	struct ctl *c;
	const char *vm_id;
	struct rpc_stream *con;
	struct rpc_stream *ev; /* NULL: only the state checks see the stop */
	bool tty;
	int wake[2]; /* written once at the end: the input thread returns */
	atomic_bool detached;
	atomic_bool stopped;
	atomic_bool done;
	atomic_int final_state; /* Chv__V1__VmState once stopped */
	atomic_llong stop_at;
};

static int send_input(struct attach *at, const uint8_t *d, size_t n)
{
	Chv__V1__ConsoleInput in = CHV__V1__CONSOLE_INPUT__INIT;
	in.data.data = (uint8_t *)d;
	in.data.len = n;
	return rpc_stream_write(at->con, &in.base);
}

static void *input_thread(void *arg)
{
	struct attach *at = arg;
	uint8_t buf[4096];
	for (;;) {
		struct pollfd p[2] = {{STDIN_FILENO, POLLIN, 0}, {at->wake[0], POLLIN, 0}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			/* Piped input ran out: the guest sees no more, output goes on. */
			(void)rpc_stream_close_write(at->con);
			break;
		}
		size_t len = (size_t)n;
		const uint8_t *esc = at->tty ? memchr(buf, DETACH_KEY, len) : NULL;
		if (esc)
			len = (size_t)(esc - buf);
		if (len && send_input(at, buf, len) != 0)
			break;
		if (esc) {
			atomic_store(&at->detached, true);
			break;
		}
	}
	return NULL;
}

static bool is_stopped_state(int state)
{
	return state == CHV__V1__VM_STATE__VM_STATE_SHUTDOWN ||
	       state == CHV__V1__VM_STATE__VM_STATE_FAILED;
}

static void mark_stopped(struct attach *at, int state)
{
	if (atomic_exchange(&at->stopped, true))
		return;
	atomic_store(&at->final_state, state);
	atomic_store(&at->stop_at, now_ms());
}

/* The state now, or -1 when it cannot be had (then: not found counts as gone). */
static int vm_state(struct attach *at)
{
	Chv__V1__VmRequest req = CHV__V1__VM_REQUEST__INIT;
	ProtobufCMessage *reply = NULL;
	struct rpc_result res = {0};
	req.vm_id = (char *)at->vm_id;
	int rc = rpc_call_unary(at->c->ch, "/chv.v1.Vm/Info", &req.base,
				&chv__v1__vm_info__descriptor, &reply, UNARY_WAIT_MS, false, &res);
	if (rc != 0 || res.status != 0 || !reply) {
		if (reply)
			protobuf_c_message_free_unpacked(reply, NULL);
		return res.status == 5 /* NOT_FOUND */ ? CHV__V1__VM_STATE__VM_STATE_UNSPECIFIED
						       : -1;
	}
	int state = (int)((Chv__V1__VmInfo *)reply)->state;
	protobuf_c_message_free_unpacked(reply, NULL);
	return state;
}

/* Watches for the VM to stop: its events, and its state now and then. */
static void *watch_thread(void *arg)
{
	struct attach *at = arg;
	long long next_check = 0;
	while (!atomic_load(&at->done) && !atomic_load(&at->stopped)) {
		if (now_ms() >= next_check) {
			int st = vm_state(at);
			if (st == CHV__V1__VM_STATE__VM_STATE_UNSPECIFIED ||
			    (st >= 0 && is_stopped_state(st)))
				mark_stopped(at, st);
			next_check = now_ms() + STATE_CHECK_MS;
			continue;
		}
		if (!at->ev) {
			usleep(POLL_MS * 1000);
			continue;
		}
		ProtobufCMessage *m = NULL;
		int rc = rpc_stream_read(at->ev, &chv__v1__event__descriptor, &m, POLL_MS);
		if (rc == -ETIMEDOUT)
			continue;
		if (rc <= 0) {
			/* No more events: the state checks carry on alone. */
			struct rpc_result res;
			rpc_stream_finish(at->ev, &res);
			at->ev = NULL;
			continue;
		}
		const Chv__V1__Event *ev = (const Chv__V1__Event *)m;
		if (ev->kind == CHV__V1__EVENT_KIND__EVENT_KIND_DELETED)
			mark_stopped(at, CHV__V1__VM_STATE__VM_STATE_UNSPECIFIED);
		else if (is_stopped_state(ev->state))
			mark_stopped(at, ev->state);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	return NULL;
}

static int write_all(int fd, const uint8_t *d, size_t n)
{
	while (n) {
		ssize_t w = write(fd, d, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -errno;
		d += w;
		n -= (size_t)w;
	}
	return 0;
}

static int open_console(struct ctl *c, const char *vm, bool skip_history, bool no_follow,
			struct rpc_stream **out)
{
	struct rpc_result res = {0};
	Chv__V1__ConsoleInput first = CHV__V1__CONSOLE_INPUT__INIT;
	first.vm_id = (char *)vm;
	first.kind = CHV__V1__CONSOLE_KIND__CONSOLE_KIND_SERIAL;
	first.skip_history = skip_history;
	first.no_follow = no_follow;
	*out = NULL;
	int rc = chvctl_channel(c);
	if (rc)
		return rc;
	if (rpc_stream_open(c->ch, "/chv.v1.Vm/Console", 0, out, &res) != 0) {
		*out = NULL;
		return chvctl_rpc_fail(c, -EIO, &res);
	}
	if (rpc_stream_write(*out, &first.base) != 0) {
		rpc_stream_finish(*out, &res);
		*out = NULL;
		return chvctl_rpc_fail(c, -EIO, &res);
	}
	return 0;
}

/* Copies the console's output to stdout until the stream ends. */
static int console_dump(struct ctl *c, struct rpc_stream *con)
{
	struct rpc_result res = {0};
	int rc;
	(void)rpc_stream_close_write(con);
	for (;;) {
		ProtobufCMessage *m = NULL;
		rc = rpc_stream_read(con, &chv__v1__console_output__descriptor, &m, -1);
		if (rc <= 0)
			break;
		const Chv__V1__ConsoleOutput *o = (const Chv__V1__ConsoleOutput *)m;
		int w = write_all(fileno(c->out), o->data.data, o->data.len);
		protobuf_c_message_free_unpacked(m, NULL);
		if (w)
			break;
	}
	rpc_stream_finish(con, &res);
	if (rc < 0 || res.status != 0)
		return chvctl_rpc_fail(c, rc, &res);
	return CHVCTL_EXIT_OK;
}

/* Interactive: output as it comes, input from stdin, until the user
 * detaches, the VM stops, or the stream ends. *state: the VM's state when
 * it stopped, -1 when it did not (detached, or the stream ended). */
static int console_attach(struct ctl *c, const char *vm, bool skip_history, int *state)
{
	struct attach at = {.c = c, .vm_id = vm, .wake = {-1, -1}};
	struct rpc_result res = {0};
	pthread_t in_tid, watch_tid;
	bool in_started = false, watch_started = false;
	int rc, status = CHVCTL_EXIT_OK;

	*state = -1;
	atomic_init(&at.detached, false);
	atomic_init(&at.stopped, false);
	atomic_init(&at.done, false);
	atomic_init(&at.final_state, -1);
	atomic_init(&at.stop_at, 0);

	/* Events first, so a stop right after the console opens is not missed. */
	if (open_events(c, vm, 0, &at.ev) != 0)
		at.ev = NULL;
	rc = open_console(c, vm, skip_history, false, &at.con);
	if (rc) {
		if (at.ev)
			rpc_stream_finish(at.ev, &res);
		return rc;
	}
	if (pipe(at.wake) != 0) {
		fprintf(c->errf, "chvctl: pipe: %s\n", strerror(errno));
		rpc_stream_finish(at.con, &res);
		if (at.ev)
			rpc_stream_finish(at.ev, &res);
		return CHVCTL_EXIT_RPC;
	}
	fflush(c->out);
	at.tty = isatty(STDIN_FILENO);
	if (at.tty) {
		fprintf(c->errf, "chvctl: attached to %s's serial console; Ctrl-] detaches\r\n",
			vm);
		tty_raw();
	}
	in_started = pthread_create(&in_tid, NULL, input_thread, &at) == 0;
	watch_started = pthread_create(&watch_tid, NULL, watch_thread, &at) == 0;

	for (;;) {
		ProtobufCMessage *m = NULL;
		rc = rpc_stream_read(at.con, &chv__v1__console_output__descriptor, &m, POLL_MS);
		if (rc == 1) {
			const Chv__V1__ConsoleOutput *o = (const Chv__V1__ConsoleOutput *)m;
			int w = write_all(fileno(c->out), o->data.data, o->data.len);
			protobuf_c_message_free_unpacked(m, NULL);
			if (w)
				break;
			continue;
		}
		if (rc != -ETIMEDOUT)
			break;
		if (atomic_load(&at.detached))
			break;
		if (atomic_load(&at.stopped) &&
		    now_ms() - atomic_load(&at.stop_at) >= STOP_GRACE_MS)
			break;
	}
	atomic_store(&at.done, true);
	if (write(at.wake[1], "x", 1) < 0) {
		/* The input thread would block in poll; nothing else to do. */
	}
	if (in_started)
		pthread_join(in_tid, NULL);
	if (watch_started)
		pthread_join(watch_tid, NULL);
	tty_restore();
	close(at.wake[0]);
	close(at.wake[1]);

	rpc_stream_finish(at.con, &res);
	if (at.ev) {
		struct rpc_result eres;
		rpc_stream_finish(at.ev, &eres);
	}
	if (atomic_load(&at.stopped)) {
		*state = atomic_load(&at.final_state);
	} else if (atomic_load(&at.detached)) {
		fprintf(c->errf, "\r\nchvctl: detached from %s\n", vm);
	} else if (rc == 0 && res.status == 0) {
		/* The daemon ended the console: the VM went away or stopped. */
		*state = vm_state(&at);
	} else if (rc == 1) {
		status = CHVCTL_EXIT_RPC; /* stdout is gone; nobody to tell */
	} else {
		status = chvctl_rpc_fail(c, rc, &res);
	}
	return status;
}

int chvctl_cmd_console(struct ctl *c, const struct cmd_args *a)
{
	bool skip = chvctl_opt(a, "skip-history") != NULL;
	int state;
	if (chvctl_opt(a, "no-follow")) {
		struct rpc_stream *con;
		int rc = open_console(c, a->pos[0], skip, true, &con);
		return rc ? rc : console_dump(c, con);
	}
	return console_attach(c, a->pos[0], skip, &state);
}

static void delete_vm(struct ctl *c, const char *id)
{
	Chv__V1__DeleteRequest req = CHV__V1__DELETE_REQUEST__INIT;
	ProtobufCMessage *reply;
	req.vm_id = (char *)id;
	req.force = true;
	if (chvctl_call(c, "/chv.v1.Vm/Delete", &req.base, &chv__v1__delete_response__descriptor,
			&reply, UNARY_WAIT_MS) == 0)
		protobuf_c_message_free_unpacked(reply, NULL);
}

int chvctl_cmd_run(struct ctl *c, const struct cmd_args *a)
{
	struct chv_err err = {0};
	ProtobufCMessage *req = NULL, *reply = NULL;
	int timeout = c->opts.timeout_ms >= 0 ? c->opts.timeout_ms : CHVCTL_DEFAULT_TIMEOUT_MS;
	bool rm = chvctl_opt(a, "rm") != NULL;

	if (chvctl_build_create(a, true, &req, &err) != 0) {
		chvctl_request_free(req);
		fprintf(c->errf, "chvctl: run: %s\n", err.msg);
		return err.code == -ENOMEM ? CHVCTL_EXIT_RPC : CHVCTL_EXIT_USAGE;
	}
	int rc = chvctl_call(c, "/chv.v1.Vm/Create", req, &chv__v1__vm_info__descriptor, &reply,
			     timeout);
	chvctl_request_free(req);
	if (rc)
		return rc;
	char *id = strdup(((Chv__V1__VmInfo *)reply)->id);
	protobuf_c_message_free_unpacked(reply, NULL);
	if (!id) {
		fputs("chvctl: run: out of memory\n", c->errf);
		return CHVCTL_EXIT_RPC;
	}

	Chv__V1__VmRequest boot = CHV__V1__VM_REQUEST__INIT;
	boot.vm_id = id;
	rc = chvctl_call(c, "/chv.v1.Vm/Boot", &boot.base, &chv__v1__vm_info__descriptor, &reply,
			 timeout);
	if (rc) {
		if (rm)
			delete_vm(c, id);
		free(id);
		return rc;
	}
	protobuf_c_message_free_unpacked(reply, NULL);

	int state;
	rc = console_attach(c, id, false, &state);
	if (rc == CHVCTL_EXIT_OK) {
		if (state == CHV__V1__VM_STATE__VM_STATE_SHUTDOWN) {
			rc = CHVCTL_EXIT_OK;
		} else {
			if (state == CHV__V1__VM_STATE__VM_STATE_FAILED)
				fprintf(c->errf, "chvctl: run: VM %s failed\n", id);
			rc = CHVCTL_EXIT_RPC;
		}
	}
	if (rm && state > 0)
		delete_vm(c, id);
	free(id);
	return rc;
}
