/* The API on the wire, shared by chvd and its clients: protobuf-c messages in
 * gRPC byte buffers, and the names of gRPC status codes. */
#ifndef CHV_API_WIRE_H
#define CHV_API_WIRE_H

#include <grpc/byte_buffer.h>
#include <protobuf-c/protobuf-c.h>

/* "NOT_FOUND" for 5; "UNKNOWN" for a number outside 0..16. */
const char *api_status_name(int status);

/* A new byte buffer holding msg (destroy with grpc_byte_buffer_destroy). */
grpc_byte_buffer *api_encode(const ProtobufCMessage *msg);

/* The message in bb, or NULL when it does not decode (free with
 * protobuf_c_message_free_unpacked). */
ProtobufCMessage *api_decode(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc);

#endif
