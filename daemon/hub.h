/* Fan-out of stream output: lists of streaming calls (console followers,
 * event watchers). Sends only queue (rpc_stream_send never blocks), so
 * publishers may hold their own locks. */
#ifndef CHV_DAEMON_HUB_H
#define CHV_DAEMON_HUB_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct rpc_call;

struct sub {
	struct rpc_call *call;
	char filter[72]; /* "" = everything */
	struct sub *next;
};

struct sublist {
	pthread_mutex_t lock;
	struct sub *head;
	unsigned n;
};

void sublist_init(struct sublist *l);
void sublist_destroy(struct sublist *l);
void sublist_add(struct sublist *l, struct rpc_call *call, const char *filter);
/* Returns 1 when the call was there. */
int sublist_remove(struct sublist *l, struct rpc_call *call);
/* Sends msg (a ProtobufCMessage) to every call whose filter is "" or equals key. */
void sublist_publish(struct sublist *l, const char *key, const void *msg);
/* Finishes every call with status and message, emptying the list. */
void sublist_finish_all(struct sublist *l, int status, const char *message);

#endif
