#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/chvctl.h"
#include "vm/config_proto.h"

/* Runs chvctl_main on a NULL-terminated argument list; captures the output. */
struct run {
	int rc;
	char *out;
	char *err;
};

static struct run run_main(const char *first, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	argv[argc++] = (char *)"chvctl";
	va_start(ap, first);
	for (const char *a = first; a && argc < 31; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;

	struct run r = {0};
	size_t ol, el;
	FILE *out = open_memstream(&r.out, &ol);
	FILE *err = open_memstream(&r.err, &el);
	assert_non_null(out);
	assert_non_null(err);
	r.rc = chvctl_main(argc, argv, out, err);
	fclose(out);
	fclose(err);
	return r;
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

static void test_global_options(void **state)
{
	(void)state;
	struct chvctl_opts o;
	struct chv_err err = {0};
	int ci;
	char *a1[] = {"chvctl", "--json", "--socket", "/s", "--timeout=250", "list", "--json"};
	assert_int_equal(chvctl_parse_global(&o, 7, a1, &ci, &err), 0);
	assert_int_equal(ci, 5);
	assert_true(o.json);
	assert_string_equal(o.socket, "/s");
	assert_int_equal(o.timeout_ms, 250);

	char *a2[] = {"chvctl", "list"};
	assert_int_equal(chvctl_parse_global(&o, 2, a2, &ci, &err), 0);
	assert_int_equal(ci, 1);
	assert_int_equal(o.timeout_ms, -1);
	assert_null(o.socket);

	char *a3[] = {"chvctl"};
	assert_int_equal(chvctl_parse_global(&o, 1, a3, &ci, &err), 0);
	assert_int_equal(ci, 1);

	char *bad1[] = {"chvctl", "--timeout", "soon", "list"};
	assert_int_equal(chvctl_parse_global(&o, 4, bad1, &ci, &err), -EINVAL);
	assert_string_equal(err.msg, "--timeout: \"soon\" is not a number of milliseconds");
	char *bad2[] = {"chvctl", "--socket"};
	assert_int_equal(chvctl_parse_global(&o, 2, bad2, &ci, &err), -EINVAL);
	assert_string_equal(err.msg, "--socket needs a value");
	char *bad3[] = {"chvctl", "--socket", "--json", "ping"};
	assert_int_equal(chvctl_parse_global(&o, 4, bad3, &ci, &err), -EINVAL);
	char *bad4[] = {"chvctl", "--frobnicate", "ping"};
	assert_int_equal(chvctl_parse_global(&o, 3, bad4, &ci, &err), -EINVAL);
	assert_string_equal(err.msg, "unknown option \"--frobnicate\"");
	char *bad5[] = {"chvctl", "--socket=", "ping"};
	assert_int_equal(chvctl_parse_global(&o, 3, bad5, &ci, &err), -EINVAL);
	char *bad6[] = {"chvctl", "--timeout", "-5", "ping"};
	assert_int_equal(chvctl_parse_global(&o, 4, bad6, &ci, &err), -EINVAL);
	char *bad7[] = {"chvctl", "--timeout=99999999999", "ping"};
	assert_int_equal(chvctl_parse_global(&o, 3, bad7, &ci, &err), -EINVAL);
	/* "--sockets" is not "--socket". */
	char *bad8[] = {"chvctl", "--sockets=/x", "ping"};
	assert_int_equal(chvctl_parse_global(&o, 3, bad8, &ci, &err), -EINVAL);
}

static void test_socket_target(void **state)
{
	(void)state;
	char t[256];
	struct chv_err err = {0};
	unsetenv("CHVD_SOCKET");
	assert_int_equal(chvctl_socket_target("/tmp/x.sock", t, sizeof(t), &err), 0);
	assert_string_equal(t, "unix:/tmp/x.sock");
	assert_int_equal(chvctl_socket_target("unix-abstract:chvd", t, sizeof(t), &err), 0);
	assert_string_equal(t, "unix-abstract:chvd");
	assert_int_equal(chvctl_socket_target("unix:/a", t, sizeof(t), &err), 0);
	assert_string_equal(t, "unix:/a");

	setenv("CHVD_SOCKET", "/env.sock", 1);
	assert_int_equal(chvctl_socket_target(NULL, t, sizeof(t), &err), 0);
	assert_string_equal(t, "unix:/env.sock");
	/* The option wins over the environment. */
	assert_int_equal(chvctl_socket_target("/opt.sock", t, sizeof(t), &err), 0);
	assert_string_equal(t, "unix:/opt.sock");
	unsetenv("CHVD_SOCKET");

	setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
	assert_int_equal(chvctl_socket_target(NULL, t, sizeof(t), &err), 0);
	if (geteuid() == 0) {
		assert_string_equal(t, "unix:/run/chvd/chvd.sock");
	} else {
		assert_string_equal(t, "unix:/run/user/1000/chvd/chvd.sock");
		unsetenv("XDG_RUNTIME_DIR");
		assert_int_equal(chvctl_socket_target(NULL, t, sizeof(t), &err), -EINVAL);
	}
	assert_int_equal(chvctl_socket_target("/a/long/path", t, 10, &err), -ENAMETOOLONG);
}

static void test_table(void **state)
{
	(void)state;
	assert_true(chvctl_ncommands >= 29);
	for (size_t i = 0; i < chvctl_ncommands; i++) {
		const struct command *c = &chvctl_commands[i];
		assert_non_null(c->name);
		assert_non_null(c->usage);
		assert_non_null(c->summary);
		assert_ptr_equal(chvctl_find_command(c->name), c);
		assert_true(c->min_pos <= c->max_pos && c->max_pos <= CMD_MAX_POS);
		for (int p = 0; p < c->max_pos; p++)
			assert_non_null(c->pos_names[p]);
		/* Either a unary call of the API, or a command of its own. */
		assert_true((c->run != NULL) != (c->method != NULL));
		if (!c->method)
			continue;
		assert_non_null(c->reply);
		assert_non_null(c->build);
		assert_non_null(c->print);
		/* The method exists in the service and answers with c->reply. */
		const ProtobufCServiceDescriptor *svc = NULL;
		const char *m = NULL;
		if (strncmp(c->method, "/chv.v1.Vmm/", 12) == 0) {
			svc = &chv__v1__vmm__descriptor;
			m = c->method + 12;
		} else if (strncmp(c->method, "/chv.v1.Vm/", 11) == 0) {
			svc = &chv__v1__vm__descriptor;
			m = c->method + 11;
		}
		assert_non_null(svc);
		const ProtobufCMethodDescriptor *md =
		    protobuf_c_service_descriptor_get_method_by_name(svc, m);
		assert_non_null(md);
		assert_ptr_equal(md->output, c->reply);
	}
	assert_null(chvctl_find_command("bot"));
	/* Every method of chv.v1.Vm has a command. */
	const ProtobufCServiceDescriptor *svc = &chv__v1__vm__descriptor;
	static const char *const streams[] = {"WatchEvents", "Console"};
	for (unsigned i = 0; i < svc->n_methods; i++) {
		char path[128];
		snprintf(path, sizeof(path), "/chv.v1.Vm/%s", svc->methods[i].name);
		bool found = false;
		for (size_t k = 0; k < chvctl_ncommands; k++)
			if (chvctl_commands[k].method &&
			    strcmp(chvctl_commands[k].method, path) == 0)
				found = true;
		for (size_t k = 0; k < 2; k++)
			if (strcmp(svc->methods[i].name, streams[k]) == 0)
				found = true;
		assert_true(found);
	}
}

static int parse(const char *cmd, struct cmd_args *a, struct chv_err *err, int argc, ...)
{
	static char *argv[16];
	va_list ap;
	va_start(ap, argc);
	for (int i = 0; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	return chvctl_parse_args(chvctl_find_command(cmd), argc, argv, a, err);
}

static void test_parse_args(void **state)
{
	(void)state;
	struct cmd_args a;
	struct chv_err err = {0};

	assert_int_equal(parse("boot", &a, &err, 0), -EINVAL);
	assert_string_equal(err.msg, "missing VM id");
	chvctl_args_free(&a);
	assert_int_equal(parse("snapshot", &a, &err, 1, "vm1"), -EINVAL);
	assert_string_equal(err.msg, "missing URL");
	chvctl_args_free(&a);
	assert_int_equal(parse("boot", &a, &err, 2, "vm1", "vm2"), -EINVAL);
	assert_string_equal(err.msg, "unexpected argument \"vm2\"");
	chvctl_args_free(&a);
	assert_int_equal(parse("boot", &a, &err, 2, "vm1", "--force"), -EINVAL);
	assert_string_equal(err.msg, "unknown option \"--force\"");
	chvctl_args_free(&a);

	assert_int_equal(parse("shutdown", &a, &err, 4, "--timeout", "500", "vm1", "--force"), 0);
	assert_int_equal(a.npos, 1);
	assert_string_equal(a.pos[0], "vm1");
	assert_string_equal(chvctl_opt(&a, "timeout"), "500");
	assert_string_equal(chvctl_opt(&a, "force"), "");
	chvctl_args_free(&a);
	assert_int_equal(parse("shutdown", &a, &err, 2, "vm1", "--timeout=7"), 0);
	assert_string_equal(chvctl_opt(&a, "timeout"), "7");
	assert_null(chvctl_opt(&a, "force"));
	chvctl_args_free(&a);

	assert_int_equal(parse("shutdown", &a, &err, 2, "vm1", "--timeout"), -EINVAL);
	assert_string_equal(err.msg, "--timeout needs a value (MS)");
	chvctl_args_free(&a);
	assert_int_equal(parse("shutdown", &a, &err, 3, "vm1", "--timeout", "--force"), -EINVAL);
	chvctl_args_free(&a);
	assert_int_equal(parse("shutdown", &a, &err, 2, "vm1", "--timeout="), -EINVAL);
	assert_string_equal(err.msg, "--timeout: empty value");
	chvctl_args_free(&a);
	assert_int_equal(parse("shutdown", &a, &err, 3, "vm1", "--force", "--force"), -EINVAL);
	assert_string_equal(err.msg, "--force given twice");
	chvctl_args_free(&a);
	assert_int_equal(parse("shutdown", &a, &err, 2, "vm1", "--force=yes"), -EINVAL);
	assert_string_equal(err.msg, "--force takes no value (got \"yes\")");
	chvctl_args_free(&a);

	/* --help anywhere, and no positional check then. */
	assert_int_equal(parse("boot", &a, &err, 1, "--help"), 0);
	assert_true(a.help);
	chvctl_args_free(&a);

	/* create keeps chv-vmm's flags, values included, in order. */
	assert_int_equal(parse("create", &a, &err, 7, "--kernel", "k", "--id", "x", "--cmdline",
			       "-v", "--cpus=boot=2"),
			 0);
	assert_string_equal(chvctl_opt(&a, "id"), "x");
	/* "--cmdline -v" is a forgotten value, as chv-vmm reads it. */
	assert_int_equal(a.nrest, 5);
	assert_string_equal(a.rest[0], "--kernel");
	assert_string_equal(a.rest[1], "k");
	assert_string_equal(a.rest[2], "--cmdline");
	assert_string_equal(a.rest[3], "-v");
	assert_string_equal(a.rest[4], "--cpus=boot=2");
	chvctl_args_free(&a);
	assert_int_equal(parse("create", &a, &err, 1, "stray"), -EINVAL);
	chvctl_args_free(&a);

	/* events: the VM id is optional. */
	assert_int_equal(parse("events", &a, &err, 1, "--follow"), 0);
	assert_int_equal(a.npos, 0);
	chvctl_args_free(&a);
}

static ProtobufCMessage *build(const char *cmd, struct chv_err *err, int *rc, int argc, ...)
{
	static char *argv[16];
	struct cmd_args a;
	ProtobufCMessage *req = NULL;
	va_list ap;
	va_start(ap, argc);
	for (int i = 0; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	*rc = chvctl_parse_args(chvctl_find_command(cmd), argc, argv, &a, err);
	if (*rc == 0 && !a.help)
		*rc = chvctl_build_request(&a, &req, err);
	chvctl_args_free(&a);
	return req;
}

static void test_build_requests(void **state)
{
	(void)state;
	struct chv_err err = {0};
	int rc;
	ProtobufCMessage *m;

	m = build("boot", &err, &rc, 1, "vm1");
	assert_int_equal(rc, 0);
	assert_ptr_equal(m->descriptor, &chv__v1__vm_request__descriptor);
	assert_string_equal(((Chv__V1__VmRequest *)m)->vm_id, "vm1");
	chvctl_request_free(m);

	m = build("shutdown", &err, &rc, 4, "vm1", "--force", "--timeout", "2500");
	assert_int_equal(rc, 0);
	Chv__V1__ShutdownRequest *sr = (Chv__V1__ShutdownRequest *)m;
	assert_true(sr->force);
	assert_int_equal(sr->timeout_ms, 2500);
	chvctl_request_free(m);
	m = build("shutdown", &err, &rc, 3, "vm1", "--timeout", "0");
	assert_int_equal(rc, -EINVAL);
	assert_null(m);
	assert_non_null(strstr(err.msg, "--timeout"));

	m = build("shutdown-vmm", &err, &rc, 1, "--shutdown-vms");
	assert_int_equal(rc, 0);
	assert_true(((Chv__V1__VmmShutdownRequest *)m)->shutdown_vms);
	chvctl_request_free(m);

	m = build("resize", &err, &rc, 1, "vm1");
	assert_int_equal(rc, -EINVAL);
	assert_string_equal(err.msg, "nothing to change: give --cpus, --memory or --balloon");
	m = build("resize", &err, &rc, 5, "vm1", "--memory", "1G", "--cpus", "4");
	assert_int_equal(rc, 0);
	Chv__V1__ResizeRequest *rr = (Chv__V1__ResizeRequest *)m;
	assert_int_equal(rr->desired_ram, 1ULL << 30);
	assert_int_equal(rr->desired_vcpus, 4);
	assert_int_equal(rr->desired_balloon, 0);
	chvctl_request_free(m);
	m = build("resize", &err, &rc, 3, "vm1", "--balloon", "lots");
	assert_int_equal(rc, -EINVAL);
	assert_string_equal(err.msg, "--balloon: \"lots\" is not a size (bytes, or K/M/G/T)");
	m = build("resize", &err, &rc, 3, "vm1", "--cpus", "0");
	assert_int_equal(rc, -EINVAL);

	m = build("delete", &err, &rc, 2, "vm1", "--force");
	assert_int_equal(rc, 0);
	assert_true(((Chv__V1__DeleteRequest *)m)->force);
	chvctl_request_free(m);

	m = build("remove-device", &err, &rc, 2, "vm1", "disk0");
	assert_int_equal(rc, 0);
	assert_string_equal(((Chv__V1__RemoveDeviceRequest *)m)->device_id, "disk0");
	chvctl_request_free(m);

	/* A path becomes an absolute file:// URL; a URL stays. */
	char cwd[PATH_MAX], want[PATH_MAX + 32];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	m = build("snapshot", &err, &rc, 2, "vm1", "snap");
	assert_int_equal(rc, 0);
	snprintf(want, sizeof(want), "file://%s/snap", cwd);
	assert_string_equal(((Chv__V1__SnapshotRequest *)m)->destination_url, want);
	chvctl_request_free(m);
	m = build("restore", &err, &rc, 3, "vm1", "/abs/snap", "--resume");
	assert_int_equal(rc, 0);
	assert_string_equal(((Chv__V1__RestoreRequest *)m)->source_url, "file:///abs/snap");
	assert_true(((Chv__V1__RestoreRequest *)m)->resume);
	chvctl_request_free(m);
	m = build("send-migration", &err, &rc, 3, "vm1", "unix:/tmp/mig", "--local");
	assert_int_equal(rc, 0);
	assert_string_equal(((Chv__V1__SendMigrationRequest *)m)->destination_url, "unix:/tmp/mig");
	assert_true(((Chv__V1__SendMigrationRequest *)m)->local);
	chvctl_request_free(m);
}

static void test_add_device_specs(void **state)
{
	(void)state;
	struct chv_err err = {0};
	int rc;
	ProtobufCMessage *m;

	m = build("add-disk", &err, &rc, 2, "vm1",
		  "path=/d.img,readonly=on,num_queues=2,queue_size=256,serial=S1,id=disk0,"
		  "direct=false");
	assert_int_equal(rc, 0);
	Chv__V1__AddDiskRequest *ad = (Chv__V1__AddDiskRequest *)m;
	assert_string_equal(ad->vm_id, "vm1");
	assert_string_equal(ad->disk->path, "/d.img");
	assert_true(ad->disk->readonly);
	assert_false(ad->disk->direct);
	assert_int_equal(ad->disk->num_queues, 2);
	assert_int_equal(ad->disk->queue_size, 256);
	assert_string_equal(ad->disk->serial, "S1");
	assert_string_equal(ad->disk->id, "disk0");
	assert_null(ad->disk->rate_limiter);
	/* Well-formed on the wire: it packs and unpacks to the same. */
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(n);
	assert_non_null(buf);
	protobuf_c_message_pack(m, buf);
	Chv__V1__AddDiskRequest *u = chv__v1__add_disk_request__unpack(NULL, n, buf);
	assert_non_null(u);
	assert_string_equal(u->disk->serial, "S1");
	chv__v1__add_disk_request__free_unpacked(u, NULL);
	free(buf);
	chvctl_request_free(m);

	m = build("add-pmem", &err, &rc, 2, "vm1", "file=/p,size=2M,discard_writes=on");
	assert_int_equal(rc, 0);
	assert_int_equal(((Chv__V1__AddPmemRequest *)m)->pmem->size, 2 << 20);
	chvctl_request_free(m);
	m = build("add-vsock", &err, &rc, 2, "vm1", "cid=3,socket=/v.sock");
	assert_int_equal(rc, 0);
	assert_int_equal(((Chv__V1__AddVsockRequest *)m)->vsock->cid, 3);
	chvctl_request_free(m);
	m = build("add-net", &err, &rc, 2, "vm1", "tap=tap0,mac=12:34:56:78:9a:bc,mtu=1500");
	assert_int_equal(rc, 0);
	assert_string_equal(((Chv__V1__AddNetRequest *)m)->net->mac, "12:34:56:78:9a:bc");
	chvctl_request_free(m);
	m = build("add-fs", &err, &rc, 2, "vm1", "tag=t,socket=/f");
	assert_int_equal(rc, 0);
	chvctl_request_free(m);
	m = build("add-device", &err, &rc, 2, "vm1", "path=/sys/bus/pci/devices/0000:01:00.0");
	assert_int_equal(rc, 0);
	chvctl_request_free(m);

	static const struct {
		const char *spec;
		const char *msg;
	} bad[] = {
	    {"", "empty device specification"},
	    {"path=/a,,readonly=on", "empty item in \"path=/a,,readonly=on\""},
	    {"path=/a,", "empty item in \"path=/a,\""},
	    {"path", "\"path\" is not key=value in \"path\""},
	    {"path=", "path= needs a value"},
	    {"size=1G", "unknown key \"size\" (keys: path, readonly, direct, num_queues, "
			"queue_size, serial, id, rate_limit_group)"},
	    {"path=/a,path=/b", "key \"path\" given twice in \"path=/a,path=/b\""},
	    {"readonly=yes", "readonly=yes is not on, off, true or false"},
	    {"num_queues=two", "num_queues=two is not a number (0..4294967295)"},
	    {"num_queues=4294967296", "num_queues=4294967296 is not a number (0..4294967295)"},
	    {"num_queues=-1", "num_queues=-1 is not a number (0..4294967295)"},
	    {"rate_limiter=x", "rate_limiter= is not supported by chvctl yet"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m = build("add-disk", &err, &rc, 2, "vm1", bad[i].spec);
		assert_int_equal(rc, -EINVAL);
		assert_null(m);
		assert_string_equal(err.msg, bad[i].msg);
	}
	m = build("add-pmem", &err, &rc, 2, "vm1", "file=/p,size=big");
	assert_int_equal(rc, -EINVAL);
	assert_string_equal(err.msg, "size=big is not a size (bytes, or K/M/G/T)");
	m = build("add-net", &err, &rc, 2, "vm1", "fds=3");
	assert_int_equal(rc, -EINVAL);
	assert_string_equal(err.msg, "fds= is not supported by chvctl yet");
}

static void test_create_flags(void **state)
{
	(void)state;
	struct chv_err err = {0};
	int rc;
	ProtobufCMessage *m;
	char cwd[PATH_MAX], want[PATH_MAX + 32];
	assert_non_null(getcwd(cwd, sizeof(cwd)));

	m = build("create", &err, &rc, 9, "--id", "web-1", "--kernel", "guest.elf", "--cpus",
		  "boot=2,max=4", "--memory=size=64M", "--cmdline", "console=ttyS0 quiet");
	assert_int_equal(rc, 0);
	Chv__V1__CreateRequest *cr = (Chv__V1__CreateRequest *)m;
	assert_string_equal(cr->vm_id, "web-1");
	assert_non_null(cr->config);
	snprintf(want, sizeof(want), "%s/guest.elf", cwd);
	assert_string_equal(cr->config->payload->kernel, want);
	assert_string_equal(cr->config->payload->cmdline, "console=ttyS0 quiet");
	assert_int_equal(cr->config->cpus->boot_vcpus, 2);
	assert_int_equal(cr->config->cpus->max_vcpus, 4);
	assert_int_equal(cr->config->memory->size, 64 << 20);
	/* create leaves the serial at chv-vmm's default; run makes it tty. */
	assert_true(!cr->config->serial ||
		    cr->config->serial->mode != CHV__V1__CONSOLE_MODE__CONSOLE_MODE_TTY);
	chvctl_request_free(m);

	struct cmd_args a;
	char *argv[] = {"--kernel", "/k"};
	assert_int_equal(chvctl_parse_args(chvctl_find_command("run"), 2, argv, &a, &err), 0);
	assert_int_equal(chvctl_build_create(&a, true, &m, &err), 0);
	cr = (Chv__V1__CreateRequest *)m;
	assert_string_equal(cr->vm_id, "");
	assert_non_null(cr->config->serial);
	assert_int_equal(cr->config->serial->mode, CHV__V1__CONSOLE_MODE__CONSOLE_MODE_TTY);
	chvctl_request_free(m);
	chvctl_args_free(&a);
	char *argv2[] = {"--kernel", "/k", "--serial=off"};
	assert_int_equal(chvctl_parse_args(chvctl_find_command("run"), 3, argv2, &a, &err), 0);
	assert_int_equal(chvctl_build_create(&a, true, &m, &err), 0);
	cr = (Chv__V1__CreateRequest *)m;
	assert_true(!cr->config->serial ||
		    cr->config->serial->mode != CHV__V1__CONSOLE_MODE__CONSOLE_MODE_TTY);
	chvctl_request_free(m);
	chvctl_args_free(&a);

	m = build("create", &err, &rc, 0);
	assert_int_equal(rc, -EINVAL);
	assert_string_equal(err.msg, "--kernel is required");
	m = build("create", &err, &rc, 3, "--kernel", "/k", "--seccomp=false");
	assert_int_equal(rc, -EINVAL);
	assert_string_equal(err.msg,
			    "--seccomp is a chv-vmm process option; chvd sets it for its workers");
	m = build("create", &err, &rc, 3, "--kernel", "/k", "-v");
	assert_int_equal(rc, -EINVAL);
	m = build("create", &err, &rc, 3, "--kernel", "/k", "--no-reboot");
	assert_int_equal(rc, -EINVAL);
	m = build("create", &err, &rc, 4, "--kernel", "/k", "--log-file", "/l");
	assert_int_equal(rc, -EINVAL);
	m = build("create", &err, &rc, 3, "--kernel", "/k", "--help");
	assert_int_equal(rc, 0); /* --help is chvctl's: the command's help */
	assert_null(m);
	m = build("create", &err, &rc, 3, "--kernel", "/k", "--version");
	assert_int_equal(rc, -EINVAL);
	/* chv-vmm's own messages come through. */
	m = build("create", &err, &rc, 4, "--kernel", "/k", "--cpus", "boot=x");
	assert_int_equal(rc, -EINVAL);
	assert_non_null(strstr(err.msg, "--cpus"));
	m = build("create", &err, &rc, 3, "--kernel", "/k", "--frob");
	assert_int_equal(rc, -EINVAL);
	assert_string_equal(err.msg, "unknown option \"--frob\"");
}

/* --net and --rate-limit-group on create: the same syntax as chv-vmm, into
 * NetConfig (a random MAC fixed here) and rate_limit_groups; fd= cannot
 * reach chvd's worker. */
static void test_create_net(void **state)
{
	(void)state;
	struct chv_err err = {0};
	int rc;
	ProtobufCMessage *m =
	    build("create", &err, &rc, 9, "--kernel", "/k", "--net",
		  "tap=chv0,mac=52:54:00:01:02:03,ip=10.0.0.1,mask=255.255.255.0,mtu=1400,"
		  "rate_limit_group=g",
		  "--net=offload_tso=off,bw_size=1000,bw_refill_time=10", "--rate-limit-group",
		  "id=g,ops_size=10,ops_refill_time=100", "--disk", "path=/d,rate_limit_group=g");
	assert_int_equal(rc, 0);
	Chv__V1__CreateRequest *cr = (Chv__V1__CreateRequest *)m;
	Chv__V1__VmConfig *c = cr->config;
	assert_int_equal(c->n_nets, 2);
	assert_string_equal(c->nets[0]->tap, "chv0");
	assert_string_equal(c->nets[0]->mac, "52:54:00:01:02:03");
	assert_string_equal(c->nets[0]->ip, "10.0.0.1");
	assert_string_equal(c->nets[0]->mask, "255.255.255.0");
	assert_int_equal(c->nets[0]->mtu, 1400);
	assert_int_equal(c->nets[0]->num_queues, 2);
	assert_int_equal(c->nets[0]->queue_size, 256);
	assert_true(c->nets[0]->offload_csum); /* the CLI's defaults, sent explicitly */
	assert_true(c->nets[0]->offload_tso);
	assert_string_equal(c->nets[0]->rate_limit_group, "g");
	assert_null(c->nets[0]->rate_limiter);
	assert_string_equal(c->nets[1]->tap, "");
	assert_int_equal(strlen(c->nets[1]->mac), 17);
	assert_false(c->nets[1]->offload_tso);
	assert_non_null(c->nets[1]->rate_limiter);
	assert_int_equal(c->nets[1]->rate_limiter->bw_size, 1000);
	assert_int_equal(c->nets[1]->rate_limiter->bw_refill_time_ms, 10);
	assert_int_equal(c->n_rate_limit_groups, 1);
	assert_string_equal(c->rate_limit_groups[0]->id, "g");
	assert_int_equal(c->rate_limit_groups[0]->config->ops_size, 10);
	assert_string_equal(c->disks[0]->rate_limit_group, "g");
	chvctl_request_free(m);

	m = build("create", &err, &rc, 4, "--kernel", "/k", "--net", "fd=5");
	assert_int_equal(rc, -EINVAL);
	assert_null(m);
	assert_string_equal(err.msg, "--net: fd=5: file descriptors cannot be passed to chvd (its "
				     "worker is another process); use tap=NAME");
	m = build("create", &err, &rc, 4, "--kernel", "/k", "--net", "mac=01:02:03:04:05:06");
	assert_int_equal(rc, -EINVAL);
	assert_string_equal(err.msg, "--net: mac=01:02:03:04:05:06 is a multicast address");
	m = build("create", &err, &rc, 4, "--kernel", "/k", "--net", "num_queues=3");
	assert_int_equal(rc, -EINVAL);
	assert_non_null(strstr(err.msg, "--net: num_queues=3"));
}

static void test_main_usage_errors(void **state)
{
	(void)state;
	struct run r = run_main("bot", NULL);
	assert_int_equal(r.rc, 2);
	assert_non_null(strstr(r.err, "chvctl: unknown command \"bot\""));
	run_free(&r);

	r = run_main("boot", NULL);
	assert_int_equal(r.rc, 2);
	assert_true(strncmp(r.err, "chvctl: boot: missing VM id\n", 28) == 0);
	assert_non_null(strstr(r.err, "usage: chvctl boot ID"));
	run_free(&r);

	r = run_main(NULL);
	assert_int_equal(r.rc, 2);
	assert_non_null(strstr(r.err, "missing command"));
	run_free(&r);

	r = run_main("--bogus", "list", NULL);
	assert_int_equal(r.rc, 2);
	assert_string_equal(r.err, "chvctl: unknown option \"--bogus\"\n");
	run_free(&r);

	r = run_main("resize", "vm1", NULL);
	assert_int_equal(r.rc, 2);
	assert_true(strncmp(r.err, "chvctl: resize: nothing to change", 33) == 0);
	run_free(&r);

	r = run_main("add-disk", "vm1", "path=/x,bogus=1", NULL);
	assert_int_equal(r.rc, 2);
	assert_true(strncmp(r.err, "chvctl: add-disk: unknown key \"bogus\"", 37) == 0);
	run_free(&r);

	r = run_main("help", "nosuch", NULL);
	assert_int_equal(r.rc, 2);
	assert_string_equal(r.err, "chvctl: help: unknown command \"nosuch\"\n");
	run_free(&r);
}

static void test_main_help(void **state)
{
	(void)state;
	struct run r = run_main("help", NULL);
	assert_int_equal(r.rc, 0);
	/* Every command is listed. */
	for (size_t i = 0; i < chvctl_ncommands; i++) {
		char line[64];
		snprintf(line, sizeof(line), "\n  %s ", chvctl_commands[i].name);
		assert_non_null(strstr(r.out, line));
	}
	run_free(&r);

	r = run_main("help", "shutdown", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "Usage: chvctl shutdown ID [--force] [--timeout MS]\n"));
	assert_non_null(strstr(r.out, "  --timeout MS "));
	run_free(&r);

	r = run_main("create", "--help", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "--kernel PATH"));
	assert_null(strstr(r.out, "--seccomp")); /* process options are chv-vmm's */
	run_free(&r);

	r = run_main("--help", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "Usage: chvctl"));
	run_free(&r);

	r = run_main("--version", NULL);
	assert_int_equal(r.rc, 0);
	assert_true(strncmp(r.out, "chvctl ", 7) == 0);
	run_free(&r);
}

/* Nothing listens there: the call fails with a gRPC status, exit 1. */
static void test_main_unreachable(void **state)
{
	(void)state;
	struct run r =
	    run_main("--socket", "/nonexistent/chvd.sock", "--timeout", "3000", "ping", NULL);
	assert_int_equal(r.rc, 1);
	assert_true(strncmp(r.err, "chvctl: ", 8) == 0);
	assert_non_null(strstr(r.err, "UNAVAILABLE") ? r.err : strstr(r.err, "DEADLINE"));
	assert_string_equal(r.out, "");
	run_free(&r);
}

/* ---- human output ---- */

static char *capture(void (*fn)(FILE *, const ProtobufCMessage *), const ProtobufCMessage *m)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	fn(f, m);
	fclose(f);
	return buf;
}

static void test_format_helpers(void **state)
{
	(void)state;
	char b[64];
	assert_string_equal(chvctl_enum_short(&chv__v1__vm_state__descriptor, 2, b, sizeof(b)),
			    "running");
	assert_string_equal(chvctl_enum_short(&chv__v1__event_kind__descriptor, 8, b, sizeof(b)),
			    "deleted");
	assert_string_equal(chvctl_enum_short(&chv__v1__console_mode__descriptor, 3, b, sizeof(b)),
			    "tty");
	assert_string_equal(chvctl_enum_short(&chv__v1__vm_state__descriptor, 0, b, sizeof(b)),
			    "unspecified");
	assert_string_equal(chvctl_enum_short(&chv__v1__vm_state__descriptor, 99, b, sizeof(b)),
			    "99");

	chvctl_size_str(0, b, sizeof(b));
	assert_string_equal(b, "0");
	chvctl_size_str(1000, b, sizeof(b));
	assert_string_equal(b, "1000");
	chvctl_size_str(4096, b, sizeof(b));
	assert_string_equal(b, "4K");
	chvctl_size_str(512ULL << 20, b, sizeof(b));
	assert_string_equal(b, "512M");
	chvctl_size_str(1536ULL << 20, b, sizeof(b));
	assert_string_equal(b, "1536M");
	chvctl_size_str(1ULL << 40, b, sizeof(b));
	assert_string_equal(b, "1T");
	chvctl_size_str(1ULL << 63, b, sizeof(b));
	assert_string_equal(b, "8E");
	chvctl_size_str(UINT64_MAX, b, sizeof(b));
	assert_string_equal(b, "18446744073709551615");

	chvctl_time_str(0, b, sizeof(b));
	assert_string_equal(b, "1970-01-01T00:00:00.000Z");
	chvctl_time_str(1714564800123, b, sizeof(b));
	assert_string_equal(b, "2024-05-01T12:00:00.123Z");
	chvctl_time_str(-1, b, sizeof(b));
	assert_string_equal(b, "1969-12-31T23:59:59.999Z");
}

static void test_format_list(void **state)
{
	(void)state;
	Chv__V1__PayloadConfig pay = CHV__V1__PAYLOAD_CONFIG__INIT;
	Chv__V1__CpusConfig cpus = CHV__V1__CPUS_CONFIG__INIT;
	Chv__V1__MemoryConfig mem = CHV__V1__MEMORY_CONFIG__INIT;
	Chv__V1__VmConfig cfg = CHV__V1__VM_CONFIG__INIT;
	Chv__V1__VmInfo a = CHV__V1__VM_INFO__INIT, b = CHV__V1__VM_INFO__INIT;
	Chv__V1__VmInfo *vms[] = {&b, &a};
	Chv__V1__ListResponse l = CHV__V1__LIST_RESPONSE__INIT;

	char *s = capture(chvctl_print_list, &l.base);
	assert_string_equal(s, "ID  STATE  VCPUS  MEMORY  PID  KERNEL\n");
	free(s);

	pay.kernel = (char *)"/boot/guest.elf";
	cpus.boot_vcpus = 12;
	mem.size = 64 << 20;
	cfg.payload = &pay;
	cfg.cpus = &cpus;
	cfg.memory = &mem;
	a.id = (char *)"alpha-long-name";
	a.state = CHV__V1__VM_STATE__VM_STATE_RUNNING;
	a.worker_pid = 4242;
	a.config = &cfg;
	b.id = (char *)"b";
	b.state = CHV__V1__VM_STATE__VM_STATE_SHUTDOWN;
	l.n_vms = 2;
	l.vms = vms;
	s = capture(chvctl_print_list, &l.base);
	/* Sorted by id; defaults filled in; the last column unpadded. */
	assert_string_equal(s, "ID               STATE     VCPUS  MEMORY  PID   KERNEL\n"
			       "alpha-long-name  running   12     64M     4242  /boot/guest.elf\n"
			       "b                shutdown  1      512M    -     -\n");
	free(s);
}

static void test_format_info(void **state)
{
	(void)state;
	Chv__V1__PayloadConfig pay = CHV__V1__PAYLOAD_CONFIG__INIT;
	Chv__V1__MemoryConfig mem = CHV__V1__MEMORY_CONFIG__INIT;
	Chv__V1__ConsoleConfig ser = CHV__V1__CONSOLE_CONFIG__INIT;
	Chv__V1__DiskConfig d0 = CHV__V1__DISK_CONFIG__INIT;
	Chv__V1__DiskConfig *disks[] = {&d0};
	Chv__V1__VmConfig cfg = CHV__V1__VM_CONFIG__INIT;
	Chv__V1__VmInfo vi = CHV__V1__VM_INFO__INIT;
	pay.kernel = (char *)"/k";
	mem.size = 1ULL << 30;
	mem.shared = 1;
	ser.mode = CHV__V1__CONSOLE_MODE__CONSOLE_MODE_TTY;
	d0.path = (char *)"/d.img";
	d0.readonly = 1;
	cfg.payload = &pay;
	cfg.memory = &mem;
	cfg.serial = &ser;
	cfg.n_disks = 1;
	cfg.disks = disks;
	vi.id = (char *)"vm1";
	vi.state = CHV__V1__VM_STATE__VM_STATE_FAILED;
	vi.failure_reason = (char *)"KVM_EXIT_INTERNAL_ERROR";
	vi.created_unix_ms = 1714564800123;
	vi.boot_count = 1;
	vi.config = &cfg;
	char *s = capture(chvctl_print_info, &vi.base);
	assert_string_equal(s, "id:                       vm1\n"
			       "state:                    failed\n"
			       "failure reason:           KVM_EXIT_INTERNAL_ERROR\n"
			       "worker pid:               -\n"
			       "created:                  2024-05-01T12:00:00.123Z\n"
			       "booted:                   never\n"
			       "boot count:               1\n"
			       "config.payload.kernel:    /k\n"
			       "config.memory.size:       1G\n"
			       "config.memory.shared:     on\n"
			       "config.disks[0].path:     /d.img\n"
			       "config.disks[0].readonly: on\n"
			       "config.serial.mode:       tty\n");
	free(s);
}

static void test_format_counters_and_lines(void **state)
{
	(void)state;
	Chv__V1__CountersResponse r = CHV__V1__COUNTERS_RESPONSE__INIT;
	Chv__V1__CountersResponse__CountersEntry e[3] = {
	    CHV__V1__COUNTERS_RESPONSE__COUNTERS_ENTRY__INIT,
	    CHV__V1__COUNTERS_RESPONSE__COUNTERS_ENTRY__INIT,
	    CHV__V1__COUNTERS_RESPONSE__COUNTERS_ENTRY__INIT};
	Chv__V1__CountersResponse__CountersEntry *es[] = {&e[0], &e[1], &e[2]};
	e[0].key = (char *)"serial.tx_bytes";
	e[0].value = 1234567;
	e[1].key = (char *)"exits.pio";
	e[1].value = 5;
	e[2].key = (char *)"exits.mmio";
	e[2].value = 0;
	r.n_counters = 3;
	r.counters = es;
	char *s = capture(chvctl_print_counters, &r.base);
	assert_string_equal(s, "COUNTER            VALUE\n"
			       "exits.mmio             0\n"
			       "exits.pio              5\n"
			       "serial.tx_bytes  1234567\n");
	free(s);

	Chv__V1__PingResponse p = CHV__V1__PING_RESPONSE__INIT;
	char *feat[] = {(char *)"kvm"};
	p.version = (char *)"0.1.0";
	p.pid = 10;
	p.vms = 1;
	s = capture(chvctl_print_ping, &p.base);
	assert_string_equal(s, "chvd 0.1.0, pid 10, 1 VM, features: none\n");
	free(s);
	p.n_features = 1;
	p.features = feat;
	p.vms = 0;
	s = capture(chvctl_print_ping, &p.base);
	assert_string_equal(s, "chvd 0.1.0, pid 10, 0 VMs, features: kvm\n");
	free(s);

	Chv__V1__VmInfo vi = CHV__V1__VM_INFO__INIT;
	vi.id = (char *)"vm1";
	vi.state = CHV__V1__VM_STATE__VM_STATE_PAUSED;
	s = capture(chvctl_print_vm_state, &vi.base);
	assert_string_equal(s, "vm1: paused\n");
	free(s);
	s = capture(chvctl_print_vm_id, &vi.base);
	assert_string_equal(s, "vm1\n");
	free(s);

	Chv__V1__DeviceResponse dr = CHV__V1__DEVICE_RESPONSE__INIT;
	dr.id = (char *)"disk0";
	s = capture(chvctl_print_device, &dr.base);
	assert_string_equal(s, "disk0\n");
	free(s);
	dr.bdf = (char *)"0000:00:05.0";
	s = capture(chvctl_print_device, &dr.base);
	assert_string_equal(s, "disk0 0000:00:05.0\n");
	free(s);

	Chv__V1__Event ev = CHV__V1__EVENT__INIT;
	ev.vm_id = (char *)"vm1";
	ev.kind = CHV__V1__EVENT_KIND__EVENT_KIND_SHUTDOWN;
	ev.state = CHV__V1__VM_STATE__VM_STATE_SHUTDOWN;
	ev.unix_ms = 1714564800123;
	ev.message = (char *)"guest powered off";
	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	chvctl_print_event(f, &ev);
	ev.vm_id = (char *)"";
	ev.message = (char *)"";
	chvctl_print_event(f, &ev);
	fclose(f);
	assert_string_equal(buf,
			    "2024-05-01T12:00:00.123Z vm1 shutdown shutdown guest powered off\n"
			    "2024-05-01T12:00:00.123Z - shutdown shutdown\n");
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_global_options),
	    cmocka_unit_test(test_socket_target),
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_parse_args),
	    cmocka_unit_test(test_build_requests),
	    cmocka_unit_test(test_add_device_specs),
	    cmocka_unit_test(test_create_flags),
	    cmocka_unit_test(test_create_net),
	    cmocka_unit_test(test_main_usage_errors),
	    cmocka_unit_test(test_main_help),
	    cmocka_unit_test(test_main_unreachable),
	    cmocka_unit_test(test_format_helpers),
	    cmocka_unit_test(test_format_list),
	    cmocka_unit_test(test_format_info),
	    cmocka_unit_test(test_format_counters_and_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
