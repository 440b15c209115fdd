/* The VM operations behind the Vm service, independent of gRPC: each takes
 * the caller's request fields and fills a result with a gRPC status and a
 * message (naming the field and value, or the state) on failure. */
#ifndef CHV_DAEMON_VMS_H
#define CHV_DAEMON_VMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chv/v1/vm.pb-c.h"
#include "chv/worker/v1/worker.pb-c.h"
#include "daemon/hub.h"
#include "vm/err.h"

struct vmrec;

struct vms_config {
	const char *vmm_path;	 /* the chv-vmm binary */
	const char *runtime_dir; /* worker sockets and logs in <runtime_dir>/vms */
	unsigned max_vms;
	unsigned warm_workers; /* idle pre-started workers kept ready (0: none) */
};

struct op_result {
	int status;
	char msg[512];
};

chv_must_check int vms_init(const struct vms_config *c, struct chv_err *err);
/* Loads the stored definitions and re-adopts the workers still running. */
void vms_restore(void);
/* Closes every worker connection (workers keep running), or, with
 * shutdown_vms, stops every VM first. */
void vms_shutdown_all(bool shutdown_vms);

/* Each returns the VM's info on success (free with vminfo_free). */
Chv__V1__VmInfo *vms_create(const char *id, const Chv__V1__VmConfig *config, struct op_result *res);
Chv__V1__VmInfo *vms_boot(const char *id, struct op_result *res);
Chv__V1__VmInfo *vms_shutdown(const char *id, bool force, uint32_t timeout_ms,
			      struct op_result *res);
Chv__V1__VmInfo *vms_simple(const char *id, Chv__Worker__V1__Request__OpCase op,
			    struct op_result *res); /* pause, resume, reboot, power button */
Chv__V1__VmInfo *vms_info(const char *id, struct op_result *res);
int vms_delete(const char *id, bool force, struct op_result *res);
Chv__V1__ListResponse *vms_list(void);
void vms_list_free(Chv__V1__ListResponse *l);
Chv__V1__CountersResponse *vms_counters(const char *id, struct op_result *res);
void vms_counters_free(Chv__V1__CountersResponse *c);

/* Console: the history (free()) and, when follow, the call is added to the
 * VM's followers atomically with the snapshot. */
int vms_console_attach(const char *id, struct rpc_call *call, bool follow, bool history,
		       uint8_t **hist, size_t *hist_len, struct op_result *res);
void vms_console_detach(const char *id, struct rpc_call *call);
void vms_console_input(const char *id, const uint8_t *data, size_t n);

/* Lifecycle events of every VM. */
extern struct sublist vms_events;

#endif
