/* The worker control protocol (api/chv/worker/v1/worker.proto; vm/worker.c
 * and daemon/wconn.c): one SOCK_SEQPACKET packet is one protobuf message,
 * so decoding a packet is protobuf-c's unpack of the whole datagram. The
 * first input byte picks the direction, the rest is the packet:
 *   even: a Request as the worker gets it (vm/worker.c on_conn): Create's
 *         VmConfig goes through vm_config_from_proto() and validation (paths
 *         made harmless), console input into a byte ring, every field read;
 *   odd:  a WorkerMessage as chvd gets it (daemon/wconn.c handle_packet,
 *         daemon/vms.c on_notice): reply counters walked, console output
 *         into a byte ring as chvd keeps it, state changes read.
 * Packets over the protocol's 1 MiB limit are refused before decoding, as
 * both ends do. A decoded message is packed again, and that must unpack
 * and pack to the same bytes. */
#include <stdlib.h>
#include <string.h>

#include "chv/worker/v1/worker.pb-c.h"
#include "fz_common.h"
#include "vm/byte_ring.h"
#include "vm/config_proto.h"

#define MAX_PACKET (1024 * 1024)

static struct byte_ring ring;
static volatile uint64_t sink;

static void repack(const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *a = malloc(n ? n : 1), *b = malloc(n ? n : 1);
	if (!a || !b)
		fz_fail("out of memory");
	if (protobuf_c_message_pack(m, a) != n)
		fz_fail("packed size changed");
	ProtobufCMessage *again = protobuf_c_message_unpack(m->descriptor, NULL, n, a);
	if (!again) {
		if (!fz_pb_has_unknown(m))
			fz_fail("a packed %s does not unpack", m->descriptor->name);
		free(a);
		free(b);
		return;
	}
	if (protobuf_c_message_get_packed_size(again) != n ||
	    protobuf_c_message_pack(again, b) != n || memcmp(a, b, n) != 0)
		fz_fail("%s does not pack the same after a round trip", m->descriptor->name);
	protobuf_c_message_free_unpacked(again, NULL);
	free(a);
	free(b);
}

static void create(const Chv__V1__VmConfig *cfg)
{
	struct vm_config c;
	struct chv_err err = {0};
	vm_config_init(&c);
	int rc = cfg ? vm_config_from_proto(&c, cfg, &err) : -1;
	if (rc == 0) {
		fz_config_safe_paths(&c);
		rc = vm_config_validate(&c, &err);
		if (rc < 0 && !err.msg[0])
			fz_fail("vm_config_validate failed with %d and no message", rc);
	}
	vm_config_free(&c);
}

static void request(const uint8_t *data, size_t size)
{
	Chv__Worker__V1__Request *req = chv__worker__v1__request__unpack(NULL, size, data);
	if (!req)
		return;
	sink += req->seq;
	switch (req->op_case) {
	case CHV__WORKER__V1__REQUEST__OP_CREATE:
		create(req->create);
		if (req->control_path)
			sink += strlen(req->control_path);
		break;
	case CHV__WORKER__V1__REQUEST__OP_SHUTDOWN:
		if (req->shutdown)
			sink += req->shutdown->force + req->shutdown->timeout_ms;
		break;
	case CHV__WORKER__V1__REQUEST__OP_CONSOLE_INPUT:
		if (req->console_input.len && !req->console_input.data)
			fz_fail("console input of %zu bytes without data", req->console_input.len);
		sink += byte_ring_put(&ring, req->console_input.data, req->console_input.len);
		break;
	default:
		break;
	}
	repack(&req->base);
	chv__worker__v1__request__free_unpacked(req, NULL);
}

static void reply(const Chv__Worker__V1__Reply *r)
{
	sink += r->seq + (uint64_t)r->status + (uint64_t)r->state;
	if (r->message)
		sink += strlen(r->message);
	for (size_t i = 0; i < r->n_counters; i++) {
		const Chv__Worker__V1__Reply__CountersEntry *e = r->counters[i];
		if (!e)
			fz_fail("counter %zu is NULL", i);
		if (e->key)
			sink += strlen(e->key);
		sink += e->value;
	}
}

static void notice(const Chv__Worker__V1__Notice *n)
{
	if (n->kind_case == CHV__WORKER__V1__NOTICE__KIND_CONSOLE_OUTPUT) {
		if (n->console_output.len && !n->console_output.data)
			fz_fail("console output of %zu bytes without data", n->console_output.len);
		sink += byte_ring_put(&ring, n->console_output.data, n->console_output.len);
	} else if (n->kind_case == CHV__WORKER__V1__NOTICE__KIND_STATE && n->state) {
		sink += (uint64_t)n->state->state + (uint64_t)n->state->event;
		if (n->state->reason)
			sink += strlen(n->state->reason);
	}
}

static void worker_message(const uint8_t *data, size_t size)
{
	Chv__Worker__V1__WorkerMessage *m =
	    chv__worker__v1__worker_message__unpack(NULL, size, data);
	if (!m)
		return;
	if (m->msg_case == CHV__WORKER__V1__WORKER_MESSAGE__MSG_REPLY && m->reply)
		reply(m->reply);
	else if (m->msg_case == CHV__WORKER__V1__WORKER_MESSAGE__MSG_NOTICE && m->notice)
		notice(m->notice);
	repack(&m->base);
	chv__worker__v1__worker_message__free_unpacked(m, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet_log();
	if (byte_ring_init(&ring, 4096))
		fz_fail("byte ring");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size - 1 > MAX_PACKET)
		return 0;
	if (data[0] & 1)
		worker_message(data + 1, size - 1);
	else
		request(data + 1, size - 1);
	return 0;
}
