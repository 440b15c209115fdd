/* The VMs chvd manages: one record per VM with its definition, state,
 * worker connection, console history and followers. Records are
 * reference-counted; lifecycle operations on one VM are serialised by its
 * op_lock, fields are guarded by its lock. */
#ifndef CHV_DAEMON_REGISTRY_H
#define CHV_DAEMON_REGISTRY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "chv/v1/vm.pb-c.h"
#include "daemon/hub.h"
#include "vm/byte_ring.h"

#define VM_ID_MAX 64

struct wconn;

struct vmrec {
	char id[VM_ID_MAX + 1];
	pthread_mutex_t op_lock;      /* one lifecycle operation at a time */
	pthread_mutex_t persist_lock; /* one store_save at a time, the newest state last */
	pthread_mutex_t lock;	      /* the fields below */
	Chv__V1__VmConfig *config;    /* owned (unpacked) */
	Chv__V1__VmState state;
	char reason[512]; /* failure_reason */
	int64_t created_ms, booted_ms;
	uint32_t boot_count;
	struct wconn *worker; /* NULL: no worker process */
	bool worker_dead;     /* its connection ended; closed by the next operation */
	bool stopping;	      /* we asked the worker to exit */
	bool deleted;
	struct byte_ring console; /* serial output history */
	struct sublist followers; /* Console callers following live output */
	unsigned refs;
};

/* Registry-wide. */
void registry_init(void);
/* Takes a reference; NULL when absent. */
struct vmrec *registry_get(const char *id);
void vmrec_put(struct vmrec *r);
/* A new record (state CREATED, refs 1 for the caller + 1 for the registry);
 * -EEXIST when the id is taken, -ENOSPC past max VMs. */
int registry_add(const char *id, Chv__V1__VmConfig *config, unsigned max_vms, struct vmrec **out);
/* Drops the registry's reference. */
void registry_remove(struct vmrec *r);
/* References to every record, sorted by id; free the array and put each. */
unsigned registry_all(struct vmrec ***out);
unsigned registry_count(void);

/* A chv.v1.VmInfo of r (heap; free with vminfo_free). Caller holds r->lock. */
Chv__V1__VmInfo *vmrec_info_locked(const struct vmrec *r);
void vminfo_free(Chv__V1__VmInfo *info);

const char *vm_state_name(Chv__V1__VmState s);

/* A deep copy of any message (pack + unpack); free with
 * protobuf_c_message_free_unpacked. NULL on allocation failure. */
void *pb_dup(const void *msg);

#endif
