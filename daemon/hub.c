#include "daemon/hub.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/rpc.h"

void sublist_init(struct sublist *l)
{
	pthread_mutex_init(&l->lock, NULL);
	l->head = NULL;
	l->n = 0;
}

void sublist_destroy(struct sublist *l)
{
	sublist_finish_all(l, RPC_UNAVAILABLE, "shutting down");
	pthread_mutex_destroy(&l->lock);
}

void sublist_add(struct sublist *l, struct rpc_call *call, const char *filter)
{
	struct sub *s = calloc(1, sizeof(*s));
	if (!s) {
		rpc_finish(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	s->call = call;
	snprintf(s->filter, sizeof(s->filter), "%s", filter ? filter : "");
	pthread_mutex_lock(&l->lock);
	s->next = l->head;
	l->head = s;
	l->n++;
	pthread_mutex_unlock(&l->lock);
}

int sublist_remove(struct sublist *l, struct rpc_call *call)
{
	int found = 0;
	pthread_mutex_lock(&l->lock);
	for (struct sub **p = &l->head; *p; p = &(*p)->next) {
		if ((*p)->call == call) {
			struct sub *s = *p;
			*p = s->next;
			free(s);
			l->n--;
			found = 1;
			break;
		}
	}
	pthread_mutex_unlock(&l->lock);
	return found;
}

void sublist_publish(struct sublist *l, const char *key, const void *msg)
{
	pthread_mutex_lock(&l->lock);
	for (struct sub *s = l->head; s; s = s->next)
		if (!s->filter[0] || (key && !strcmp(s->filter, key)))
			(void)rpc_stream_send(s->call, msg);
	pthread_mutex_unlock(&l->lock);
}

void sublist_finish_all(struct sublist *l, int status, const char *message)
{
	pthread_mutex_lock(&l->lock);
	struct sub *s = l->head;
	l->head = NULL;
	l->n = 0;
	pthread_mutex_unlock(&l->lock);
	while (s) {
		struct sub *next = s->next;
		rpc_finish(s->call, status, "%s", message);
		free(s);
		s = next;
	}
}
