/* A fixed pool of threads for RPC work that waits (on a worker's reply),
 * so the gRPC completion-queue threads never block. */
#ifndef CHV_DAEMON_POOL_H
#define CHV_DAEMON_POOL_H

#include "vm/err.h"

chv_must_check int pool_start(unsigned threads, struct chv_err *err);
/* Runs fn(arg) on a pool thread; -ENOMEM when the job cannot be queued. */
int pool_submit(void (*fn)(void *arg), void *arg);
/* Runs what is queued, then joins the threads. */
void pool_stop(void);

#endif
