/* The chv.v1 Vm and Vmm services: the method tables chvd registers. */
#ifndef CHV_DAEMON_SERVICES_H
#define CHV_DAEMON_SERVICES_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon/rpc.h"

/* on_shutdown: what Vmm.Shutdown does after replying (chvd's exit path). */
const struct rpc_method *services_methods(size_t *n, void (*on_shutdown)(bool shutdown_vms));

#endif
