/* daemon/rpc + client/rpc_client + daemon/health, end to end in one process:
 * a server over a socketpair and over a listening unix socket, a test service
 * using the health messages, and raw gRPC calls for malformed requests. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>

#include "client/rpc_client.h"
#include "daemon/health.h"
#include "daemon/rpc.h"
#include "grpc/health/v1/health.pb-c.h"

typedef Grpc__Health__V1__HealthCheckRequest Req;
typedef Grpc__Health__V1__HealthCheckResponse Resp;
#define REQ_DESC  (&grpc__health__v1__health_check_request__descriptor)
#define RESP_DESC (&grpc__health__v1__health_check_response__descriptor)
#define MAX_MSG	  (64 * 1024)

/* What the test handlers saw, shared with the test bodies. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int cancels;
	int epipes;
	int enobufs;
	int flood_sent;
	int connects;
	pid_t conn_pid;
	uid_t conn_uid;
	int endless_done;
} seen = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void seen_bump(int *field, int by)
{
	pthread_mutex_lock(&seen.lock);
	*field += by;
	pthread_cond_broadcast(&seen.cond);
	pthread_mutex_unlock(&seen.lock);
}

/* Waits up to ms for *field >= want. */
static bool seen_wait(int *field, int want, int ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&seen.lock);
	while (*field < want && pthread_cond_timedwait(&seen.cond, &seen.lock, &dl) == 0)
		;
	bool ok = *field >= want;
	pthread_mutex_unlock(&seen.lock);
	return ok;
}

static void reply_str(struct rpc_call *call, const char *s)
{
	Req r = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	r.service = (char *)s;
	rpc_reply(call, &r.base);
}

static int send_str(struct rpc_call *call, const char *s)
{
	Req r = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	r.service = (char *)s;
	return rpc_stream_send(call, &r.base);
}

static void *late_reply(void *arg)
{
	usleep(50 * 1000);
	reply_str(arg, "late-reply");
	return NULL;
}

static void h_echo(struct rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
	const Req *req = (const Req *)msg;
	int code;
	char text[128];
	(void)ctx;

	if (sscanf(req->service, "fail:%d:%127[^\n]", &code, text) == 2) {
		rpc_fail(call, code, "%s", text);
	} else if (strcmp(req->service, "late") == 0) {
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, late_reply, call), 0);
		pthread_detach(t);
	} else if (strcmp(req->service, "whoami") == 0) {
		pid_t pid;
		uid_t uid;
		gid_t gid;
		char buf[64];
		rpc_call_peer(call, &pid, &uid, &gid);
		snprintf(buf, sizeof(buf), "%d %d %d", (int)pid, (int)uid, (int)gid);
		reply_str(call, buf);
	} else {
		reply_str(call, req->service);
	}
}

static void h_count(struct rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
	const Req *req = (const Req *)msg;
	char buf[32];
	int n;
	(void)ctx;

	if (sscanf(req->service, "flood:%d", &n) == 1) {
		int nobufs = 0;
		for (int i = 0; i < n; i++) {
			snprintf(buf, sizeof(buf), "%d", i);
			if (send_str(call, buf) == -ENOBUFS)
				nobufs++;
		}
		seen_bump(&seen.enobufs, nobufs);
		seen_bump(&seen.flood_sent, n);
		rpc_finish(call, RPC_OK, "flood done");
		return;
	}
	n = atoi(req->service);
	for (int i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "m%d", i);
		assert_int_equal(send_str(call, buf), 0);
	}
	rpc_finish(call, RPC_OK, "sent %d", n);
}

static void endless_cancelled(struct rpc_call *call, void *ctx)
{
	(void)call;
	(void)ctx;
	seen_bump(&seen.cancels, 1);
}

static void *endless_producer(void *arg)
{
	struct rpc_call *call = arg;
	char buf[32];

	for (int i = 0;; i++) {
		snprintf(buf, sizeof(buf), "e%d", i);
		int r = send_str(call, buf);
		if (r == -EPIPE)
			break;
		usleep(1000);
	}
	assert_true(rpc_call_cancelled(call));
	seen_bump(&seen.epipes, 1);
	rpc_finish(call, RPC_CANCELLED, "producer stopped");
	seen_bump(&seen.endless_done, 1);
	return NULL;
}

static void h_endless(struct rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
	pthread_t t;
	(void)msg;
	(void)ctx;
	rpc_call_on_cancel(call, endless_cancelled, NULL);
	assert_int_equal(pthread_create(&t, NULL, endless_producer, call), 0);
	pthread_detach(t);
}

static void bidi_recv(struct rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
	(void)ctx;
	if (!msg) {
		rpc_finish(call, RPC_OK, "bye");
		return;
	}
	char buf[300];
	snprintf(buf, sizeof(buf), "echo:%s", ((const Req *)msg)->service);
	send_str(call, buf);
}

static void h_bidi(struct rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
	if (!msg) {
		rpc_finish(call, RPC_OK, "empty");
		return;
	}
	bidi_recv(call, msg, ctx);
	rpc_stream_on_recv(call, bidi_recv, NULL);
}

static const struct rpc_method test_methods[] = {
    {"/test.T/Echo", RPC_UNARY, REQ_DESC, REQ_DESC, h_echo, NULL, false},
    {"/test.T/Count", RPC_SERVER_STREAM, REQ_DESC, REQ_DESC, h_count, NULL, false},
    {"/test.T/Endless", RPC_SERVER_STREAM, REQ_DESC, REQ_DESC, h_endless, NULL, false},
    {"/test.T/Bidi", RPC_BIDI, REQ_DESC, REQ_DESC, h_bidi, NULL, false},
};

static void on_connect(void *ctx, int fd, pid_t pid, uid_t uid, gid_t gid)
{
	(void)ctx;
	(void)gid;
	assert_true(fd >= 0);
	pthread_mutex_lock(&seen.lock);
	seen.conn_pid = pid;
	seen.conn_uid = uid;
	seen.connects++;
	pthread_cond_broadcast(&seen.cond);
	pthread_mutex_unlock(&seen.lock);
}

struct fx {
	bool unix_mode;
	struct rpc_server *srv;
	struct rpc_channel *ch;
	struct health *health;
	char dir[64];
	char path[128];
};

static void reset_seen(void)
{
	pthread_mutex_lock(&seen.lock);
	seen.cancels = seen.epipes = seen.enobufs = seen.flood_sent = 0;
	seen.connects = 0;
	seen.conn_pid = -1;
	seen.conn_uid = (uid_t)-1;
	seen.endless_done = 0;
	pthread_mutex_unlock(&seen.lock);
}

static int make_listener(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_true(strlen(path) < sizeof(a.sun_path));
	memcpy(a.sun_path, path, strlen(path) + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 64), 0);
	return fd;
}

static int setup(void **state, bool unix_mode, unsigned threads)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct chv_err err = {0};
	size_t nh;
	assert_non_null(f);
	reset_seen();
	f->unix_mode = unix_mode;

	struct rpc_server_opts o = {
	    .max_message_bytes = MAX_MSG, .threads = threads, .on_connect = on_connect};
	assert_int_equal(rpc_server_create(&f->srv, &o, &err), 0);
	assert_int_equal(rpc_server_add_methods(f->srv, test_methods, 4, &err), 0);
	assert_int_equal(health_create(&f->health), 0);
	const struct rpc_method *hm = health_methods(f->health, &nh);
	assert_int_equal(rpc_server_add_methods(f->srv, hm, nh, &err), 0);

	if (unix_mode) {
		snprintf(f->dir, sizeof(f->dir), "/tmp/chv-test-rpc-XXXXXX");
		assert_non_null(mkdtemp(f->dir));
		snprintf(f->path, sizeof(f->path), "%s/api.sock", f->dir);
		assert_int_equal(rpc_server_add_listener(f->srv, make_listener(f->path), &err), 0);
		assert_int_equal(rpc_server_start(f->srv, &err), 0);
		char target[160];
		snprintf(target, sizeof(target), "unix:%s", f->path);
		assert_int_equal(rpc_channel_open(&f->ch, target, &err), 0);
	} else {
		int sv[2];
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		/* Added before start: it is served once the server starts. */
		assert_int_equal(rpc_server_add_connection(f->srv, sv[0], &err), 0);
		assert_int_equal(rpc_server_start(f->srv, &err), 0);
		assert_int_equal(rpc_channel_from_fd(&f->ch, sv[1], &err), 0);
	}
	*state = f;
	return 0;
}

static int setup_pair(void **state)
{
	return setup(state, false, 0);
}

static int setup_unix(void **state)
{
	return setup(state, true, 0);
}

/* One completion-queue thread: while a handler runs, no send can complete. */
static int setup_pair_1thread(void **state)
{
	return setup(state, false, 1);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	rpc_channel_close(f->ch);
	rpc_server_shutdown(f->srv, 1000);
	health_destroy(f->health);
	if (f->unix_mode) {
		unlink(f->path);
		rmdir(f->dir);
	}
	free(f);
	return 0;
}

/* One unary Echo; returns the status, *out gets the reply text (or NULL). */
static int echo(struct rpc_channel *ch, const char *s, char **out, int timeout_ms,
		struct rpc_result *res)
{
	Req r = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	r.service = (char *)s;
	int ret =
	    rpc_call_unary(ch, "/test.T/Echo", &r.base, REQ_DESC, &resp, timeout_ms, false, res);
	if (out)
		*out = NULL;
	if (ret == 0) {
		assert_int_equal(res->status, RPC_OK);
		assert_non_null(resp);
		if (out)
			*out = strdup(((Req *)resp)->service);
		protobuf_c_message_free_unpacked(resp, NULL);
	} else {
		assert_null(resp);
		assert_int_not_equal(res->status, RPC_OK);
	}
	return res->status;
}

static void test_unary_ok(void **state)
{
	struct fx *f = *state;
	struct rpc_result res;
	char *out;
	assert_int_equal(echo(f->ch, "hello", &out, 5000, &res), RPC_OK);
	assert_string_equal(out, "hello");
	free(out);
	/* The empty message is valid: zero bytes on the wire. */
	assert_int_equal(echo(f->ch, "", &out, 5000, &res), RPC_OK);
	assert_string_equal(out, "");
	free(out);
}

static void test_unary_late_reply(void **state)
{
	struct fx *f = *state;
	struct rpc_result res;
	char *out;
	assert_int_equal(echo(f->ch, "late", &out, 5000, &res), RPC_OK);
	assert_string_equal(out, "late-reply");
	free(out);
	/* A deadline shorter than the handler: the client gives up and the
	 * handler's late reply goes nowhere, harmlessly. */
	assert_int_equal(echo(f->ch, "late", &out, 10, &res), RPC_DEADLINE_EXCEEDED);
	assert_null(out);
	usleep(100 * 1000);
	assert_int_equal(echo(f->ch, "after", &out, 5000, &res), RPC_OK);
	assert_string_equal(out, "after");
	free(out);
}

static void test_unary_errors(void **state)
{
	struct fx *f = *state;
	struct rpc_result res;
	Req r = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	ProtobufCMessage *resp = (void *)1;

	assert_int_equal(echo(f->ch, "fail:5:vm 'web-1' does not exist", NULL, 5000, &res),
			 RPC_NOT_FOUND);
	assert_string_equal(res.message, "vm 'web-1' does not exist");
	assert_int_equal(echo(f->ch, "fail:9:vm is running; pause it first", NULL, 5000, &res),
			 RPC_FAILED_PRECONDITION);
	assert_string_equal(res.message, "vm is running; pause it first");
	/* rpc_fail with OK would be a lie: it becomes UNKNOWN. */
	assert_int_equal(echo(f->ch, "fail:0:oops", NULL, 5000, &res), RPC_UNKNOWN);
	assert_int_equal(echo(f->ch, "fail:99:bad code", NULL, 5000, &res), RPC_UNKNOWN);
	assert_string_equal(res.message, "bad code");

	int ret =
	    rpc_call_unary(f->ch, "/test.T/Nope", &r.base, REQ_DESC, &resp, 5000, false, &res);
	assert_true(ret < 0);
	assert_null(resp);
	assert_int_equal(res.status, RPC_UNIMPLEMENTED);
	assert_non_null(strstr(res.message, "/test.T/Nope"));
	ret = rpc_call_unary(f->ch, "/other.Svc/X", &r.base, REQ_DESC, &resp, 5000, false, &res);
	assert_int_equal(res.status, RPC_UNIMPLEMENTED);
	/* The server still answers afterwards. */
	assert_int_equal(echo(f->ch, "still", NULL, 5000, &res), RPC_OK);
}

/* A raw gRPC call with the given bytes (NULL: no message at all). */
static int raw_call(grpc_channel *ch, const char *path, const void *bytes, size_t len, char *msg,
		    size_t msglen)
{
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	gpr_timespec dl =
	    gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(5000, GPR_TIMESPAN));
	grpc_call *call =
	    grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
				     grpc_slice_from_static_string(path), NULL, dl, NULL);
	assert_non_null(call);
	grpc_byte_buffer *bb = NULL, *recv = NULL;
	if (bytes) {
		grpc_slice s = grpc_slice_from_copied_buffer(bytes, len);
		bb = grpc_raw_byte_buffer_create(&s, 1);
		grpc_slice_unref(s);
	}
	grpc_metadata_array imd, tmd;
	grpc_metadata_array_init(&imd);
	grpc_metadata_array_init(&tmd);
	grpc_status_code status;
	grpc_slice details;
	grpc_op ops[6];
	size_t n = 0;
	memset(ops, 0, sizeof(ops));
	ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (bb) {
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = bb;
	}
	ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[n++].data.recv_initial_metadata.recv_initial_metadata = &imd;
	ops[n].op = GRPC_OP_RECV_MESSAGE;
	ops[n++].data.recv_message.recv_message = &recv;
	ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[n].data.recv_status_on_client.trailing_metadata = &tmd;
	ops[n].data.recv_status_on_client.status = &status;
	ops[n++].data.recv_status_on_client.status_details = &details;
	assert_int_equal(grpc_call_start_batch(call, ops, n, ops, NULL), GRPC_CALL_OK);
	grpc_event ev =
	    grpc_completion_queue_pluck(cq, ops, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	assert_int_equal(ev.type, GRPC_OP_COMPLETE);
	if (recv)
		grpc_byte_buffer_destroy(recv);
	size_t dl_len = GRPC_SLICE_LENGTH(details);
	if (dl_len >= msglen)
		dl_len = msglen - 1;
	memcpy(msg, GRPC_SLICE_START_PTR(details), dl_len);
	msg[dl_len] = '\0';
	grpc_slice_unref(details);
	if (bb)
		grpc_byte_buffer_destroy(bb);
	grpc_metadata_array_destroy(&imd);
	grpc_metadata_array_destroy(&tmd);
	grpc_call_unref(call);
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	return status;
}

static grpc_channel *raw_channel(struct fx *f)
{
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	grpc_channel *ch;
	if (f->unix_mode) {
		char target[160];
		snprintf(target, sizeof(target), "unix:%s", f->path);
		ch = grpc_channel_create(target, creds, NULL);
	} else {
		int sv[2];
		struct chv_err err;
		assert_int_equal(
		    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
		assert_int_equal(rpc_server_add_connection(f->srv, sv[0], &err), 0);
		ch = grpc_channel_create_from_fd("raw", sv[1], creds, NULL);
	}
	grpc_channel_credentials_release(creds);
	assert_non_null(ch);
	return ch;
}

static void test_malformed_requests(void **state)
{
	struct fx *f = *state;
	char msg[256];
	grpc_init();
	grpc_channel *ch = raw_channel(f);

	/* Field 1, length 16, but only 2 bytes follow. */
	assert_int_equal(raw_call(ch, "/test.T/Echo",
				  "\x0a\x10"
				  "ab",
				  4, msg, sizeof(msg)),
			 RPC_INVALID_ARGUMENT);
	assert_non_null(strstr(msg, "HealthCheckRequest"));
	/* A truncated varint tag. */
	assert_int_equal(raw_call(ch, "/test.T/Echo", "\xff\xff\xff", 3, msg, sizeof(msg)),
			 RPC_INVALID_ARGUMENT);
	/* Wire type 7 does not exist. */
	assert_int_equal(raw_call(ch, "/grpc.health.v1.Health/Check", "\x0f", 1, msg, sizeof(msg)),
			 RPC_INVALID_ARGUMENT);
	/* No request message at all. */
	assert_int_equal(raw_call(ch, "/test.T/Echo", NULL, 0, msg, sizeof(msg)),
			 RPC_INVALID_ARGUMENT);
	assert_non_null(strstr(msg, "missing"));
	assert_int_equal(raw_call(ch, "/test.T/Count", "\x0a\x10", 2, msg, sizeof(msg)),
			 RPC_INVALID_ARGUMENT);
	/* Garbage as the first bidi message. */
	assert_int_equal(raw_call(ch, "/test.T/Bidi", "\x0a\x7f", 2, msg, sizeof(msg)),
			 RPC_INVALID_ARGUMENT);
	assert_int_equal(raw_call(ch, "/no.Such/Thing", "", 0, msg, sizeof(msg)),
			 RPC_UNIMPLEMENTED);
	/* Valid bytes on the raw path work. */
	assert_int_equal(raw_call(ch, "/grpc.health.v1.Health/Check", "", 0, msg, sizeof(msg)),
			 RPC_OK);
	grpc_channel_destroy(ch);
	grpc_shutdown_blocking();
}

static void test_oversized(void **state)
{
	struct fx *f = *state;
	struct rpc_result res;
	char *big = malloc(MAX_MSG + 1000);
	char *out;
	assert_non_null(big);
	memset(big, 'a', MAX_MSG + 999);
	big[MAX_MSG + 999] = '\0';
	assert_int_equal(echo(f->ch, big, NULL, 5000, &res), RPC_RESOURCE_EXHAUSTED);
	/* Just under the limit (tag + length take a few bytes) is fine. */
	big[MAX_MSG - 16] = '\0';
	assert_int_equal(echo(f->ch, big, &out, 5000, &res), RPC_OK);
	assert_int_equal(strlen(out), MAX_MSG - 16);
	free(out);
	free(big);
}

static void test_server_stream_1000(void **state)
{
	struct fx *f = *state;
	struct rpc_stream *s;
	struct rpc_result res;
	Req r = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	ProtobufCMessage *m;
	char want[32];

	assert_int_equal(rpc_stream_open(f->ch, "/test.T/Count", 10000, &s, &res), 0);
	r.service = "1000";
	assert_int_equal(rpc_stream_write(s, &r.base), 0);
	assert_int_equal(rpc_stream_close_write(s), 0);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(rpc_stream_read(s, REQ_DESC, &m, 5000), 1);
		snprintf(want, sizeof(want), "m%d", i);
		assert_string_equal(((Req *)m)->service, want);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	assert_int_equal(rpc_stream_read(s, REQ_DESC, &m, 5000), 0);
	assert_null(m);
	assert_int_equal(rpc_stream_read(s, REQ_DESC, &m, 5000), 0);
	rpc_stream_finish(s, &res);
	assert_int_equal(res.status, RPC_OK);
	assert_string_equal(res.message, "sent 1000");
}

static void test_stream_overflow(void **state)
{
	struct fx *f = *state;
	struct rpc_stream *s;
	struct rpc_result res;
	Req r = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	ProtobufCMessage *m;
	const int n = 1100, queue = 1024;

	/* The handler sends 1100 at once on the only server thread: one goes
	 * on the wire, 1024 wait, and each further send drops the oldest. */
	assert_int_equal(rpc_stream_open(f->ch, "/test.T/Count", 20000, &s, &res), 0);
	r.service = "flood:1100";
	assert_int_equal(rpc_stream_write(s, &r.base), 0);
	assert_int_equal(rpc_stream_close_write(s), 0);
	int got = 0, last = -1;
	while (rpc_stream_read(s, REQ_DESC, &m, 5000) == 1) {
		int idx = atoi(((Req *)m)->service);
		if (got == 0)
			assert_int_equal(idx, 0); /* the one already on the wire */
		else if (got == 1)
			assert_int_equal(idx, n - queue); /* the oldest survivor */
		else
			assert_int_equal(idx, last + 1);
		last = idx;
		got++;
		protobuf_c_message_free_unpacked(m, NULL);
	}
	assert_int_equal(got, 1 + queue);
	assert_int_equal(last, n - 1);
	rpc_stream_finish(s, &res);
	assert_int_equal(res.status, RPC_OK);
	assert_true(seen_wait(&seen.flood_sent, n, 1000));
	pthread_mutex_lock(&seen.lock);
	assert_int_equal(seen.enobufs, n - 1 - queue);
	pthread_mutex_unlock(&seen.lock);
}

static void test_cancel_mid_stream(void **state)
{
	struct fx *f = *state;
	struct rpc_stream *s;
	struct rpc_result res;
	Req r = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	ProtobufCMessage *m;

	assert_int_equal(rpc_stream_open(f->ch, "/test.T/Endless", 0, &s, &res), 0);
	assert_int_equal(rpc_stream_write(s, &r.base), 0);
	for (int i = 0; i < 5; i++) {
		char want[16];
		assert_int_equal(rpc_stream_read(s, REQ_DESC, &m, 5000), 1);
		snprintf(want, sizeof(want), "e%d", i);
		assert_string_equal(((Req *)m)->service, want);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	rpc_stream_cancel(s);
	rpc_stream_finish(s, &res);
	assert_int_equal(res.status, RPC_CANCELLED);
	assert_true(seen_wait(&seen.cancels, 1, 5000));
	assert_true(seen_wait(&seen.epipes, 1, 5000));
	assert_true(seen_wait(&seen.endless_done, 1, 5000));
	pthread_mutex_lock(&seen.lock);
	assert_int_equal(seen.cancels, 1);
	pthread_mutex_unlock(&seen.lock);
}

static void test_stream_read_timeout_and_deadline(void **state)
{
	struct fx *f = *state;
	struct rpc_stream *s;
	struct rpc_result res;
	ProtobufCMessage *m;

	/* The Endless handler starts only once it has its request. */
	assert_int_equal(rpc_stream_open(f->ch, "/test.T/Endless", 300, &s, &res), 0);
	assert_int_equal(rpc_stream_read(s, REQ_DESC, &m, 50), -ETIMEDOUT);
	assert_int_equal(rpc_stream_read(s, REQ_DESC, &m, 0), -ETIMEDOUT);
	/* Past the call's deadline the stream ends. */
	assert_int_equal(rpc_stream_read(s, REQ_DESC, &m, 5000), 0);
	rpc_stream_finish(s, &res);
	assert_int_equal(res.status, RPC_DEADLINE_EXCEEDED);
}

static void test_bidi_echo(void **state)
{
	struct fx *f = *state;
	struct rpc_stream *s;
	struct rpc_result res;
	Req r = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	ProtobufCMessage *m;
	char buf[32], want[48];

	assert_int_equal(rpc_stream_open(f->ch, "/test.T/Bidi", 10000, &s, &res), 0);
	for (int i = 0; i < 50; i++) {
		snprintf(buf, sizeof(buf), "b%d", i);
		r.service = buf;
		assert_int_equal(rpc_stream_write(s, &r.base), 0);
		assert_int_equal(rpc_stream_read(s, REQ_DESC, &m, 5000), 1);
		snprintf(want, sizeof(want), "echo:b%d", i);
		assert_string_equal(((Req *)m)->service, want);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	assert_int_equal(rpc_stream_close_write(s), 0);
	assert_int_equal(rpc_stream_read(s, REQ_DESC, &m, 5000), 0);
	rpc_stream_finish(s, &res);
	assert_int_equal(res.status, RPC_OK);
	assert_string_equal(res.message, "bye");

	/* A client that closes without sending anything. */
	assert_int_equal(rpc_stream_open(f->ch, "/test.T/Bidi", 10000, &s, &res), 0);
	assert_int_equal(rpc_stream_close_write(s), 0);
	assert_int_equal(rpc_stream_read(s, REQ_DESC, &m, 5000), 0);
	rpc_stream_finish(s, &res);
	assert_int_equal(res.status, RPC_OK);
	assert_string_equal(res.message, "empty");
}

static void test_bidi_garbage_later(void **state)
{
	struct fx *f = *state;
	struct rpc_stream *s;
	struct rpc_result res;
	Req r = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	ProtobufCMessage *m;

	/* A valid first message, then one of another type whose bytes do not
	 * decode as a HealthCheckRequest (field 1 as a varint). */
	assert_int_equal(rpc_stream_open(f->ch, "/test.T/Bidi", 10000, &s, &res), 0);
	r.service = "ok";
	assert_int_equal(rpc_stream_write(s, &r.base), 0);
	assert_int_equal(rpc_stream_read(s, REQ_DESC, &m, 5000), 1);
	protobuf_c_message_free_unpacked(m, NULL);
	Resp bad = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	bad.status = 1;
	assert_int_equal(rpc_stream_write(s, &bad.base), 0);
	assert_int_equal(rpc_stream_read(s, REQ_DESC, &m, 5000), 0);
	rpc_stream_finish(s, &res);
	assert_int_equal(res.status, RPC_INVALID_ARGUMENT);
}

struct worker {
	struct rpc_channel *ch;
	int id;
	int ok;
};

static void *unary_worker(void *arg)
{
	struct worker *w = arg;
	char buf[32];
	for (int i = 0; i < 200; i++) {
		Req r = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
		ProtobufCMessage *resp = NULL;
		struct rpc_result res;
		snprintf(buf, sizeof(buf), "t%d-%d", w->id, i);
		r.service = buf;
		if (rpc_call_unary(w->ch, "/test.T/Echo", &r.base, REQ_DESC, &resp, 10000, false,
				   &res) == 0 &&
		    strcmp(((Req *)resp)->service, buf) == 0)
			w->ok++;
		if (resp)
			protobuf_c_message_free_unpacked(resp, NULL);
	}
	return NULL;
}

static void test_concurrent_unary(void **state)
{
	struct fx *f = *state;
	pthread_t t[8];
	struct worker w[8];
	for (int i = 0; i < 8; i++) {
		w[i] = (struct worker){.ch = f->ch, .id = i};
		assert_int_equal(pthread_create(&t[i], NULL, unary_worker, &w[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].ok, 200);
	}
}

static int health_check(struct rpc_channel *ch, const char *svc, int *status)
{
	Req r = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	struct rpc_result res;
	r.service = (char *)svc;
	*status = -1;
	if (rpc_call_unary(ch, "/grpc.health.v1.Health/Check", &r.base, RESP_DESC, &resp, 5000,
			   false, &res) == 0) {
		*status = ((Resp *)resp)->status;
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	return res.status;
}

static int watch_next(struct rpc_stream *s, int timeout_ms)
{
	ProtobufCMessage *m;
	int r = rpc_stream_read(s, RESP_DESC, &m, timeout_ms);
	if (r != 1)
		return r < 0 ? r : -1000;
	int st = ((Resp *)m)->status;
	protobuf_c_message_free_unpacked(m, NULL);
	return st;
}

static struct rpc_stream *watch_open(struct rpc_channel *ch, const char *svc)
{
	struct rpc_stream *s;
	struct rpc_result res;
	Req r = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	r.service = (char *)svc;
	assert_int_equal(rpc_stream_open(ch, "/grpc.health.v1.Health/Watch", 0, &s, &res), 0);
	assert_int_equal(rpc_stream_write(s, &r.base), 0);
	assert_int_equal(rpc_stream_close_write(s), 0);
	return s;
}

static void test_health(void **state)
{
	struct fx *f = *state;
	struct rpc_result res;
	int st;

	assert_int_equal(health_check(f->ch, "", &st), RPC_OK);
	assert_int_equal(st, HEALTH_SERVING);
	assert_int_equal(health_check(f->ch, "chv.v1.Vm", &st), RPC_NOT_FOUND);
	assert_int_equal(health_set(f->health, "chv.v1.Vm", HEALTH_NOT_SERVING), 0);
	assert_int_equal(health_check(f->ch, "chv.v1.Vm", &st), RPC_OK);
	assert_int_equal(st, HEALTH_NOT_SERVING);

	assert_int_equal(health_set(f->health, "x", HEALTH_SERVICE_UNKNOWN), -EINVAL);
	assert_int_equal(health_set(f->health, "x", 7), -EINVAL);
	assert_int_equal(health_set(f->health, "x", -1), -EINVAL);
	assert_int_equal(health_set(f->health, NULL, HEALTH_SERVING), -EINVAL);
	char longname[300];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(health_set(f->health, longname, HEALTH_SERVING), -EINVAL);

	struct rpc_stream *w = watch_open(f->ch, "chv.v1.Vm");
	struct rpc_stream *u = watch_open(f->ch, "later");
	assert_int_equal(watch_next(w, 5000), HEALTH_NOT_SERVING);
	assert_int_equal(watch_next(u, 5000), HEALTH_SERVICE_UNKNOWN);
	/* Nothing more until a change; setting the same status is no change. */
	assert_int_equal(health_set(f->health, "chv.v1.Vm", HEALTH_NOT_SERVING), 0);
	assert_int_equal(watch_next(w, 100), -ETIMEDOUT);
	assert_int_equal(watch_next(u, 100), -ETIMEDOUT); /* still open */
	assert_int_equal(health_set(f->health, "chv.v1.Vm", HEALTH_SERVING), 0);
	assert_int_equal(watch_next(w, 5000), HEALTH_SERVING);
	assert_int_equal(health_set(f->health, "later", HEALTH_SERVING), 0);
	assert_int_equal(watch_next(u, 5000), HEALTH_SERVING);
	assert_int_equal(watch_next(w, 50), -ETIMEDOUT);

	health_shutdown(f->health);
	assert_int_equal(watch_next(w, 5000), HEALTH_NOT_SERVING);
	assert_int_equal(watch_next(u, 5000), HEALTH_NOT_SERVING);
	assert_int_equal(health_set(f->health, "chv.v1.Vm", HEALTH_SERVING), -ESHUTDOWN);
	assert_int_equal(health_check(f->ch, "", &st), RPC_OK);
	assert_int_equal(st, HEALTH_NOT_SERVING);

	/* A cancelled watch leaves the table; later changes do not touch it. */
	rpc_stream_finish(w, &res);
	assert_int_equal(res.status, RPC_CANCELLED);
	rpc_stream_finish(u, &res);
	assert_int_equal(res.status, RPC_CANCELLED);
}

static void test_shutdown_with_stream_open(void **state)
{
	struct fx *f = *state;
	struct rpc_result res;

	struct rpc_stream *w = watch_open(f->ch, "");
	assert_int_equal(watch_next(w, 5000), HEALTH_SERVING);
	rpc_server_shutdown(f->srv, 100);
	f->srv = NULL;
	/* The stream ends instead of hanging; so do new calls. */
	assert_int_equal(watch_next(w, 5000), -1000);
	rpc_stream_finish(w, &res);
	assert_int_not_equal(res.status, RPC_OK);
	int st;
	assert_int_not_equal(health_check(f->ch, "", &st), RPC_OK);
}

struct late_call {
	struct rpc_channel *ch;
	int status;
};

static void *late_caller(void *arg)
{
	struct late_call *lc = arg;
	struct rpc_result res;
	lc->status = echo(lc->ch, "late", NULL, 5000, &res);
	return NULL;
}

static void test_shutdown_grace(void **state)
{
	struct fx *f = *state;
	struct late_call lc = {.ch = f->ch, .status = -1};
	pthread_t t;
	struct rpc_result res;

	/* Make sure the connection is up, then shut down with a unary call in
	 * flight: within the grace period it completes. */
	assert_int_equal(echo(f->ch, "warm", NULL, 5000, &res), RPC_OK);
	assert_int_equal(pthread_create(&t, NULL, late_caller, &lc), 0);
	usleep(20 * 1000);
	rpc_server_shutdown(f->srv, 3000);
	f->srv = NULL;
	pthread_join(t, NULL);
	assert_int_equal(lc.status, RPC_OK);
}

static void test_peer_credentials(void **state)
{
	struct fx *f = *state;
	struct rpc_result res;
	char *out, want[64];

	assert_int_equal(echo(f->ch, "whoami", &out, 5000, &res), RPC_OK);
	snprintf(want, sizeof(want), "%d %d %d", (int)getpid(), (int)getuid(), (int)getgid());
	assert_string_equal(out, want);
	free(out);
	assert_true(seen_wait(&seen.connects, 1, 1000));
	pthread_mutex_lock(&seen.lock);
	assert_int_equal(seen.conn_pid, getpid());
	assert_int_equal(seen.conn_uid, getuid());
	pthread_mutex_unlock(&seen.lock);
}

static void test_server_api_errors(void **state)
{
	struct rpc_server *s;
	struct chv_err err = {0};
	(void)state;
	static const struct rpc_method bad_path[] = {
	    {"test.T/Echo", RPC_UNARY, REQ_DESC, REQ_DESC, h_echo, NULL, false},
	};
	static const struct rpc_method no_method[] = {
	    {"/test.T/", RPC_UNARY, REQ_DESC, REQ_DESC, h_echo, NULL, false},
	};
	static const struct rpc_method no_handler[] = {
	    {"/test.T/Echo", RPC_UNARY, REQ_DESC, REQ_DESC, NULL, NULL, false},
	};
	static const struct rpc_method bad_kind[] = {
	    {"/test.T/Echo", (enum rpc_kind)7, REQ_DESC, REQ_DESC, h_echo, NULL, false},
	};

	struct rpc_server_opts big = {.max_message_bytes = (size_t)1 << 40};
	assert_int_equal(rpc_server_create(&s, &big, &err), -EINVAL);
	assert_null(s);
	assert_non_null(strstr(err.msg, "max_message_bytes"));

	assert_int_equal(rpc_server_create(&s, NULL, &err), 0);
	assert_int_equal(rpc_server_add_methods(s, bad_path, 1, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "test.T/Echo"));
	assert_int_equal(rpc_server_add_methods(s, no_method, 1, &err), -EINVAL);
	assert_int_equal(rpc_server_add_methods(s, no_handler, 1, &err), -EINVAL);
	assert_int_equal(rpc_server_add_methods(s, bad_kind, 1, &err), -EINVAL);
	assert_int_equal(rpc_server_add_methods(s, test_methods, 4, &err), 0);
	assert_int_equal(rpc_server_add_methods(s, test_methods, 1, &err), -EEXIST);

	/* Not a listening socket: a connected one, and a plain file. */
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(rpc_server_add_listener(s, sv[0], &err), -EINVAL);
	assert_int_equal(rpc_server_add_connection(s, sv[1], &err), 0);
	int dg[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, dg), 0);
	assert_int_equal(rpc_server_add_connection(s, dg[0], &err), -EINVAL);
	close(dg[1]);

	assert_int_equal(rpc_server_start(s, &err), 0);
	assert_int_equal(rpc_server_start(s, &err), -EBUSY);
	assert_int_equal(rpc_server_add_methods(s, test_methods, 1, &err), -EBUSY);
	rpc_server_shutdown(s, 0);

	/* Created, never started. */
	assert_int_equal(rpc_server_create(&s, NULL, &err), 0);
	assert_int_equal(rpc_server_add_methods(s, test_methods, 4, &err), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(rpc_server_add_connection(s, sv[0], &err), 0);
	close(sv[1]);
	rpc_server_shutdown(s, 0);
	rpc_server_shutdown(NULL, 0);
}

static void test_client_errors(void **state)
{
	struct rpc_channel *ch;
	struct chv_err err = {0};
	struct rpc_result res;
	Req r = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	ProtobufCMessage *resp = (void *)1;
	(void)state;

	assert_int_equal(rpc_channel_open(&ch, NULL, &err), -EINVAL);
	assert_int_equal(rpc_channel_open(&ch, "dns:localhost:80", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "dns:localhost:80"));
	assert_int_equal(rpc_channel_open(&ch, "unix:", &err), -EINVAL);
	assert_int_equal(rpc_channel_from_fd(&ch, -1, &err), -EBADF);

	/* Nobody listens: fail fast, or wait until the deadline. */
	assert_int_equal(rpc_channel_open(&ch, "unix:/nonexistent/chv-test.sock", &err), 0);
	assert_true(
	    rpc_call_unary(ch, "/test.T/Echo", &r.base, REQ_DESC, &resp, 5000, false, &res) < 0);
	assert_null(resp);
	assert_int_equal(res.status, RPC_UNAVAILABLE);
	assert_true(res.message[0] != '\0');
	assert_int_equal(
	    rpc_call_unary(ch, "/test.T/Echo", &r.base, REQ_DESC, &resp, 200, true, &res),
	    -ETIMEDOUT);
	assert_int_equal(res.status, RPC_DEADLINE_EXCEEDED);
	rpc_channel_close(ch);
	rpc_channel_close(NULL);
}

static void test_status_names(void **state)
{
	(void)state;
	assert_string_equal(rpc_status_name(RPC_OK), "OK");
	assert_string_equal(rpc_status_name(RPC_NOT_FOUND), "NOT_FOUND");
	assert_string_equal(rpc_status_name(RPC_UNAUTHENTICATED), "UNAUTHENTICATED");
	assert_string_equal(rpc_status_name(17), "UNKNOWN");
	assert_string_equal(rpc_status_name(-1), "UNKNOWN");
}

#define BOTH(t)                                                                                    \
	cmocka_unit_test_setup_teardown(t, setup_pair, teardown),                                  \
	    cmocka_unit_test_setup_teardown(t, setup_unix, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_status_names),
	    cmocka_unit_test(test_server_api_errors),
	    cmocka_unit_test(test_client_errors),
	    BOTH(test_unary_ok),
	    BOTH(test_unary_late_reply),
	    BOTH(test_unary_errors),
	    BOTH(test_malformed_requests),
	    BOTH(test_oversized),
	    BOTH(test_server_stream_1000),
	    cmocka_unit_test_setup_teardown(test_stream_overflow, setup_pair_1thread, teardown),
	    BOTH(test_cancel_mid_stream),
	    BOTH(test_stream_read_timeout_and_deadline),
	    BOTH(test_bidi_echo),
	    BOTH(test_bidi_garbage_later),
	    BOTH(test_concurrent_unary),
	    BOTH(test_health),
	    BOTH(test_shutdown_with_stream_open),
	    BOTH(test_shutdown_grace),
	    BOTH(test_peer_credentials),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
