/* chvctl's driver: global options, dispatch through the command table, the
 * channel, unary calls and how their errors reach the person. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/wire.h"
#include "client/chvctl.h"
#include "client/json.h"

#ifndef CHV_VERSION
#define CHV_VERSION "unknown"
#endif

/* A graceful Shutdown may take its own timeout; the call's deadline must
 * leave it that long and a little more. */
#define SHUTDOWN_GRACE_DEFAULT_MS  10000
#define SHUTDOWN_DEADLINE_SLACK_MS 10000

/* A PEM file larger than this is not a certificate or a key. */
#define PEM_MAX_BYTES (1 << 20)

const char *chvctl_status_name(int status)
{
	return api_status_name(status);
}

int chvctl_rpc_fail(struct ctl *c, int rc, const struct rpc_result *res)
{
	/* A failure without a gRPC status (rc < 0) happened on our side. */
	int status = res->status ? res->status : 2 /* UNKNOWN */;
	const char *msg = res->message;
	if (!*msg)
		msg = rc < 0 ? strerror(-rc) : "no details";
	fprintf(c->errf, "chvctl: %s: %s\n", chvctl_status_name(status), msg);
	return CHVCTL_EXIT_RPC;
}

/* Reads the PEM file given to opt (NULL: none) into *out, NUL-terminated. */
static int read_pem(const char *opt, const char *path, char **out, struct chv_err *err)
{
	*out = NULL;
	if (!path)
		return 0;
	FILE *f = fopen(path, "re");
	if (!f)
		return chv_err_set(err, -errno, "%s: cannot open %s: %s", opt, path,
				   strerror(errno));
	char *buf = malloc(PEM_MAX_BYTES + 1);
	size_t n = buf ? fread(buf, 1, PEM_MAX_BYTES + 1, f) : 0;
	int bad = !buf ? ENOMEM : ferror(f) ? EIO : 0;
	fclose(f);
	if (bad) {
		free(buf);
		return chv_err_set(err, -bad, "%s: reading %s: %s", opt, path, strerror(bad));
	}
	buf[n > PEM_MAX_BYTES ? PEM_MAX_BYTES : n] = '\0';
	if (n > PEM_MAX_BYTES || !strstr(buf, "-----BEGIN ")) {
		free(buf);
		return chv_err_set(err, -EINVAL, "%s: %s is not a PEM file", opt, path);
	}
	*out = buf;
	return 0;
}

static void free_pem(char *pem)
{
	if (pem) {
		explicit_bzero(pem, strlen(pem));
		free(pem);
	}
}

/* Opens a TCP channel; gRPC copies the PEM text, so it is freed here. A
 * file that cannot be used is a usage error (exit 2), like a bad option. */
static int open_tcp(struct ctl *c, struct chv_err *err, bool *usage)
{
	char *ca = NULL, *cert = NULL, *key = NULL;
	int r;
	*usage = true;
	if ((r = read_pem("--tls-ca", c->opts.tls_ca, &ca, err)) == 0 &&
	    (r = read_pem("--tls-cert", c->opts.tls_cert, &cert, err)) == 0 &&
	    (r = read_pem("--tls-key", c->opts.tls_key, &key, err)) == 0) {
		struct rpc_client_tls tls = {
		    .ca_pem = ca, .cert_pem = cert, .key_pem = key, .insecure = c->opts.insecure};
		r = rpc_channel_open_tls(&c->ch, c->target, &tls, err);
		*usage = r == -EINVAL; /* a malformed HOST:PORT */
	}
	free_pem(ca);
	free_pem(cert);
	free_pem(key);
	return r;
}

int chvctl_channel(struct ctl *c)
{
	struct chv_err err = {0};
	if (c->ch)
		return 0;
	if (chvctl_socket_target(c->opts.socket, c->target, sizeof(c->target), &err) != 0 ||
	    chvctl_check_tls(&c->opts, c->target, &err) != 0) {
		fprintf(c->errf, "chvctl: %s\n", err.msg);
		return CHVCTL_EXIT_USAGE;
	}
	bool usage = false;
	int r = chvctl_target_is_tcp(c->target) ? open_tcp(c, &err, &usage)
						: rpc_channel_open(&c->ch, c->target, &err);
	if (r != 0 && usage) {
		c->ch = NULL;
		fprintf(c->errf, "chvctl: %s\n", err.msg);
		return CHVCTL_EXIT_USAGE;
	}
	if (r != 0) {
		c->ch = NULL;
		fprintf(c->errf, "chvctl: UNAVAILABLE: %s: %s\n", c->target,
			*err.msg ? err.msg : strerror(-err.code));
		return CHVCTL_EXIT_RPC;
	}
	return 0;
}

int chvctl_call(struct ctl *c, const char *method, const ProtobufCMessage *req,
		const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **reply,
		int timeout_ms)
{
	struct rpc_result res = {0};
	*reply = NULL;
	int rc = chvctl_channel(c);
	if (rc)
		return rc;
	rc = rpc_call_unary(c->ch, method, req, reply_desc, reply, timeout_ms, false, &res);
	if (rc != 0 || res.status != 0 || !*reply) {
		if (*reply)
			protobuf_c_message_free_unpacked(*reply, NULL);
		*reply = NULL;
		return chvctl_rpc_fail(c, rc, &res);
	}
	return 0;
}

static int call_timeout(const struct ctl *c, const ProtobufCMessage *req)
{
	if (c->opts.timeout_ms >= 0)
		return c->opts.timeout_ms;
	if (req->descriptor == &chv__v1__shutdown_request__descriptor) {
		const Chv__V1__ShutdownRequest *r = (const Chv__V1__ShutdownRequest *)req;
		uint64_t grace = r->timeout_ms ? r->timeout_ms : SHUTDOWN_GRACE_DEFAULT_MS;
		uint64_t t = grace + SHUTDOWN_DEADLINE_SLACK_MS;
		if (t > CHVCTL_DEFAULT_TIMEOUT_MS)
			return t > INT32_MAX ? 0 : (int)t;
	}
	return CHVCTL_DEFAULT_TIMEOUT_MS;
}

int chvctl_run_unary(struct ctl *c, const struct cmd_args *a)
{
	const struct command *cmd = a->cmd;
	struct chv_err err = {0};
	ProtobufCMessage *req = NULL, *reply = NULL;

	if (chvctl_build_request(a, &req, &err) != 0) {
		fprintf(c->errf, "chvctl: %s: %s\n", cmd->name, err.msg);
		return err.code == -ENOMEM ? CHVCTL_EXIT_RPC : CHVCTL_EXIT_USAGE;
	}
	int rc = chvctl_call(c, cmd->method, req, cmd->reply, &reply, call_timeout(c, req));
	chvctl_request_free(req);
	if (rc)
		return rc;
	if (c->opts.json) {
		if (json_print(c->out, reply, JSON_PRETTY) != 0)
			rc = CHVCTL_EXIT_RPC;
	} else {
		cmd->print(c->out, reply);
	}
	protobuf_c_message_free_unpacked(reply, NULL);
	return rc;
}

int chvctl_cmd_help(struct ctl *c, const struct cmd_args *a)
{
	if (a->npos == 0) {
		chvctl_help(c->out, NULL);
		return CHVCTL_EXIT_OK;
	}
	const struct command *cmd = chvctl_find_command(a->pos[0]);
	if (!cmd) {
		fprintf(c->errf, "chvctl: help: unknown command \"%s\"\n", a->pos[0]);
		return CHVCTL_EXIT_USAGE;
	}
	chvctl_help(c->out, cmd);
	return CHVCTL_EXIT_OK;
}

static int dispatch(struct ctl *c, int argc, char **argv)
{
	struct chv_err err = {0};
	int ci;

	if (chvctl_parse_global(&c->opts, argc, argv, &ci, &err) != 0) {
		fprintf(c->errf, "chvctl: %s\n", err.msg);
		return CHVCTL_EXIT_USAGE;
	}
	if (c->opts.version) {
		fprintf(c->out, "chvctl %s\n", CHV_VERSION);
		return CHVCTL_EXIT_OK;
	}
	const struct command *cmd = ci < argc ? chvctl_find_command(argv[ci]) : NULL;
	if (c->opts.help) {
		chvctl_help(c->out, cmd);
		return CHVCTL_EXIT_OK;
	}
	if (ci == argc) {
		fputs("chvctl: missing command\n", c->errf);
		chvctl_help(c->errf, NULL);
		return CHVCTL_EXIT_USAGE;
	}
	if (!cmd) {
		fprintf(c->errf, "chvctl: unknown command \"%s\" (see \"chvctl help\")\n",
			argv[ci]);
		return CHVCTL_EXIT_USAGE;
	}

	struct cmd_args a;
	int rc = chvctl_parse_args(cmd, argc - ci - 1, argv + ci + 1, &a, &err);
	if (rc) {
		fprintf(c->errf, "chvctl: %s: %s\n", cmd->name, err.msg);
		fprintf(c->errf, "usage: chvctl %s %s\n", cmd->name, cmd->usage);
		rc = err.code == -ENOMEM ? CHVCTL_EXIT_RPC : CHVCTL_EXIT_USAGE;
	} else if (a.help) {
		chvctl_help(c->out, cmd);
	} else {
		rc = cmd->run ? cmd->run(c, &a) : chvctl_run_unary(c, &a);
	}
	chvctl_args_free(&a);
	return rc;
}

int chvctl_main(int argc, char **argv, FILE *out, FILE *errf)
{
	struct ctl c = {.out = out, .errf = errf};
	int rc = dispatch(&c, argc, argv);
	if (c.ch)
		rpc_channel_close(c.ch);
	if (fflush(out) != 0 && rc == CHVCTL_EXIT_OK) {
		fprintf(errf, "chvctl: writing the output: %s\n", strerror(errno));
		rc = CHVCTL_EXIT_RPC;
	}
	return rc;
}
