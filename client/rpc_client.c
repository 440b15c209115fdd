/* Blocking client calls over gRPC C core: one pluck queue per call, so any
 * number of threads can share a channel. */
#include <errno.h>
#include <fcntl.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/wire.h"
#include "client/rpc_client.h"

/* Replies (VM lists, configs) may be larger than gRPC's 4 MiB default. */
#define RPC_CLIENT_MAX_RECEIVE (64 << 20)

struct rpc_channel {
	grpc_channel *gc;
};

struct rpc_stream {
	grpc_call *gc;
	grpc_completion_queue *cq;
	pthread_mutex_t send_lock, recv_lock;
	/* Each is a distinct tag for pluck. */
	char tag_send, tag_recv, tag_status;
	bool recv_pending, recv_md_done, ended, status_done;
	grpc_byte_buffer *recv_bb;
	grpc_metadata_array initial_md, trailing_md;
	grpc_status_code status;
	grpc_slice details;
	const char *error_string;
};

static void result_set(struct rpc_result *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void result_set(struct rpc_result *res, int status, const char *fmt, ...)
{
	va_list ap;
	res->status = status;
	va_start(ap, fmt);
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	va_end(ap);
}

/* The server's details, or gRPC's own error text when there are none. */
static void result_from(struct rpc_result *res, grpc_status_code st, grpc_slice details,
			const char *error_string)
{
	size_t n = GRPC_SLICE_LENGTH(details);
	res->status = (int)st;
	if (n || !error_string) {
		if (n >= sizeof(res->message))
			n = sizeof(res->message) - 1;
		memcpy(res->message, GRPC_SLICE_START_PTR(details), n);
		res->message[n] = '\0';
	} else {
		snprintf(res->message, sizeof(res->message), "%s", error_string);
	}
}

/* 0 for OK; otherwise the nearest errno, the detail being in the result. */
static int status_errno(int status)
{
	switch (status) {
	case GRPC_STATUS_OK:
		return 0;
	case GRPC_STATUS_DEADLINE_EXCEEDED:
		return -ETIMEDOUT;
	case GRPC_STATUS_UNAVAILABLE:
		return -ECONNREFUSED;
	case GRPC_STATUS_CANCELLED:
		return -ECANCELED;
	default:
		return -EREMOTEIO;
	}
}

static gpr_timespec deadline_after(int timeout_ms)
{
	if (timeout_ms <= 0)
		return gpr_inf_future(GPR_CLOCK_MONOTONIC);
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
			    gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

static const grpc_channel_args *channel_args(void)
{
	static grpc_arg args[] = {
	    {.type = GRPC_ARG_INTEGER,
	     .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
	     .value.integer = RPC_CLIENT_MAX_RECEIVE},
	};
	static const grpc_channel_args cargs = {.num_args = 1, .args = args};
	return &cargs;
}

static bool is_unix_target(const char *t)
{
	return strncmp(t, "unix:", 5) == 0 || strncmp(t, "unix-abstract:", 14) == 0;
}

/* "HOST:PORT" or "[V6]:PORT" with PORT 1..65535: what gRPC's default (DNS)
 * resolver takes. Anything else (other schemes, a missing port) is refused
 * here rather than failing later in the resolver. */
static bool is_host_port(const char *t)
{
	const char *colon;
	if (t[0] == '[') {
		const char *close = strchr(t, ']');
		if (!close || close == t + 1 || close[1] != ':')
			return false;
		colon = close + 1;
	} else {
		colon = strrchr(t, ':');
		if (!colon || colon == t || memchr(t, ':', (size_t)(colon - t)) || strpbrk(t, "/@"))
			return false;
	}
	const char *p = colon + 1;
	if (!*p || strlen(p) > 5 || strspn(p, "0123456789") != strlen(p))
		return false;
	long port = strtol(p, NULL, 10);
	return port >= 1 && port <= 65535;
}

static grpc_channel_credentials *tls_creds(const struct rpc_client_tls *tls)
{
	if (tls->insecure)
		return grpc_insecure_credentials_create();
	grpc_ssl_pem_key_cert_pair pair = {.private_key = tls->key_pem,
					   .cert_chain = tls->cert_pem};
	return grpc_ssl_credentials_create(tls->ca_pem, tls->cert_pem ? &pair : NULL, NULL, NULL);
}

int rpc_channel_open(struct rpc_channel **out, const char *target, struct chv_err *err)
{
	return rpc_channel_open_tls(out, target, NULL, err);
}

int rpc_channel_open_tls(struct rpc_channel **out, const char *target,
			 const struct rpc_client_tls *tls, struct chv_err *err)
{
	*out = NULL;
	bool unix_target = target && is_unix_target(target);
	if (!target || (unix_target && strchr(target, ':')[1] == '\0') ||
	    (!unix_target && !is_host_port(target)))
		return chv_err_set(
		    err, -EINVAL,
		    "rpc: target '%s' is not unix:PATH, unix-abstract:NAME or HOST:PORT",
		    target ? target : "(null)");
	if (unix_target && tls)
		return chv_err_set(err, -EINVAL, "rpc: TLS options are for TCP targets, not %s",
				   target);
	if (!unix_target && !tls)
		return chv_err_set(err, -EINVAL,
				   "rpc: TCP target %s needs TLS options (or insecure)", target);
	if (tls && tls->insecure && (tls->ca_pem || tls->cert_pem || tls->key_pem))
		return chv_err_set(err, -EINVAL,
				   "rpc: %s: insecure excludes a CA, certificate or key", target);
	if (tls && !tls->cert_pem != !tls->key_pem)
		return chv_err_set(err, -EINVAL,
				   "rpc: %s: a client certificate needs its key and a key its "
				   "certificate",
				   target);
	struct rpc_channel *ch = calloc(1, sizeof(*ch));
	if (!ch)
		return chv_err_set(err, -ENOMEM, "rpc: out of memory");
	grpc_init();
	grpc_channel_credentials *creds = tls ? tls_creds(tls) : grpc_insecure_credentials_create();
	if (!creds) {
		free(ch);
		grpc_shutdown_blocking();
		return chv_err_set(err, -EINVAL, "rpc: %s: cannot make TLS credentials", target);
	}
	ch->gc = grpc_channel_create(target, creds, channel_args());
	grpc_channel_credentials_release(creds);
	if (!ch->gc) {
		free(ch);
		grpc_shutdown_blocking();
		return chv_err_set(err, -EINVAL, "rpc: cannot create a channel to %s", target);
	}
	*out = ch;
	return 0;
}

int rpc_channel_from_fd(struct rpc_channel **out, int fd, struct chv_err *err)
{
	*out = NULL;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int r = -errno;
		close(fd);
		return chv_err_set(err, r, "rpc: fd %d: %s", fd, strerror(-r));
	}
	struct rpc_channel *ch = calloc(1, sizeof(*ch));
	if (!ch) {
		close(fd);
		return chv_err_set(err, -ENOMEM, "rpc: out of memory");
	}
	grpc_init();
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	ch->gc = grpc_channel_create_from_fd("fd", fd, creds, channel_args());
	grpc_channel_credentials_release(creds);
	if (!ch->gc) {
		free(ch);
		grpc_shutdown_blocking();
		return chv_err_set(err, -EIO, "rpc: cannot create a channel over fd %d", fd);
	}
	*out = ch;
	return 0;
}

void rpc_channel_close(struct rpc_channel *ch)
{
	if (!ch)
		return;
	grpc_channel_destroy(ch->gc);
	free(ch);
	grpc_shutdown_blocking();
}

static void cq_destroy(grpc_completion_queue *cq)
{
	/* Every tag has been plucked, so the queue is empty. */
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
}

int rpc_call_unary(struct rpc_channel *ch, const char *path, const ProtobufCMessage *req,
		   const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
		   int timeout_ms, bool wait_for_ready, struct rpc_result *res)
{
	struct rpc_result local;
	if (!res)
		res = &local;
	*resp = NULL;
	res->status = 0;
	res->message[0] = '\0';

	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_slice method = grpc_slice_from_copied_string(path);
	grpc_call *call = grpc_channel_create_call(ch->gc, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
						   method, NULL, deadline_after(timeout_ms), NULL);
	grpc_slice_unref(method);
	if (!call) {
		cq_destroy(cq);
		result_set(res, GRPC_STATUS_INTERNAL, "cannot create a call to %s", path);
		return -ENOMEM;
	}

	grpc_byte_buffer *send_bb = api_encode(req), *recv_bb = NULL;
	grpc_metadata_array initial_md, trailing_md;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice();
	const char *error_string = NULL;
	grpc_op ops[6];
	grpc_metadata_array_init(&initial_md);
	grpc_metadata_array_init(&trailing_md);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (wait_for_ready)
		ops[0].flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY |
			       GRPC_INITIAL_METADATA_WAIT_FOR_READY_EXPLICITLY_SET;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send_bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv_bb;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
	ops[5].data.recv_status_on_client.status = &status;
	ops[5].data.recv_status_on_client.status_details = &details;
	ops[5].data.recv_status_on_client.error_string = &error_string;

	int ret = 0;
	grpc_call_error e = grpc_call_start_batch(call, ops, 6, &ops, NULL);
	if (e != GRPC_CALL_OK) {
		result_set(res, GRPC_STATUS_INTERNAL, "%s: starting the call: %s", path,
			   grpc_call_error_to_string(e));
		ret = -EIO;
	} else {
		/* The call's own deadline bounds this wait. */
		grpc_completion_queue_pluck(cq, &ops, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		result_from(res, status, details, error_string);
		ret = status_errno(status);
		if (status == GRPC_STATUS_OK) {
			if (!recv_bb) {
				result_set(res, GRPC_STATUS_INTERNAL,
					   "%s: the reply has no message", path);
				ret = -EBADMSG;
			} else if (!(*resp = api_decode(recv_bb, resp_desc))) {
				result_set(res, GRPC_STATUS_INTERNAL,
					   "%s: the reply does not decode as %s", path,
					   resp_desc->name);
				ret = -EBADMSG;
			}
		}
	}
	if (recv_bb)
		grpc_byte_buffer_destroy(recv_bb);
	grpc_byte_buffer_destroy(send_bb);
	grpc_slice_unref(details);
	gpr_free((void *)error_string);
	grpc_metadata_array_destroy(&initial_md);
	grpc_metadata_array_destroy(&trailing_md);
	grpc_call_unref(call);
	cq_destroy(cq);
	return ret;
}

static bool pluck(struct rpc_stream *s, void *tag, gpr_timespec deadline, bool *ok)
{
	grpc_event ev = grpc_completion_queue_pluck(s->cq, tag, deadline, NULL);
	if (ev.type != GRPC_OP_COMPLETE)
		return false;
	*ok = ev.success != 0;
	return true;
}

static void stream_free(struct rpc_stream *s)
{
	if (s->gc)
		grpc_call_unref(s->gc);
	cq_destroy(s->cq);
	if (s->recv_bb)
		grpc_byte_buffer_destroy(s->recv_bb);
	grpc_metadata_array_destroy(&s->initial_md);
	grpc_metadata_array_destroy(&s->trailing_md);
	grpc_slice_unref(s->details);
	gpr_free((void *)s->error_string);
	pthread_mutex_destroy(&s->send_lock);
	pthread_mutex_destroy(&s->recv_lock);
	free(s);
}

int rpc_stream_open(struct rpc_channel *ch, const char *path, int timeout_ms,
		    struct rpc_stream **out, struct rpc_result *res)
{
	struct rpc_result local;
	if (!res)
		res = &local;
	*out = NULL;
	res->status = 0;
	res->message[0] = '\0';

	struct rpc_stream *s = calloc(1, sizeof(*s));
	if (!s) {
		result_set(res, GRPC_STATUS_INTERNAL, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&s->send_lock, NULL);
	pthread_mutex_init(&s->recv_lock, NULL);
	grpc_metadata_array_init(&s->initial_md);
	grpc_metadata_array_init(&s->trailing_md);
	s->details = grpc_empty_slice();
	s->cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_slice method = grpc_slice_from_copied_string(path);
	s->gc = grpc_channel_create_call(ch->gc, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq, method, NULL,
					 deadline_after(timeout_ms), NULL);
	grpc_slice_unref(method);
	if (!s->gc) {
		stream_free(s);
		result_set(res, GRPC_STATUS_INTERNAL, "cannot create a call to %s", path);
		return -ENOMEM;
	}

	/* The status is collected whenever it comes; rpc_stream_finish waits for it. */
	grpc_op ops[2];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[0].data.recv_status_on_client.trailing_metadata = &s->trailing_md;
	ops[0].data.recv_status_on_client.status = &s->status;
	ops[0].data.recv_status_on_client.status_details = &s->details;
	ops[0].data.recv_status_on_client.error_string = &s->error_string;
	grpc_call_error e = grpc_call_start_batch(s->gc, ops, 1, &s->tag_status, NULL);
	if (e == GRPC_CALL_OK) {
		memset(ops, 0, sizeof(ops));
		ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
		e = grpc_call_start_batch(s->gc, ops, 1, &s->tag_send, NULL);
		bool ok;
		if (e == GRPC_CALL_OK)
			pluck(s, &s->tag_send, gpr_inf_future(GPR_CLOCK_REALTIME), &ok);
	} else {
		s->status_done = true;
	}
	if (e != GRPC_CALL_OK) {
		result_set(res, GRPC_STATUS_INTERNAL, "%s: starting the call: %s", path,
			   grpc_call_error_to_string(e));
		rpc_stream_finish(s, NULL);
		return -EIO;
	}
	*out = s;
	return 0;
}

static int send_batch(struct rpc_stream *s, grpc_op *op)
{
	bool ok = false;

	pthread_mutex_lock(&s->send_lock);
	grpc_call_error e = grpc_call_start_batch(s->gc, op, 1, &s->tag_send, NULL);
	if (e == GRPC_CALL_OK)
		pluck(s, &s->tag_send, gpr_inf_future(GPR_CLOCK_REALTIME), &ok);
	pthread_mutex_unlock(&s->send_lock);
	return ok ? 0 : -EPIPE;
}

int rpc_stream_write(struct rpc_stream *s, const ProtobufCMessage *msg)
{
	grpc_op op;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_MESSAGE;
	op.data.send_message.send_message = api_encode(msg);
	int r = send_batch(s, &op);
	grpc_byte_buffer_destroy(op.data.send_message.send_message);
	return r;
}

int rpc_stream_close_write(struct rpc_stream *s)
{
	grpc_op op;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	return send_batch(s, &op);
}

int rpc_stream_read(struct rpc_stream *s, const ProtobufCMessageDescriptor *desc,
		    ProtobufCMessage **msg, int timeout_ms)
{
	int ret;

	*msg = NULL;
	pthread_mutex_lock(&s->recv_lock);
	if (s->ended) {
		ret = 0;
		goto out;
	}
	if (!s->recv_pending) {
		grpc_op ops[2];
		size_t n = 0;
		memset(ops, 0, sizeof(ops));
		if (!s->recv_md_done) {
			ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
			ops[n].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
			n++;
		}
		ops[n].op = GRPC_OP_RECV_MESSAGE;
		ops[n].data.recv_message.recv_message = &s->recv_bb;
		n++;
		if (grpc_call_start_batch(s->gc, ops, n, &s->tag_recv, NULL) != GRPC_CALL_OK) {
			s->ended = true;
			ret = 0;
			goto out;
		}
		s->recv_md_done = true;
		s->recv_pending = true;
	}
	gpr_timespec dl = timeout_ms < 0    ? gpr_inf_future(GPR_CLOCK_REALTIME)
			  : timeout_ms == 0 ? gpr_now(GPR_CLOCK_MONOTONIC)
					    : deadline_after(timeout_ms);
	bool ok;
	if (!pluck(s, &s->tag_recv, dl, &ok)) {
		/* The receive stays posted; the next read picks it up. */
		ret = -ETIMEDOUT;
		goto out;
	}
	s->recv_pending = false;
	if (!ok || !s->recv_bb) {
		s->ended = true;
		ret = 0;
		goto out;
	}
	*msg = api_decode(s->recv_bb, desc);
	grpc_byte_buffer_destroy(s->recv_bb);
	s->recv_bb = NULL;
	ret = *msg ? 1 : -EBADMSG;
out:
	pthread_mutex_unlock(&s->recv_lock);
	return ret;
}

void rpc_stream_cancel(struct rpc_stream *s)
{
	grpc_call_cancel(s->gc, NULL);
}

void rpc_stream_finish(struct rpc_stream *s, struct rpc_result *res)
{
	bool ok;

	/* No effect once the server's status has arrived. */
	grpc_call_cancel(s->gc, NULL);
	if (s->recv_pending)
		pluck(s, &s->tag_recv, gpr_inf_future(GPR_CLOCK_REALTIME), &ok);
	if (!s->status_done) {
		pluck(s, &s->tag_status, gpr_inf_future(GPR_CLOCK_REALTIME), &ok);
		if (res)
			result_from(res, s->status, s->details, s->error_string);
	} else if (res) {
		result_set(res, GRPC_STATUS_INTERNAL, "the call never started");
	}
	stream_free(s);
}
