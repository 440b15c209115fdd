/* gRPC handlers of chv.v1.Vm and chv.v1.Vmm: decode, hand the work to the
 * pool (operations wait on workers), encode. The rules live in vms.c. */
#include "daemon/services.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chv/v1/vm.pb-c.h"
#include "daemon/pool.h"
#include "daemon/registry.h"
#include "daemon/vms.h"

enum op {
	OP_CREATE,
	OP_BOOT,
	OP_SHUTDOWN,
	OP_REBOOT,
	OP_POWER_BUTTON,
	OP_PAUSE,
	OP_RESUME,
	OP_DELETE,
	OP_INFO,
	OP_LIST,
	OP_COUNTERS,
};

struct job {
	struct rpc_call *call;
	enum op op;
	char vm_id[VM_ID_MAX + 8];
	bool force;
	uint32_t timeout_ms;
	Chv__V1__VmConfig *config;
};

static void (*shutdown_cb)(bool shutdown_vms);

static void reply_info(struct rpc_call *call, Chv__V1__VmInfo *info, const struct op_result *res)
{
	if (info)
		rpc_reply(call, &info->base);
	else
		rpc_fail(call, res->status ? res->status : RPC_INTERNAL, "%s", res->msg);
	vminfo_free(info);
}

static void run_job(void *arg)
{
	struct job *j = arg;
	struct op_result res = {0};
	switch (j->op) {
	case OP_CREATE:
		reply_info(j->call, vms_create(j->vm_id, j->config, &res), &res);
		break;
	case OP_BOOT:
		reply_info(j->call, vms_boot(j->vm_id, &res), &res);
		break;
	case OP_SHUTDOWN:
		reply_info(j->call, vms_shutdown(j->vm_id, j->force, j->timeout_ms, &res), &res);
		break;
	case OP_REBOOT:
		reply_info(j->call, vms_simple(j->vm_id, CHV__WORKER__V1__REQUEST__OP_REBOOT, &res),
			   &res);
		break;
	case OP_POWER_BUTTON:
		reply_info(j->call,
			   vms_simple(j->vm_id, CHV__WORKER__V1__REQUEST__OP_POWER_BUTTON, &res),
			   &res);
		break;
	case OP_PAUSE:
		reply_info(j->call, vms_simple(j->vm_id, CHV__WORKER__V1__REQUEST__OP_PAUSE, &res),
			   &res);
		break;
	case OP_RESUME:
		reply_info(j->call, vms_simple(j->vm_id, CHV__WORKER__V1__REQUEST__OP_RESUME, &res),
			   &res);
		break;
	case OP_INFO:
		reply_info(j->call, vms_info(j->vm_id, &res), &res);
		break;
	case OP_DELETE:
		if (vms_delete(j->vm_id, j->force, &res) == 0) {
			Chv__V1__DeleteResponse d = CHV__V1__DELETE_RESPONSE__INIT;
			rpc_reply(j->call, &d.base);
		} else {
			rpc_fail(j->call, res.status, "%s", res.msg);
		}
		break;
	case OP_LIST: {
		Chv__V1__ListResponse *l = vms_list();
		if (l)
			rpc_reply(j->call, &l->base);
		else
			rpc_fail(j->call, RPC_RESOURCE_EXHAUSTED, "out of memory");
		vms_list_free(l);
		break;
	}
	case OP_COUNTERS: {
		Chv__V1__CountersResponse *c = vms_counters(j->vm_id, &res);
		if (c)
			rpc_reply(j->call, &c->base);
		else
			rpc_fail(j->call, res.status, "%s", res.msg);
		vms_counters_free(c);
		break;
	}
	}
	if (j->config)
		protobuf_c_message_free_unpacked(&j->config->base, NULL);
	free(j);
}

static void submit(struct rpc_call *call, enum op op, const char *vm_id, bool force,
		   uint32_t timeout_ms, const Chv__V1__VmConfig *config)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j) {
		rpc_fail(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	j->call = call;
	j->op = op;
	if (vm_id && strlen(vm_id) > VM_ID_MAX) {
		free(j);
		rpc_fail(call, RPC_INVALID_ARGUMENT, "vm_id: \"%.80s...\" is longer than %d bytes",
			 vm_id, VM_ID_MAX);
		return;
	}
	snprintf(j->vm_id, sizeof(j->vm_id), "%s", vm_id ? vm_id : "");
	j->force = force;
	j->timeout_ms = timeout_ms;
	if (config && !(j->config = pb_dup(config))) {
		free(j);
		if (errno == EINVAL)
			rpc_fail(call, RPC_INVALID_ARGUMENT,
				 "config: holds a field chvd cannot re-encode (a field number 0?)");
		else
			rpc_fail(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	if (pool_submit(run_job, j) < 0) {
		if (j->config)
			protobuf_c_message_free_unpacked(&j->config->base, NULL);
		free(j);
		rpc_fail(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
	}
}

static void h_create(struct rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
	(void)ctx;
	const Chv__V1__CreateRequest *req = (const void *)m;
	submit(call, OP_CREATE, req->vm_id, false, 0, req->config);
}

static void h_vm(struct rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
	const Chv__V1__VmRequest *req = (const void *)m;
	submit(call, (enum op)(uintptr_t)ctx, req->vm_id, false, 0, NULL);
}

static void h_shutdown(struct rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
	(void)ctx;
	const Chv__V1__ShutdownRequest *req = (const void *)m;
	submit(call, OP_SHUTDOWN, req->vm_id, req->force, req->timeout_ms, NULL);
}

static void h_delete(struct rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
	(void)ctx;
	const Chv__V1__DeleteRequest *req = (const void *)m;
	submit(call, OP_DELETE, req->vm_id, req->force, 0, NULL);
}

static void h_list(struct rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
	(void)m;
	(void)ctx;
	submit(call, OP_LIST, NULL, false, 0, NULL);
}

static void h_unimplemented(struct rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
	(void)m;
	rpc_fail(call, RPC_UNIMPLEMENTED, "%s is not built yet in this version of chvd",
		 (const char *)ctx);
}

/* ---- streams ---- */

static void events_cancelled(struct rpc_call *call, void *ctx)
{
	(void)ctx;
	if (sublist_remove(&vms_events, call))
		rpc_finish(call, RPC_CANCELLED, "watch cancelled");
}

static void h_watch(struct rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
	(void)ctx;
	const Chv__V1__WatchEventsRequest *req = (const void *)m;
	if (req->vm_id[0]) {
		struct op_result res = {0};
		Chv__V1__VmInfo *info = vms_info(req->vm_id, &res);
		if (!info) {
			rpc_finish(call, res.status, "%s", res.msg);
			return;
		}
		vminfo_free(info);
	}
	rpc_call_on_cancel(call, events_cancelled, NULL);
	sublist_add(&vms_events, call, req->vm_id);
}

struct console_ctx {
	char vm_id[VM_ID_MAX + 1];
};

static void console_input(struct rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
	(void)call;
	const Chv__V1__ConsoleInput *in = (const void *)m;
	struct console_ctx *c = ctx;
	if (in && in->data.len)
		vms_console_input(c->vm_id, in->data.data, in->data.len);
}

static void console_cancelled(struct rpc_call *call, void *ctx)
{
	struct console_ctx *c = ctx;
	vms_console_detach(c->vm_id, call);
}

static void h_console(struct rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
	(void)ctx;
	const Chv__V1__ConsoleInput *first = (const void *)m;
	if (!first || !first->vm_id[0]) {
		rpc_finish(call, RPC_INVALID_ARGUMENT, "the first ConsoleInput must name vm_id");
		return;
	}
	if (strlen(first->vm_id) > VM_ID_MAX) {
		rpc_finish(call, RPC_INVALID_ARGUMENT,
			   "vm_id: \"%.80s...\" is longer than %d bytes", first->vm_id, VM_ID_MAX);
		return;
	}
	if (first->kind == CHV__V1__CONSOLE_KIND__CONSOLE_KIND_VIRTIO) {
		rpc_finish(call, RPC_UNIMPLEMENTED,
			   "virtio-console is not built yet; use kind SERIAL");
		return;
	}
	struct console_ctx *c = calloc(1, sizeof(*c));
	if (!c) {
		rpc_finish(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	snprintf(c->vm_id, sizeof(c->vm_id), "%s", first->vm_id);
	rpc_call_set_data(call, c, free); /* freed with the call, whatever ends it */
	uint8_t *hist;
	size_t hist_len;
	struct op_result res = {0};
	bool follow = !first->no_follow;
	/* The history is queued before any live output can be: attach holds the
	 * VM's lock while it snapshots and subscribes. */
	if (vms_console_attach(c->vm_id, call, follow, !first->skip_history, &hist, &hist_len,
			       &res) < 0) {
		rpc_finish(call, res.status, "%s", res.msg);
		return;
	}
	for (size_t off = 0; off < hist_len; off += 65536) {
		Chv__V1__ConsoleOutput out = CHV__V1__CONSOLE_OUTPUT__INIT;
		out.data.data = hist + off;
		out.data.len = hist_len - off < 65536 ? hist_len - off : 65536;
		(void)rpc_stream_send(call, &out.base);
	}
	free(hist);
	if (first->data.len)
		vms_console_input(c->vm_id, first->data.data, first->data.len);
	if (!follow) {
		rpc_finish(call, RPC_OK, "%s", "");
		return;
	}
	/* A cancel that came before this runs the callback at once. */
	rpc_stream_on_recv(call, console_input, c);
	rpc_call_on_cancel(call, console_cancelled, c);
}

/* ---- Vmm ---- */

static void h_ping(struct rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
	(void)m;
	(void)ctx;
	/* The hypervisors this host offers now: a control plane must not
	 * place VMs on a daemon whose host has lost (or never had) KVM. */
	static char *features[] = {"kvm"};
	Chv__V1__PingResponse p = CHV__V1__PING_RESPONSE__INIT;
	p.version = CHV_VERSION;
	p.n_features = access("/dev/kvm", R_OK | W_OK) == 0 ? 1 : 0;
	p.features = features;
	p.vms = registry_count();
	p.pid = (uint32_t)getpid();
	rpc_reply(call, &p.base);
}

static void h_vmm_shutdown(struct rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
	(void)ctx;
	const Chv__V1__VmmShutdownRequest *req = (const void *)m;
	Chv__V1__VmmShutdownResponse r = CHV__V1__VMM_SHUTDOWN_RESPONSE__INIT;
	rpc_reply(call, &r.base);
	if (shutdown_cb)
		shutdown_cb(req->shutdown_vms);
}

#define VM(name) "/chv.v1.Vm/" name
#define METHOD(path, kind, req, resp, fn, ctx, ro)                                                 \
	{                                                                                          \
		path, kind, &chv__v1__##req##__descriptor, &chv__v1__##resp##__descriptor, fn,     \
		    (void *)(ctx), ro                                                              \
	}
/* UNARY changes something (refused on the read-only socket, audited at
 * info); READ answers without changing anything. */
#define UNARY(path, req, resp, fn, ctx) METHOD(path, RPC_UNARY, req, resp, fn, ctx, false)
#define READ(path, req, resp, fn, ctx)	METHOD(path, RPC_UNARY, req, resp, fn, ctx, true)
#define TODO(name, req, resp)		UNARY(VM(name), req, resp, h_unimplemented, "Vm." name)

static const struct rpc_method methods[] = {
    READ("/chv.v1.Vmm/Ping", ping_request, ping_response, h_ping, 0),
    UNARY("/chv.v1.Vmm/Shutdown", vmm_shutdown_request, vmm_shutdown_response, h_vmm_shutdown, 0),
    UNARY(VM("Create"), create_request, vm_info, h_create, 0),
    UNARY(VM("Boot"), vm_request, vm_info, h_vm, OP_BOOT),
    UNARY(VM("Shutdown"), shutdown_request, vm_info, h_shutdown, 0),
    UNARY(VM("Reboot"), vm_request, vm_info, h_vm, OP_REBOOT),
    UNARY(VM("PowerButton"), vm_request, vm_info, h_vm, OP_POWER_BUTTON),
    UNARY(VM("Pause"), vm_request, vm_info, h_vm, OP_PAUSE),
    UNARY(VM("Resume"), vm_request, vm_info, h_vm, OP_RESUME),
    UNARY(VM("Delete"), delete_request, delete_response, h_delete, 0),
    READ(VM("Info"), vm_request, vm_info, h_vm, OP_INFO),
    READ(VM("List"), list_request, list_response, h_list, 0),
    READ(VM("Counters"), vm_request, counters_response, h_vm, OP_COUNTERS),
    TODO("Resize", resize_request, vm_info),
    TODO("AddDisk", add_disk_request, device_response),
    TODO("AddNet", add_net_request, device_response),
    TODO("AddFs", add_fs_request, device_response),
    TODO("AddPmem", add_pmem_request, device_response),
    TODO("AddVsock", add_vsock_request, device_response),
    TODO("AddDevice", add_device_request, device_response),
    TODO("RemoveDevice", remove_device_request, vm_info),
    TODO("Snapshot", snapshot_request, snapshot_response),
    TODO("Restore", restore_request, vm_info),
    TODO("SendMigration", send_migration_request, send_migration_response),
    TODO("ReceiveMigration", receive_migration_request, vm_info),
    METHOD(VM("WatchEvents"), RPC_SERVER_STREAM, watch_events_request, event, h_watch, NULL, true),
    /* Console writes to the guest: not for the read-only socket. */
    METHOD(VM("Console"), RPC_BIDI, console_input, console_output, h_console, NULL, false),
};

const struct rpc_method *services_methods(size_t *n, void (*on_shutdown)(bool shutdown_vms))
{
	shutdown_cb = on_shutdown;
	*n = sizeof(methods) / sizeof(methods[0]);
	return methods;
}
