#include "daemon/registry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/wconn.h"

#define CONSOLE_HISTORY (256u << 10)

static struct {
	pthread_mutex_t lock;
	struct vmrec **v;
	unsigned n, cap;
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER};

void registry_init(void)
{
}

const char *vm_state_name(Chv__V1__VmState s)
{
	switch (s) {
	case CHV__V1__VM_STATE__VM_STATE_CREATED:
		return "Created";
	case CHV__V1__VM_STATE__VM_STATE_RUNNING:
		return "Running";
	case CHV__V1__VM_STATE__VM_STATE_PAUSED:
		return "Paused";
	case CHV__V1__VM_STATE__VM_STATE_SHUTDOWN:
		return "Shutdown";
	case CHV__V1__VM_STATE__VM_STATE_FAILED:
		return "Failed";
	default:
		return "Unspecified";
	}
}

void *pb_dup(const void *msg)
{
	const ProtobufCMessage *m = msg;
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf) {
		errno = ENOMEM;
		return NULL;
	}
	protobuf_c_message_pack(m, buf);
	ProtobufCMessage *copy = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
	free(buf);
	/* protobuf-c keeps unknown fields it cannot read back (one numbered
	 * 0, say): a message from a client may not survive the round trip. */
	if (!copy)
		errno = EINVAL;
	return copy;
}

static void vmrec_free(struct vmrec *r)
{
	sublist_destroy(&r->followers);
	byte_ring_free(&r->console);
	if (r->config)
		protobuf_c_message_free_unpacked(&r->config->base, NULL);
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->persist_lock);
	pthread_mutex_destroy(&r->op_lock);
	free(r);
}

void vmrec_put(struct vmrec *r)
{
	if (r && __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) == 0)
		vmrec_free(r);
}

static unsigned find(const char *id, bool *found)
{
	unsigned lo = 0, hi = reg.n;
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		int c = strcmp(reg.v[mid]->id, id);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

struct vmrec *registry_get(const char *id)
{
	struct vmrec *r = NULL;
	bool found;
	pthread_mutex_lock(&reg.lock);
	unsigned i = find(id, &found);
	if (found) {
		r = reg.v[i];
		__atomic_add_fetch(&r->refs, 1, __ATOMIC_ACQ_REL);
	}
	pthread_mutex_unlock(&reg.lock);
	return r;
}

int registry_add(const char *id, Chv__V1__VmConfig *config, unsigned max_vms, struct vmrec **out)
{
	struct vmrec *r = calloc(1, sizeof(*r));
	if (!r || byte_ring_init(&r->console, CONSOLE_HISTORY) < 0) {
		free(r);
		return -ENOMEM;
	}
	snprintf(r->id, sizeof(r->id), "%s", id);
	pthread_mutex_init(&r->op_lock, NULL);
	pthread_mutex_init(&r->persist_lock, NULL);
	pthread_mutex_init(&r->lock, NULL);
	sublist_init(&r->followers);
	r->config = config;
	r->state = CHV__V1__VM_STATE__VM_STATE_CREATED;
	r->refs = 2;
	bool found;
	pthread_mutex_lock(&reg.lock);
	unsigned i = find(id, &found);
	int err = found ? -EEXIST : (reg.n >= max_vms ? -ENOSPC : 0);
	if (!err && reg.n == reg.cap) {
		unsigned cap = reg.cap ? reg.cap * 2 : 64;
		struct vmrec **nv = realloc(reg.v, cap * sizeof(*nv));
		if (nv) {
			reg.v = nv;
			reg.cap = cap;
		} else {
			err = -ENOMEM;
		}
	}
	if (!err) {
		memmove(&reg.v[i + 1], &reg.v[i], (reg.n - i) * sizeof(*reg.v));
		reg.v[i] = r;
		reg.n++;
	}
	pthread_mutex_unlock(&reg.lock);
	if (err) {
		r->config = NULL; /* still the caller's */
		vmrec_free(r);
		return err;
	}
	*out = r;
	return 0;
}

void registry_remove(struct vmrec *r)
{
	bool found;
	pthread_mutex_lock(&reg.lock);
	unsigned i = find(r->id, &found);
	if (found && reg.v[i] == r) {
		memmove(&reg.v[i], &reg.v[i + 1], (reg.n - i - 1) * sizeof(*reg.v));
		reg.n--;
	} else {
		found = false;
	}
	pthread_mutex_unlock(&reg.lock);
	if (found)
		vmrec_put(r);
}

unsigned registry_all(struct vmrec ***out)
{
	pthread_mutex_lock(&reg.lock);
	unsigned n = reg.n;
	*out = calloc(n ? n : 1, sizeof(**out));
	if (!*out)
		n = 0;
	for (unsigned i = 0; i < n; i++) {
		(*out)[i] = reg.v[i];
		__atomic_add_fetch(&reg.v[i]->refs, 1, __ATOMIC_ACQ_REL);
	}
	pthread_mutex_unlock(&reg.lock);
	return n;
}

unsigned registry_count(void)
{
	pthread_mutex_lock(&reg.lock);
	unsigned n = reg.n;
	pthread_mutex_unlock(&reg.lock);
	return n;
}

Chv__V1__VmInfo *vmrec_info_locked(const struct vmrec *r)
{
	Chv__V1__VmInfo *info = calloc(1, sizeof(*info));
	if (!info)
		return NULL;
	chv__v1__vm_info__init(info);
	info->id = strdup(r->id);
	info->state = r->state;
	info->config = r->config ? pb_dup(r->config) : NULL;
	info->failure_reason = strdup(r->reason);
	info->worker_pid = (uint32_t)wconn_pid(r->worker);
	info->memory_actual_size = r->config && r->config->memory ? r->config->memory->size : 0;
	info->created_unix_ms = r->created_ms;
	info->booted_unix_ms = r->booted_ms;
	info->boot_count = r->boot_count;
	if (!info->id || !info->failure_reason || (r->config && !info->config)) {
		vminfo_free(info);
		return NULL;
	}
	return info;
}

void vminfo_free(Chv__V1__VmInfo *info)
{
	if (!info)
		return;
	free(info->id);
	free(info->failure_reason);
	if (info->config)
		protobuf_c_message_free_unpacked(&info->config->base, NULL);
	free(info);
}
