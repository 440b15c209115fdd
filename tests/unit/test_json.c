#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chv/v1/vm.pb-c.h"
#include "client/json.h"

static void expect_json(const ProtobufCMessage *m, unsigned flags, const char *want)
{
	char *got = json_from_message(m, flags);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_field_names(void **state)
{
	(void)state;
	char out[64];
	json_field_name("vm_id", out, sizeof(out));
	assert_string_equal(out, "vmId");
	json_field_name("created_unix_ms", out, sizeof(out));
	assert_string_equal(out, "createdUnixMs");
	json_field_name("id", out, sizeof(out));
	assert_string_equal(out, "id");
	json_field_name("a__b", out, sizeof(out));
	assert_string_equal(out, "aB");
	json_field_name("x_1y", out, sizeof(out));
	assert_string_equal(out, "x1y");
	json_field_name("trailing_", out, sizeof(out));
	assert_string_equal(out, "trailing");
	/* Truncated, still terminated. */
	json_field_name("boot_vcpus", out, 5);
	assert_string_equal(out, "boot");
}

static void test_empty_message(void **state)
{
	(void)state;
	Chv__V1__DeleteResponse m = CHV__V1__DELETE_RESPONSE__INIT;
	expect_json(&m.base, 0, "{}");
	expect_json(&m.base, JSON_PRETTY, "{}");
}

static void test_scalars_and_defaults(void **state)
{
	(void)state;
	Chv__V1__VmInfo vi = CHV__V1__VM_INFO__INIT;
	vi.id = (char *)"vm1";
	vi.state = CHV__V1__VM_STATE__VM_STATE_RUNNING;
	vi.worker_pid = 4294967295u;
	vi.memory_actual_size = UINT64_MAX;
	vi.created_unix_ms = INT64_MIN;
	vi.booted_unix_ms = -1;
	/* Zero values are printed; the unset config is left out. */
	expect_json(&vi.base, 0,
		    "{\"id\":\"vm1\",\"state\":\"VM_STATE_RUNNING\",\"failureReason\":\"\","
		    "\"workerPid\":4294967295,\"memoryActualSize\":\"18446744073709551615\","
		    "\"createdUnixMs\":\"-9223372036854775808\",\"bootedUnixMs\":\"-1\","
		    "\"bootCount\":0}");
	expect_json(&vi.base, JSON_PROTO_NAMES,
		    "{\"id\":\"vm1\",\"state\":\"VM_STATE_RUNNING\",\"failure_reason\":\"\","
		    "\"worker_pid\":4294967295,\"memory_actual_size\":\"18446744073709551615\","
		    "\"created_unix_ms\":\"-9223372036854775808\",\"booted_unix_ms\":\"-1\","
		    "\"boot_count\":0}");
}

static void test_enum_unknown_value(void **state)
{
	(void)state;
	Chv__V1__Event ev = CHV__V1__EVENT__INIT;
	ev.kind = (Chv__V1__EventKind)42;
	ev.state = (Chv__V1__VmState)-3;
	expect_json(&ev.base, 0,
		    "{\"vmId\":\"\",\"kind\":42,\"state\":-3,\"message\":\"\",\"unixMs\":\"0\"}");
}

static void test_nested_pretty(void **state)
{
	(void)state;
	Chv__V1__CpusConfig cpus = CHV__V1__CPUS_CONFIG__INIT;
	Chv__V1__VmConfig cfg = CHV__V1__VM_CONFIG__INIT;
	Chv__V1__CreateRequest req = CHV__V1__CREATE_REQUEST__INIT;
	cpus.boot_vcpus = 2;
	cpus.max_vcpus = 4;
	cfg.cpus = &cpus;
	req.vm_id = (char *)"a";
	req.config = &cfg;
	expect_json(&req.base, JSON_PRETTY,
		    "{\n"
		    "  \"vmId\": \"a\",\n"
		    "  \"config\": {\n"
		    "    \"cpus\": {\n"
		    "      \"bootVcpus\": 2,\n"
		    "      \"maxVcpus\": 4,\n"
		    "      \"maxPhysBits\": 0\n"
		    "    },\n"
		    "    \"disks\": [],\n"
		    "    \"nets\": [],\n"
		    "    \"fs\": [],\n"
		    "    \"pmem\": [],\n"
		    "    \"devices\": [],\n"
		    "    \"rateLimitGroups\": []\n"
		    "  }\n"
		    "}");
}

static void test_repeated(void **state)
{
	(void)state;
	Chv__V1__PingResponse p = CHV__V1__PING_RESPONSE__INIT;
	char *features[] = {(char *)"kvm", (char *)"mshv"};
	p.version = (char *)"0.1.0";
	p.n_features = 2;
	p.features = features;
	p.vms = 3;
	p.pid = 77;
	expect_json(&p.base, 0,
		    "{\"version\":\"0.1.0\",\"features\":[\"kvm\",\"mshv\"],\"vms\":3,\"pid\":77}");
	expect_json(&p.base, JSON_PRETTY,
		    "{\n  \"version\": \"0.1.0\",\n  \"features\": [\n    \"kvm\",\n    \"mshv\"\n"
		    "  ],\n  \"vms\": 3,\n  \"pid\": 77\n}");

	/* Repeated int32, negative values included. */
	Chv__V1__NetConfig n = CHV__V1__NET_CONFIG__INIT;
	int32_t fds[] = {3, -1, 2147483647};
	n.n_fds = 3;
	n.fds = fds;
	char *s = json_from_message(&n.base, 0);
	assert_non_null(s);
	assert_non_null(strstr(s, "\"fds\":[3,-1,2147483647]"));
	assert_non_null(strstr(s, "\"offloadTso\":false"));
	free(s);
}

static void test_repeated_messages(void **state)
{
	(void)state;
	Chv__V1__VmInfo a = CHV__V1__VM_INFO__INIT, b = CHV__V1__VM_INFO__INIT;
	Chv__V1__VmInfo *vms[] = {&a, &b};
	Chv__V1__ListResponse l = CHV__V1__LIST_RESPONSE__INIT;
	a.id = (char *)"a";
	b.id = (char *)"b";
	b.state = CHV__V1__VM_STATE__VM_STATE_FAILED;
	expect_json(&l.base, 0, "{\"vms\":[]}");
	expect_json(&l.base, JSON_PRETTY, "{\n  \"vms\": []\n}");
	l.n_vms = 2;
	l.vms = vms;
	char *s = json_from_message(&l.base, 0);
	assert_non_null(s);
	assert_true(strncmp(s, "{\"vms\":[{\"id\":\"a\",\"state\":\"VM_STATE_UNSPECIFIED\"", 47) ==
		    0);
	assert_non_null(strstr(s, "},{\"id\":\"b\",\"state\":\"VM_STATE_FAILED\""));
	assert_string_equal(s + strlen(s) - 4, "0}]}");
	free(s);
}

static void test_map(void **state)
{
	(void)state;
	Chv__V1__CountersResponse r = CHV__V1__COUNTERS_RESPONSE__INIT;
	Chv__V1__CountersResponse__CountersEntry e1 =
	    CHV__V1__COUNTERS_RESPONSE__COUNTERS_ENTRY__INIT;
	Chv__V1__CountersResponse__CountersEntry e2 =
	    CHV__V1__COUNTERS_RESPONSE__COUNTERS_ENTRY__INIT;
	Chv__V1__CountersResponse__CountersEntry *es[] = {&e1, &e2};
	expect_json(&r.base, 0, "{\"counters\":{}}");
	e1.key = (char *)"exits.pio";
	e1.value = 12;
	e2.key = (char *)"serial.\"tx\"";
	e2.value = UINT64_MAX;
	r.n_counters = 2;
	r.counters = es;
	expect_json(&r.base, 0,
		    "{\"counters\":{\"exits.pio\":\"12\",\"serial.\\\"tx\\\"\":"
		    "\"18446744073709551615\"}}");
	expect_json(&r.base, JSON_PRETTY,
		    "{\n  \"counters\": {\n    \"exits.pio\": \"12\",\n"
		    "    \"serial.\\\"tx\\\"\": \"18446744073709551615\"\n  }\n}");
}

static void test_bytes_base64(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		size_t len;
		const char *want;
	} cases[] = {
	    {"", 0, "{\"data\":\"\"}"},
	    {"f", 1, "{\"data\":\"Zg==\"}"},
	    {"fo", 2, "{\"data\":\"Zm8=\"}"},
	    {"foo", 3, "{\"data\":\"Zm9v\"}"},
	    {"foob", 4, "{\"data\":\"Zm9vYg==\"}"},
	    {"fooba", 5, "{\"data\":\"Zm9vYmE=\"}"},
	    {"foobar", 6, "{\"data\":\"Zm9vYmFy\"}"},
	    {"\xff\xfe\x00\x3e\x3f", 5, "{\"data\":\"//4APj8=\"}"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		Chv__V1__ConsoleOutput o = CHV__V1__CONSOLE_OUTPUT__INIT;
		o.data.len = cases[i].len;
		o.data.data = (uint8_t *)cases[i].in;
		expect_json(&o.base, 0, cases[i].want);
	}
	/* NULL data with length 0 (what the unpacker leaves) is fine. */
	Chv__V1__ConsoleOutput o = CHV__V1__CONSOLE_OUTPUT__INIT;
	expect_json(&o.base, 0, "{\"data\":\"\"}");
}

static void check_string(const char *in, const char *want_field)
{
	Chv__V1__VmRequest r = CHV__V1__VM_REQUEST__INIT;
	r.vm_id = (char *)in;
	char want[256];
	snprintf(want, sizeof(want), "{\"vmId\":%s}", want_field);
	expect_json(&r.base, 0, want);
}

static void test_string_escaping(void **state)
{
	(void)state;
	check_string("plain", "\"plain\"");
	check_string("a\"b\\c", "\"a\\\"b\\\\c\"");
	check_string("\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"");
	check_string("\x01\x1f\x7f", "\"\\u0001\\u001f\x7f\"");
	check_string("/</script>", "\"/</script>\"");
	/* Valid UTF-8 passes through: 2, 3 and 4 byte forms. */
	check_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
		     "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	/* Broken UTF-8 becomes U+FFFD, one per bad byte. */
	check_string("a\xff"
		     "b",
		     "\"a\\ufffdb\"");
	check_string("\xc3", "\"\\ufffd\"");				      /* truncated */
	check_string("\xc0\xaf", "\"\\ufffd\\ufffd\"");			      /* overlong '/' */
	check_string("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");	      /* surrogate */
	check_string("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
	check_string("\xe2\x82", "\"\\ufffd\\ufffd\"");
	check_string("\x80", "\"\\ufffd\"");
	/* A NULL string (never from the unpacker, but possible when built by
	 * hand) prints as empty. */
	check_string(NULL, "\"\"");
}

/* ---- a hand-made descriptor for what chv.v1 does not use: floating point,
 * sint, proto2 optional, oneof, maps with non-string keys, a look-alike of
 * a map entry that is not one. ---- */

typedef struct {
	ProtobufCMessage base;
	int32_t key;
	char *value;
} TEntry;

typedef struct {
	ProtobufCMessage base;
	double d;
	float f;
	int32_t s;
	protobuf_c_boolean has_opt;
	uint32_t opt;
	uint32_t which;
	int32_t one_a;
	char *one_b;
	size_t n_imap;
	TEntry **imap;
	size_t n_pairs;
	TEntry **pairs;
	size_t n_flags;
	protobuf_c_boolean *flags;
	size_t n_ds;
	double *ds;
} TMsg;

static const ProtobufCFieldDescriptor tentry_fields[] = {
    {"key", 1, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_INT32, 0, offsetof(TEntry, key), NULL, NULL,
     0, 0, NULL, NULL},
    {"value", 2, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_STRING, 0, offsetof(TEntry, value), NULL,
     NULL, 0, 0, NULL, NULL},
};
static const unsigned tentry_by_name[] = {0, 1};
static const ProtobufCIntRange tentry_ranges[] = {{1, 0}, {0, 2}};

static const ProtobufCMessageDescriptor imap_entry_desc = {PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
							   "t.T.ImapEntry",
							   "ImapEntry",
							   "T__ImapEntry",
							   "t",
							   sizeof(TEntry),
							   2,
							   tentry_fields,
							   tentry_by_name,
							   1,
							   tentry_ranges,
							   NULL,
							   NULL,
							   NULL,
							   NULL};
/* Same shape, but "pairs" would need PairsEntry: a plain repeated message. */
static const ProtobufCMessageDescriptor pair_desc = {PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
						     "t.T.Pair",
						     "Pair",
						     "T__Pair",
						     "t",
						     sizeof(TEntry),
						     2,
						     tentry_fields,
						     tentry_by_name,
						     1,
						     tentry_ranges,
						     NULL,
						     NULL,
						     NULL,
						     NULL};

static const ProtobufCFieldDescriptor tmsg_fields[] = {
    {"d", 1, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_DOUBLE, 0, offsetof(TMsg, d), NULL, NULL, 0, 0,
     NULL, NULL},
    {"f", 2, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_FLOAT, 0, offsetof(TMsg, f), NULL, NULL, 0, 0,
     NULL, NULL},
    {"s", 3, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_SINT32, 0, offsetof(TMsg, s), NULL, NULL, 0, 0,
     NULL, NULL},
    {"opt", 4, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_UINT32, offsetof(TMsg, has_opt),
     offsetof(TMsg, opt), NULL, NULL, 0, 0, NULL, NULL},
    {"one_a", 5, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_INT32, offsetof(TMsg, which),
     offsetof(TMsg, one_a), NULL, NULL, PROTOBUF_C_FIELD_FLAG_ONEOF, 0, NULL, NULL},
    {"one_b", 6, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_STRING, offsetof(TMsg, which),
     offsetof(TMsg, one_b), NULL, NULL, PROTOBUF_C_FIELD_FLAG_ONEOF, 0, NULL, NULL},
    {"imap", 7, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_MESSAGE, offsetof(TMsg, n_imap),
     offsetof(TMsg, imap), &imap_entry_desc, NULL, 0, 0, NULL, NULL},
    {"pairs", 8, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_MESSAGE, offsetof(TMsg, n_pairs),
     offsetof(TMsg, pairs), &pair_desc, NULL, 0, 0, NULL, NULL},
    {"flags", 9, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_BOOL, offsetof(TMsg, n_flags),
     offsetof(TMsg, flags), NULL, NULL, 0, 0, NULL, NULL},
    {"ds", 10, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_DOUBLE, offsetof(TMsg, n_ds),
     offsetof(TMsg, ds), NULL, NULL, 0, 0, NULL, NULL},
};
static const unsigned tmsg_by_name[] = {0, 9, 1, 8, 6, 4, 5, 3, 7, 2};
static const ProtobufCIntRange tmsg_ranges[] = {{1, 0}, {0, 10}};

static const ProtobufCMessageDescriptor tmsg_desc = {PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
						     "t.T",
						     "T",
						     "T",
						     "t",
						     sizeof(TMsg),
						     10,
						     tmsg_fields,
						     tmsg_by_name,
						     1,
						     tmsg_ranges,
						     NULL,
						     NULL,
						     NULL,
						     NULL};

static void test_other_types(void **state)
{
	(void)state;
	TMsg m = {.base = {.descriptor = &tmsg_desc}};
	m.d = 0.1;
	m.f = 1.5f;
	m.s = -7;
	expect_json(&m.base, 0,
		    "{\"d\":0.10000000000000001,\"f\":1.5,\"s\":-7,\"imap\":{},\"pairs\":[],"
		    "\"flags\":[],\"ds\":[]}");

	/* proto2 optional: only with has_; oneof: only the chosen member. */
	m.d = NAN;
	m.f = -INFINITY;
	m.has_opt = 1;
	m.opt = 0;
	m.which = 6;
	m.one_b = (char *)"b";
	expect_json(&m.base, 0,
		    "{\"d\":\"NaN\",\"f\":\"-Infinity\",\"s\":-7,\"opt\":0,\"oneB\":\"b\","
		    "\"imap\":{},\"pairs\":[],\"flags\":[],\"ds\":[]}");
	m.which = 5;
	m.one_a = 9;
	m.has_opt = 0;
	m.d = INFINITY;
	m.f = 0;
	char *s = json_from_message(&m.base, 0);
	assert_non_null(s);
	assert_non_null(strstr(s, "{\"d\":\"Infinity\",\"f\":0,\"s\":-7,\"oneA\":9,\"imap\""));
	free(s);
	m.which = 0;

	/* An int32-keyed map: the keys become strings. A repeated message of
	 * the same shape under another name stays a list. */
	TEntry e1 = {.base = {.descriptor = &imap_entry_desc}, .key = -5, .value = (char *)"x"};
	TEntry e2 = {.base = {.descriptor = &imap_entry_desc}, .key = 8, .value = (char *)"y"};
	TEntry *es[] = {&e1, &e2};
	TEntry p1 = {.base = {.descriptor = &pair_desc}, .key = 1, .value = (char *)"p"};
	TEntry *ps[] = {&p1};
	protobuf_c_boolean flags[] = {1, 0};
	double ds[] = {2, -0.5};
	m.n_imap = 2;
	m.imap = es;
	m.n_pairs = 1;
	m.pairs = ps;
	m.n_flags = 2;
	m.flags = flags;
	m.n_ds = 2;
	m.ds = ds;
	expect_json(&m.base, 0,
		    "{\"d\":\"Infinity\",\"f\":0,\"s\":-7,\"imap\":{\"-5\":\"x\",\"8\":\"y\"},"
		    "\"pairs\":[{\"key\":1,\"value\":\"p\"}],\"flags\":[true,false],"
		    "\"ds\":[2,-0.5]}");
}

static void test_print_to_file(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	Chv__V1__VmmShutdownRequest r = CHV__V1__VMM_SHUTDOWN_REQUEST__INIT;
	r.shutdown_vms = 1;
	assert_int_equal(json_print(f, &r.base, 0), 0);
	assert_int_equal(json_print(f, &r.base, JSON_PRETTY | JSON_PROTO_NAMES), 0);
	fclose(f);
	assert_string_equal(buf, "{\"shutdownVms\":true}\n{\n  \"shutdown_vms\": true\n}\n");
	free(buf);
}

/* A message as it comes off the wire: unpacked from bytes, printed. */
static void test_unpacked_roundtrip(void **state)
{
	(void)state;
	Chv__V1__Event ev = CHV__V1__EVENT__INIT;
	ev.vm_id = (char *)"web-1";
	ev.kind = CHV__V1__EVENT_KIND__EVENT_KIND_BOOTED;
	ev.state = CHV__V1__VM_STATE__VM_STATE_RUNNING;
	ev.unix_ms = 1714564800123;
	uint8_t buf[128];
	size_t n = chv__v1__event__pack(&ev, buf);
	Chv__V1__Event *u = chv__v1__event__unpack(NULL, n, buf);
	assert_non_null(u);
	expect_json(&u->base, 0,
		    "{\"vmId\":\"web-1\",\"kind\":\"EVENT_KIND_BOOTED\",\"state\":"
		    "\"VM_STATE_RUNNING\",\"message\":\"\",\"unixMs\":\"1714564800123\"}");
	chv__v1__event__free_unpacked(u, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_field_names),		 cmocka_unit_test(test_empty_message),
	    cmocka_unit_test(test_scalars_and_defaults), cmocka_unit_test(test_enum_unknown_value),
	    cmocka_unit_test(test_nested_pretty),	 cmocka_unit_test(test_repeated),
	    cmocka_unit_test(test_repeated_messages),	 cmocka_unit_test(test_map),
	    cmocka_unit_test(test_bytes_base64),	 cmocka_unit_test(test_string_escaping),
	    cmocka_unit_test(test_other_types),		 cmocka_unit_test(test_print_to_file),
	    cmocka_unit_test(test_unpacked_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
