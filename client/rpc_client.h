/* The client side: unary calls and streams over gRPC C core with protobuf-c
 * messages. Used by chvctl and by the tests. One channel per process is enough. */
#ifndef CHV_CLIENT_RPC_CLIENT_H
#define CHV_CLIENT_RPC_CLIENT_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

#include "vm/err.h"

struct rpc_channel;
struct rpc_stream;

struct rpc_result {
	int status;	    /* gRPC status code; 0 OK */
	char message[1024]; /* status details from the server, or the transport's error */
};

/* How to reach a TCP target. PEM text, not file names. */
struct rpc_client_tls {
	const char *ca_pem;   /* CA(s) that verify the server; NULL: the system's */
	const char *cert_pem; /* our certificate, for servers that require one */
	const char *key_pem;  /* its private key: both or neither */
	bool insecure;	      /* plain HTTP/2, no TLS (a loopback chvd --insecure) */
};

/* target: "unix:/path" or "unix-abstract:name". TCP needs rpc_channel_open_tls(). */
chv_must_check int rpc_channel_open(struct rpc_channel **out, const char *target,
				    struct chv_err *err);
/* target as above, or "HOST:PORT" ("[::1]:PORT") with tls saying how
 * (required for TCP; must be NULL for unix targets). The server's
 * certificate must name HOST. Nothing is connected yet: a TLS failure shows
 * as the first call's UNAVAILABLE. */
chv_must_check int rpc_channel_open_tls(struct rpc_channel **out, const char *target,
					const struct rpc_client_tls *tls, struct chv_err *err);
/* A channel over an already-connected socket (tests). Takes the fd. */
chv_must_check int rpc_channel_from_fd(struct rpc_channel **out, int fd, struct chv_err *err);
void rpc_channel_close(struct rpc_channel *ch);

/* One unary call. On status OK *resp is the decoded reply (free with
 * protobuf_c_message_free_unpacked(*resp, NULL)). timeout_ms 0: none.
 * wait_for_ready: wait for the server to come up instead of failing fast. */
int rpc_call_unary(struct rpc_channel *ch, const char *path, const ProtobufCMessage *req,
		   const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
		   int timeout_ms, bool wait_for_ready, struct rpc_result *res);

/* Streams: server-streaming (send one request, then recv until the end) and
 * bidi (send and recv as you like; recv may be called from another thread
 * than send). */
chv_must_check int rpc_stream_open(struct rpc_channel *ch, const char *path, int timeout_ms,
				   struct rpc_stream **out, struct rpc_result *res);
int rpc_stream_write(struct rpc_stream *s, const ProtobufCMessage *msg);
int rpc_stream_close_write(struct rpc_stream *s);
/* 1 and *msg set: a message; 0: the stream ended (status in rpc_stream_finish);
 * < 0: error. timeout_ms < 0: wait forever. -ETIMEDOUT when none came in time. */
int rpc_stream_read(struct rpc_stream *s, const ProtobufCMessageDescriptor *desc,
		    ProtobufCMessage **msg, int timeout_ms);
/* Cancels (if still open), collects the final status, frees the stream. */
void rpc_stream_finish(struct rpc_stream *s, struct rpc_result *res);
void rpc_stream_cancel(struct rpc_stream *s);

#endif
