/* chvctl's command line: global options, the socket, each command's
 * arguments, key=value device specs and chv-vmm flags. Nothing here talks
 * to the daemon, so all of it is unit-tested. */
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

/* "-x" but not "-" (stdin by convention): a forgotten value, not a value. */
static bool looks_like_option(const char *s)
{
	return s[0] == '-' && s[1] != '\0';
}

static int parse_ms(const char *opt, const char *v, int *out, struct chv_err *err)
{
	uint64_t n;
	if (optparse_u64(v, &n) != 0 || n > INT_MAX)
		return chv_err_set(err, -EINVAL, "%s: \"%s\" is not a number of milliseconds", opt,
				   v);
	*out = (int)n;
	return 0;
}

int chvctl_parse_global(struct chvctl_opts *o, int argc, char **argv, int *cmd_index,
			struct chv_err *err)
{
	*o = (struct chvctl_opts){.timeout_ms = -1};
	int i;
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (!looks_like_option(arg))
			break;
		if (strcmp(arg, "--json") == 0) {
			o->json = true;
			continue;
		}
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			o->help = true;
			continue;
		}
		if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0) {
			o->version = true;
			continue;
		}
		if (strcmp(arg, "--insecure") == 0) {
			o->insecure = true;
			continue;
		}
		static const char *const valued[] = {"--socket", "--timeout", "--tls-ca",
						     "--tls-cert", "--tls-key"};
		const char *name = NULL, *v = NULL;
		for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]) && !name; k++) {
			size_t n = strlen(valued[k]);
			if (strncmp(arg, valued[k], n) == 0 && (arg[n] == '\0' || arg[n] == '='))
				name = valued[k];
		}
		if (!name)
			return chv_err_set(err, -EINVAL, "unknown option \"%s\"", arg);
		const char *eq = strchr(arg, '=');
		if (eq)
			v = eq + 1;
		else if (i + 1 < argc && !looks_like_option(argv[i + 1]))
			v = argv[++i];
		else
			return chv_err_set(err, -EINVAL, "%s needs a value", name);
		if (strcmp(name, "--timeout") == 0) {
			int rc = parse_ms("--timeout", v, &o->timeout_ms, err);
			if (rc)
				return rc;
			continue;
		}
		if (!*v)
			return chv_err_set(err, -EINVAL, "%s: empty path", name);
		if (strcmp(name, "--socket") == 0)
			o->socket = v;
		else if (strcmp(name, "--tls-ca") == 0)
			o->tls_ca = v;
		else if (strcmp(name, "--tls-cert") == 0)
			o->tls_cert = v;
		else
			o->tls_key = v;
	}
	*cmd_index = i;
	return 0;
}

int chvctl_socket_target(const char *socket_opt, char *out, size_t len, struct chv_err *err)
{
	const char *path = socket_opt;
	const char *env = getenv("CHVD_SOCKET");
	char buf[PATH_MAX];
	int n;

	if (!path && env && *env)
		path = env;
	if (!path && geteuid() == 0)
		path = "/run/chvd/chvd.sock";
	if (!path) {
		const char *xdg = getenv("XDG_RUNTIME_DIR");
		if (!xdg || !*xdg)
			return chv_err_set(err, -EINVAL,
					   "no socket: give --socket PATH, or set CHVD_SOCKET or "
					   "XDG_RUNTIME_DIR");
		n = snprintf(buf, sizeof(buf), "%s/chvd/chvd.sock", xdg);
		if (n < 0 || (size_t)n >= sizeof(buf))
			return chv_err_set(err, -ENAMETOOLONG,
					   "XDG_RUNTIME_DIR: \"%s\" is too long", xdg);
		path = buf;
	}
	if (strncmp(path, "tcp://", 6) == 0) {
		const char *hp = path + 6;
		const char *colon = strrchr(hp, ':');
		/* The port is checked by the rpc client; here only the shape. */
		if (!colon || colon == hp || !colon[1] || strchr(hp, '/'))
			return chv_err_set(err, -EINVAL,
					   "socket \"%s\" is not tcp://HOST:PORT (IPv6: "
					   "tcp://[ADDR]:PORT)",
					   path);
		n = snprintf(out, len, "%s", hp);
	} else if (strncmp(path, "unix:", 5) == 0 || strncmp(path, "unix-abstract:", 14) == 0) {
		n = snprintf(out, len, "%s", path);
	} else {
		n = snprintf(out, len, "unix:%s", path);
	}
	if (n < 0 || (size_t)n >= len)
		return chv_err_set(err, -ENAMETOOLONG, "socket path \"%s\" is too long", path);
	return 0;
}

bool chvctl_target_is_tcp(const char *target)
{
	return strncmp(target, "unix:", 5) != 0 && strncmp(target, "unix-abstract:", 14) != 0;
}

int chvctl_check_tls(const struct chvctl_opts *o, const char *target, struct chv_err *err)
{
	const char *tls_opt = o->tls_ca	    ? "--tls-ca"
			      : o->tls_cert ? "--tls-cert"
			      : o->tls_key  ? "--tls-key"
					    : NULL;
	if (!chvctl_target_is_tcp(target)) {
		if (tls_opt || o->insecure)
			return chv_err_set(err, -EINVAL,
					   "%s is for a tcp://HOST:PORT socket, not %s",
					   tls_opt ? tls_opt : "--insecure", target);
		return 0;
	}
	if (o->insecure && tls_opt)
		return chv_err_set(err, -EINVAL, "--insecure and %s exclude each other", tls_opt);
	if (!o->tls_cert != !o->tls_key)
		return chv_err_set(err, -EINVAL, "%s needs %s too",
				   o->tls_cert ? "--tls-cert" : "--tls-key",
				   o->tls_cert ? "--tls-key" : "--tls-cert");
	if (!o->insecure && !o->tls_ca && !o->tls_cert)
		return chv_err_set(
		    err, -EINVAL,
		    "tcp://%s needs --tls-ca, --tls-cert and --tls-key (mutual TLS), "
		    "or --insecure for a loopback chvd --insecure",
		    target);
	return 0;
}

static int find_opt(const struct command *cmd, const char *name, size_t len)
{
	for (int i = 0; i < CMD_MAX_OPTS && cmd->opts[i].name; i++)
		if (strlen(cmd->opts[i].name) == len && strncmp(cmd->opts[i].name, name, len) == 0)
			return i;
	return -1;
}

/* chv-vmm flags take their value as the next argument too; keep the pair
 * together so "--cmdline -x" or a value equal to one of our options cannot
 * be taken apart. Flags without a value are chv-vmm's -v, --no-reboot,
 * --help and --version. */
static bool vmm_flag_takes_value(const char *arg)
{
	static const char *const novalue[] = {"--verbose", "--no-reboot", "--help", "--version"};
	if (arg[1] != '-' || strchr(arg, '='))
		return false;
	for (size_t i = 0; i < sizeof(novalue) / sizeof(novalue[0]); i++)
		if (strcmp(arg, novalue[i]) == 0)
			return false;
	return true;
}

int chvctl_parse_args(const struct command *cmd, int argc, char **argv, struct cmd_args *a,
		      struct chv_err *err)
{
	*a = (struct cmd_args){.cmd = cmd};
	if (cmd->vmm_flags) {
		a->rest = calloc((size_t)argc + 1, sizeof(char *));
		if (!a->rest)
			return chv_err_set(err, -ENOMEM, "out of memory");
	}
	for (int i = 0; i < argc; i++) {
		char *arg = argv[i];
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			a->help = true;
			continue;
		}
		if (!looks_like_option(arg)) {
			if (a->npos >= cmd->max_pos)
				return chv_err_set(err, -EINVAL, "unexpected argument \"%s\"", arg);
			a->pos[a->npos++] = arg;
			continue;
		}
		const char *name = arg + (arg[1] == '-' ? 2 : 1);
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		int k = arg[1] == '-' ? find_opt(cmd, name, len) : -1;
		if (k < 0) {
			if (!cmd->vmm_flags)
				return chv_err_set(err, -EINVAL, "unknown option \"%s\"", arg);
			a->rest[a->nrest++] = arg;
			if (vmm_flag_takes_value(arg) && i + 1 < argc &&
			    !looks_like_option(argv[i + 1]))
				a->rest[a->nrest++] = argv[++i];
			continue;
		}
		const struct cmd_opt *o = &cmd->opts[k];
		if (a->val[k])
			return chv_err_set(err, -EINVAL, "--%s given twice", o->name);
		if (!o->arg) {
			if (eq)
				return chv_err_set(err, -EINVAL, "--%s takes no value (got \"%s\")",
						   o->name, eq + 1);
			a->val[k] = "";
		} else if (eq) {
			a->val[k] = eq + 1;
		} else if (i + 1 < argc && !looks_like_option(argv[i + 1])) {
			a->val[k] = argv[++i];
		} else {
			return chv_err_set(err, -EINVAL, "--%s needs a value (%s)", o->name,
					   o->arg);
		}
		if (o->arg && !*a->val[k])
			return chv_err_set(err, -EINVAL, "--%s: empty value", o->name);
	}
	if (a->help)
		return 0;
	if (a->npos < cmd->min_pos)
		return chv_err_set(err, -EINVAL, "missing %s", cmd->pos_names[a->npos]);
	return 0;
}

void chvctl_args_free(struct cmd_args *a)
{
	free(a->rest);
	a->rest = NULL;
	a->nrest = 0;
}

const char *chvctl_opt(const struct cmd_args *a, const char *name)
{
	int k = find_opt(a->cmd, name, strlen(name));
	return k < 0 ? NULL : a->val[k];
}

static int kv_bool(const char *key, const char *v, protobuf_c_boolean *out, struct chv_err *err)
{
	if (strcmp(v, "on") == 0 || strcmp(v, "true") == 0)
		*out = 1;
	else if (strcmp(v, "off") == 0 || strcmp(v, "false") == 0)
		*out = 0;
	else
		return chv_err_set(err, -EINVAL, "%s=%s is not on, off, true or false", key, v);
	return 0;
}

static int kv_set(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const char *v,
		  struct chv_err *err)
{
	char *p = (char *)m + f->offset;
	uint64_t n;

	if (f->label == PROTOBUF_C_LABEL_REPEATED || f->type == PROTOBUF_C_TYPE_MESSAGE)
		return chv_err_set(err, -EINVAL, "%s= is not supported by chvctl yet", f->name);
	if (!*v)
		return chv_err_set(err, -EINVAL, "%s= needs a value", f->name);
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING: {
		char *s = strdup(v);
		if (!s)
			return chv_err_set(err, -ENOMEM, "out of memory");
		*(char **)p = s;
		return 0;
	}
	case PROTOBUF_C_TYPE_BOOL:
		return kv_bool(f->name, v, (protobuf_c_boolean *)p, err);
	case PROTOBUF_C_TYPE_UINT32:
		if (optparse_u64(v, &n) != 0 || n > UINT32_MAX)
			return chv_err_set(err, -EINVAL, "%s=%s is not a number (0..%" PRIu32 ")",
					   f->name, v, UINT32_MAX);
		*(uint32_t *)p = (uint32_t)n;
		return 0;
	case PROTOBUF_C_TYPE_UINT64:
		if (vm_config_parse_size(v, &n) != 0)
			return chv_err_set(err, -EINVAL, "%s=%s is not a size (bytes, or K/M/G/T)",
					   f->name, v);
		*(uint64_t *)p = n;
		return 0;
	default:
		return chv_err_set(err, -EINVAL, "%s= is not supported by chvctl yet", f->name);
	}
}

/* "path, readonly, ..." for the error of an unknown key. */
static void key_list(const ProtobufCMessageDescriptor *d, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < d->n_fields && n < len; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->label == PROTOBUF_C_LABEL_REPEATED || f->type == PROTOBUF_C_TYPE_MESSAGE)
			continue;
		int w = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", f->name);
		if (w < 0)
			break;
		n += (size_t)w;
	}
}

int chvctl_parse_kv(ProtobufCMessage *m, const char *spec, struct chv_err *err)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	bool seen[64] = {false};
	int rc = 0;

	if (!*spec)
		return chv_err_set(err, -EINVAL, "empty device specification");
	char *copy = strdup(spec);
	if (!copy)
		return chv_err_set(err, -ENOMEM, "out of memory");
	char *item = copy;
	/* strtok_r would skip empty items; "a=1,,b=2" is a typo worth naming. */
	for (char *next; item; item = next) {
		next = strchr(item, ',');
		if (next)
			*next++ = '\0';
		if (!*item) {
			rc = chv_err_set(err, -EINVAL, "empty item in \"%s\"", spec);
			break;
		}
		char *eq = strchr(item, '=');
		if (!eq) {
			rc = chv_err_set(err, -EINVAL, "\"%s\" is not key=value in \"%s\"", item,
					 spec);
			break;
		}
		*eq = '\0';
		const ProtobufCFieldDescriptor *f =
		    protobuf_c_message_descriptor_get_field_by_name(d, item);
		if (!f) {
			char keys[256];
			key_list(d, keys, sizeof(keys));
			rc = chv_err_set(err, -EINVAL, "unknown key \"%s\" (keys: %s)", item, keys);
			break;
		}
		size_t idx = (size_t)(f - d->fields);
		if (idx < sizeof(seen) && seen[idx]) {
			rc = chv_err_set(err, -EINVAL, "key \"%s\" given twice in \"%s\"", item,
					 spec);
			break;
		}
		if (idx < sizeof(seen))
			seen[idx] = true;
		rc = kv_set(m, f, eq + 1, err);
		if (rc)
			break;
	}
	free(copy);
	return rc;
}

/* chv-vmm options that only make sense for a process of one's own: the API
 * has no field for them, so chvctl refuses them rather than drop them. */
static int refuse_process_flags(const struct vm_config *c, struct chv_err *err)
{
	const char *flag = NULL;
	if (c->verbosity)
		flag = "--verbose";
	else if (c->log_file)
		flag = "--log-file";
	else if (c->seccomp != SECCOMP_TRUE)
		flag = "--seccomp";
	else if (c->no_reboot)
		flag = "--no-reboot";
	else if (c->hypervisor && strcmp(c->hypervisor, "kvm") != 0)
		flag = "--hypervisor";
	if (flag)
		return chv_err_set(err, -EINVAL,
				   "%s is a chv-vmm process option; chvd sets it for its workers",
				   flag);
	/* The worker is chvd's child, not ours: our fds never reach it. */
	for (uint32_t i = 0; i < c->nnets; i++)
		if (c->nets[i].nfds)
			return chv_err_set(
			    err, -EINVAL,
			    "--net: fd=%d: file descriptors cannot be passed to chvd "
			    "(its worker is another process); use tap=NAME",
			    c->nets[i].fds[0]);
	return 0;
}

static int absolutize(char **path, struct chv_err *err)
{
	if (!*path || !**path || **path == '/')
		return 0;
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof(cwd)))
		return chv_err_set(err, -errno, "cannot resolve \"%s\": %s", *path,
				   strerror(errno));
	char *abs = NULL;
	if (asprintf(&abs, "%s/%s", cwd, *path) < 0)
		return chv_err_set(err, -ENOMEM, "out of memory");
	free(*path);
	*path = abs;
	return 0;
}

static bool names_serial(char **flags, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(flags[i], "--serial") == 0 || strncmp(flags[i], "--serial=", 9) == 0)
			return true;
	return false;
}

int chvctl_config_from_flags(char **flags, int nflags, bool default_serial_tty,
			     Chv__V1__VmConfig **out, struct chv_err *err)
{
	char **sv = calloc((size_t)nflags + 4, sizeof(char *));
	struct vm_config c;
	int rc;

	*out = NULL;
	if (!sv)
		return chv_err_set(err, -ENOMEM, "out of memory");
	int n = 0;
	sv[n++] = (char *)"chv-vmm";
	if (default_serial_tty && !names_serial(flags, nflags)) {
		sv[n++] = (char *)"--serial";
		sv[n++] = (char *)"tty";
	}
	for (int i = 0; i < nflags; i++)
		sv[n++] = flags[i];

	vm_config_init(&c);
	rc = vm_config_parse_args(&c, n, sv, err);
	if (rc == CONFIG_PARSED_HELP || rc == CONFIG_PARSED_VERSION)
		rc = chv_err_set(err, -EINVAL, "%s is not a VM option here (try: chvctl help)",
				 rc == CONFIG_PARSED_HELP ? "--help" : "--version");
	if (!rc)
		rc = refuse_process_flags(&c, err);
	if (!rc && !c.payload.kernel)
		rc = chv_err_set(err, -EINVAL, "--kernel is required");
	if (!rc)
		rc = absolutize(&c.payload.kernel, err);
	if (!rc)
		rc = absolutize(&c.payload.initramfs, err);
	if (!rc)
		rc = absolutize(&c.serial.path, err);
	if (!rc)
		rc = absolutize(&c.console.path, err);
	if (!rc)
		rc = absolutize(&c.rng.src, err);
	for (uint32_t i = 0; !rc && i < c.ndisks; i++)
		rc = absolutize(&c.disks[i].path, err);
	if (!rc && vm_config_to_proto(&c, out) != 0)
		rc = chv_err_set(err, -ENOMEM, "out of memory");
	vm_config_free(&c);
	free(sv);
	return rc;
}
