/* VM operations: the registry, the store and the workers, kept consistent.
 * Lock order: vmrec.op_lock, then vmrec.lock; wconn_close() is never called
 * with vmrec.lock held (the supervisor's callbacks take it). */
#include "daemon/vms.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/dlog.h"
#include "daemon/registry.h"
#include "daemon/rpc.h"
#include "daemon/store.h"
#include "daemon/wconn.h"
#include "daemon/wpool.h"
#include "vm/config_proto.h"

#define CREATE_TIMEOUT_MS 30000
#define OP_TIMEOUT_MS	  10000
#define SPAWN_TIMEOUT_MS  5000

struct sublist vms_events;

static struct vms_config cfg;
static char vms_dir[PATH_MAX - 80];

static void set_result(struct op_result *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_result(struct op_result *res, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(res->msg, sizeof(res->msg), fmt, ap);
	va_end(ap);
	res->status = status;
}

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void sock_path(const char *id, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.sock", vms_dir, id);
}

static void log_path(const char *id, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.log", vms_dir, id);
}

static void persist(struct vmrec *r)
{
	/* Serialised per VM, and the info built inside: when the supervisor
	 * and an operation both save, the later save holds the newer state. */
	pthread_mutex_lock(&r->persist_lock);
	pthread_mutex_lock(&r->lock);
	Chv__V1__VmInfo *info = r->deleted ? NULL : vmrec_info_locked(r);
	pthread_mutex_unlock(&r->lock);
	if (info) {
		info->worker_pid = 0; /* runtime, not definition */
		(void)store_save(info);
		vminfo_free(info);
	}
	pthread_mutex_unlock(&r->persist_lock);
}

static Chv__V1__EventKind kind_for(Chv__V1__VmState from, Chv__V1__VmState to)
{
	switch (to) {
	case CHV__V1__VM_STATE__VM_STATE_RUNNING:
		return from == CHV__V1__VM_STATE__VM_STATE_PAUSED
			   ? CHV__V1__EVENT_KIND__EVENT_KIND_RESUMED
			   : CHV__V1__EVENT_KIND__EVENT_KIND_BOOTED;
	case CHV__V1__VM_STATE__VM_STATE_PAUSED:
		return CHV__V1__EVENT_KIND__EVENT_KIND_PAUSED;
	case CHV__V1__VM_STATE__VM_STATE_SHUTDOWN:
		return CHV__V1__EVENT_KIND__EVENT_KIND_SHUTDOWN;
	case CHV__V1__VM_STATE__VM_STATE_FAILED:
		return CHV__V1__EVENT_KIND__EVENT_KIND_FAILED;
	case CHV__V1__VM_STATE__VM_STATE_CREATED:
		return CHV__V1__EVENT_KIND__EVENT_KIND_CREATED;
	default:
		return CHV__V1__EVENT_KIND__EVENT_KIND_UNSPECIFIED;
	}
}

static void publish(const char *id, Chv__V1__EventKind kind, Chv__V1__VmState state,
		    const char *message)
{
	Chv__V1__Event e = CHV__V1__EVENT__INIT;
	e.vm_id = (char *)id;
	e.kind = kind;
	e.state = state;
	e.message = (char *)(message ? message : "");
	e.unix_ms = now_ms();
	sublist_publish(&vms_events, id, &e);
	dlog(
	    DLOG_INFO, id, "event %s, state %s%s%s",
	    protobuf_c_enum_descriptor_get_value(&chv__v1__event_kind__descriptor, kind)
		? protobuf_c_enum_descriptor_get_value(&chv__v1__event_kind__descriptor, kind)->name
		: "?",
	    vm_state_name(state), message && *message ? ": " : "", message ? message : "");
}

/* The one place a VM's state changes: an event when it really changed (or
 * for a reboot, which keeps it Running), and the definition saved. */
static void apply_state(struct vmrec *r, Chv__V1__VmState state, Chv__V1__EventKind kind,
			const char *reason)
{
	pthread_mutex_lock(&r->lock);
	Chv__V1__VmState old = r->state;
	bool changed = old != state || kind == CHV__V1__EVENT_KIND__EVENT_KIND_REBOOTED;
	r->state = state;
	if (state == CHV__V1__VM_STATE__VM_STATE_FAILED)
		snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "");
	else if (state == CHV__V1__VM_STATE__VM_STATE_RUNNING &&
		 old != CHV__V1__VM_STATE__VM_STATE_PAUSED)
		r->reason[0] = 0;
	if (state == CHV__V1__VM_STATE__VM_STATE_RUNNING &&
	    (old == CHV__V1__VM_STATE__VM_STATE_CREATED ||
	     old == CHV__V1__VM_STATE__VM_STATE_SHUTDOWN ||
	     old == CHV__V1__VM_STATE__VM_STATE_FAILED)) {
		r->boot_count++;
		r->booted_ms = now_ms();
	}
	pthread_mutex_unlock(&r->lock);
	if (!changed)
		return;
	if (kind == CHV__V1__EVENT_KIND__EVENT_KIND_UNSPECIFIED)
		kind = kind_for(old, state);
	publish(r->id, kind, state, reason);
	persist(r);
}

/* ---- worker callbacks (supervisor thread) ---- */

static void on_notice(void *ctx, const Chv__Worker__V1__Notice *n)
{
	struct vmrec *r = ctx;
	if (n->kind_case == CHV__WORKER__V1__NOTICE__KIND_CONSOLE_OUTPUT) {
		Chv__V1__ConsoleOutput out = CHV__V1__CONSOLE_OUTPUT__INIT;
		out.data = n->console_output;
		pthread_mutex_lock(&r->lock);
		(void)byte_ring_put(&r->console, n->console_output.data, n->console_output.len);
		sublist_publish(&r->followers, NULL, &out);
		pthread_mutex_unlock(&r->lock);
	} else if (n->kind_case == CHV__WORKER__V1__NOTICE__KIND_STATE && n->state &&
		   n->state->state != CHV__V1__VM_STATE__VM_STATE_CREATED) {
		/* A worker's "created" only means it built the VM it was asked to
		 * (also when Boot restarts a stopped VM); chvd announces creation. */
		apply_state(r, n->state->state, n->state->event, n->state->reason);
	}
}

static void on_dead(void *ctx, const char *reason)
{
	struct vmrec *r = ctx;
	pthread_mutex_lock(&r->lock);
	bool expected = r->stopping || r->deleted;
	r->worker_dead = true;
	pthread_mutex_unlock(&r->lock);
	if (expected)
		return;
	dlog(DLOG_WARNING, r->id, "%s", reason);
	apply_state(r, CHV__V1__VM_STATE__VM_STATE_FAILED, CHV__V1__EVENT_KIND__EVENT_KIND_FAILED,
		    reason);
}

static const struct wconn_ops worker_ops = {on_notice, on_dead};

/* Closes a worker connection that died (or any, when all is set). Caller
 * holds op_lock, not lock. */
static void worker_drop(struct vmrec *r, bool all)
{
	pthread_mutex_lock(&r->lock);
	struct wconn *w = r->worker;
	bool drop = w && (all || r->worker_dead);
	if (drop) {
		r->worker = NULL;
		r->worker_dead = false;
	}
	pthread_mutex_unlock(&r->lock);
	if (drop) {
		wconn_close(w);
		vmrec_put(r); /* the connection's reference */
	}
}

static struct wconn *worker_live(struct vmrec *r)
{
	worker_drop(r, false);
	return r->worker;
}

/* Sends one request; non-OK replies and transport errors go into res. */
static Chv__Worker__V1__Reply *worker_call(struct vmrec *r, Chv__Worker__V1__Request *req,
					   int timeout_ms, struct op_result *res)
{
	Chv__Worker__V1__Reply *reply = NULL;
	int e = wconn_request(r->worker, req, &reply, timeout_ms);
	if (e == -ETIMEDOUT) {
		set_result(res, RPC_DEADLINE_EXCEEDED, "VM %s: the worker did not answer in %d ms",
			   r->id, timeout_ms);
		return NULL;
	}
	if (e < 0) {
		set_result(res, RPC_UNAVAILABLE, "VM %s: its worker is gone (%s)", r->id,
			   strerror(-e));
		return NULL;
	}
	if (reply->status != 0) {
		set_result(res, reply->status, "%s", reply->message);
		chv__worker__v1__reply__free_unpacked(reply, NULL);
		return NULL;
	}
	return reply;
}

/* worker_call() for the requests that carry no arguments (boot, pause,
 * resume, reboot, power button, info, counters). */
static Chv__Worker__V1__Reply *worker_call_op(struct vmrec *r, Chv__Worker__V1__Request__OpCase op,
					      struct op_result *res)
{
	Chv__Worker__V1__Empty empty = CHV__WORKER__V1__EMPTY__INIT;
	Chv__Worker__V1__Request req = CHV__WORKER__V1__REQUEST__INIT;
	req.op_case = op;
	req.boot = &empty; /* every argument-less op shares this union slot */
	return worker_call(r, &req, OP_TIMEOUT_MS, res);
}

/* A worker for r, connected: an idle one from the pool when there is one
 * (its socket still in the pool: *pooled tells the caller to move it), else
 * a new process. Caller holds op_lock. */
static int worker_get(struct vmrec *r, bool use_pool, struct wconn **w, pid_t *pid, bool *pooled,
		      struct op_result *res)
{
	char sock[PATH_MAX], logp[PATH_MAX];
	sock_path(r->id, sock, sizeof(sock));
	log_path(r->id, logp, sizeof(logp));
	__atomic_add_fetch(&r->refs, 1, __ATOMIC_ACQ_REL); /* the connection's */
	*pooled = use_pool && wpool_take(&worker_ops, r, logp, w, pid) == 0;
	if (*pooled)
		return 0;
	struct chv_err err = {0};
	if (wconn_spawn(cfg.vmm_path, sock, logp, SPAWN_TIMEOUT_MS, pid, &err) < 0) {
		vmrec_put(r);
		set_result(res, RPC_UNAVAILABLE, "VM %s: %s", r->id, err.msg);
		return -1;
	}
	if (wconn_connect(w, sock, *pid, logp, &worker_ops, r, &err) < 0) {
		vmrec_put(r);
		wconn_kill_spawned(*pid); /* our child: reaped here, its socket removed */
		unlink(sock);
		set_result(res, RPC_UNAVAILABLE, "VM %s: %s", r->id, err.msg);
		return -1;
	}
	return 0;
}

/* Gets a worker and has it build the VM. With persist_meanwhile, the
 * definition is saved (and fsynced) while the worker builds, not after.
 * Caller holds op_lock. */
static int worker_start(struct vmrec *r, bool persist_meanwhile, struct op_result *res)
{
	char sock[PATH_MAX];
	sock_path(r->id, sock, sizeof(sock));
	/* A pooled worker that dies before it answers is replaced once by a
	 * new process: a pool must never be why a Create fails. */
	for (int attempt = 0; attempt < 2; attempt++) {
		struct wconn *w;
		pid_t pid;
		bool pooled;
		if (worker_get(r, attempt == 0, &w, &pid, &pooled, res) < 0)
			return -1;
		pthread_mutex_lock(&r->lock);
		r->worker = w;
		r->worker_dead = false;
		r->stopping = false;
		Chv__V1__VmConfig *config = r->config;
		pthread_mutex_unlock(&r->lock);

		Chv__Worker__V1__Request req = CHV__WORKER__V1__REQUEST__INIT;
		req.op_case = CHV__WORKER__V1__REQUEST__OP_CREATE;
		req.create = config;
		req.control_path = pooled ? sock : "";
		struct wconn_call *call;
		int e = wconn_begin(w, &req, &call);
		if (e == 0 && persist_meanwhile) {
			persist(r);
			persist_meanwhile = false;
		}
		Chv__Worker__V1__Reply *reply = NULL;
		if (call)
			e = wconn_finish(w, call, &reply, CREATE_TIMEOUT_MS);
		if (e == 0 && reply->status == 0) {
			chv__worker__v1__reply__free_unpacked(reply, NULL);
			if (pooled)
				dlog(DLOG_DEBUG, r->id, "took idle worker %d", pid);
			return 0;
		}
		if (e == -ETIMEDOUT)
			set_result(res, RPC_DEADLINE_EXCEEDED,
				   "VM %s: the worker did not answer in %d ms", r->id,
				   CREATE_TIMEOUT_MS);
		else if (e < 0)
			set_result(res, RPC_UNAVAILABLE, "VM %s: its worker is gone (%s)", r->id,
				   strerror(-e));
		else
			set_result(res, reply->status, "%s", reply->message);
		if (reply)
			chv__worker__v1__reply__free_unpacked(reply, NULL);
		pthread_mutex_lock(&r->lock);
		r->stopping = true;
		pthread_mutex_unlock(&r->lock);
		kill(pid, SIGKILL);
		worker_drop(r, true);
		unlink(sock); /* a killed worker cannot remove it */
		if (!pooled || e != -EPIPE)
			return -1;
		dlog(DLOG_WARNING, r->id, "idle worker %d died when taken; starting a new one",
		     pid);
		*res = (struct op_result){0};
	}
	return -1;
}

/* Asks the worker to stop the guest and exit; closes the connection. */
static int worker_stop(struct vmrec *r, bool force, uint32_t timeout_ms, struct op_result *res)
{
	if (!worker_live(r))
		return 0;
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_mutex_unlock(&r->lock);
	Chv__Worker__V1__Shutdown sd = CHV__WORKER__V1__SHUTDOWN__INIT;
	sd.force = force;
	sd.timeout_ms = timeout_ms;
	Chv__Worker__V1__Request req = CHV__WORKER__V1__REQUEST__INIT;
	req.op_case = CHV__WORKER__V1__REQUEST__OP_SHUTDOWN;
	req.shutdown = &sd;
	pid_t pid = wconn_pid(r->worker);
	Chv__Worker__V1__Reply *reply = worker_call(r, &req, (int)timeout_ms + OP_TIMEOUT_MS, res);
	if (reply)
		chv__worker__v1__reply__free_unpacked(reply, NULL);
	else if (pid > 0)
		kill(pid, SIGKILL); /* it did not answer: make sure it is gone */
	worker_drop(r, true);
	return reply ? 0 : -1;
}

static bool valid_id(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > VM_ID_MAX || id[0] == '.' || id[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

static struct vmrec *lookup(const char *id, struct op_result *res)
{
	struct vmrec *r = id && id[0] ? registry_get(id) : NULL;
	if (!r) {
		if (!id || !id[0])
			set_result(res, RPC_INVALID_ARGUMENT, "vm_id is required");
		else
			set_result(res, RPC_NOT_FOUND, "VM \"%s\" not found", id);
	}
	return r;
}

static Chv__V1__VmInfo *info_of(struct vmrec *r, struct op_result *res)
{
	pthread_mutex_lock(&r->lock);
	Chv__V1__VmInfo *info = vmrec_info_locked(r);
	pthread_mutex_unlock(&r->lock);
	if (!info)
		set_result(res, RPC_RESOURCE_EXHAUSTED, "out of memory");
	return info;
}

static Chv__V1__VmState state_of(struct vmrec *r)
{
	pthread_mutex_lock(&r->lock);
	Chv__V1__VmState s = r->state;
	pthread_mutex_unlock(&r->lock);
	return s;
}

static void wrong_state(struct vmrec *r, const char *what, struct op_result *res)
{
	set_result(res, RPC_FAILED_PRECONDITION, "cannot %s VM \"%s\": it is %s", what, r->id,
		   vm_state_name(state_of(r)));
}

/* ---- operations ---- */

Chv__V1__VmInfo *vms_create(const char *id_in, const Chv__V1__VmConfig *config,
			    struct op_result *res)
{
	char id[VM_ID_MAX + 1];
	if (id_in && id_in[0]) {
		if (!valid_id(id_in)) {
			set_result(res, RPC_INVALID_ARGUMENT,
				   "vm_id: \"%.80s\" is not a valid id (1-64 of A-Z a-z 0-9 _ . -, "
				   "not starting with . or -)",
				   id_in);
			return NULL;
		}
		snprintf(id, sizeof(id), "%s", id_in);
	} else {
		unsigned v;
		FILE *f = fopen("/dev/urandom", "re");
		if (!f || fread(&v, sizeof(v), 1, f) != 1)
			v = (unsigned)now_ms() ^ (unsigned)getpid();
		if (f)
			fclose(f);
		snprintf(id, sizeof(id), "vm-%08x", v);
	}
	if (!config) {
		set_result(res, RPC_INVALID_ARGUMENT, "config is required");
		return NULL;
	}
	/* The same rules as chv-vmm's flags, before anything is allocated. */
	struct vm_config vc;
	struct chv_err err = {0};
	vm_config_init(&vc);
	Chv__V1__VmConfig *normal = NULL;
	if (vm_config_from_proto(&vc, config, &err) < 0 || vm_config_validate(&vc, &err) < 0) {
		set_result(res, RPC_INVALID_ARGUMENT, "%s", err.msg);
		vm_config_free(&vc);
		return NULL;
	}
	int e = vm_config_to_proto(&vc, &normal);
	vm_config_free(&vc);
	/* The registry keeps an unpacked copy (freed like every stored one);
	 * it is made before the VM becomes visible to other calls. */
	Chv__V1__VmConfig *stored = e < 0 ? NULL : pb_dup(normal);
	if (normal)
		vm_config_proto_free(normal);
	if (!stored) {
		set_result(res, RPC_RESOURCE_EXHAUSTED, "out of memory");
		return NULL;
	}
	struct vmrec *r;
	e = registry_add(id, stored, cfg.max_vms, &r);
	if (e < 0) {
		protobuf_c_message_free_unpacked(&stored->base, NULL);
		if (e == -EEXIST)
			set_result(res, RPC_ALREADY_EXISTS, "VM \"%s\" already exists", id);
		else if (e == -ENOSPC)
			set_result(res, RPC_RESOURCE_EXHAUSTED,
				   "this daemon already manages %u VMs (--max-vms)", cfg.max_vms);
		else
			set_result(res, RPC_RESOURCE_EXHAUSTED, "out of memory");
		return NULL;
	}
	pthread_mutex_lock(&r->op_lock);
	pthread_mutex_lock(&r->lock);
	r->created_ms = now_ms();
	pthread_mutex_unlock(&r->lock);
	Chv__V1__VmInfo *info = NULL;
	if (worker_start(r, true, res) == 0) {
		publish(r->id, CHV__V1__EVENT_KIND__EVENT_KIND_CREATED,
			CHV__V1__VM_STATE__VM_STATE_CREATED, NULL);
		info = info_of(r, res);
	}
	if (!info) {
		pthread_mutex_lock(&r->lock);
		r->deleted = true;
		pthread_mutex_unlock(&r->lock);
		registry_remove(r);
		store_remove(r->id); /* saved while the worker was building */
		/* The reason went back to the caller; a log per refused Create
		 * would pile up. */
		char p[PATH_MAX];
		log_path(r->id, p, sizeof(p));
		unlink(p);
	}
	pthread_mutex_unlock(&r->op_lock);
	vmrec_put(r);
	return info;
}

Chv__V1__VmInfo *vms_boot(const char *id, struct op_result *res)
{
	struct vmrec *r = lookup(id, res);
	if (!r)
		return NULL;
	Chv__V1__VmInfo *info = NULL;
	pthread_mutex_lock(&r->op_lock);
	Chv__V1__VmState s = state_of(r);
	if (s == CHV__V1__VM_STATE__VM_STATE_RUNNING || s == CHV__V1__VM_STATE__VM_STATE_PAUSED) {
		wrong_state(r, "boot", res);
		goto out;
	}
	/* A failed VM starts again in a new worker: the old one holds a broken VM. */
	if (s == CHV__V1__VM_STATE__VM_STATE_FAILED && worker_live(r)) {
		struct op_result ignored = {0};
		(void)worker_stop(r, true, 0, &ignored);
	}
	if (!worker_live(r) && worker_start(r, false, res) < 0)
		goto out;
	/* The state change itself arrives as the worker's notice, before this
	 * reply and in order with later ones (a guest that powers off at once):
	 * applying the reply's state here could undo a newer notice. */
	Chv__Worker__V1__Reply *reply = worker_call_op(r, CHV__WORKER__V1__REQUEST__OP_BOOT, res);
	if (!reply)
		goto out;
	chv__worker__v1__reply__free_unpacked(reply, NULL);
	info = info_of(r, res);
out:
	pthread_mutex_unlock(&r->op_lock);
	vmrec_put(r);
	return info;
}

Chv__V1__VmInfo *vms_shutdown(const char *id, bool force, uint32_t timeout_ms,
			      struct op_result *res)
{
	struct vmrec *r = lookup(id, res);
	if (!r)
		return NULL;
	Chv__V1__VmInfo *info = NULL;
	pthread_mutex_lock(&r->op_lock);
	Chv__V1__VmState s = state_of(r);
	if (s != CHV__V1__VM_STATE__VM_STATE_RUNNING && s != CHV__V1__VM_STATE__VM_STATE_PAUSED) {
		wrong_state(r, "shut down", res);
		goto out;
	}
	if (worker_stop(r, force, timeout_ms ? timeout_ms : 10000, res) < 0) {
		/* The worker did not answer and was killed: the VM is off either way. */
		apply_state(r, CHV__V1__VM_STATE__VM_STATE_SHUTDOWN,
			    CHV__V1__EVENT_KIND__EVENT_KIND_SHUTDOWN, res->msg);
		goto out;
	}
	apply_state(r, CHV__V1__VM_STATE__VM_STATE_SHUTDOWN,
		    CHV__V1__EVENT_KIND__EVENT_KIND_SHUTDOWN,
		    force ? "forced shutdown" : "shutdown");
	info = info_of(r, res);
out:
	pthread_mutex_unlock(&r->op_lock);
	vmrec_put(r);
	return info;
}

Chv__V1__VmInfo *vms_simple(const char *id, Chv__Worker__V1__Request__OpCase op,
			    struct op_result *res)
{
	struct vmrec *r = lookup(id, res);
	if (!r)
		return NULL;
	static const char *const verbs[] = {
	    [CHV__WORKER__V1__REQUEST__OP_PAUSE] = "pause",
	    [CHV__WORKER__V1__REQUEST__OP_RESUME] = "resume",
	    [CHV__WORKER__V1__REQUEST__OP_REBOOT] = "reboot",
	    [CHV__WORKER__V1__REQUEST__OP_POWER_BUTTON] = "press the power button of",
	};
	Chv__V1__VmInfo *info = NULL;
	pthread_mutex_lock(&r->op_lock);
	Chv__V1__VmState s = state_of(r);
	bool ok;
	switch (op) {
	case CHV__WORKER__V1__REQUEST__OP_PAUSE:
		ok = s == CHV__V1__VM_STATE__VM_STATE_RUNNING;
		break;
	case CHV__WORKER__V1__REQUEST__OP_RESUME:
		ok = s == CHV__V1__VM_STATE__VM_STATE_PAUSED;
		break;
	default:
		ok = s == CHV__V1__VM_STATE__VM_STATE_RUNNING ||
		     s == CHV__V1__VM_STATE__VM_STATE_PAUSED;
		break;
	}
	if (!ok || !worker_live(r)) {
		wrong_state(r, verbs[op], res);
		goto out;
	}
	Chv__Worker__V1__Reply *reply = worker_call_op(r, op, res);
	if (!reply)
		goto out;
	/* State and event (REBOOTED too) come with the worker's notice. */
	chv__worker__v1__reply__free_unpacked(reply, NULL);
	info = info_of(r, res);
out:
	pthread_mutex_unlock(&r->op_lock);
	vmrec_put(r);
	return info;
}

Chv__V1__VmInfo *vms_info(const char *id, struct op_result *res)
{
	struct vmrec *r = lookup(id, res);
	if (!r)
		return NULL;
	Chv__V1__VmInfo *info = info_of(r, res);
	vmrec_put(r);
	return info;
}

int vms_delete(const char *id, bool force, struct op_result *res)
{
	struct vmrec *r = lookup(id, res);
	if (!r)
		return -1;
	int ret = -1;
	pthread_mutex_lock(&r->op_lock);
	Chv__V1__VmState s = state_of(r);
	if (!force &&
	    (s == CHV__V1__VM_STATE__VM_STATE_RUNNING || s == CHV__V1__VM_STATE__VM_STATE_PAUSED)) {
		set_result(res, RPC_FAILED_PRECONDITION,
			   "cannot delete VM \"%s\": it is %s (shut it down first, or use force)",
			   r->id, vm_state_name(s));
		goto out;
	}
	pthread_mutex_lock(&r->lock);
	r->deleted = true;
	pthread_mutex_unlock(&r->lock);
	struct op_result ignored = {0};
	if (worker_stop(r, true, 0, &ignored) < 0)
		dlog(DLOG_WARNING, r->id, "worker did not stop cleanly: %s", ignored.msg);
	registry_remove(r);
	store_remove(r->id);
	char p[PATH_MAX];
	log_path(r->id, p, sizeof(p));
	unlink(p);
	sublist_finish_all(&r->followers, RPC_OK, "VM deleted");
	publish(r->id, CHV__V1__EVENT_KIND__EVENT_KIND_DELETED, s, NULL);
	ret = 0;
out:
	pthread_mutex_unlock(&r->op_lock);
	vmrec_put(r);
	return ret;
}

Chv__V1__ListResponse *vms_list(void)
{
	struct vmrec **all;
	unsigned n = registry_all(&all);
	Chv__V1__ListResponse *l = calloc(1, sizeof(*l));
	if (l) {
		chv__v1__list_response__init(l);
		l->vms = calloc(n ? n : 1, sizeof(*l->vms));
		if (!l->vms) {
			free(l);
			l = NULL;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		if (l) {
			pthread_mutex_lock(&all[i]->lock);
			Chv__V1__VmInfo *info = vmrec_info_locked(all[i]);
			pthread_mutex_unlock(&all[i]->lock);
			if (info)
				l->vms[l->n_vms++] = info;
		}
		vmrec_put(all[i]);
	}
	free(all);
	return l;
}

void vms_list_free(Chv__V1__ListResponse *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n_vms; i++)
		vminfo_free(l->vms[i]);
	free(l->vms);
	free(l);
}

static int add_counter(Chv__V1__CountersResponse *c, const char *name, uint64_t value)
{
	Chv__V1__CountersResponse__CountersEntry **nv =
	    realloc(c->counters, (c->n_counters + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	c->counters = nv;
	Chv__V1__CountersResponse__CountersEntry *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	chv__v1__counters_response__counters_entry__init(e);
	e->key = strdup(name);
	e->value = value;
	if (!e->key) {
		free(e);
		return -ENOMEM;
	}
	c->counters[c->n_counters++] = e;
	return 0;
}

Chv__V1__CountersResponse *vms_counters(const char *id, struct op_result *res)
{
	struct vmrec *r = lookup(id, res);
	if (!r)
		return NULL;
	Chv__V1__CountersResponse *c = calloc(1, sizeof(*c));
	if (!c) {
		set_result(res, RPC_RESOURCE_EXHAUSTED, "out of memory");
		vmrec_put(r);
		return NULL;
	}
	chv__v1__counters_response__init(c);
	pthread_mutex_lock(&r->op_lock);
	pthread_mutex_lock(&r->lock);
	uint64_t console = r->console.head; /* every byte ever received */
	pthread_mutex_unlock(&r->lock);
	int e = add_counter(c, "console.output_bytes", console);
	if (e == 0 && worker_live(r)) {
		struct op_result ignored = {0};
		Chv__Worker__V1__Reply *reply =
		    worker_call_op(r, CHV__WORKER__V1__REQUEST__OP_COUNTERS, &ignored);
		for (size_t i = 0; reply && e == 0 && i < reply->n_counters; i++)
			e = add_counter(c, reply->counters[i]->key, reply->counters[i]->value);
		if (reply)
			chv__worker__v1__reply__free_unpacked(reply, NULL);
	}
	pthread_mutex_unlock(&r->op_lock);
	vmrec_put(r);
	if (e < 0) {
		vms_counters_free(c);
		set_result(res, RPC_RESOURCE_EXHAUSTED, "out of memory");
		return NULL;
	}
	return c;
}

void vms_counters_free(Chv__V1__CountersResponse *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_counters; i++) {
		free(c->counters[i]->key);
		free(c->counters[i]);
	}
	free(c->counters);
	free(c);
}

int vms_console_attach(const char *id, struct rpc_call *call, bool follow, bool history,
		       uint8_t **hist, size_t *hist_len, struct op_result *res)
{
	struct vmrec *r = lookup(id, res);
	if (!r)
		return -1;
	*hist = NULL;
	*hist_len = 0;
	pthread_mutex_lock(&r->lock);
	if (history) {
		size_t len = (size_t)byte_ring_len(&r->console);
		*hist = malloc(len ? len : 1);
		*hist_len = *hist ? byte_ring_copy(&r->console, r->console.tail, *hist, len) : 0;
	}
	if (follow)
		sublist_add(&r->followers, call, NULL);
	pthread_mutex_unlock(&r->lock);
	vmrec_put(r);
	return 0;
}

void vms_console_detach(const char *id, struct rpc_call *call)
{
	struct vmrec *r = registry_get(id);
	if (!r)
		return;
	if (sublist_remove(&r->followers, call))
		rpc_finish(call, RPC_CANCELLED, "console detached");
	vmrec_put(r);
}

void vms_console_input(const char *id, const uint8_t *data, size_t n)
{
	struct vmrec *r = registry_get(id);
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	struct wconn *w = r->worker_dead ? NULL : r->worker;
	if (w) {
		Chv__Worker__V1__Request req = CHV__WORKER__V1__REQUEST__INIT;
		req.op_case = CHV__WORKER__V1__REQUEST__OP_CONSOLE_INPUT;
		req.console_input.data = (uint8_t *)data;
		req.console_input.len = n;
		(void)wconn_send(w, &req);
	}
	pthread_mutex_unlock(&r->lock);
	vmrec_put(r);
}

/* ---- start-up and shut-down ---- */

int vms_init(const struct vms_config *c, struct chv_err *err)
{
	cfg = *c;
	sublist_init(&vms_events);
	if (snprintf(vms_dir, sizeof(vms_dir), "%s/vms", c->runtime_dir) >= (int)sizeof(vms_dir))
		return chv_err_set(err, -ENAMETOOLONG, "runtime directory too long: %s",
				   c->runtime_dir);
	if (mkdir(vms_dir, 0700) < 0 && errno != EEXIST)
		return chv_err_set(err, -errno, "cannot create %s: %s", vms_dir, strerror(errno));
	int r = wconn_supervisor_start(err);
	if (r < 0)
		return r;
	struct wpool_config pc = {c->vmm_path, c->runtime_dir, c->warm_workers};
	return wpool_start(&pc, err);
}

static void restore_one(void *ctx, Chv__V1__VmInfo *info)
{
	(void)ctx;
	struct vmrec *r;
	Chv__V1__VmConfig *config = info->config;
	info->config = NULL;
	if (!config || registry_add(info->id, config, UINT_MAX, &r) < 0) {
		dlog(DLOG_WARNING, info->id, "cannot restore its definition");
		if (config)
			protobuf_c_message_free_unpacked(&config->base, NULL);
		chv__v1__vm_info__free_unpacked(info, NULL);
		return;
	}
	pthread_mutex_lock(&r->op_lock);
	pthread_mutex_lock(&r->lock);
	r->state = info->state;
	snprintf(r->reason, sizeof(r->reason), "%s", info->failure_reason);
	r->created_ms = info->created_unix_ms;
	r->booted_ms = info->booted_unix_ms;
	r->boot_count = info->boot_count;
	pthread_mutex_unlock(&r->lock);
	char sock[PATH_MAX];
	sock_path(r->id, sock, sizeof(sock));
	struct chv_err err = {0};
	struct wconn *w = NULL;
	struct stat st;
	__atomic_add_fetch(&r->refs, 1, __ATOMIC_ACQ_REL);
	if (stat(sock, &st) == 0 && wconn_connect(&w, sock, 0, NULL, &worker_ops, r, &err) == 0) {
		pthread_mutex_lock(&r->lock);
		r->worker = w;
		pthread_mutex_unlock(&r->lock);
		struct op_result res = {0};
		Chv__Worker__V1__Reply *reply =
		    worker_call_op(r, CHV__WORKER__V1__REQUEST__OP_INFO, &res);
		if (reply) {
			dlog(DLOG_NOTICE, r->id, "re-adopted its worker (pid %d), %s", wconn_pid(w),
			     vm_state_name(reply->state));
			apply_state(r, reply->state, CHV__V1__EVENT_KIND__EVENT_KIND_UNSPECIFIED,
				    NULL);
			chv__worker__v1__reply__free_unpacked(reply, NULL);
		} else {
			dlog(DLOG_WARNING, r->id, "worker at %s did not answer: %s", sock, res.msg);
			worker_drop(r, true);
		}
	} else {
		vmrec_put(r);
		Chv__V1__VmState s = state_of(r);
		if (s == CHV__V1__VM_STATE__VM_STATE_RUNNING ||
		    s == CHV__V1__VM_STATE__VM_STATE_PAUSED)
			apply_state(r, CHV__V1__VM_STATE__VM_STATE_FAILED,
				    CHV__V1__EVENT_KIND__EVENT_KIND_FAILED,
				    "its worker was gone when chvd started");
	}
	pthread_mutex_unlock(&r->op_lock);
	vmrec_put(r);
	chv__v1__vm_info__free_unpacked(info, NULL);
}

void vms_restore(void)
{
	int n = store_load_all(restore_one, NULL);
	if (n > 0)
		dlog(DLOG_NOTICE, NULL, "restored %d VM definitions", n);
}

void vms_shutdown_all(bool shutdown_vms)
{
	wpool_stop(); /* idle workers hold no VM: they go in any case */
	struct vmrec **all;
	unsigned n = registry_all(&all);
	for (unsigned i = 0; i < n; i++) {
		struct vmrec *r = all[i];
		pthread_mutex_lock(&r->op_lock);
		if (shutdown_vms) {
			struct op_result res = {0};
			Chv__V1__VmState s = state_of(r);
			if (s == CHV__V1__VM_STATE__VM_STATE_RUNNING ||
			    s == CHV__V1__VM_STATE__VM_STATE_PAUSED) {
				if (worker_stop(r, true, 0, &res) == 0)
					apply_state(r, CHV__V1__VM_STATE__VM_STATE_SHUTDOWN,
						    CHV__V1__EVENT_KIND__EVENT_KIND_SHUTDOWN,
						    "chvd exiting");
			}
		}
		worker_drop(r, true);
		sublist_finish_all(&r->followers, RPC_UNAVAILABLE, "chvd is shutting down");
		pthread_mutex_unlock(&r->op_lock);
		vmrec_put(r);
	}
	free(all);
	sublist_finish_all(&vms_events, RPC_UNAVAILABLE, "chvd is shutting down");
	wconn_supervisor_stop();
}
