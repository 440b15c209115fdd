/* Private to daemon/rpc*.c: the server and per-call state shared between the
 * server's lifecycle code (rpc.c) and the call state machine (rpc_call.c). */
#ifndef CHV_DAEMON_RPC_INTERNAL_H
#define CHV_DAEMON_RPC_INTERNAL_H

#include <grpc/grpc.h>
#include <pthread.h>

#include "daemon/rpc.h"

/* Every completion-queue tag is one of these, embedded in its owner: the
 * loop just runs on_done, so any number of calls can be in flight. */
struct rpc_op {
	void (*on_done)(struct rpc_op *op, bool ok);
};

#define RPC_GENERIC   SIZE_MAX /* request slot index of the catch-all */
#define RPC_SENDQ_MAX 1024     /* stream messages waiting behind the one on the wire */

struct rpc_reg {
	const struct rpc_method *m;
	void *handle; /* from grpc_server_register_method */
};

struct rpc_listener {
	int fd;
	bool read_only;
};

struct rpc_server {
	grpc_server *gs;
	grpc_completion_queue *cq;
	grpc_server_credentials *creds;
	struct rpc_server_opts opts;
	unsigned nthreads;
	pthread_t *threads;
	unsigned threads_started;

	struct rpc_reg *regs;
	size_t nregs;
	struct rpc_listener *listeners;
	size_t nlisteners;
	int *pending_fds; /* connections added before start */
	size_t npending;
	int wake_fd; /* eventfd that stops the accept thread */
	pthread_t accept_thread;
	bool accept_running;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool started, stopping, shutdown_notified;
	size_t live;		/* posted request slots + calls not yet freed */
	struct rpc_peer *peers; /* by fd: each accepted connection's peer */
	size_t npeers;
	char *denied_hint; /* the read_only methods, for PERMISSION_DENIED messages */
	struct rpc_op shutdown_op;
};

struct rpc_call {
	struct rpc_server *srv;
	size_t slot; /* index into srv->regs, or RPC_GENERIC */
	const struct rpc_method *m;
	grpc_call *gc;
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_call_details details; /* catch-all slot only */
	grpc_byte_buffer *payload;
	/* Looked up when the call arrives: the call holds its connection's
	 * transport, so the fd cannot be closed and reused meanwhile. */
	struct rpc_peer peer;
	const ProtobufCMessage *req; /* during on_call and the handler */

	pthread_mutex_t lock;
	unsigned refs; /* one per batch in flight, one for the handler, one while dispatching */
	struct rpc_op op_new, op_close, op_send, op_recv, op_status;
	int close_cancelled;

	bool handler_started, handler_done;
	bool cancelled, cancel_called, send_dead;
	bool md_sent, status_queued, status_pending;
	bool send_busy, recv_busy, recv_eof;

	grpc_byte_buffer *send_bb;
	grpc_byte_buffer **q; /* ring of RPC_SENDQ_MAX, allocated on first use */
	size_t qhead, qlen;

	int fin_status;
	grpc_slice fin_details;
	bool has_details;
	grpc_byte_buffer *reply_bb;

	grpc_byte_buffer *recv_bb;
	rpc_cancel_fn cancel_fn;
	void *cancel_ctx;
	rpc_recv_fn recv_fn;
	void *recv_ctx;
	void *data; /* rpc_call_set_data() */
	void (*data_free)(void *data);
};

/* rpc_call.c */
chv_must_check int rpc_call_post(struct rpc_server *s, size_t slot);

/* rpc.c */
void rpc_server_call_released(struct rpc_server *s);
bool rpc_server_peer_find(struct rpc_server *s, int fd, struct rpc_peer *out);

#endif
