/* chvctl, the command-line client of chvd: the pieces its files share and
 * its unit tests reach. The command table (chvctl_commands.c) is the one
 * place that knows every command: help, usage errors and dispatch come
 * from it. */
#ifndef CHV_CLIENT_CHVCTL_H
#define CHV_CLIENT_CHVCTL_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "chv/v1/vm.pb-c.h"
#include "client/rpc_client.h"
#include "vm/err.h"

/* Exit statuses. */
#define CHVCTL_EXIT_OK	  0
#define CHVCTL_EXIT_RPC	  1 /* the server answered an error (or the call failed) */
#define CHVCTL_EXIT_USAGE 2

/* Unary calls wait this long unless --timeout says otherwise. */
#define CHVCTL_DEFAULT_TIMEOUT_MS 60000

struct chvctl_opts {
	const char *socket; /* --socket; NULL: from the environment */
	/* TLS for a tcp:// socket: PEM file names, NULL when not given. */
	const char *tls_ca, *tls_cert, *tls_key;
	bool insecure;
	bool json;
	int timeout_ms; /* --timeout; -1: not given; 0: no deadline */
	bool help;
	bool version;
};

/* Global options, up to the command name. *cmd_index is argv's index of the
 * command (argc when there is none). 0 or -EINVAL with err set. */
chv_must_check int chvctl_parse_global(struct chvctl_opts *o, int argc, char **argv, int *cmd_index,
				       struct chv_err *err);

/* The gRPC target: --socket, else $CHVD_SOCKET, else /run/chvd/chvd.sock as
 * root, else $XDG_RUNTIME_DIR/chvd/chvd.sock. A value already naming a
 * scheme ("unix:", "unix-abstract:") is kept; "tcp://HOST:PORT" becomes
 * "HOST:PORT". 0 or -EINVAL / -ENAMETOOLONG. */
chv_must_check int chvctl_socket_target(const char *socket_opt, char *out, size_t len,
					struct chv_err *err);
/* Whether target (from chvctl_socket_target) is TCP. */
bool chvctl_target_is_tcp(const char *target);
/* Checks the TLS options against the target: they are for TCP only,
 * --insecure excludes the others, --tls-cert and --tls-key go together,
 * and TCP needs TLS or --insecure. 0 or -EINVAL with err naming the option. */
chv_must_check int chvctl_check_tls(const struct chvctl_opts *o, const char *target,
				    struct chv_err *err);

/* ---- the command table ---- */

#define CMD_MAX_POS  2
#define CMD_MAX_OPTS 4

struct cmd_opt {
	const char *name; /* without "--" */
	const char *arg;  /* the value's name in help ("MS"); NULL: a flag */
	const char *help;
};

struct command;

/* One command line, split by the command's table entry. */
struct cmd_args {
	const struct command *cmd;
	const char *pos[CMD_MAX_POS];
	int npos;
	const char *val[CMD_MAX_OPTS]; /* by index in cmd->opts; a given flag reads "" */
	char **rest;		       /* chv-vmm flags (create, run), in order */
	int nrest;
	bool help; /* --help / -h: print the command's help instead */
};

struct ctl;

struct command {
	const char *name;
	const char *usage;		    /* after the name: "ID [--force]" */
	const char *summary;		    /* one line, for the list of commands */
	const char *details;		    /* more, for "help COMMAND"; may be NULL */
	const char *pos_names[CMD_MAX_POS]; /* for "missing VM id" */
	int min_pos;
	int max_pos;
	struct cmd_opt opts[CMD_MAX_OPTS];
	bool vmm_flags; /* options not in opts are chv-vmm flags, kept in rest */

	/* A unary call: method path, reply type, request builder, printer. */
	const char *method;
	const ProtobufCMessageDescriptor *reply;
	int (*build)(const struct cmd_args *a, ProtobufCMessage **req, struct chv_err *err);
	void (*print)(FILE *out, const ProtobufCMessage *reply);
	/* Otherwise the whole command (streams, help). Returns the exit status. */
	int (*run)(struct ctl *c, const struct cmd_args *a);
};

extern const struct command chvctl_commands[];
extern const size_t chvctl_ncommands;

const struct command *chvctl_find_command(const char *name);

/* Splits argv (after the command name) by cmd's table entry: positionals,
 * the table's options ("--opt v" or "--opt=v"), chv-vmm flags. Checks the
 * positional count. 0 or -EINVAL with err naming the argument. Free with
 * chvctl_args_free(). */
chv_must_check int chvctl_parse_args(const struct command *cmd, int argc, char **argv,
				     struct cmd_args *a, struct chv_err *err);
void chvctl_args_free(struct cmd_args *a);
/* The value of the option called name, "" for a given flag, NULL if absent. */
const char *chvctl_opt(const struct cmd_args *a, const char *name);

/* The request of a unary command, heap-allocated: free with
 * chvctl_request_free(). 0 or -errno with err naming the argument. */
chv_must_check int chvctl_build_request(const struct cmd_args *a, ProtobufCMessage **req,
					struct chv_err *err);
void chvctl_request_free(ProtobufCMessage *req);
/* create's and run's request; serial_tty: see chvctl_config_from_flags(). */
chv_must_check int chvctl_build_create(const struct cmd_args *a, bool serial_tty,
				       ProtobufCMessage **req, struct chv_err *err);

/* "key=value,key=value" into the message m by its descriptor: strings,
 * booleans (on/off/true/false), 32-bit numbers, sizes for 64-bit ones
 * ("1G"). Nested messages and repeated fields are refused. */
chv_must_check int chvctl_parse_kv(ProtobufCMessage *m, const char *spec, struct chv_err *err);

/* chv-vmm flags into a chv.v1.VmConfig (vm_config_parse_args on a synthesized
 * argv, then vm_config_to_proto). Relative paths become absolute: chvd does
 * not share our working directory. default_serial_tty: "--serial tty" unless
 * the flags name a serial (run attaches to it). Free with vm_config_proto_free. */
chv_must_check int chvctl_config_from_flags(char **flags, int nflags, bool default_serial_tty,
					    Chv__V1__VmConfig **out, struct chv_err *err);

/* Prints the overall help (cmd NULL) or one command's. */
void chvctl_help(FILE *out, const struct command *cmd);

/* ---- human output (chvctl_format.c) ---- */

/* "VM_STATE_RUNNING" -> "running": an enum value's name without the prefix
 * its UNSPECIFIED value shares, lower case; the number when unknown. */
const char *chvctl_enum_short(const ProtobufCEnumDescriptor *d, int value, char *buf, size_t len);
/* Bytes as "512M", "1.5G", "4096"; exact values keep no fraction. */
void chvctl_size_str(uint64_t bytes, char *buf, size_t len);
/* Unix milliseconds as "2024-05-01T12:00:00.123Z". */
void chvctl_time_str(int64_t unix_ms, char *buf, size_t len);

void chvctl_print_ping(FILE *out, const ProtobufCMessage *reply);
void chvctl_print_list(FILE *out, const ProtobufCMessage *reply);
void chvctl_print_info(FILE *out, const ProtobufCMessage *reply);
void chvctl_print_counters(FILE *out, const ProtobufCMessage *reply);
void chvctl_print_vm_state(FILE *out, const ProtobufCMessage *reply); /* "vm1: running" */
void chvctl_print_vm_id(FILE *out, const ProtobufCMessage *reply);    /* "vm1" */
void chvctl_print_device(FILE *out, const ProtobufCMessage *reply);
void chvctl_print_nothing(FILE *out, const ProtobufCMessage *reply);
void chvctl_print_event(FILE *out, const Chv__V1__Event *ev);

/* ---- running commands (chvctl_run.c, chvctl_stream.c) ---- */

struct ctl {
	struct chvctl_opts opts;
	char target[256];
	struct rpc_channel *ch; /* opened by chvctl_channel() */
	FILE *out;
	FILE *errf;
};

/* The channel, opened on first use. 0 or an exit status (message printed). */
int chvctl_channel(struct ctl *c);
/* Prints "chvctl: STATUS_NAME: message" and returns CHVCTL_EXIT_RPC. rc is
 * what the rpc call returned, for failures without a gRPC status. */
int chvctl_rpc_fail(struct ctl *c, int rc, const struct rpc_result *res);
const char *chvctl_status_name(int status);

/* Runs one unary call of the table: build, call, print. Exit status. */
int chvctl_run_unary(struct ctl *c, const struct cmd_args *a);
/* One unary call; on success *reply is set. Exit status (errors printed). */
int chvctl_call(struct ctl *c, const char *method, const ProtobufCMessage *req,
		const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **reply,
		int timeout_ms);

int chvctl_cmd_help(struct ctl *c, const struct cmd_args *a);
int chvctl_cmd_events(struct ctl *c, const struct cmd_args *a);
int chvctl_cmd_console(struct ctl *c, const struct cmd_args *a);
int chvctl_cmd_run(struct ctl *c, const struct cmd_args *a);

/* The whole program, for main() and the tests: parses, dispatches, returns
 * the exit status. */
int chvctl_main(int argc, char **argv, FILE *out, FILE *errf);

#endif
