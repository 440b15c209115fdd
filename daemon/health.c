/* grpc.health.v1.Health over the rpc framework. One lock guards the status
 * table and the open Watch calls; it is taken before any call's own lock. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/health.h"
#include "grpc/health/v1/health.pb-c.h"

#define HEALTH_NAME_MAX 256

struct health_entry {
	char *name;
	int status;
};

struct health_watch {
	struct health_watch *next;
	struct health *h;
	struct rpc_call *call;
	char *service;
};

struct health {
	pthread_mutex_t lock;
	struct health_entry *e;
	size_t n;
	struct health_watch *watches;
	bool shut;
	struct rpc_method methods[2];
};

static struct health_entry *find_locked(struct health *h, const char *service)
{
	for (size_t i = 0; i < h->n; i++)
		if (strcmp(h->e[i].name, service) == 0)
			return &h->e[i];
	return NULL;
}

static int send_status(struct rpc_call *call, int status)
{
	Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
	return rpc_stream_send(call, &resp.base);
}

static void check(struct rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
	const Grpc__Health__V1__HealthCheckRequest *req = (const void *)msg;
	struct health *h = ctx;

	pthread_mutex_lock(&h->lock);
	struct health_entry *e = find_locked(h, req->service);
	int status = e ? e->status : -1;
	pthread_mutex_unlock(&h->lock);
	if (status < 0) {
		rpc_fail(call, RPC_NOT_FOUND, "health: unknown service '%.256s'", req->service);
		return;
	}
	Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
	rpc_reply(call, &resp.base);
}

static void watch_cancelled(struct rpc_call *call, void *ctx)
{
	struct health_watch *w = ctx;
	struct health *h = w->h;

	pthread_mutex_lock(&h->lock);
	for (struct health_watch **p = &h->watches; *p; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			break;
		}
	}
	pthread_mutex_unlock(&h->lock);
	free(w->service);
	free(w);
	rpc_finish(call, RPC_CANCELLED, "health: watch cancelled");
}

static void watch(struct rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
	const Grpc__Health__V1__HealthCheckRequest *req = (const void *)msg;
	struct health *h = ctx;
	struct health_watch *w = calloc(1, sizeof(*w));

	if (!w || !(w->service = strdup(req->service))) {
		free(w);
		rpc_finish(call, RPC_RESOURCE_EXHAUSTED, "health: out of memory");
		return;
	}
	w->h = h;
	w->call = call;
	pthread_mutex_lock(&h->lock);
	struct health_entry *e = find_locked(h, req->service);
	(void)send_status(call, e ? e->status : HEALTH_SERVICE_UNKNOWN);
	w->next = h->watches;
	h->watches = w;
	pthread_mutex_unlock(&h->lock);
	/* Registered last: if the client is already gone it runs right here,
	 * and finds w on the list. */
	rpc_call_on_cancel(call, watch_cancelled, w);
}

int health_create(struct health **out)
{
	struct health *h = calloc(1, sizeof(*h));

	*out = NULL;
	if (!h)
		return -ENOMEM;
	h->e = calloc(1, sizeof(*h->e));
	if (!h->e || !(h->e[0].name = strdup(""))) {
		free(h->e);
		free(h);
		return -ENOMEM;
	}
	h->e[0].status = HEALTH_SERVING;
	h->n = 1;
	pthread_mutex_init(&h->lock, NULL);
	h->methods[0] = (struct rpc_method){
	    .path = "/grpc.health.v1.Health/Check",
	    .kind = RPC_UNARY,
	    .req = &grpc__health__v1__health_check_request__descriptor,
	    .resp = &grpc__health__v1__health_check_response__descriptor,
	    .handler = check,
	    .ctx = h,
	    .read_only = true,
	};
	h->methods[1] = (struct rpc_method){
	    .path = "/grpc.health.v1.Health/Watch",
	    .kind = RPC_SERVER_STREAM,
	    .req = &grpc__health__v1__health_check_request__descriptor,
	    .resp = &grpc__health__v1__health_check_response__descriptor,
	    .handler = watch,
	    .ctx = h,
	    .read_only = true,
	};
	*out = h;
	return 0;
}

void health_destroy(struct health *h)
{
	if (!h)
		return;
	/* Watches end with their calls, which the server's shutdown cancels. */
	while (h->watches) {
		struct health_watch *w = h->watches;
		h->watches = w->next;
		free(w->service);
		free(w);
	}
	for (size_t i = 0; i < h->n; i++)
		free(h->e[i].name);
	free(h->e);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static void notify_locked(struct health *h, const char *service, int status)
{
	for (struct health_watch *w = h->watches; w; w = w->next)
		if (strcmp(w->service, service) == 0)
			(void)send_status(w->call, status);
}

static int set_locked(struct health *h, const char *service, int status)
{
	struct health_entry *e = find_locked(h, service);
	if (!e) {
		struct health_entry *n = realloc(h->e, (h->n + 1) * sizeof(*n));
		if (!n)
			return -ENOMEM;
		h->e = n;
		e = &h->e[h->n];
		if (!(e->name = strdup(service)))
			return -ENOMEM;
		e->status = -1;
		h->n++;
	}
	if (e->status != status) {
		e->status = status;
		notify_locked(h, service, status);
	}
	return 0;
}

int health_set(struct health *h, const char *service, int serving_status)
{
	if (!service || strlen(service) > HEALTH_NAME_MAX)
		return -EINVAL;
	if (serving_status != HEALTH_SERVING && serving_status != HEALTH_NOT_SERVING &&
	    serving_status != HEALTH_UNKNOWN)
		return -EINVAL;
	pthread_mutex_lock(&h->lock);
	int r = h->shut ? -ESHUTDOWN : set_locked(h, service, serving_status);
	pthread_mutex_unlock(&h->lock);
	return r;
}

void health_shutdown(struct health *h)
{
	pthread_mutex_lock(&h->lock);
	h->shut = true;
	for (size_t i = 0; i < h->n; i++) {
		if (h->e[i].status != HEALTH_NOT_SERVING) {
			h->e[i].status = HEALTH_NOT_SERVING;
			notify_locked(h, h->e[i].name, HEALTH_NOT_SERVING);
		}
	}
	pthread_mutex_unlock(&h->lock);
}

const struct rpc_method *health_methods(struct health *h, size_t *n)
{
	*n = 2;
	return h->methods;
}
