/* chvctl's output for people: aligned tables and "key: value" lines. Scripts
 * use --json (client/json.c) instead, so this form may change. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/chvctl.h"

const char *chvctl_enum_short(const ProtobufCEnumDescriptor *d, int value, char *buf, size_t len)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
	if (!v) {
		snprintf(buf, len, "%d", value);
		return buf;
	}
	/* The prefix every value shares is what "X_UNSPECIFIED" has before it. */
	size_t plen = 0;
	const ProtobufCEnumValue *zero = protobuf_c_enum_descriptor_get_value(d, 0);
	if (zero) {
		const char *u = strstr(zero->name, "UNSPECIFIED");
		if (u && strcmp(u, "UNSPECIFIED") == 0 &&
		    strncmp(v->name, zero->name, (size_t)(u - zero->name)) == 0)
			plen = (size_t)(u - zero->name);
	}
	size_t n = 0;
	for (const char *s = v->name + plen; *s && n + 1 < len; s++)
		buf[n++] = *s >= 'A' && *s <= 'Z' ? (char)(*s - 'A' + 'a') : *s;
	if (len)
		buf[n] = '\0';
	return buf;
}

void chvctl_size_str(uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "KMGTPE";
	int u = -1;
	uint64_t v = bytes;
	/* The largest unit that divides exactly: sizes stay exact. */
	while (v && v % 1024 == 0 && u + 1 < (int)(sizeof(units) - 1)) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%" PRIu64, bytes);
	else
		snprintf(buf, len, "%" PRIu64 "%c", v, units[u]);
}

void chvctl_time_str(int64_t unix_ms, char *buf, size_t len)
{
	int64_t ms = unix_ms % 1000;
	int64_t secs = unix_ms / 1000;
	if (ms < 0) {
		ms += 1000;
		secs--;
	}
	time_t t = (time_t)secs;
	struct tm tm;
	char day[40];
	if (!gmtime_r(&t, &tm) || strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		snprintf(buf, len, "%" PRId64, unix_ms);
		return;
	}
	snprintf(buf, len, "%s.%03dZ", day, (int)ms);
}

/* ---- "key: value" lines, aligned ---- */

struct lines {
	char **key;
	char **val;
	size_t n;
	size_t cap;
};

__attribute__((format(printf, 3, 4))) static void line_add(struct lines *l, const char *key,
							   const char *fmt, ...)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **k = realloc(l->key, cap * sizeof(char *));
		if (!k)
			return;
		l->key = k;
		char **v = realloc(l->val, cap * sizeof(char *));
		if (!v)
			return;
		l->val = v;
		l->cap = cap;
	}
	char *val = NULL;
	va_list ap;
	va_start(ap, fmt);
	int rc = vasprintf(&val, fmt, ap);
	va_end(ap);
	char *k = strdup(key);
	if (rc < 0 || !k) {
		free(k);
		if (rc >= 0)
			free(val);
		return;
	}
	l->key[l->n] = k;
	l->val[l->n] = val;
	l->n++;
}

static void lines_print(FILE *out, struct lines *l)
{
	size_t w = 0;
	for (size_t i = 0; i < l->n; i++)
		if (strlen(l->key[i]) > w)
			w = strlen(l->key[i]);
	for (size_t i = 0; i < l->n; i++) {
		fprintf(out, "%s:%*s %s\n", l->key[i], (int)(w - strlen(l->key[i])), "", l->val[i]);
		free(l->key[i]);
		free(l->val[i]);
	}
	free(l->key);
	free(l->val);
	*l = (struct lines){0};
}

static bool is_size_field(const ProtobufCFieldDescriptor *f)
{
	size_t n = strlen(f->name);
	return f->type == PROTOBUF_C_TYPE_UINT64 &&
	       (strcmp(f->name, "size") == 0 || (n > 5 && strcmp(f->name + n - 5, "_size") == 0));
}

static void flatten(struct lines *l, const char *prefix, const ProtobufCMessage *m);

/* One value; zero values are the API's defaults and are left out. */
static void flatten_value(struct lines *l, const char *key, const ProtobufCFieldDescriptor *f,
			  const void *p)
{
	char buf[64];
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		if (*(const int32_t *)p)
			line_add(l, key, "%" PRId32, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		if (*(const uint32_t *)p)
			line_add(l, key, "%" PRIu32, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		if (*(const int64_t *)p)
			line_add(l, key, "%" PRId64, *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		if (!*(const uint64_t *)p)
			break;
		if (is_size_field(f)) {
			chvctl_size_str(*(const uint64_t *)p, buf, sizeof(buf));
			line_add(l, key, "%s", buf);
		} else {
			line_add(l, key, "%" PRIu64, *(const uint64_t *)p);
		}
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		if (*(const float *)p != 0)
			line_add(l, key, "%g", (double)*(const float *)p);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		if (*(const double *)p != 0)
			line_add(l, key, "%g", *(const double *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		if (*(const protobuf_c_boolean *)p)
			line_add(l, key, "on");
		break;
	case PROTOBUF_C_TYPE_ENUM:
		if (*(const int *)p)
			line_add(
			    l, key, "%s",
			    chvctl_enum_short(f->descriptor, *(const int *)p, buf, sizeof(buf)));
		break;
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		if (s && *s)
			line_add(l, key, "%s", s);
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *d = p;
		if (d->len)
			line_add(l, key, "%zu bytes", d->len);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		if (*(ProtobufCMessage *const *)p)
			flatten(l, key, *(ProtobufCMessage *const *)p);
		break;
	}
}

static size_t elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	default:
		return 4;
	}
}

/* Every set field of m as "prefix.field: value", lists as "field[i]". */
static void flatten(struct lines *l, const char *prefix, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		char key[256];
		snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "", f->name);
		if (f->label != PROTOBUF_C_LABEL_REPEATED) {
			flatten_value(l, key, f, base + f->offset);
			continue;
		}
		size_t n = *(const size_t *)(base + f->quantifier_offset);
		const char *arr = *(char *const *)(base + f->offset);
		for (size_t j = 0; arr && j < n; j++) {
			char ikey[300];
			snprintf(ikey, sizeof(ikey), "%s[%zu]", key, j);
			flatten_value(l, ikey, f, arr + j * elem_size(f->type));
		}
	}
}

void chvctl_print_info(FILE *out, const ProtobufCMessage *reply)
{
	const Chv__V1__VmInfo *vi = (const Chv__V1__VmInfo *)reply;
	struct lines l = {0};
	char buf[64];

	line_add(&l, "id", "%s", vi->id);
	line_add(
	    &l, "state", "%s",
	    chvctl_enum_short(&chv__v1__vm_state__descriptor, (int)vi->state, buf, sizeof(buf)));
	if (vi->failure_reason && *vi->failure_reason)
		line_add(&l, "failure reason", "%s", vi->failure_reason);
	if (vi->worker_pid)
		line_add(&l, "worker pid", "%" PRIu32, vi->worker_pid);
	else
		line_add(&l, "worker pid", "-");
	if (vi->created_unix_ms) {
		chvctl_time_str(vi->created_unix_ms, buf, sizeof(buf));
		line_add(&l, "created", "%s", buf);
	}
	if (vi->booted_unix_ms) {
		chvctl_time_str(vi->booted_unix_ms, buf, sizeof(buf));
		line_add(&l, "booted", "%s", buf);
	} else {
		line_add(&l, "booted", "never");
	}
	line_add(&l, "boot count", "%" PRIu32, vi->boot_count);
	if (vi->memory_actual_size) {
		chvctl_size_str(vi->memory_actual_size, buf, sizeof(buf));
		line_add(&l, "memory actual", "%s", buf);
	}
	if (vi->config)
		flatten(&l, "config", &vi->config->base);
	lines_print(out, &l);
}

/* ---- tables ---- */

static int cmp_vm(const void *a, const void *b)
{
	const Chv__V1__VmInfo *x = *(Chv__V1__VmInfo *const *)a, *y = *(Chv__V1__VmInfo *const *)b;
	return strcmp(x->id ? x->id : "", y->id ? y->id : "");
}

#define LIST_COLS 6
#define CELL	  80 /* an id is at most 64 characters */

void chvctl_print_list(FILE *out, const ProtobufCMessage *reply)
{
	const Chv__V1__ListResponse *r = (const Chv__V1__ListResponse *)reply;
	static const char *const head[LIST_COLS] = {"ID",     "STATE", "VCPUS",
						    "MEMORY", "PID",   "KERNEL"};
	size_t n = r->n_vms;
	Chv__V1__VmInfo **vms = calloc(n ? n : 1, sizeof(*vms));
	char(*cells)[LIST_COLS][CELL] = calloc(n ? n : 1, sizeof(*cells));
	int w[LIST_COLS];

	if (!vms || !cells) {
		free(vms);
		free(cells);
		return;
	}
	if (n)
		memcpy(vms, r->vms, n * sizeof(*vms));
	qsort(vms, n, sizeof(*vms), cmp_vm);
	for (int c = 0; c < LIST_COLS; c++)
		w[c] = (int)strlen(head[c]);
	for (size_t i = 0; i < n; i++) {
		const Chv__V1__VmInfo *vi = vms[i];
		const Chv__V1__VmConfig *cfg = vi->config;
		uint32_t vcpus =
		    cfg && cfg->cpus && cfg->cpus->boot_vcpus ? cfg->cpus->boot_vcpus : 1;
		/* What the guest has now, else what it was given, else the default. */
		uint64_t mem = vi->memory_actual_size;
		if (!mem && cfg && cfg->memory)
			mem = cfg->memory->size;
		if (!mem)
			mem = 512ULL << 20;
		char *row[LIST_COLS];
		for (int c = 0; c < LIST_COLS; c++)
			row[c] = cells[i][c];
		snprintf(row[0], CELL, "%s", vi->id ? vi->id : "");
		chvctl_enum_short(&chv__v1__vm_state__descriptor, (int)vi->state, row[1], CELL);
		snprintf(row[2], CELL, "%" PRIu32, vcpus);
		chvctl_size_str(mem, row[3], CELL);
		if (vi->worker_pid)
			snprintf(row[4], CELL, "%" PRIu32, vi->worker_pid);
		else
			snprintf(row[4], CELL, "-");
		for (int c = 0; c < LIST_COLS - 1; c++)
			if ((int)strlen(row[c]) > w[c])
				w[c] = (int)strlen(row[c]);
	}
	for (int c = 0; c < LIST_COLS - 1; c++)
		fprintf(out, "%-*s  ", w[c], head[c]);
	fprintf(out, "%s\n", head[LIST_COLS - 1]);
	for (size_t i = 0; i < n; i++) {
		const Chv__V1__VmConfig *cfg = vms[i]->config;
		const char *kernel =
		    cfg && cfg->payload && cfg->payload->kernel && *cfg->payload->kernel
			? cfg->payload->kernel
			: "-";
		for (int c = 0; c < LIST_COLS - 1; c++)
			fprintf(out, "%-*s  ", w[c], cells[i][c]);
		fprintf(out, "%s\n", kernel);
	}
	free(vms);
	free(cells);
}

static int cmp_counter(const void *a, const void *b)
{
	const Chv__V1__CountersResponse__CountersEntry *x = *(void *const *)a,
						       *y = *(void *const *)b;
	return strcmp(x->key ? x->key : "", y->key ? y->key : "");
}

void chvctl_print_counters(FILE *out, const ProtobufCMessage *reply)
{
	const Chv__V1__CountersResponse *r = (const Chv__V1__CountersResponse *)reply;
	size_t n = r->n_counters;
	Chv__V1__CountersResponse__CountersEntry **e = calloc(n ? n : 1, sizeof(*e));
	if (!e)
		return;
	if (n)
		memcpy(e, r->counters, n * sizeof(*e));
	qsort(e, n, sizeof(*e), cmp_counter);
	int wk = (int)strlen("COUNTER"), wv = (int)strlen("VALUE");
	for (size_t i = 0; i < n; i++) {
		char num[24];
		int k = (int)strlen(e[i]->key ? e[i]->key : "");
		int v = snprintf(num, sizeof(num), "%" PRIu64, e[i]->value);
		wk = k > wk ? k : wk;
		wv = v > wv ? v : wv;
	}
	fprintf(out, "%-*s  %*s\n", wk, "COUNTER", wv, "VALUE");
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%-*s  %*" PRIu64 "\n", wk, e[i]->key ? e[i]->key : "", wv,
			e[i]->value);
	free(e);
}

void chvctl_print_ping(FILE *out, const ProtobufCMessage *reply)
{
	const Chv__V1__PingResponse *r = (const Chv__V1__PingResponse *)reply;
	fprintf(out, "chvd %s, pid %" PRIu32 ", %" PRIu32 " VM%s, features:", r->version, r->pid,
		r->vms, r->vms == 1 ? "" : "s");
	for (size_t i = 0; i < r->n_features; i++)
		fprintf(out, "%s%s", i ? "," : " ", r->features[i]);
	if (!r->n_features)
		fputs(" none", out);
	fputc('\n', out);
}

void chvctl_print_vm_state(FILE *out, const ProtobufCMessage *reply)
{
	const Chv__V1__VmInfo *vi = (const Chv__V1__VmInfo *)reply;
	char buf[32];
	fprintf(
	    out, "%s: %s", vi->id,
	    chvctl_enum_short(&chv__v1__vm_state__descriptor, (int)vi->state, buf, sizeof(buf)));
	if (vi->failure_reason && *vi->failure_reason)
		fprintf(out, " (%s)", vi->failure_reason);
	fputc('\n', out);
}

void chvctl_print_vm_id(FILE *out, const ProtobufCMessage *reply)
{
	fprintf(out, "%s\n", ((const Chv__V1__VmInfo *)reply)->id);
}

void chvctl_print_device(FILE *out, const ProtobufCMessage *reply)
{
	const Chv__V1__DeviceResponse *r = (const Chv__V1__DeviceResponse *)reply;
	fprintf(out, "%s%s%s\n", r->id, r->bdf && *r->bdf ? " " : "", r->bdf ? r->bdf : "");
}

void chvctl_print_nothing(FILE *out, const ProtobufCMessage *reply)
{
	(void)out;
	(void)reply;
}

void chvctl_print_event(FILE *out, const Chv__V1__Event *ev)
{
	char t[48], kind[32], state[32];
	chvctl_time_str(ev->unix_ms, t, sizeof(t));
	fprintf(
	    out, "%s %s %s %s", t, ev->vm_id && *ev->vm_id ? ev->vm_id : "-",
	    chvctl_enum_short(&chv__v1__event_kind__descriptor, (int)ev->kind, kind, sizeof(kind)),
	    chvctl_enum_short(&chv__v1__vm_state__descriptor, (int)ev->state, state,
			      sizeof(state)));
	if (ev->message && *ev->message)
		fprintf(out, " %s", ev->message);
	fputc('\n', out);
}
