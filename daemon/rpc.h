/* A small gRPC server framework over gRPC C core and protobuf-c: a method
 * table (unary, server-streaming, bidirectional), per-call contexts, replies
 * and stream sends from any thread, cancellation, graceful shutdown. Unknown
 * methods answer UNIMPLEMENTED; undecodable requests INVALID_ARGUMENT. */
#ifndef CHV_DAEMON_RPC_H
#define CHV_DAEMON_RPC_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vm/err.h"

/* gRPC status codes (the same numbers as grpc_status_code). */
enum rpc_status {
	RPC_OK = 0,
	RPC_CANCELLED = 1,
	RPC_UNKNOWN = 2,
	RPC_INVALID_ARGUMENT = 3,
	RPC_DEADLINE_EXCEEDED = 4,
	RPC_NOT_FOUND = 5,
	RPC_ALREADY_EXISTS = 6,
	RPC_PERMISSION_DENIED = 7,
	RPC_RESOURCE_EXHAUSTED = 8,
	RPC_FAILED_PRECONDITION = 9,
	RPC_ABORTED = 10,
	RPC_OUT_OF_RANGE = 11,
	RPC_UNIMPLEMENTED = 12,
	RPC_INTERNAL = 13,
	RPC_UNAVAILABLE = 14,
	RPC_DATA_LOSS = 15,
	RPC_UNAUTHENTICATED = 16,
};

const char *rpc_status_name(int status); /* "NOT_FOUND", ... */

struct rpc_server;
struct rpc_call;

enum rpc_kind { RPC_UNARY, RPC_SERVER_STREAM, RPC_BIDI };

/* Called on a server thread with the decoded request (for BIDI: the first
 * client message, or NULL when the client closed without sending one). The
 * handler owns the call until it finishes it with rpc_reply()/rpc_fail()
 * (unary) or rpc_finish() (streams), from any thread, exactly once. The
 * request is freed by the framework when the handler returns: copy what you keep. */
typedef void (*rpc_handler_fn)(struct rpc_call *call, const ProtobufCMessage *req, void *ctx);

struct rpc_method {
	const char *path; /* "/chv.v1.Vm/Create" */
	enum rpc_kind kind;
	const ProtobufCMessageDescriptor *req;
	const ProtobufCMessageDescriptor *resp;
	rpc_handler_fn handler;
	void *ctx;
	/* The call changes nothing (Ping, Info, List, ...): served on read-only
	 * listeners too, and audited at debug level only. */
	bool read_only;
};

/* An accepted connection: its listener and the peer's credentials
 * (SO_PEERCRED; -1 when unknown). */
struct rpc_peer {
	int fd;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	bool read_only; /* it came through a read-only listener */
};

struct rpc_server_opts {
	size_t max_message_bytes; /* 0: 4 MiB; larger requests get RESOURCE_EXHAUSTED */
	unsigned threads;	  /* completion-queue threads; 0: 2 */
	/* Called for each accepted connection (SO_PEERCRED), for audit logs. */
	void (*on_connect)(void *ctx, int fd, pid_t pid, uid_t uid, gid_t gid);
	void *on_connect_ctx;
	/* The same, with the listener's kind; either, both or none may be set. */
	void (*on_accept)(void *ctx, const struct rpc_peer *peer);
	void *on_accept_ctx;
	/* Called on a server thread before each handler runs, for audit logs
	 * (rpc_call_identity(), rpc_call_peer() and rpc_call_request() say who
	 * is calling and with what). */
	void (*on_call)(void *ctx, struct rpc_call *call, const char *method);
	void *on_call_ctx;
	/* Called instead of on_call when a read-only connection calls a method
	 * that is not read_only: the call gets PERMISSION_DENIED. */
	void (*on_denied)(void *ctx, struct rpc_call *call, const char *method);
	void *on_denied_ctx;
};

chv_must_check int rpc_server_create(struct rpc_server **out, const struct rpc_server_opts *opts,
				     struct chv_err *err);
/* Before rpc_server_start(). The table must outlive the server. */
chv_must_check int rpc_server_add_methods(struct rpc_server *s, const struct rpc_method *m,
					  size_t n, struct chv_err *err);
/* Serves connections accepted from a listening unix or TCP stream socket
 * (already bound and listening: our own, or one from systemd). The server
 * owns the fd. Several listeners may be added. */
chv_must_check int rpc_server_add_listener(struct rpc_server *s, int listen_fd,
					   struct chv_err *err);
/* The same for a read-only listener: its connections may call only the
 * methods marked read_only; every other method answers PERMISSION_DENIED
 * (before its request is decoded). The kind is bound to each connection
 * when it is accepted, never taken from anything the client sends. */
chv_must_check int rpc_server_add_read_only_listener(struct rpc_server *s, int listen_fd,
						     struct chv_err *err);

/* Mutual TLS for a TCP listener, as PEM text (not file names). */
struct rpc_tls {
	const char *cert_pem;	   /* the server's certificate (chain) */
	const char *key_pem;	   /* its private key */
	const char *client_ca_pem; /* CA(s) whose client certificates are accepted */
};

/* Listens on addr "HOST:PORT" ("[::1]:PORT" for IPv6; PORT 0 picks a free
 * port) and sets *bound_port. With tls, every client must present a
 * certificate that client_ca_pem verifies. tls NULL (plain HTTP/2 with no
 * authentication at all) is refused unless HOST is a loopback address.
 * Before rpc_server_start(). */
chv_must_check int rpc_server_add_tcp(struct rpc_server *s, const char *addr,
				      const struct rpc_tls *tls, int *bound_port,
				      struct chv_err *err);

/* Splits "HOST:PORT" / "[V6]:PORT" into host (without brackets) and port
 * 0..65535. 0, or -EINVAL (malformed) / -ENAMETOOLONG (host too long). */
chv_must_check int rpc_addr_split(const char *addr, char *host, size_t hostlen, unsigned *port);
/* Whether host (no brackets) can only be reached from this machine:
 * 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104, "localhost". */
bool rpc_host_is_loopback(const char *host);

/* Serves one already-connected socket (tests: one end of a socketpair). */
chv_must_check int rpc_server_add_connection(struct rpc_server *s, int fd, struct chv_err *err);
chv_must_check int rpc_server_start(struct rpc_server *s, struct chv_err *err);
/* Stops accepting, gives calls in flight grace_ms to finish, cancels the
 * rest (stream handlers see rpc_call_cancelled()), waits for every call to
 * be released and frees the server. */
void rpc_server_shutdown(struct rpc_server *s, unsigned grace_ms);

/* Unary: the reply (serialised before return; the caller keeps ownership). */
void rpc_reply(struct rpc_call *call, const ProtobufCMessage *resp);
__attribute__((format(printf, 3, 4))) void rpc_fail(struct rpc_call *call, int status,
						    const char *fmt, ...);

/* Streams: queue one message (one is on the wire at a time; the rest wait in
 * order, up to a bound: past it the oldest waiting messages are dropped and
 * -ENOBUFS returned). -EPIPE once the call is cancelled or finished. */
int rpc_stream_send(struct rpc_call *call, const ProtobufCMessage *msg);
/* Ends a stream with a status (after the queued messages are sent). */
__attribute__((format(printf, 3, 4))) void rpc_finish(struct rpc_call *call, int status,
						      const char *fmt, ...);

/* BIDI: each further client message is decoded and passed to fn (on a
 * server thread); msg NULL means the client half-closed or went away. */
typedef void (*rpc_recv_fn)(struct rpc_call *call, const ProtobufCMessage *msg, void *ctx);
void rpc_stream_on_recv(struct rpc_call *call, rpc_recv_fn fn, void *ctx);

/* Called once when the client cancels, disconnects or the deadline passes
 * (streams and unary calls still pending). The handler must still finish the call. */
typedef void (*rpc_cancel_fn)(struct rpc_call *call, void *ctx);
void rpc_call_on_cancel(struct rpc_call *call, rpc_cancel_fn fn, void *ctx);
bool rpc_call_cancelled(struct rpc_call *call);
/* Data that lives as long as the call: free_fn(data) runs when the framework
 * releases the call, after the last callback. For handler state that the
 * cancel and receive callbacks share. */
void rpc_call_set_data(struct rpc_call *call, void *data, void (*free_fn)(void *data));
/* The peer's credentials when known (connections we accepted), else -1;
 * as recorded when the connection was accepted. */
void rpc_call_peer(struct rpc_call *call, pid_t *pid, uid_t *uid, gid_t *gid);
/* Whether the call came through a read-only listener. */
bool rpc_call_read_only(struct rpc_call *call);
/* The method being called (NULL for an unknown one). */
const struct rpc_method *rpc_call_method(struct rpc_call *call);
/* The decoded request, during on_call and the handler only (for BIDI: the
 * first message, or NULL); NULL at other times. */
const ProtobufCMessage *rpc_call_request(struct rpc_call *call);

/* Who is calling, for logs. Strings are truncated to fit, never NULL. */
struct rpc_identity {
	char address[128];     /* gRPC's peer: "ipv4:127.0.0.1:40312", "fd:9", "" unknown */
	bool tls;	       /* the client presented a certificate that we verified */
	char subject[512];     /* its subject ("CN=ops,O=example"); "" without TLS */
	char common_name[256]; /* its CN; "" without TLS or without a CN */
};
void rpc_call_identity(struct rpc_call *call, struct rpc_identity *id);

#endif
