/* The command table (every call of chv.v1), the request builders and the
 * help text made from the table. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/chvctl.h"
#include "vm/config.h"
#include "vm/config_proto.h"
#include "vm/optparse.h"

static void *new_msg(const ProtobufCMessageDescriptor *d)
{
	ProtobufCMessage *m = calloc(1, d->sizeof_message);
	if (m)
		d->message_init(m);
	return m;
}

static int set_str(char **dst, const char *v, struct chv_err *err)
{
	char *s = strdup(v);
	if (!s)
		return chv_err_set(err, -ENOMEM, "out of memory");
	*dst = s;
	return 0;
}

static int alloc_failed(struct chv_err *err)
{
	return chv_err_set(err, -ENOMEM, "out of memory");
}

/* Every VM command names the VM first. */
static const char *vm_id(const struct cmd_args *a)
{
	return a->pos[0];
}

/* A URL without a scheme is a path; chvd runs elsewhere, so it gets an
 * absolute file:// URL. */
static int url_arg(char **dst, const char *v, struct chv_err *err)
{
	if (strstr(v, "://"))
		return set_str(dst, v, err);
	char cwd[PATH_MAX];
	if (v[0] != '/' && !getcwd(cwd, sizeof(cwd)))
		return chv_err_set(err, -errno, "cannot resolve \"%s\": %s", v, strerror(errno));
	if (asprintf(dst, "file://%s%s%s", v[0] == '/' ? "" : cwd, v[0] == '/' ? "" : "/", v) < 0) {
		*dst = NULL;
		return alloc_failed(err);
	}
	return 0;
}

static int build_ping(const struct cmd_args *a, ProtobufCMessage **req, struct chv_err *err)
{
	(void)a;
	*req = new_msg(&chv__v1__ping_request__descriptor);
	return *req ? 0 : alloc_failed(err);
}

static int build_list(const struct cmd_args *a, ProtobufCMessage **req, struct chv_err *err)
{
	(void)a;
	*req = new_msg(&chv__v1__list_request__descriptor);
	return *req ? 0 : alloc_failed(err);
}

static int build_vmm_shutdown(const struct cmd_args *a, ProtobufCMessage **req, struct chv_err *err)
{
	Chv__V1__VmmShutdownRequest *r = new_msg(&chv__v1__vmm_shutdown_request__descriptor);
	if (!r)
		return alloc_failed(err);
	r->shutdown_vms = chvctl_opt(a, "shutdown-vms") != NULL;
	*req = &r->base;
	return 0;
}

static int build_vm(const struct cmd_args *a, ProtobufCMessage **req, struct chv_err *err)
{
	Chv__V1__VmRequest *r = new_msg(&chv__v1__vm_request__descriptor);
	if (!r)
		return alloc_failed(err);
	*req = &r->base;
	return set_str(&r->vm_id, vm_id(a), err);
}

int chvctl_build_create(const struct cmd_args *a, bool serial_tty, ProtobufCMessage **req,
			struct chv_err *err)
{
	Chv__V1__CreateRequest *r = new_msg(&chv__v1__create_request__descriptor);
	if (!r)
		return alloc_failed(err);
	*req = &r->base;
	const char *id = chvctl_opt(a, "id");
	if (id) {
		int rc = set_str(&r->vm_id, id, err);
		if (rc)
			return rc;
	}
	return chvctl_config_from_flags(a->rest, a->nrest, serial_tty, &r->config, err);
}

static int build_create(const struct cmd_args *a, ProtobufCMessage **req, struct chv_err *err)
{
	return chvctl_build_create(a, false, req, err);
}

static int build_shutdown(const struct cmd_args *a, ProtobufCMessage **req, struct chv_err *err)
{
	Chv__V1__ShutdownRequest *r = new_msg(&chv__v1__shutdown_request__descriptor);
	if (!r)
		return alloc_failed(err);
	*req = &r->base;
	r->force = chvctl_opt(a, "force") != NULL;
	const char *t = chvctl_opt(a, "timeout");
	if (t && optparse_u32("--timeout", NULL, t, 1, UINT32_MAX, &r->timeout_ms, err) != 0)
		return -EINVAL;
	return set_str(&r->vm_id, vm_id(a), err);
}

static int build_delete(const struct cmd_args *a, ProtobufCMessage **req, struct chv_err *err)
{
	Chv__V1__DeleteRequest *r = new_msg(&chv__v1__delete_request__descriptor);
	if (!r)
		return alloc_failed(err);
	*req = &r->base;
	r->force = chvctl_opt(a, "force") != NULL;
	return set_str(&r->vm_id, vm_id(a), err);
}

static int size_opt(const char *opt, const char *v, uint64_t *out, struct chv_err *err)
{
	if (vm_config_parse_size(v, out) != 0)
		return chv_err_set(err, -EINVAL, "%s: \"%s\" is not a size (bytes, or K/M/G/T)",
				   opt, v);
	return 0;
}

static int build_resize(const struct cmd_args *a, ProtobufCMessage **req, struct chv_err *err)
{
	Chv__V1__ResizeRequest *r = new_msg(&chv__v1__resize_request__descriptor);
	if (!r)
		return alloc_failed(err);
	*req = &r->base;
	const char *cpus = chvctl_opt(a, "cpus"), *mem = chvctl_opt(a, "memory"),
		   *balloon = chvctl_opt(a, "balloon");
	if (!cpus && !mem && !balloon)
		return chv_err_set(err, -EINVAL,
				   "nothing to change: give --cpus, --memory or --balloon");
	if (cpus &&
	    optparse_u32("--cpus", NULL, cpus, 1, CONFIG_MAX_VCPUS, &r->desired_vcpus, err) != 0)
		return -EINVAL;
	if (mem && size_opt("--memory", mem, &r->desired_ram, err) != 0)
		return -EINVAL;
	if (balloon && size_opt("--balloon", balloon, &r->desired_balloon, err) != 0)
		return -EINVAL;
	return set_str(&r->vm_id, vm_id(a), err);
}

/* add-*: the request is {vm_id, <device>}; the device comes from the spec. */
static int build_add(const struct cmd_args *a, ProtobufCMessage **req,
		     const ProtobufCMessageDescriptor *rd, struct chv_err *err)
{
	ProtobufCMessage *r = new_msg(rd);
	if (!r)
		return alloc_failed(err);
	*req = r;
	/* Field 1 is vm_id, field 2 the device message, in every Add*Request. */
	const ProtobufCFieldDescriptor *fid = &rd->fields[0], *fdev = &rd->fields[1];
	int rc = set_str((char **)((char *)r + fid->offset), vm_id(a), err);
	if (rc)
		return rc;
	ProtobufCMessage *dev = new_msg(fdev->descriptor);
	if (!dev)
		return alloc_failed(err);
	*(ProtobufCMessage **)((char *)r + fdev->offset) = dev;
	return chvctl_parse_kv(dev, a->pos[1], err);
}

#define ADD_BUILDER(fn, desc)                                                                      \
	static int fn(const struct cmd_args *a, ProtobufCMessage **req, struct chv_err *err)       \
	{                                                                                          \
		return build_add(a, req, &desc, err);                                              \
	}
ADD_BUILDER(build_add_disk, chv__v1__add_disk_request__descriptor)
ADD_BUILDER(build_add_net, chv__v1__add_net_request__descriptor)
ADD_BUILDER(build_add_fs, chv__v1__add_fs_request__descriptor)
ADD_BUILDER(build_add_pmem, chv__v1__add_pmem_request__descriptor)
ADD_BUILDER(build_add_vsock, chv__v1__add_vsock_request__descriptor)
ADD_BUILDER(build_add_device, chv__v1__add_device_request__descriptor)

static int build_remove_device(const struct cmd_args *a, ProtobufCMessage **req,
			       struct chv_err *err)
{
	Chv__V1__RemoveDeviceRequest *r = new_msg(&chv__v1__remove_device_request__descriptor);
	if (!r)
		return alloc_failed(err);
	*req = &r->base;
	int rc = set_str(&r->vm_id, vm_id(a), err);
	return rc ? rc : set_str(&r->device_id, a->pos[1], err);
}

static int build_snapshot(const struct cmd_args *a, ProtobufCMessage **req, struct chv_err *err)
{
	Chv__V1__SnapshotRequest *r = new_msg(&chv__v1__snapshot_request__descriptor);
	if (!r)
		return alloc_failed(err);
	*req = &r->base;
	int rc = set_str(&r->vm_id, vm_id(a), err);
	return rc ? rc : url_arg(&r->destination_url, a->pos[1], err);
}

static int build_restore(const struct cmd_args *a, ProtobufCMessage **req, struct chv_err *err)
{
	Chv__V1__RestoreRequest *r = new_msg(&chv__v1__restore_request__descriptor);
	if (!r)
		return alloc_failed(err);
	*req = &r->base;
	r->resume = chvctl_opt(a, "resume") != NULL;
	int rc = set_str(&r->vm_id, vm_id(a), err);
	return rc ? rc : url_arg(&r->source_url, a->pos[1], err);
}

static int build_send_migration(const struct cmd_args *a, ProtobufCMessage **req,
				struct chv_err *err)
{
	Chv__V1__SendMigrationRequest *r = new_msg(&chv__v1__send_migration_request__descriptor);
	if (!r)
		return alloc_failed(err);
	*req = &r->base;
	r->local = chvctl_opt(a, "local") != NULL;
	int rc = set_str(&r->vm_id, vm_id(a), err);
	return rc ? rc : set_str(&r->destination_url, a->pos[1], err);
}

static int build_receive_migration(const struct cmd_args *a, ProtobufCMessage **req,
				   struct chv_err *err)
{
	Chv__V1__ReceiveMigrationRequest *r =
	    new_msg(&chv__v1__receive_migration_request__descriptor);
	if (!r)
		return alloc_failed(err);
	*req = &r->base;
	int rc = set_str(&r->vm_id, vm_id(a), err);
	return rc ? rc : set_str(&r->receiver_url, a->pos[1], err);
}

#define VM_ID_POS     .pos_names = {"VM id"}, .min_pos = 1, .max_pos = 1
#define VM_ID_URL_POS .pos_names = {"VM id", "URL"}, .min_pos = 2, .max_pos = 2
#define UNARY_VM(n, meth, sum, rep, pr)                                                            \
	{                                                                                          \
		.name = n, .usage = "ID", .summary = sum, VM_ID_POS, .method = meth,               \
		.reply = &rep, .build = build_vm, .print = pr                                      \
	}
#define ADD_CMD(n, meth, sum, keys, fn)                                                            \
	{                                                                                          \
		.name = n, .usage = "ID " keys, .summary = sum,                                    \
		.pos_names = {"VM id", "device specification"}, .min_pos = 2, .max_pos = 2,        \
		.method = meth, .reply = &chv__v1__device_response__descriptor, .build = fn,       \
		.print = chvctl_print_device                                                       \
	}

const struct command chvctl_commands[] = {
    {.name = "ping",
     .usage = "",
     .summary = "Show the daemon's version, features, pid and number of VMs.",
     .method = "/chv.v1.Vmm/Ping",
     .reply = &chv__v1__ping_response__descriptor,
     .build = build_ping,
     .print = chvctl_print_ping},
    {.name = "shutdown-vmm",
     .usage = "[--shutdown-vms]",
     .summary = "Stop chvd. Its VMs keep running unless --shutdown-vms is given.",
     .opts = {{"shutdown-vms", NULL, "shut every VM down first"}},
     .method = "/chv.v1.Vmm/Shutdown",
     .reply = &chv__v1__vmm_shutdown_response__descriptor,
     .build = build_vmm_shutdown,
     .print = chvctl_print_nothing},
    {.name = "create",
     .usage = "[--id ID] --kernel PATH [VM FLAGS...]",
     .summary = "Define a VM (not booted). VM flags are chv-vmm's. Prints the VM's id.",
     .opts = {{"id", "ID", "the VM's id ([A-Za-z0-9_.-], at most 64); default: generated"}},
     .vmm_flags = true,
     .method = "/chv.v1.Vm/Create",
     .reply = &chv__v1__vm_info__descriptor,
     .build = build_create,
     .print = chvctl_print_vm_id},
    UNARY_VM("boot", "/chv.v1.Vm/Boot", "Start a created or shut-down VM.",
	     chv__v1__vm_info__descriptor, chvctl_print_vm_state),
    {.name = "shutdown",
     .usage = "ID [--force] [--timeout MS]",
     .summary = "Stop a VM: ask the guest (ACPI power button), then stop it.",
     VM_ID_POS,
     .opts = {{"force", NULL, "stop at once instead of asking the guest"},
	      {"timeout", "MS",
	       "how long the guest may take before it is stopped "
	       "(default 10000)"}},
     .method = "/chv.v1.Vm/Shutdown",
     .reply = &chv__v1__vm_info__descriptor,
     .build = build_shutdown,
     .print = chvctl_print_vm_state},
    UNARY_VM("reboot", "/chv.v1.Vm/Reboot", "Reset a running or paused VM.",
	     chv__v1__vm_info__descriptor, chvctl_print_vm_state),
    UNARY_VM("power-button", "/chv.v1.Vm/PowerButton",
	     "Press the VM's ACPI power button (the guest decides).", chv__v1__vm_info__descriptor,
	     chvctl_print_vm_state),
    UNARY_VM("pause", "/chv.v1.Vm/Pause", "Stop a running VM's vCPUs.",
	     chv__v1__vm_info__descriptor, chvctl_print_vm_state),
    UNARY_VM("resume", "/chv.v1.Vm/Resume", "Let a paused VM run again.",
	     chv__v1__vm_info__descriptor, chvctl_print_vm_state),
    {.name = "delete",
     .usage = "ID [--force]",
     .summary = "Forget a VM and its definition.",
     VM_ID_POS,
     .opts = {{"force", NULL, "also a running VM (it is stopped first)"}},
     .method = "/chv.v1.Vm/Delete",
     .reply = &chv__v1__delete_response__descriptor,
     .build = build_delete,
     .print = chvctl_print_nothing},
    UNARY_VM("info", "/chv.v1.Vm/Info", "Show a VM's state and configuration.",
	     chv__v1__vm_info__descriptor, chvctl_print_info),
    {.name = "list",
     .usage = "",
     .summary = "List the VMs: id, state, vCPUs, memory, worker pid, kernel.",
     .method = "/chv.v1.Vm/List",
     .reply = &chv__v1__list_response__descriptor,
     .build = build_list,
     .print = chvctl_print_list},
    UNARY_VM("counters", "/chv.v1.Vm/Counters", "Show a VM's counters (exits, bytes...).",
	     chv__v1__counters_response__descriptor, chvctl_print_counters),
    {.name = "resize",
     .usage = "ID [--cpus N] [--memory SIZE] [--balloon SIZE]",
     .summary = "Change a VM's vCPUs, memory or balloon.",
     VM_ID_POS,
     .opts = {{"cpus", "N", "vCPUs wanted"},
	      {"memory", "SIZE", "guest RAM wanted (bytes, or K/M/G/T)"},
	      {"balloon", "SIZE", "balloon size wanted"}},
     .method = "/chv.v1.Vm/Resize",
     .reply = &chv__v1__vm_info__descriptor,
     .build = build_resize,
     .print = chvctl_print_vm_state},
    ADD_CMD("add-disk", "/chv.v1.Vm/AddDisk", "Hot-add a disk.",
	    "path=PATH[,readonly=on][,direct=on][,num_queues=N][,queue_size=N][,serial=S][,id=ID]",
	    build_add_disk),
    ADD_CMD("add-net", "/chv.v1.Vm/AddNet", "Hot-add a network device.",
	    "tap=NAME[,ip=IP][,mask=MASK][,mac=MAC][,host_mac=MAC][,mtu=N][,num_queues=N]"
	    "[,queue_size=N][,id=ID]",
	    build_add_net),
    ADD_CMD("add-fs", "/chv.v1.Vm/AddFs", "Hot-add a virtio-fs share.",
	    "tag=TAG,socket=PATH[,num_queues=N][,queue_size=N][,id=ID]", build_add_fs),
    ADD_CMD("add-pmem", "/chv.v1.Vm/AddPmem", "Hot-add persistent memory.",
	    "file=PATH[,size=SIZE][,discard_writes=on][,id=ID]", build_add_pmem),
    ADD_CMD("add-vsock", "/chv.v1.Vm/AddVsock", "Hot-add a vsock device.",
	    "cid=N,socket=PATH[,id=ID]", build_add_vsock),
    ADD_CMD("add-device", "/chv.v1.Vm/AddDevice", "Hot-add a VFIO device.",
	    "path=SYSFS_PATH[,id=ID]", build_add_device),
    {.name = "remove-device",
     .usage = "ID DEVICE",
     .summary = "Hot-remove the device with id DEVICE.",
     .pos_names = {"VM id", "device id"},
     .min_pos = 2,
     .max_pos = 2,
     .method = "/chv.v1.Vm/RemoveDevice",
     .reply = &chv__v1__vm_info__descriptor,
     .build = build_remove_device,
     .print = chvctl_print_vm_state},
    {.name = "snapshot",
     .usage = "ID URL",
     .summary = "Save a paused VM to URL (a path means file://PATH).",
     VM_ID_URL_POS,
     .method = "/chv.v1.Vm/Snapshot",
     .reply = &chv__v1__snapshot_response__descriptor,
     .build = build_snapshot,
     .print = chvctl_print_nothing},
    {.name = "restore",
     .usage = "ID URL [--resume]",
     .summary = "Make VM ID from the snapshot at URL (a path means file://PATH).",
     VM_ID_URL_POS,
     .opts = {{"resume", NULL, "run it at once instead of leaving it paused"}},
     .method = "/chv.v1.Vm/Restore",
     .reply = &chv__v1__vm_info__descriptor,
     .build = build_restore,
     .print = chvctl_print_vm_state},
    {.name = "send-migration",
     .usage = "ID URL [--local]",
     .summary = "Migrate a VM to the receiver at URL.",
     VM_ID_URL_POS,
     .opts = {{"local", NULL, "same host: hand the memory over instead of copying it"}},
     .method = "/chv.v1.Vm/SendMigration",
     .reply = &chv__v1__send_migration_response__descriptor,
     .build = build_send_migration,
     .print = chvctl_print_nothing},
    {.name = "receive-migration",
     .usage = "ID URL",
     .summary = "Receive a migrating VM as ID, listening at URL.",
     VM_ID_URL_POS,
     .method = "/chv.v1.Vm/ReceiveMigration",
     .reply = &chv__v1__vm_info__descriptor,
     .build = build_receive_migration,
     .print = chvctl_print_vm_state},
    {.name = "events",
     .usage = "[--follow] [ID]",
     .summary = "Print lifecycle events of one VM or of all.",
     .details = "Without --follow, waits for the next event, prints it and exits. A line is\n"
		"TIME VM KIND STATE [MESSAGE]; with --json, one JSON object per line.",
     .pos_names = {"VM id"},
     .max_pos = 1,
     .opts = {{"follow", NULL, "print events as they come until interrupted"}},
     .run = chvctl_cmd_events},
    {.name = "console",
     .usage = "ID [--no-follow] [--skip-history]",
     .summary = "Attach to a VM's serial console (Ctrl-] detaches).",
     .details = "The kept output comes first. On a terminal, input is raw (Ctrl-C goes to\n"
		"the guest); piped input is sent as it comes. Ends when the VM stops.",
     VM_ID_POS,
     .opts = {{"no-follow", NULL, "print the kept output and exit"},
	      {"skip-history", NULL, "only output from now on"}},
     .run = chvctl_cmd_console},
    {.name = "run",
     .usage = "[--id ID] [--rm] --kernel PATH [VM FLAGS...]",
     .summary = "Create and boot a VM, attached to its serial console until it stops.",
     .details = "Exits 0 when the guest powered off, 1 otherwise (failed, or detached with\n"
		"Ctrl-]: the VM keeps running). The serial port is --serial tty unless the\n"
		"flags name one.",
     .opts = {{"id", "ID", "the VM's id; default: generated"},
	      {"rm", NULL, "delete the VM once it has stopped"}},
     .vmm_flags = true,
     .run = chvctl_cmd_run},
    {.name = "help",
     .usage = "[COMMAND]",
     .summary = "Show the commands, or one command's options.",
     .pos_names = {"command"},
     .max_pos = 1,
     .run = chvctl_cmd_help},
};

const size_t chvctl_ncommands = sizeof(chvctl_commands) / sizeof(chvctl_commands[0]);

const struct command *chvctl_find_command(const char *name)
{
	for (size_t i = 0; i < chvctl_ncommands; i++)
		if (strcmp(chvctl_commands[i].name, name) == 0)
			return &chvctl_commands[i];
	return NULL;
}

int chvctl_build_request(const struct cmd_args *a, ProtobufCMessage **req, struct chv_err *err)
{
	*req = NULL;
	if (!a->cmd->build)
		return chv_err_set(err, -EINVAL, "not a unary command");
	int rc = a->cmd->build(a, req, err);
	if (rc) {
		chvctl_request_free(*req);
		*req = NULL;
	}
	return rc;
}

void chvctl_request_free(ProtobufCMessage *req)
{
	if (!req)
		return;
	/* The config comes from vm_config_to_proto(), which has its own free. */
	if (req->descriptor == &chv__v1__create_request__descriptor) {
		Chv__V1__CreateRequest *r = (Chv__V1__CreateRequest *)req;
		if (r->config)
			vm_config_proto_free(r->config);
		r->config = NULL;
	}
	protobuf_c_message_free_unpacked(req, NULL);
}

/* chv-vmm's flag help, less its process options (chvctl refuses those). */
static void print_vmm_flags(FILE *out)
{
	const char *u = vm_config_usage();
	const char *from = strstr(u, "Payload:");
	const char *to = from ? strstr(from, "\nProcess:") : NULL;
	fputs("\nVM flags (the same syntax as chv-vmm):\n\n", out);
	if (from && to)
		fprintf(out, "%.*s\n", (int)(to - from), from);
	else
		fputs(u, out);
}

void chvctl_help(FILE *out, const struct command *cmd)
{
	if (!cmd) {
		fputs("Usage: chvctl [--socket PATH|tcp://HOST:PORT] [TLS options] [--json]\n"
		      "              [--timeout MS] COMMAND [ARGS...]\n"
		      "\n"
		      "The command-line client of chvd.\n"
		      "\n"
		      "Commands:\n",
		      out);
		for (size_t i = 0; i < chvctl_ncommands; i++) {
			const struct command *c = &chvctl_commands[i];
			fprintf(out, "  %-18s %s\n", c->name, c->summary);
		}
		fputs("\n"
		      "Options:\n"
		      "  --socket PATH      chvd's socket (default: $CHVD_SOCKET, else\n"
		      "                     /run/chvd/chvd.sock as root, else\n"
		      "                     $XDG_RUNTIME_DIR/chvd/chvd.sock); tcp://HOST:PORT\n"
		      "                     for chvd --listen-tcp (mutual TLS)\n"
		      "  --tls-ca PEM       CA(s) that verify chvd's certificate (default: the\n"
		      "                     system's)\n"
		      "  --tls-cert PEM     our client certificate, --tls-key PEM its key\n"
		      "  --insecure         TCP without TLS (a loopback chvd --insecure)\n"
		      "  --json             print replies as JSON (proto3 JSON mapping)\n"
		      "  --timeout MS       deadline of each call (default 60000; 0: none)\n"
		      "  -h, --help         print this text\n"
		      "  -V, --version      print the version\n"
		      "\n"
		      "Exit status: 0 success, 1 the call failed, 2 usage error.\n"
		      "\"chvctl help COMMAND\" shows a command's options.\n",
		      out);
		return;
	}
	fprintf(out, "Usage: chvctl %s%s%s\n\n%s\n", cmd->name, *cmd->usage ? " " : "", cmd->usage,
		cmd->summary);
	if (cmd->details)
		fprintf(out, "%s\n", cmd->details);
	if (cmd->opts[0].name) {
		fputs("\nOptions:\n", out);
		for (int i = 0; i < CMD_MAX_OPTS && cmd->opts[i].name; i++) {
			char left[64];
			snprintf(left, sizeof(left), "--%s%s%s", cmd->opts[i].name,
				 cmd->opts[i].arg ? " " : "",
				 cmd->opts[i].arg ? cmd->opts[i].arg : "");
			fprintf(out, "  %-18s %s\n", left, cmd->opts[i].help);
		}
	}
	if (cmd->vmm_flags)
		print_vmm_flags(out);
}
