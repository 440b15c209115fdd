/* chvd: the daemon. Serves the gRPC API on a unix socket (its own, or one
 * systemd passes) and optionally on TCP with mutual TLS, keeps the VM
 * registry and supervises one chv-vmm worker per VM; see docs/daemon.md. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "daemon/dlog.h"
#include "daemon/health.h"
#include "daemon/pool.h"
#include "daemon/registry.h"
#include "daemon/rpc.h"
#include "daemon/sandbox.h"
#include "daemon/services.h"
#include "daemon/store.h"
#include "daemon/vms.h"
#include "daemon/wconn.h"
#include "vm/seccomp.h"

struct options {
	char listen[PATH_MAX];
	char listen_ro[PATH_MAX]; /* --listen-ro: "" when not given */
	const char *socket_group; /* --socket-group as given, NULL: none */
	gid_t socket_gid;
	char state_dir[PATH_MAX];
	char runtime_dir[PATH_MAX];
	char vmm[PATH_MAX];
	unsigned max_vms;
	unsigned warm_workers;
	bool shutdown_vms_on_exit;
	enum seccomp_mode seccomp; /* --seccomp: chvd's and the workers' */
	const char *vm_user;	   /* --vm-user: NULL when not given */
	int verbosity;
	/* --listen-tcp: NULL when not given. */
	const char *tcp;
	const char *tls_cert, *tls_key, *tls_client_ca;
	bool insecure;
};

/* A PEM file larger than this is not a certificate or a key. */
#define PEM_MAX_BYTES (1u << 20)

static volatile sig_atomic_t api_shutdown_vms;

static const char usage_text[] =
    "usage: chvd [options]\n"
    "  --listen PATH           API socket (default /run/chvd/chvd.sock as root,\n"
    "                          $XDG_RUNTIME_DIR/chvd/chvd.sock otherwise); a socket\n"
    "                          passed by systemd (socket activation) is used instead\n"
    "  --state-dir DIR         VM definitions (default /var/lib/chvd as root,\n"
    "                          $XDG_STATE_HOME/chvd otherwise)\n"
    "  --listen-ro PATH        also serve a read-only API socket: Ping, Info, List,\n"
    "                          Counters, WatchEvents and health checks only (systemd:\n"
    "                          the passed socket named \"ro\" is used instead)\n"
    "  --socket-group NAME|GID the group of the API sockets (mode 0660: its members may\n"
    "                          use them; default: chvd's group)\n"
    "  --runtime-dir DIR       worker sockets and logs (default: the socket's directory)\n"
    "  --vmm PATH              the chv-vmm binary (default: next to chvd)\n"
    "  --listen-tcp HOST:PORT  also serve the API on TCP, with mutual TLS (PORT 0:\n"
    "                          any free port, logged); [ADDR]:PORT for IPv6\n"
    "  --tls-cert PEM          the server's certificate (chain) for --listen-tcp\n"
    "  --tls-key PEM           its private key\n"
    "  --tls-client-ca PEM     CA(s) that sign the client certificates accepted\n"
    "  --insecure              --listen-tcp without TLS or any authentication;\n"
    "                          only on a loopback address (127.0.0.0/8, ::1, localhost)\n"
    "  --max-vms N             VMs this daemon accepts (default 1024)\n"
    "  --warm-workers N        idle workers kept started for the next Creates\n"
    "                          (default 2; 0: start each worker on Create)\n"
    "  --shutdown-vms-on-exit  stop every VM on SIGTERM (default: leave them running)\n"
    "  --seccomp true|log|false  system call filters: the workers' per-thread\n"
    "                          allow-lists and chvd's own deny-list (default true;\n"
    "                          log: only log what would be refused)\n"
    "  --vm-user USER          workers run their VM as this unprivileged user\n"
    "                          (docs/security.md)\n"
    "  -v, --verbose           more logging (repeat for debug)\n"
    "  -h, --help  -V, --version\n";

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "chvd: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nTry 'chvd --help'.\n");
	va_end(ap);
	return 2;
}

static int set_path(char *dst, const char *opt, const char *v)
{
	if (!v[0] || strlen(v) >= PATH_MAX - 128)
		return usage_error("%s: path is empty or too long", opt);
	snprintf(dst, PATH_MAX, "%s", v);
	return 0;
}

static void dir_of(const char *path, char *out)
{
	snprintf(out, PATH_MAX, "%s", path);
	char *slash = strrchr(out, '/');
	if (slash && slash != out)
		*slash = 0;
	else
		snprintf(out, PATH_MAX, ".");
}

/* --listen-tcp and its companions, before anything is started. */
static int check_tcp_options(const struct options *o)
{
	const char *tls_opt = o->tls_cert	 ? "--tls-cert"
			      : o->tls_key	 ? "--tls-key"
			      : o->tls_client_ca ? "--tls-client-ca"
						 : NULL;
	char host[256];
	unsigned port;

	if (!o->tcp) {
		if (tls_opt || o->insecure)
			return usage_error("%s is only meaningful with --listen-tcp",
					   tls_opt ? tls_opt : "--insecure");
		return 0;
	}
	int r = rpc_addr_split(o->tcp, host, sizeof(host), &port);
	if (r == -ENAMETOOLONG)
		return usage_error("--listen-tcp: the host in \"%s\" is too long", o->tcp);
	if (r < 0)
		return usage_error("--listen-tcp: \"%s\" is not HOST:PORT (IPv6: [ADDR]:PORT, "
				   "PORT 0..65535)",
				   o->tcp);
	if (o->insecure) {
		if (tls_opt)
			return usage_error("--insecure and %s exclude each other", tls_opt);
		if (!rpc_host_is_loopback(host))
			return usage_error(
			    "--insecure: refusing to serve the API without TLS on %s: %s is "
			    "not a loopback address (127.0.0.0/8, ::1, localhost); use "
			    "--tls-cert, --tls-key and --tls-client-ca",
			    o->tcp, host);
		return 0;
	}
	if (!o->tls_cert || !o->tls_key || !o->tls_client_ca)
		return usage_error("--listen-tcp %s needs --tls-cert, --tls-key and "
				   "--tls-client-ca (missing %s), or --insecure on a loopback "
				   "address",
				   o->tcp,
				   !o->tls_cert	 ? "--tls-cert"
				   : !o->tls_key ? "--tls-key"
						 : "--tls-client-ca");
	return 0;
}

/* --socket-group: a group name, or a numeric gid (which need not be named). */
static int resolve_group(const char *v, gid_t *gid)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (v[0] >= '0' && v[0] <= '9' && !*end) {
		if (errno || n >= (gid_t)-1)
			return usage_error("--socket-group: \"%s\" is not a valid gid", v);
		*gid = (gid_t)n;
		return 0;
	}
	struct group gr, *found = NULL;
	char buf[16384];
	int e = getgrnam_r(v, &gr, buf, sizeof(buf), &found);
	if (e)
		return usage_error("--socket-group: cannot look up group \"%s\": %s", v,
				   strerror(e));
	if (!found)
		return usage_error("--socket-group: there is no group \"%s\"", v);
	*gid = gr.gr_gid;
	return 0;
}

static int parse_options(struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"state-dir", required_argument, NULL, 's'},
	    {"runtime-dir", required_argument, NULL, 'r'},
	    {"vmm", required_argument, NULL, 'm'},
	    {"max-vms", required_argument, NULL, 'n'},
	    {"warm-workers", required_argument, NULL, 'w'},
	    {"shutdown-vms-on-exit", no_argument, NULL, 'x'},
	    {"seccomp", required_argument, NULL, 'S'},
	    {"vm-user", required_argument, NULL, 'U'},
	    {"listen-tcp", required_argument, NULL, 't'},
	    {"tls-cert", required_argument, NULL, 'c'},
	    {"tls-key", required_argument, NULL, 'k'},
	    {"tls-client-ca", required_argument, NULL, 'a'},
	    {"insecure", no_argument, NULL, 'i'},
	    {"listen-ro", required_argument, NULL, 'o'},
	    {"socket-group", required_argument, NULL, 'g'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {0},
	};
	const char *xdg_run = getenv("XDG_RUNTIME_DIR");
	bool root = geteuid() == 0;
	if (root || !xdg_run)
		snprintf(o->listen, PATH_MAX, "/run/chvd/chvd.sock");
	else
		snprintf(o->listen, PATH_MAX, "%s/chvd/chvd.sock", xdg_run);
	const char *xdg_state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	if (root)
		snprintf(o->state_dir, PATH_MAX, "/var/lib/chvd");
	else if (xdg_state)
		snprintf(o->state_dir, PATH_MAX, "%s/chvd", xdg_state);
	else
		snprintf(o->state_dir, PATH_MAX, "%s/.local/state/chvd", home ? home : "/tmp");
	o->max_vms = 1024;
	o->warm_workers = 2;
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = 0;
	dir_of(self, o->vmm);
	strncat(o->vmm, "/chv-vmm", PATH_MAX - strlen(o->vmm) - 1);
	bool runtime_set = false;
	int c, r;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if ((r = set_path(o->listen, "--listen", optarg)))
				return r;
			break;
		case 's':
			if ((r = set_path(o->state_dir, "--state-dir", optarg)))
				return r;
			break;
		case 'r':
			if ((r = set_path(o->runtime_dir, "--runtime-dir", optarg)))
				return r;
			runtime_set = true;
			break;
		case 'm':
			if ((r = set_path(o->vmm, "--vmm", optarg)))
				return r;
			break;
		case 'n': {
			char *end;
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			if (errno || *end || !optarg[0] || optarg[0] == '-' || v < 1 || v > 100000)
				return usage_error("--max-vms: \"%s\" is not a number in 1..100000",
						   optarg);
			o->max_vms = (unsigned)v;
			break;
		}
		case 'w': {
			char *end;
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			if (errno || *end || !optarg[0] || optarg[0] == '-' || v > 64)
				return usage_error(
				    "--warm-workers: \"%s\" is not a number in 0..64", optarg);
			o->warm_workers = (unsigned)v;
			break;
		}
		case 'x':
			o->shutdown_vms_on_exit = true;
			break;
		case 'S':
			if (chv_seccomp_mode_parse(optarg, &o->seccomp) < 0)
				return usage_error(
				    "--seccomp: unknown value \"%s\" (true, log or false)", optarg);
			break;
		case 'U': {
			struct passwd *pw = getpwnam(optarg);
			if (!pw || pw->pw_uid == 0)
				return usage_error("--vm-user: %s is not an unprivileged user",
						   optarg);
			o->vm_user = optarg;
			break;
		}
		case 't':
			o->tcp = optarg;
			break;
		case 'c':
			o->tls_cert = optarg;
			break;
		case 'k':
			o->tls_key = optarg;
			break;
		case 'a':
			o->tls_client_ca = optarg;
			break;
		case 'i':
			o->insecure = true;
			break;
		case 'o':
			if ((r = set_path(o->listen_ro, "--listen-ro", optarg)))
				return r;
			break;
		case 'g':
			if ((r = resolve_group(optarg, &o->socket_gid)))
				return r;
			o->socket_group = optarg;
			break;
		case 'v':
			o->verbosity++;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		case 'V':
			printf("chvd %s\n", CHV_VERSION);
			exit(0);
		case ':':
			return usage_error("option %s needs a value", argv[optind - 1]);
		default:
			return usage_error("unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument \"%s\"", argv[optind]);
	if (!runtime_set)
		dir_of(o->listen, o->runtime_dir);
	if (o->listen_ro[0] && strcmp(o->listen_ro, o->listen) == 0)
		return usage_error("--listen-ro: %s is the read-write socket (--listen) too",
				   o->listen_ro);
	return check_tcp_options(o);
}

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1;; p++) {
		if (*p == '/' || !*p) {
			char c = *p;
			*p = 0;
			if (mkdir(tmp, mode) < 0 && errno != EEXIST)
				return -errno;
			*p = c;
			if (!c)
				return 0;
		}
	}
}

/* A second chvd on the same socket must refuse, not steal it: the lock is
 * taken before the socket is touched. */
static int take_lock(const char *listen, struct chv_err *err)
{
	char path[PATH_MAX + 8];
	snprintf(path, sizeof(path), "%s.lock", listen);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return chv_err_set(err, -errno, "cannot open lock %s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			return chv_err_set(err, -EBUSY,
					   "another chvd is serving %s (lock %s is held)", listen,
					   path);
		return chv_err_set(err, -e, "cannot lock %s: %s", path, strerror(e));
	}
	return fd; /* held for the process's life */
}

/* The directory of an API socket: created 0755 (group members must reach
 * the socket, whose own mode 0660 keeps everyone else out); one that every
 * user may write is refused: anyone could replace the socket there. */
static int socket_dir(const char *opt, const char *path, const struct options *o,
		      struct chv_err *err)
{
	char dir[PATH_MAX];
	dir_of(path, dir);
	mode_t old = umask(022); /* no other thread runs yet */
	int r = mkdir_p(dir, 0755);
	umask(old);
	struct stat st;
	if (r < 0 || stat(dir, &st) < 0)
		return chv_err_set(err, r < 0 ? r : -errno, "%s: cannot create %s: %s", opt, dir,
				   strerror(r < 0 ? -r : errno));
	if (!S_ISDIR(st.st_mode))
		return chv_err_set(err, -ENOTDIR, "%s: %s is not a directory", opt, dir);
	if (st.st_mode & S_IWOTH)
		return chv_err_set(err, -EPERM,
				   "%s: %s is writable by every user (mode %04o): another user "
				   "could replace the socket there; use a directory that only "
				   "chvd's user can write",
				   opt, dir, (unsigned)(st.st_mode & 07777));
	bool group_enters =
	    (st.st_mode & S_IXOTH) || (st.st_gid == o->socket_gid && (st.st_mode & S_IXGRP));
	if (o->socket_group && !group_enters)
		dlog(DLOG_WARNING, NULL,
		     "--socket-group %s: its members cannot reach %s: %s is mode %04o",
		     o->socket_group, path, dir, (unsigned)(st.st_mode & 07777));
	return 0;
}

/* Our own API socket at path (its directory made by socket_dir()): mode
 * 0660, group --socket-group, both set before listen() so that no
 * connection is accepted with other permissions. */
static int listen_unix(const char *opt, const char *path, const struct options *o,
		       struct chv_err *err)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(a.sun_path))
		return chv_err_set(err, -ENAMETOOLONG, "%s: %s is too long for a unix socket", opt,
				   path);
	strcpy(a.sun_path, path);
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return chv_err_set(err, -EEXIST, "%s: %s exists and is not a socket", opt,
					   path);
		unlink(path); /* stale: we hold the lock */
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return chv_err_set(err, -errno, "socket: %s", strerror(errno));
	const char *step = "bind";
	int r = bind(fd, (struct sockaddr *)&a, sizeof(a));
	if (r == 0 && o->socket_group) {
		step = "chown";
		r = chown(path, (uid_t)-1, o->socket_gid);
	}
	if (r == 0) {
		step = "chmod";
		r = chmod(path, 0660);
	}
	if (r == 0) {
		step = "listen";
		r = listen(fd, 128);
	}
	if (r < 0) {
		int e = errno;
		close(fd);
		if (strcmp(step, "bind"))
			unlink(path);
		if (strcmp(step, "chown") == 0)
			return chv_err_set(
			    err, -e, "--socket-group %s: cannot give %s to gid %u: %s",
			    o->socket_group, path, (unsigned)o->socket_gid, strerror(e));
		return chv_err_set(err, -e, "%s: cannot listen on %s (%s): %s", opt, path, step,
				   strerror(e));
	}
	return fd;
}

/* The sockets systemd passed (socket activation): the one named "ro"
 * (FileDescriptorName=ro) is read-only, any other the read-write one.
 * *api stays -1 when systemd passed nothing. */
static int passed_sockets(int *api, int *ro, struct chv_err *err)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);
	int r = 0;

	*api = *ro = -1;
	if (n < 0)
		return chv_err_set(err, n, "socket activation: %s", strerror(-n));
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		const char *name = names && names[i] ? names[i] : "";
		int *slot = strcmp(name, "ro") == 0 ? ro : api;
		if (r < 0) {
		} else if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0) {
			r = chv_err_set(err, -EINVAL,
					"the socket systemd passed as fd %d (name \"%s\") is not a "
					"listening unix stream socket",
					fd, name);
		} else if (*slot >= 0) {
			r = chv_err_set(
			    err, -EINVAL,
			    "systemd passed two %s sockets (fds %d and %d); chvd serves "
			    "one of each (FileDescriptorName=ro for the read-only one)",
			    slot == ro ? "read-only" : "read-write", *slot, fd);
		} else {
			*slot = fd;
			dlog(DLOG_NOTICE, NULL, "serving the %s socket systemd passed (fd %d%s%s)",
			     slot == ro ? "read-only" : "read-write", fd, name[0] ? ", name " : "",
			     name);
		}
		if (names)
			free(names[i]);
	}
	free(names);
	if (r == 0 && n > 0 && *api < 0)
		r = chv_err_set(err, -EINVAL,
				"systemd passed only a read-only socket (FileDescriptorName=ro); "
				"the read-write one is missing");
	return r;
}

static void on_accept(void *ctx, const struct rpc_peer *p)
{
	(void)ctx;
	/* The audit trail is on by default: notice is chvd's default level. */
	dlog(DLOG_NOTICE, NULL, "connection fd %d from pid %d uid %u gid %u%s", p->fd, (int)p->pid,
	     (unsigned)p->uid, (unsigned)p->gid, p->read_only ? " on the read-only socket" : "");
}

/* Reads a PEM file that must hold marker ("CERTIFICATE-----", "PRIVATE
 * KEY-----"); *out is NUL-terminated, free with pem_free(). */
static int pem_read(const char *opt, const char *path, const char *marker, char **out,
		    struct chv_err *err)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return chv_err_set(err, -errno, "%s: cannot open %s: %s", opt, path,
				   strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return chv_err_set(err, -e, "%s: %s: %s", opt, path, strerror(e));
	}
	if (!S_ISREG(st.st_mode) || st.st_size > PEM_MAX_BYTES) {
		close(fd);
		return chv_err_set(err, -EINVAL, "%s: %s is not a regular file of at most 1 MiB",
				   opt, path);
	}
	char *buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return chv_err_set(err, -ENOMEM, "%s: out of memory", opt);
	}
	size_t n = 0;
	while (n < (size_t)st.st_size) {
		ssize_t k = read(fd, buf + n, (size_t)st.st_size - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			int e = k < 0 ? errno : EIO;
			close(fd);
			free(buf);
			return chv_err_set(err, -e, "%s: reading %s: %s", opt, path, strerror(e));
		}
		n += (size_t)k;
	}
	close(fd);
	buf[n] = '\0';
	if (!strstr(buf, "-----BEGIN ") || !strstr(buf, marker)) {
		free(buf);
		return chv_err_set(err, -EINVAL, "%s: %s holds no PEM \"%.*s\"", opt, path,
				   (int)strcspn(marker, "-"), marker);
	}
	if (strstr(marker, "KEY") && (st.st_mode & 077))
		dlog(DLOG_WARNING, NULL, "%s: %s can be read by other users (mode %04o)", opt, path,
		     (unsigned)(st.st_mode & 07777));
	*out = buf;
	return 0;
}

static void pem_free(char *pem)
{
	if (pem) {
		explicit_bzero(pem, strlen(pem));
		free(pem);
	}
}

/* The TLS files' contents, read before anything is started so that a
 * wrong path fails at once. */
struct tls_pems {
	char *cert, *key, *ca;
};

static int tls_load(const struct options *o, struct tls_pems *p, struct chv_err *err)
{
	int r;
	if (!o->tcp || o->insecure)
		return 0;
	if ((r = pem_read("--tls-cert", o->tls_cert, "CERTIFICATE-----", &p->cert, err)) < 0 ||
	    (r = pem_read("--tls-key", o->tls_key, "PRIVATE KEY-----", &p->key, err)) < 0 ||
	    (r = pem_read("--tls-client-ca", o->tls_client_ca, "CERTIFICATE-----", &p->ca, err)) <
		0)
		return r;
	return 0;
}

static void tls_unload(struct tls_pems *p)
{
	pem_free(p->cert);
	pem_free(p->key);
	pem_free(p->ca);
	*p = (struct tls_pems){0};
}

/* Adds the --listen-tcp listener to srv and logs where it is. */
static int listen_tcp(struct rpc_server *srv, const struct options *o, const struct tls_pems *p,
		      struct chv_err *err)
{
	int port = 0;
	struct rpc_tls tls = {.cert_pem = p->cert, .key_pem = p->key, .client_ca_pem = p->ca};
	int r = rpc_server_add_tcp(srv, o->tcp, o->insecure ? NULL : &tls, &port, err);
	if (r < 0) {
		/* The framework's message lacks the option's name. */
		char msg[sizeof(err->msg)];
		snprintf(msg, sizeof(msg), "%s", err->msg);
		return chv_err_set(err, r, "--listen-tcp: %s", msg);
	}
	char host[256];
	unsigned ignored;
	if (rpc_addr_split(o->tcp, host, sizeof(host), &ignored) < 0)
		snprintf(host, sizeof(host), "?");
	bool v6 = strchr(host, ':') != NULL;
	if (o->insecure)
		dlog(DLOG_WARNING, NULL,
		     "listening on tcp %s%s%s:%d WITHOUT TLS or authentication (--insecure)",
		     v6 ? "[" : "", host, v6 ? "]" : "", port);
	else
		dlog(DLOG_NOTICE, NULL,
		     "listening on tcp %s%s%s:%d (mutual TLS: certificate %s, client CA %s)",
		     v6 ? "[" : "", host, v6 ? "]" : "", port, o->tls_cert, o->tls_client_ca);
	return 0;
}

/* The request's vm_id (every Vm call has one) made safe for a log line:
 * at most 64 bytes, anything but printable ASCII shown as '?'. */
static const char *audit_vm_id(struct rpc_call *call, char *buf, size_t len)
{
	const ProtobufCMessage *req = rpc_call_request(call);
	const ProtobufCFieldDescriptor *f =
	    req ? protobuf_c_message_descriptor_get_field_by_name(req->descriptor, "vm_id") : NULL;
	if (!f || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
		return NULL;
	const char *v = *(const char *const *)((const char *)req + f->offset);
	if (!v || !v[0])
		return NULL;
	size_t n = 0;
	for (; v[n] && n < VM_ID_MAX && n + 4 < len; n++)
		buf[n] = v[n] > ' ' && v[n] < 0x7f ? v[n] : '?';
	snprintf(buf + n, len - n, "%s", v[n] ? "..." : "");
	return buf;
}

/* Audit: who called what. Calls that change something are logged at info
 * with the VM they name; read-only calls from local peers at debug (their
 * connection was logged when accepted). TCP callers always at info. */
static void on_call(void *ctx, struct rpc_call *call, const char *method)
{
	(void)ctx;
	const struct rpc_method *m = rpc_call_method(call);
	bool mutating = m && !m->read_only;
	char idbuf[VM_ID_MAX + 8];
	const char *vm = audit_vm_id(call, idbuf, sizeof(idbuf));
	struct rpc_identity id;
	rpc_call_identity(call, &id);
	if (id.tls) {
		dlog(mutating ? DLOG_NOTICE : DLOG_INFO, vm,
		     "%s from %s, client certificate \"%s\"", method, id.address, id.subject);
	} else if (strncmp(id.address, "fd:", 3) == 0) {
		pid_t pid;
		uid_t uid;
		gid_t gid;
		rpc_call_peer(call, &pid, &uid, &gid);
		dlog(mutating ? DLOG_NOTICE : DLOG_DEBUG, vm, "%s from pid %d uid %u gid %u%s",
		     method, (int)pid, (unsigned)uid, (unsigned)gid,
		     rpc_call_read_only(call) ? " (read-only socket)" : "");
	} else {
		dlog(DLOG_INFO, vm, "%s from %s (no TLS)", method,
		     id.address[0] ? id.address : "unknown peer");
	}
}

static void on_denied(void *ctx, struct rpc_call *call, const char *method)
{
	(void)ctx;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	rpc_call_peer(call, &pid, &uid, &gid);
	dlog(DLOG_NOTICE, NULL, "refused %s from pid %d uid %u gid %u: read-only socket", method,
	     (int)pid, (unsigned)uid, (unsigned)gid);
}

static void on_api_shutdown(bool shutdown_vms)
{
	api_shutdown_vms = shutdown_vms;
	kill(getpid(), SIGTERM);
}

static void notify_status(void)
{
	sd_notifyf(0, "STATUS=serving, %u VMs", registry_count());
}

int main(int argc, char **argv)
{
	struct options o = {0};
	int r = parse_options(&o, argc, argv);
	if (r)
		return r;
	/* gRPC's getaddrinfo resolver for --listen-tcp names: it follows the
	 * host's nsswitch setup, and c-ares leaks at exit. Before any thread. */
	setenv("GRPC_DNS_RESOLVER", "native", 0);
	dlog_init(o.verbosity, -1);
	/* Before gRPC starts its threads, so every thread inherits the mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	umask(077);

	struct chv_err err = {0};
	struct tls_pems pems = {0};
	if (tls_load(&o, &pems, &err) < 0) {
		fprintf(stderr, "chvd: %s\n", err.msg);
		tls_unload(&pems);
		return 1;
	}
	/* Before any thread starts: socket_dir() changes the umask. */
	int lfd = -1, rofd = -1;
	if (passed_sockets(&lfd, &rofd, &err) < 0 ||
	    socket_dir("--listen", o.listen, &o, &err) < 0 ||
	    (o.listen_ro[0] && rofd < 0 && socket_dir("--listen-ro", o.listen_ro, &o, &err) < 0)) {
		fprintf(stderr, "chvd: %s\n", err.msg);
		return 1;
	}
	if (lfd >= 0 && o.socket_group)
		dlog(DLOG_WARNING, NULL,
		     "--socket-group %s: ignored for the sockets systemd passed (SocketGroup= in "
		     "the socket unit sets theirs)",
		     o.socket_group);
	if ((r = mkdir_p(o.runtime_dir, 0700)) < 0) {
		fprintf(stderr, "chvd: cannot create %s: %s\n", o.runtime_dir, strerror(-r));
		return 1;
	}
	bool own_api = lfd < 0, own_ro = o.listen_ro[0] && rofd < 0;
	if (take_lock(o.listen, &err) < 0 || (own_ro && take_lock(o.listen_ro, &err) < 0) ||
	    store_init(o.state_dir, &err) < 0) {
		fprintf(stderr, "chvd: %s\n", err.msg);
		return 1;
	}
	wconn_set_worker_options(chv_seccomp_mode_name(o.seccomp), o.vm_user);
	struct vms_config vc = {o.vmm, o.runtime_dir, o.max_vms, o.warm_workers};
	struct rpc_server *srv = NULL;
	struct health *health = NULL;
	/* Our socket files, once made: removed again on a failed start. */
	bool made_api = false, made_ro = false;
	if (vms_init(&vc, &err) < 0 || pool_start(8, &err) < 0)
		goto fail;
	vms_restore();

	if (own_api)
		made_api = (lfd = listen_unix("--listen", o.listen, &o, &err)) >= 0;
	if (lfd >= 0 && own_ro)
		made_ro = (rofd = listen_unix("--listen-ro", o.listen_ro, &o, &err)) >= 0;
	struct rpc_server_opts so = {
	    .on_accept = on_accept, .on_call = on_call, .on_denied = on_denied};
	size_t nm;
	const struct rpc_method *m = services_methods(&nm, on_api_shutdown);
	size_t nh;
	const struct rpc_method *hm;
	if (lfd < 0 || (own_ro && rofd < 0) || rpc_server_create(&srv, &so, &err) < 0 ||
	    rpc_server_add_methods(srv, m, nm, &err) < 0 || (r = health_create(&health)) < 0 ||
	    !(hm = health_methods(health, &nh)) || rpc_server_add_methods(srv, hm, nh, &err) < 0 ||
	    rpc_server_add_listener(srv, lfd, &err) < 0 ||
	    (rofd >= 0 && rpc_server_add_read_only_listener(srv, rofd, &err) < 0) ||
	    (o.tcp && listen_tcp(srv, &o, &pems, &err) < 0) || rpc_server_start(srv, &err) < 0)
		goto fail;
	tls_unload(&pems); /* gRPC keeps its own copies */
	/* Every socket is open and every thread started: from here on chvd
	 * needs none of the calls its filter denies (daemon/sandbox.h). */
	if (chvd_sandbox(o.seccomp, &err) < 0)
		goto fail;
	int probe = chvd_sandbox_probe();
	if (probe != -ENOSYS)
		dlog(DLOG_NOTICE, NULL, "seccomp probe: acct() = %s",
		     probe ? strerror(-probe) : "0");
	if (health_set(health, "chv.v1.Vm", HEALTH_SERVING) < 0 ||
	    health_set(health, "chv.v1.Vmm", HEALTH_SERVING) < 0)
		dlog(DLOG_WARNING, NULL, "cannot publish the health of the services");
	dlog(DLOG_NOTICE, NULL, "chvd %s serving %s%s%s%s (state %s, workers %s)", CHV_VERSION,
	     own_api ? o.listen : "the passed socket", rofd >= 0 ? ", read-only " : "",
	     own_ro ? o.listen_ro : "", rofd >= 0 && !own_ro ? "the passed socket" : "",
	     o.state_dir, o.vmm);
	sd_notify(0, "READY=1");
	notify_status();

	uint64_t wd_usec = 0;
	bool watchdog = sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0;
	struct timespec tick = {.tv_sec = 1};
	if (watchdog && wd_usec / 2 < 1000000)
		tick = (struct timespec){0, (long)(wd_usec / 2) * 1000};
	int sig;
	for (;;) {
		siginfo_t si;
		sig = sigtimedwait(&set, &si, &tick);
		if (sig > 0)
			break;
		if (watchdog)
			sd_notify(0, "WATCHDOG=1");
		notify_status();
	}
	bool stop_vms = o.shutdown_vms_on_exit || api_shutdown_vms;
	dlog(DLOG_NOTICE, NULL, "%s: stopping (%s)", strsignal(sig),
	     stop_vms ? "shutting the VMs down" : "VMs keep running");
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
	health_shutdown(health);
	vms_shutdown_all(stop_vms);
	rpc_server_shutdown(srv, 2000);
	pool_stop();
	health_destroy(health);
	if (own_api)
		unlink(o.listen);
	if (own_ro)
		unlink(o.listen_ro);
	return 0;

fail:
	/* Nothing of a failed start stays behind: the idle workers go (VMs
	 * restored from an earlier chvd keep running), and so do our sockets. */
	fprintf(stderr, "chvd: %s\n", err.msg);
	vms_shutdown_all(false);
	rpc_server_shutdown(srv, 0);
	pool_stop();
	health_destroy(health);
	tls_unload(&pems);
	if (made_api)
		unlink(o.listen);
	if (made_ro)
		unlink(o.listen_ro);
	return 1;
}
