/* The per-call state machine: request slots, decoding, handler dispatch,
 * the stream send queue, status, cancellation and the call's release. */
#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/wire.h"
#include "daemon/rpc_internal.h"

#define call_of(op, field) ((struct rpc_call *)((char *)(op)-offsetof(struct rpc_call, field)))

const char *rpc_status_name(int status)
{
	return api_status_name(status);
}

static void call_free(struct rpc_call *c)
{
	struct rpc_server *s = c->srv;

	if (c->gc)
		grpc_call_unref(c->gc);
	grpc_metadata_array_destroy(&c->md);
	grpc_call_details_destroy(&c->details);
	if (c->payload)
		grpc_byte_buffer_destroy(c->payload);
	if (c->send_bb)
		grpc_byte_buffer_destroy(c->send_bb);
	if (c->reply_bb)
		grpc_byte_buffer_destroy(c->reply_bb);
	if (c->recv_bb)
		grpc_byte_buffer_destroy(c->recv_bb);
	for (size_t i = 0; i < c->qlen; i++)
		grpc_byte_buffer_destroy(c->q[(c->qhead + i) % RPC_SENDQ_MAX]);
	free(c->q);
	if (c->has_details)
		grpc_slice_unref(c->fin_details);
	if (c->data_free)
		c->data_free(c->data);
	pthread_mutex_destroy(&c->lock);
	free(c);
	rpc_server_call_released(s);
}

static void call_unref(struct rpc_call *c)
{
	pthread_mutex_lock(&c->lock);
	unsigned left = --c->refs;
	pthread_mutex_unlock(&c->lock);
	if (left == 0)
		call_free(c);
}

static grpc_call_error start_locked(struct rpc_call *c, const grpc_op *ops, size_t n,
				    struct rpc_op *tag)
{
	c->refs++;
	grpc_call_error e = grpc_call_start_batch(c->gc, ops, n, tag, NULL);
	if (e != GRPC_CALL_OK)
		c->refs--;
	return e;
}

/* Adds the initial metadata to the first batch that sends anything. */
static size_t add_initial_md_locked(struct rpc_call *c, grpc_op *ops)
{
	if (c->md_sent)
		return 0;
	c->md_sent = true;
	memset(ops, 0, sizeof(*ops));
	ops->op = GRPC_OP_SEND_INITIAL_METADATA;
	return 1;
}

static void drop_queue_locked(struct rpc_call *c)
{
	for (size_t i = 0; i < c->qlen; i++)
		grpc_byte_buffer_destroy(c->q[(c->qhead + i) % RPC_SENDQ_MAX]);
	c->qlen = 0;
	c->qhead = 0;
}

static void on_status(struct rpc_op *op, bool ok)
{
	(void)ok; /* a failed status batch means the client is gone: nothing to do */
	struct rpc_call *c = call_of(op, op_status);
	pthread_mutex_lock(&c->lock);
	if (c->reply_bb) {
		grpc_byte_buffer_destroy(c->reply_bb);
		c->reply_bb = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	call_unref(c);
}

static void start_status_locked(struct rpc_call *c)
{
	grpc_op ops[3];
	size_t n = add_initial_md_locked(c, ops);

	c->status_pending = false;
	if (c->reply_bb) {
		memset(&ops[n], 0, sizeof(ops[n]));
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = c->reply_bb;
		n++;
	}
	memset(&ops[n], 0, sizeof(ops[n]));
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = (grpc_status_code)c->fin_status;
	ops[n].data.send_status_from_server.status_details =
	    c->has_details ? &c->fin_details : NULL;
	n++;
	c->op_status.on_done = on_status;
	if (start_locked(c, ops, n, &c->op_status) != GRPC_CALL_OK && c->reply_bb) {
		grpc_byte_buffer_destroy(c->reply_bb);
		c->reply_bb = NULL;
	}
}

/* Ends the call once; the status waits for queued stream messages. Takes reply. */
static void queue_status_locked(struct rpc_call *c, int status, const char *msg,
				grpc_byte_buffer *reply)
{
	if (c->status_queued) {
		if (reply)
			grpc_byte_buffer_destroy(reply);
		return;
	}
	if (status < 0 || status > RPC_UNAUTHENTICATED)
		status = RPC_UNKNOWN;
	c->status_queued = true;
	c->fin_status = status;
	if (msg && msg[0]) {
		c->fin_details = grpc_slice_from_copied_string(msg);
		c->has_details = true;
	}
	c->reply_bb = reply;
	if (c->send_busy)
		c->status_pending = true;
	else
		start_status_locked(c);
}

static void on_send(struct rpc_op *op, bool ok);

static int start_send_locked(struct rpc_call *c, grpc_byte_buffer *bb)
{
	grpc_op ops[2];
	size_t n = add_initial_md_locked(c, ops);

	memset(&ops[n], 0, sizeof(ops[n]));
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n].data.send_message.send_message = bb;
	n++;
	c->op_send.on_done = on_send;
	c->send_bb = bb;
	c->send_busy = true;
	if (start_locked(c, ops, n, &c->op_send) != GRPC_CALL_OK) {
		c->send_bb = NULL;
		c->send_busy = false;
		c->send_dead = true;
		grpc_byte_buffer_destroy(bb);
		return -EPIPE;
	}
	return 0;
}

static void on_send(struct rpc_op *op, bool ok)
{
	struct rpc_call *c = call_of(op, op_send);

	pthread_mutex_lock(&c->lock);
	grpc_byte_buffer_destroy(c->send_bb);
	c->send_bb = NULL;
	c->send_busy = false;
	if (!ok) {
		c->send_dead = true;
		drop_queue_locked(c);
	}
	while (c->qlen && !c->send_busy && !c->send_dead) {
		grpc_byte_buffer *next = c->q[c->qhead];
		c->qhead = (c->qhead + 1) % RPC_SENDQ_MAX;
		c->qlen--;
		if (start_send_locked(c, next) < 0)
			drop_queue_locked(c);
	}
	if (!c->send_busy && c->status_pending)
		start_status_locked(c);
	pthread_mutex_unlock(&c->lock);
	call_unref(c);
}

static void on_close(struct rpc_op *op, bool ok)
{
	struct rpc_call *c = call_of(op, op_close);
	rpc_cancel_fn fn = NULL;
	void *ctx = NULL;

	pthread_mutex_lock(&c->lock);
	if (!ok || c->close_cancelled) {
		c->cancelled = true;
		drop_queue_locked(c);
		if (c->cancel_fn && !c->cancel_called && c->handler_started && !c->handler_done) {
			c->cancel_called = true;
			fn = c->cancel_fn;
			ctx = c->cancel_ctx;
		}
	}
	pthread_mutex_unlock(&c->lock);
	/* The close batch's reference keeps the call alive across fn. */
	if (fn)
		fn(c, ctx);
	call_unref(c);
}

static void fail_locked(struct rpc_call *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_locked(struct rpc_call *c, int status, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	queue_status_locked(c, status, buf, NULL);
}

static void maybe_post_recv_locked(struct rpc_call *c);

/* Runs the handler; the framework frees the request afterwards. */
static void dispatch(struct rpc_call *c, const ProtobufCMessage *req)
{
	pthread_mutex_lock(&c->lock);
	c->handler_started = true;
	c->refs++; /* the handler's, dropped by rpc_reply/rpc_fail/rpc_finish */
	pthread_mutex_unlock(&c->lock);
	c->req = req;
	if (c->srv->opts.on_call)
		c->srv->opts.on_call(c->srv->opts.on_call_ctx, c, c->m->path);
	c->m->handler(c, req, c->m->ctx);
	c->req = NULL;
	pthread_mutex_lock(&c->lock);
	maybe_post_recv_locked(c);
	pthread_mutex_unlock(&c->lock);
}

static void on_recv(struct rpc_op *op, bool ok)
{
	struct rpc_call *c = call_of(op, op_recv);
	ProtobufCMessage *msg = NULL;
	rpc_recv_fn fn = NULL;
	void *ctx = NULL;
	bool first;

	pthread_mutex_lock(&c->lock);
	grpc_byte_buffer *bb = c->recv_bb;
	c->recv_bb = NULL;
	c->recv_busy = false;
	first = !c->handler_started;
	if (!ok || !bb)
		c->recv_eof = true;
	if (bb) {
		msg = api_decode(bb, c->m->req);
		grpc_byte_buffer_destroy(bb);
		if (!msg) {
			c->recv_eof = true;
			fail_locked(c, RPC_INVALID_ARGUMENT,
				    "%s: request message does not decode as %s", c->m->path,
				    c->m->req->name);
		}
	}
	if (!first && !c->handler_done && c->recv_fn && (msg || c->recv_eof)) {
		fn = c->recv_fn;
		ctx = c->recv_ctx;
	}
	bool bad_first = first && bb && !msg;
	pthread_mutex_unlock(&c->lock);

	if (first) {
		if (!bad_first)
			dispatch(c, msg);
	} else if (fn) {
		fn(c, msg, ctx);
		pthread_mutex_lock(&c->lock);
		maybe_post_recv_locked(c);
		pthread_mutex_unlock(&c->lock);
	}
	if (msg)
		protobuf_c_message_free_unpacked(msg, NULL);
	call_unref(c);
}

static void start_recv_locked(struct rpc_call *c)
{
	grpc_op op;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &c->recv_bb;
	c->op_recv.on_done = on_recv;
	c->recv_busy = true;
	if (start_locked(c, &op, 1, &c->op_recv) != GRPC_CALL_OK) {
		c->recv_busy = false;
		c->recv_eof = true;
	}
}

static void maybe_post_recv_locked(struct rpc_call *c)
{
	if (c->m && c->m->kind == RPC_BIDI && c->recv_fn && !c->recv_busy && !c->recv_eof &&
	    !c->handler_done && !c->status_queued)
		start_recv_locked(c);
}

static void start_close_locked(struct rpc_call *c)
{
	grpc_op op;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &c->close_cancelled;
	c->op_close.on_done = on_close;
	if (start_locked(c, &op, 1, &c->op_close) != GRPC_CALL_OK)
		c->cancelled = true;
}

/* Connections we accepted are named "fd:N" by gRPC; the record made when N
 * was accepted says who is there and through which listener. The call
 * holds its transport, which holds the fd open: N cannot have been closed
 * and given to another connection while the call exists. */
static void peer_lookup(struct rpc_call *c)
{
	char *peer = grpc_call_get_peer(c->gc);
	int fd;
	char end;

	if (peer && sscanf(peer, "fd:%d%c", &fd, &end) == 1 &&
	    !rpc_server_peer_find(c->srv, fd, &c->peer))
		c->peer =
		    (struct rpc_peer){.fd = -1, .pid = -1, .uid = (uid_t)-1, .gid = (gid_t)-1};
	gpr_free(peer);
}

static void on_new(struct rpc_op *op, bool ok)
{
	struct rpc_call *c = call_of(op, op_new);
	struct rpc_server *s = c->srv;

	if (!ok) {
		/* The server is shutting down: the slot comes back unused. */
		call_unref(c);
		return;
	}
	/* Keep a slot of this kind posted at all times. Failure only happens
	 * while stopping. */
	(void)!rpc_call_post(s, c->slot);
	peer_lookup(c);
	/* Refused before the request is even decoded; logged before the
	 * client can see the answer. */
	bool denied = c->m && c->peer.read_only && !c->m->read_only;
	if (denied && s->opts.on_denied)
		s->opts.on_denied(s->opts.on_denied_ctx, c, c->m->path);

	pthread_mutex_lock(&c->lock);
	start_close_locked(c);
	if (denied) {
		fail_locked(c, RPC_PERMISSION_DENIED,
			    "%s is not allowed on chvd's read-only socket (it serves %s); use "
			    "the read-write socket",
			    c->m->path, s->denied_hint ? s->denied_hint : "read-only calls");
		pthread_mutex_unlock(&c->lock);
	} else if (!c->m) {
		char *method = grpc_slice_to_c_string(c->details.method);
		fail_locked(c, RPC_UNIMPLEMENTED, "unknown method %s", method);
		gpr_free(method);
		pthread_mutex_unlock(&c->lock);
	} else if (c->m->kind == RPC_BIDI) {
		start_recv_locked(c);
		pthread_mutex_unlock(&c->lock);
	} else if (!c->payload) {
		fail_locked(c, RPC_INVALID_ARGUMENT, "%s: the request message is missing",
			    c->m->path);
		pthread_mutex_unlock(&c->lock);
	} else {
		ProtobufCMessage *req = api_decode(c->payload, c->m->req);
		grpc_byte_buffer_destroy(c->payload);
		c->payload = NULL;
		if (!req)
			fail_locked(c, RPC_INVALID_ARGUMENT,
				    "%s: request message does not decode as %s", c->m->path,
				    c->m->req->name);
		pthread_mutex_unlock(&c->lock);
		if (req) {
			dispatch(c, req);
			protobuf_c_message_free_unpacked(req, NULL);
		}
	}
	call_unref(c);
}

int rpc_call_post(struct rpc_server *s, size_t slot)
{
	struct rpc_call *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->srv = s;
	c->slot = slot;
	c->m = slot == RPC_GENERIC ? NULL : s->regs[slot].m;
	c->refs = 1;
	c->peer = (struct rpc_peer){.fd = -1, .pid = -1, .uid = (uid_t)-1, .gid = (gid_t)-1};
	c->op_new.on_done = on_new;
	grpc_metadata_array_init(&c->md);
	grpc_call_details_init(&c->details);
	pthread_mutex_init(&c->lock, NULL);

	pthread_mutex_lock(&s->lock);
	if (s->stopping) {
		pthread_mutex_unlock(&s->lock);
		s->live++; /* balanced by call_free */
		call_free(c);
		return -ESHUTDOWN;
	}
	s->live++;
	pthread_mutex_unlock(&s->lock);

	grpc_call_error e;
	if (slot == RPC_GENERIC) {
		e = grpc_server_request_call(s->gs, &c->gc, &c->details, &c->md, s->cq, s->cq,
					     &c->op_new);
	} else {
		bool payload = c->m->kind != RPC_BIDI;
		e = grpc_server_request_registered_call(
		    s->gs, s->regs[slot].handle, &c->gc, &c->deadline, &c->md,
		    payload ? &c->payload : NULL, s->cq, s->cq, &c->op_new);
	}
	if (e != GRPC_CALL_OK) {
		call_free(c);
		return -EIO;
	}
	return 0;
}

/* Drops the handler's reference exactly once. */
static bool handler_finish_locked(struct rpc_call *c)
{
	if (c->handler_done)
		return false;
	c->handler_done = true;
	c->refs--; /* never the last: dispatch or a batch still holds one */
	return true;
}

__attribute__((format(printf, 3, 0))) static void
finish_common(struct rpc_call *c, int status, const char *fmt, va_list ap, grpc_byte_buffer *reply)
{
	char buf[1024];
	buf[0] = '\0';
	if (fmt)
		vsnprintf(buf, sizeof(buf), fmt, ap);

	pthread_mutex_lock(&c->lock);
	if (c->handler_done) {
		pthread_mutex_unlock(&c->lock);
		if (reply)
			grpc_byte_buffer_destroy(reply);
		return;
	}
	queue_status_locked(c, status, buf, reply);
	/* The handler's reference is dropped while holding one of our own, so
	 * the call is freed outside its lock. */
	c->refs++;
	handler_finish_locked(c);
	pthread_mutex_unlock(&c->lock);
	call_unref(c);
}

static void finish_v(struct rpc_call *c, int status, grpc_byte_buffer *reply, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void finish_v(struct rpc_call *c, int status, grpc_byte_buffer *reply, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	finish_common(c, status, fmt, ap, reply);
	va_end(ap);
}

void rpc_reply(struct rpc_call *call, const ProtobufCMessage *resp)
{
	if (!resp) {
		finish_v(call, RPC_INTERNAL, NULL, "%s: the handler replied with no message",
			 call->m->path);
		return;
	}
	finish_v(call, RPC_OK, api_encode(resp), "%s", "");
}

void rpc_fail(struct rpc_call *call, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	finish_common(call, status == RPC_OK ? RPC_UNKNOWN : status, fmt, ap, NULL);
	va_end(ap);
}

void rpc_finish(struct rpc_call *call, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	finish_common(call, status, fmt, ap, NULL);
	va_end(ap);
}

int rpc_stream_send(struct rpc_call *c, const ProtobufCMessage *msg)
{
	grpc_byte_buffer *bb = api_encode(msg);
	int ret = 0;

	pthread_mutex_lock(&c->lock);
	if (c->cancelled || c->send_dead || c->status_queued || c->handler_done) {
		ret = -EPIPE;
	} else if (!c->send_busy) {
		ret = start_send_locked(c, bb);
		bb = NULL;
	} else {
		if (!c->q)
			c->q = calloc(RPC_SENDQ_MAX, sizeof(*c->q));
		if (!c->q) {
			ret = -ENOMEM;
		} else {
			if (c->qlen == RPC_SENDQ_MAX) {
				/* Newest news wins: drop the oldest waiting message. */
				grpc_byte_buffer_destroy(c->q[c->qhead]);
				c->qhead = (c->qhead + 1) % RPC_SENDQ_MAX;
				c->qlen--;
				ret = -ENOBUFS;
			}
			c->q[(c->qhead + c->qlen) % RPC_SENDQ_MAX] = bb;
			c->qlen++;
			bb = NULL;
		}
	}
	pthread_mutex_unlock(&c->lock);
	if (bb)
		grpc_byte_buffer_destroy(bb);
	return ret;
}

void rpc_stream_on_recv(struct rpc_call *c, rpc_recv_fn fn, void *ctx)
{
	pthread_mutex_lock(&c->lock);
	c->recv_fn = fn;
	c->recv_ctx = ctx;
	/* Inside the handler, dispatch posts the first receive on return. */
	if (c->handler_started)
		maybe_post_recv_locked(c);
	pthread_mutex_unlock(&c->lock);
}

void rpc_call_set_data(struct rpc_call *c, void *data, void (*free_fn)(void *data))
{
	pthread_mutex_lock(&c->lock);
	c->data = data;
	c->data_free = free_fn;
	pthread_mutex_unlock(&c->lock);
}

void rpc_call_on_cancel(struct rpc_call *c, rpc_cancel_fn fn, void *ctx)
{
	bool now = false;

	pthread_mutex_lock(&c->lock);
	c->cancel_fn = fn;
	c->cancel_ctx = ctx;
	if (fn && c->cancelled && !c->cancel_called && !c->handler_done) {
		c->cancel_called = true;
		now = true;
	}
	pthread_mutex_unlock(&c->lock);
	if (now)
		fn(c, ctx);
}

bool rpc_call_cancelled(struct rpc_call *c)
{
	pthread_mutex_lock(&c->lock);
	bool r = c->cancelled || c->send_dead;
	pthread_mutex_unlock(&c->lock);
	return r;
}

void rpc_call_peer(struct rpc_call *c, pid_t *pid, uid_t *uid, gid_t *gid)
{
	if (pid)
		*pid = c->peer.pid;
	if (uid)
		*uid = c->peer.uid;
	if (gid)
		*gid = c->peer.gid;
}

bool rpc_call_read_only(struct rpc_call *c)
{
	return c->peer.read_only;
}

const struct rpc_method *rpc_call_method(struct rpc_call *c)
{
	return c->m;
}

const ProtobufCMessage *rpc_call_request(struct rpc_call *c)
{
	return c->req;
}

/* The first value of property name, truncated to fit; "" when absent. */
static void auth_prop(const grpc_auth_context *ac, const char *name, char *out, size_t len)
{
	grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ac, name);
	const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);

	out[0] = '\0';
	if (p && p->value) {
		size_t n = p->value_length < len - 1 ? p->value_length : len - 1;
		memcpy(out, p->value, n);
		out[n] = '\0';
	}
}

void rpc_call_identity(struct rpc_call *c, struct rpc_identity *id)
{
	char *peer = grpc_call_get_peer(c->gc);

	memset(id, 0, sizeof(*id));
	snprintf(id->address, sizeof(id->address), "%s", peer ? peer : "");
	gpr_free(peer);
	grpc_auth_context *ac = grpc_call_auth_context(c->gc);
	if (!ac)
		return;
	char type[16];
	auth_prop(ac, GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME, type, sizeof(type));
	/* TLS listeners require and verify client certificates, so a TLS
	 * call always comes with a verified one. */
	if (strcmp(type, GRPC_SSL_TRANSPORT_SECURITY_TYPE) == 0) {
		auth_prop(ac, GRPC_X509_SUBJECT_PROPERTY_NAME, id->subject, sizeof(id->subject));
		auth_prop(ac, GRPC_X509_CN_PROPERTY_NAME, id->common_name, sizeof(id->common_name));
		id->tls = id->subject[0] != '\0';
	}
	grpc_auth_context_release(ac);
}
