/* The API's wire decoding (api/wire.c) and chvctl's JSON printer
 * (client/json.c). chvd decodes requests from any client and chvctl decodes
 * replies and events from the daemon, both with api_decode() over a gRPC
 * byte buffer; chvctl prints what it got with json_from_message(). The first
 * input byte picks the message type and the printer's flags, the rest is the
 * message. A decoded message is printed (the output must be well-formed
 * JSON: checked by a strict parser below), encoded again with api_encode(),
 * and that must decode. */
#include <grpc/byte_buffer.h>
#include <grpc/slice.h>
#include <stdlib.h>
#include <string.h>

#include "api/wire.h"
#include "chv/v1/vm.pb-c.h"
#include "client/json.h"
#include "fz_common.h"

static const ProtobufCMessageDescriptor *const types[] = {
    /* Replies and events, as chvctl gets them. */
    &chv__v1__vm_info__descriptor,
    &chv__v1__list_response__descriptor,
    &chv__v1__counters_response__descriptor,
    &chv__v1__event__descriptor,
    &chv__v1__console_output__descriptor,
    &chv__v1__ping_response__descriptor,
    &chv__v1__device_response__descriptor,
    &chv__v1__delete_response__descriptor,
    /* Requests, as chvd gets them. */
    &chv__v1__create_request__descriptor,
    &chv__v1__vm_request__descriptor,
    &chv__v1__shutdown_request__descriptor,
    &chv__v1__resize_request__descriptor,
    &chv__v1__add_disk_request__descriptor,
    &chv__v1__add_net_request__descriptor,
    &chv__v1__remove_device_request__descriptor,
    &chv__v1__snapshot_request__descriptor,
    &chv__v1__restore_request__descriptor,
    &chv__v1__watch_events_request__descriptor,
    &chv__v1__console_input__descriptor,
    &chv__v1__vm_config__descriptor,
};
#define NTYPES (sizeof(types) / sizeof(types[0]))

/* ---- a strict JSON checker (RFC 8259 grammar) ---- */

struct js {
	const char *p;
	int depth;
};

static bool value(struct js *j);

static void ws(struct js *j)
{
	while (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r')
		j->p++;
}

static bool hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool string(struct js *j)
{
	if (*j->p++ != '"')
		return false;
	for (;;) {
		unsigned char c = (unsigned char)*j->p++;
		if (c == '"')
			return true;
		if (c < 0x20)
			return false; /* the end of the text, or an unescaped control */
		if (c != '\\')
			continue;
		c = (unsigned char)*j->p++;
		if (c == 'u') {
			for (int i = 0; i < 4; i++)
				if (!hex(*j->p++))
					return false;
		} else if (!strchr("\"\\/bfnrt", c) || !c) {
			return false;
		}
	}
}

static bool digits(struct js *j)
{
	if (*j->p < '0' || *j->p > '9')
		return false;
	while (*j->p >= '0' && *j->p <= '9')
		j->p++;
	return true;
}

static bool number(struct js *j)
{
	if (*j->p == '-')
		j->p++;
	if (*j->p == '0')
		j->p++;
	else if (!digits(j))
		return false;
	if (*j->p == '.') {
		j->p++;
		if (!digits(j))
			return false;
	}
	if (*j->p == 'e' || *j->p == 'E') {
		j->p++;
		if (*j->p == '+' || *j->p == '-')
			j->p++;
		if (!digits(j))
			return false;
	}
	return true;
}

static bool word(struct js *j, const char *w)
{
	size_t n = strlen(w);
	if (strncmp(j->p, w, n) != 0)
		return false;
	j->p += n;
	return true;
}

static bool members(struct js *j, char close, bool object)
{
	j->p++;
	if (++j->depth > 64)
		return false;
	ws(j);
	if (*j->p == close) {
		j->p++;
		j->depth--;
		return true;
	}
	for (;;) {
		ws(j);
		if (object) {
			if (!string(j))
				return false;
			ws(j);
			if (*j->p++ != ':')
				return false;
		}
		if (!value(j))
			return false;
		ws(j);
		if (*j->p == ',') {
			j->p++;
			continue;
		}
		if (*j->p++ != close)
			return false;
		j->depth--;
		return true;
	}
}

static bool value(struct js *j)
{
	ws(j);
	switch (*j->p) {
	case '{':
		return members(j, '}', true);
	case '[':
		return members(j, ']', false);
	case '"':
		return string(j);
	case 't':
		return word(j, "true");
	case 'f':
		return word(j, "false");
	case 'n':
		return word(j, "null");
	default:
		return number(j);
	}
}

static void check_json(const char *s, const char *type)
{
	struct js j = {.p = s};
	if (!value(&j))
		fz_fail("%s printed as malformed JSON near offset %td: %s", type, j.p - s, s);
	ws(&j);
	if (*j.p)
		fz_fail("%s printed with trailing text at offset %td: %s", type, j.p - s, s);
}

/* ---- the target ---- */

static ProtobufCMessage *decode(const uint8_t *data, size_t size,
				const ProtobufCMessageDescriptor *desc)
{
	grpc_slice s = grpc_slice_from_copied_buffer((const char *)data, size);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	ProtobufCMessage *m = api_decode(bb, desc);
	grpc_byte_buffer_destroy(bb);
	return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const ProtobufCMessageDescriptor *desc = types[(data[0] & 0x3f) % NTYPES];
	unsigned flags = data[0] >> 6; /* JSON_PRETTY, JSON_PROTO_NAMES */
	ProtobufCMessage *m = decode(data + 1, size - 1, desc);
	if (!m)
		return 0;
	char *json = json_from_message(m, flags);
	if (!json)
		fz_fail("json_from_message returned NULL");
	check_json(json, desc->name);
	free(json);

	grpc_byte_buffer *bb = api_encode(m);
	ProtobufCMessage *again = api_decode(bb, desc);
	if (!again && !fz_pb_has_unknown(m))
		fz_fail("an encoded %s does not decode", desc->name);
	if (again)
		protobuf_c_message_free_unpacked(again, NULL);
	grpc_byte_buffer_destroy(bb);
	protobuf_c_message_free_unpacked(m, NULL);
	(void)api_status_name((int)(int8_t)data[0]);
	return 0;
}
