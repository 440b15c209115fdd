/* Any protobuf-c message as JSON, following the proto3 JSON mapping: field
 * names in lowerCamelCase, enums by name, 64-bit integers as strings, bytes
 * as base64, maps as objects. One printer, driven only by the message
 * descriptors, so every reply of the API prints the same way. */
#ifndef CHV_CLIENT_JSON_H
#define CHV_CLIENT_JSON_H

#include <protobuf-c/protobuf-c.h>
#include <stdio.h>

#include "vm/err.h"

enum json_flags {
	JSON_PRETTY = 1u << 0,	    /* two-space indentation, one field per line */
	JSON_PROTO_NAMES = 1u << 1, /* field names as in the .proto file (snake_case) */
};

/* Zero values are printed too (scripts need not guess defaults); a message
 * field that is not set is left out. Returns a heap string (free()) or NULL
 * when memory ran out. */
char *json_from_message(const ProtobufCMessage *msg, unsigned flags);

/* Writes json_from_message() and a newline. 0 or -errno. */
chv_must_check int json_print(FILE *f, const ProtobufCMessage *msg, unsigned flags);

/* The lowerCamelCase JSON name of a proto field name ("vm_id" -> "vmId"),
 * into out (always terminated). */
void json_field_name(const char *proto_name, char *out, size_t len);

#endif
