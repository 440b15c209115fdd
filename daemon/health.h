/* The standard gRPC health service (grpc.health.v1.Health): Check and Watch
 * over a table of service name -> serving status. The empty name is the
 * whole server and starts SERVING. */
#ifndef CHV_DAEMON_HEALTH_H
#define CHV_DAEMON_HEALTH_H

#include <stddef.h>

#include "daemon/rpc.h"

struct health;

/* The values of grpc.health.v1.HealthCheckResponse.ServingStatus. */
enum health_status {
	HEALTH_UNKNOWN = 0,
	HEALTH_SERVING = 1,
	HEALTH_NOT_SERVING = 2,
	HEALTH_SERVICE_UNKNOWN = 3, /* Watch only: never set */
};

chv_must_check int health_create(struct health **out);
/* After the rpc server that serves it has been shut down. NULL is a no-op. */
void health_destroy(struct health *h);

/* Registers service (if new) with HEALTH_SERVING, HEALTH_NOT_SERVING or
 * HEALTH_UNKNOWN and tells its watchers when the status changes. -EINVAL
 * for another status or a name over 256 bytes; -ESHUTDOWN after health_shutdown. */
chv_must_check int health_set(struct health *h, const char *service, int serving_status);

/* Marks every service NOT_SERVING (watchers are told) and ignores later
 * health_set() calls: for the start of a graceful daemon shutdown. */
void health_shutdown(struct health *h);

/* The two methods (Check, Watch) to pass to rpc_server_add_methods(); the
 * table lives as long as h. */
const struct rpc_method *health_methods(struct health *h, size_t *n);

#endif
