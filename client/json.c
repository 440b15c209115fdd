/* The descriptor-driven protobuf-c -> JSON printer (proto3 JSON mapping). */
#include "client/json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sb {
	char *buf;
	size_t len;
	size_t cap;
	bool oom; /* sticky: later appends are dropped, the caller sees NULL */
	unsigned flags;
	int depth;
};

static void sb_putn(struct sb *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->buf, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->buf = p;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = '\0';
}

static void sb_puts(struct sb *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sb *b, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	/* Only numbers come through here; they always fit. */
	if (n > 0 && (size_t)n < sizeof(tmp))
		sb_putn(b, tmp, (size_t)n);
}

static void newline(struct sb *b)
{
	if (!(b->flags & JSON_PRETTY))
		return;
	sb_putn(b, "\n", 1);
	for (int i = 0; i < b->depth; i++)
		sb_putn(b, "  ", 2);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. Overlong
 * forms, surrogates and code points past U+10FFFF are invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	uint32_t cp, min;
	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0) {
		len = 2, cp = c & 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3, cp = c & 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		len = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A JSON string. Strings from the wire are not guaranteed UTF-8 (protobuf-c
 * does not check), so a broken byte becomes U+FFFD rather than broken JSON. */
static void put_string(struct sb *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	sb_putn(b, "\"", 1);
	size_t i = 0;
	while (i < n) {
		unsigned c = p[i];
		const char *esc = NULL;
		switch (c) {
		case '"':
			esc = "\\\"";
			break;
		case '\\':
			esc = "\\\\";
			break;
		case '\b':
			esc = "\\b";
			break;
		case '\f':
			esc = "\\f";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		case '\t':
			esc = "\\t";
			break;
		}
		if (esc) {
			sb_puts(b, esc);
			i++;
		} else if (c < 0x20) {
			sb_printf(b, "\\u%04x", c);
			i++;
		} else {
			size_t len = utf8_len(p + i, n - i);
			if (len == 0) {
				sb_puts(b, "\\ufffd");
				i++;
			} else {
				sb_putn(b, s + i, len);
				i += len;
			}
		}
	}
	sb_putn(b, "\"", 1);
}

static void put_base64(struct sb *b, const uint8_t *d, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	sb_putn(b, "\"", 1);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)d[i + 1] << 8;
		if (i + 2 < n)
			v |= d[i + 2];
		char q[4] = {tab[v >> 18 & 63], tab[v >> 12 & 63], tab[v >> 6 & 63], tab[v & 63]};
		if (i + 1 >= n)
			q[2] = '=';
		if (i + 2 >= n)
			q[3] = '=';
		sb_putn(b, q, 4);
	}
	sb_putn(b, "\"", 1);
}

static void put_double(struct sb *b, double v, bool is_float)
{
	if (isnan(v))
		sb_puts(b, "\"NaN\"");
	else if (isinf(v))
		sb_puts(b, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
	else
		/* Enough digits to read the same value back. */
		sb_printf(b, is_float ? "%.9g" : "%.17g", v);
}

static void put_message(struct sb *b, const ProtobufCMessage *m);

/* One value of field f stored at p. */
static void put_value(struct sb *b, const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		sb_printf(b, "%" PRId32, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		sb_printf(b, "%" PRIu32, *(const uint32_t *)p);
		break;
	/* 64-bit integers are strings: JavaScript numbers lose precision past 2^53. */
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		sb_printf(b, "\"%" PRId64 "\"", *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		sb_printf(b, "\"%" PRIu64 "\"", *(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		put_double(b, *(const float *)p, true);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		put_double(b, *(const double *)p, false);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		sb_puts(b, *(const protobuf_c_boolean *)p ? "true" : "false");
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		int v = *(const int *)p;
		const ProtobufCEnumValue *ev =
		    protobuf_c_enum_descriptor_get_value(f->descriptor, v);
		/* A value newer than our descriptors: the mapping allows the number. */
		if (ev)
			put_string(b, ev->name, strlen(ev->name));
		else
			sb_printf(b, "%d", v);
		break;
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		if (!s)
			s = "";
		put_string(b, s, strlen(s));
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *d = p;
		put_base64(b, d->data, d->len);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
		if (m)
			put_message(b, m);
		else
			sb_puts(b, "{}");
		break;
	}
	}
}

static size_t value_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return 4;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	}
	return 0;
}

/* protobuf-c 1.4 keeps no "map" flag: protoc turns `map<K, V> foo_bar` into
 * a repeated nested message FooBarEntry {key = 1; value = 2}, so that shape
 * (nested in the parent, named after the field) is how a map is recognised. */
static bool is_map(const ProtobufCMessageDescriptor *parent, const ProtobufCFieldDescriptor *f)
{
	if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
		return false;
	const ProtobufCMessageDescriptor *e = f->descriptor;
	if (e->n_fields != 2 || e->fields[0].id != 1 || strcmp(e->fields[0].name, "key") != 0 ||
	    e->fields[1].id != 2 || strcmp(e->fields[1].name, "value") != 0)
		return false;

	char want[256];
	size_t n = 0;
	bool up = true;
	for (const char *s = f->name; *s && n + 1 < sizeof(want); s++) {
		if (*s == '_') {
			up = true;
			continue;
		}
		want[n++] = up && *s >= 'a' && *s <= 'z' ? (char)(*s - 'a' + 'A') : *s;
		up = false;
	}
	want[n] = '\0';
	if (n + sizeof("Entry") > sizeof(want))
		return false;
	strcat(want, "Entry");
	size_t plen = strlen(parent->name);
	return strcmp(e->short_name, want) == 0 && strncmp(e->name, parent->name, plen) == 0 &&
	       e->name[plen] == '.' && strcmp(e->name + plen + 1, want) == 0;
}

/* Map keys are always JSON strings, whatever their proto type. */
static void put_map_key(struct sb *b, const ProtobufCFieldDescriptor *kf, const void *p)
{
	if (kf->type == PROTOBUF_C_TYPE_STRING) {
		put_value(b, kf, p);
		return;
	}
	struct sb tmp = {.flags = b->flags};
	put_value(&tmp, kf, p);
	if (tmp.oom) {
		b->oom = true;
	} else if (tmp.buf) {
		if (tmp.buf[0] == '"')
			sb_puts(b, tmp.buf);
		else
			put_string(b, tmp.buf, tmp.len);
	}
	free(tmp.buf);
}

static void put_map(struct sb *b, const ProtobufCFieldDescriptor *f, size_t n,
		    ProtobufCMessage *const *entries)
{
	const ProtobufCMessageDescriptor *e = f->descriptor;
	if (n == 0) {
		sb_puts(b, "{}");
		return;
	}
	sb_putn(b, "{", 1);
	b->depth++;
	for (size_t i = 0; i < n; i++) {
		const char *entry = (const char *)entries[i];
		if (i)
			sb_putn(b, ",", 1);
		newline(b);
		put_map_key(b, &e->fields[0], entry + e->fields[0].offset);
		sb_puts(b, b->flags & JSON_PRETTY ? ": " : ":");
		put_value(b, &e->fields[1], entry + e->fields[1].offset);
	}
	b->depth--;
	newline(b);
	sb_putn(b, "}", 1);
}

static void put_repeated(struct sb *b, const ProtobufCFieldDescriptor *f, size_t n, const char *arr)
{
	if (n == 0) {
		sb_puts(b, "[]");
		return;
	}
	size_t sz = value_size(f->type);
	sb_putn(b, "[", 1);
	b->depth++;
	for (size_t i = 0; i < n; i++) {
		if (i)
			sb_putn(b, ",", 1);
		newline(b);
		put_value(b, f, arr + i * sz);
	}
	b->depth--;
	newline(b);
	sb_putn(b, "]", 1);
}

/* Whether a non-repeated field is present. proto3 plain fields always are
 * (zero values are printed); proto2 optional, proto3 `optional` and oneof
 * members have a quantifier; unset messages are NULL. */
static bool field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	const char *base = (const char *)m;
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
	if (f->type == PROTOBUF_C_TYPE_MESSAGE ||
	    (f->type == PROTOBUF_C_TYPE_STRING && f->label == PROTOBUF_C_LABEL_OPTIONAL))
		return *(void *const *)(base + f->offset) != NULL;
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL)
		return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
	return true;
}

static void put_message(struct sb *b, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	bool first = true;

	sb_putn(b, "{", 1);
	b->depth++;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->label != PROTOBUF_C_LABEL_REPEATED && !field_present(m, f))
			continue;
		if (!first)
			sb_putn(b, ",", 1);
		first = false;
		newline(b);

		char name[256];
		if (b->flags & JSON_PROTO_NAMES)
			snprintf(name, sizeof(name), "%s", f->name);
		else
			json_field_name(f->name, name, sizeof(name));
		put_string(b, name, strlen(name));
		sb_puts(b, b->flags & JSON_PRETTY ? ": " : ":");

		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			const char *arr = *(char *const *)(base + f->offset);
			if (!arr)
				n = 0;
			if (is_map(d, f))
				put_map(b, f, n, (ProtobufCMessage *const *)arr);
			else
				put_repeated(b, f, n, arr);
		} else {
			put_value(b, f, base + f->offset);
		}
	}
	b->depth--;
	if (!first)
		newline(b);
	sb_putn(b, "}", 1);
}

void json_field_name(const char *proto_name, char *out, size_t len)
{
	size_t n = 0;
	bool up = false;
	if (len == 0)
		return;
	for (const char *s = proto_name; *s && n + 1 < len; s++) {
		if (*s == '_') {
			up = true;
			continue;
		}
		out[n++] = up && *s >= 'a' && *s <= 'z' ? (char)(*s - 'a' + 'A') : *s;
		up = false;
	}
	out[n] = '\0';
}

char *json_from_message(const ProtobufCMessage *msg, unsigned flags)
{
	struct sb b = {.flags = flags};
	put_message(&b, msg);
	if (b.oom) {
		free(b.buf);
		return NULL;
	}
	return b.buf;
}

int json_print(FILE *f, const ProtobufCMessage *msg, unsigned flags)
{
	char *s = json_from_message(msg, flags);
	if (!s)
		return -ENOMEM;
	int rc = fputs(s, f) < 0 || fputc('\n', f) == EOF ? -EIO : 0;
	free(s);
	return rc;
}
