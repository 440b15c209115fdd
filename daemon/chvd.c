/* chvd: the daemon. Serves the gRPC API on a unix socket (its own, or one
 * systemd passes), keeps the VM registry and supervises one chv-vmm worker
 * per VM; see docs/daemon.md. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
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
#include "daemon/services.h"
#include "daemon/store.h"
#include "daemon/vms.h"

struct options {
	char listen[PATH_MAX];
	char state_dir[PATH_MAX];
	char runtime_dir[PATH_MAX];
	char vmm[PATH_MAX];
	unsigned max_vms;
	bool shutdown_vms_on_exit;
	int verbosity;
};

static volatile sig_atomic_t api_shutdown_vms;

static const char usage_text[] =
	"usage: chvd [options]\n"
	"  --listen PATH           API socket (default /run/chvd/chvd.sock as root,\n"
	"                          $XDG_RUNTIME_DIR/chvd/chvd.sock otherwise); a socket\n"
	"                          passed by systemd (socket activation) is used instead\n"
	"  --state-dir DIR         VM definitions (default /var/lib/chvd as root,\n"
	"                          $XDG_STATE_HOME/chvd otherwise)\n"
	"  --runtime-dir DIR       worker sockets and logs (default: the socket's directory)\n"
	"  --vmm PATH              the chv-vmm binary (default: next to chvd)\n"
	"  --max-vms N             VMs this daemon accepts (default 1024)\n"
	"  --shutdown-vms-on-exit  stop every VM on SIGTERM (default: leave them running)\n"
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

static int parse_options(struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"state-dir", required_argument, NULL, 's'},
		{"runtime-dir", required_argument, NULL, 'r'},
		{"vmm", required_argument, NULL, 'm'},
		{"max-vms", required_argument, NULL, 'n'},
		{"shutdown-vms-on-exit", no_argument, NULL, 'x'},
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
		case 'l': if ((r = set_path(o->listen, "--listen", optarg))) return r; break;
		case 's': if ((r = set_path(o->state_dir, "--state-dir", optarg))) return r; break;
		case 'r':
			if ((r = set_path(o->runtime_dir, "--runtime-dir", optarg)))
				return r;
			runtime_set = true;
			break;
		case 'm': if ((r = set_path(o->vmm, "--vmm", optarg))) return r; break;
		case 'n': {
			char *end;
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			if (errno || *end || !optarg[0] || optarg[0] == '-' || v < 1 || v > 100000)
				return usage_error("--max-vms: \"%s\" is not a number in 1..100000", optarg);
			o->max_vms = (unsigned)v;
			break;
		}
		case 'x': o->shutdown_vms_on_exit = true; break;
		case 'v': o->verbosity++; break;
		case 'h': fputs(usage_text, stdout); exit(0);
		case 'V': printf("chvd %s\n", CHV_VERSION); exit(0);
		case ':': return usage_error("option %s needs a value", argv[optind - 1]);
		default: return usage_error("unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument \"%s\"", argv[optind]);
	if (!runtime_set)
		dir_of(o->listen, o->runtime_dir);
	return 0;
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
			return chv_err_set(err, -EBUSY, "another chvd is serving %s (lock %s is held)",
					   listen, path);
		return chv_err_set(err, -e, "cannot lock %s: %s", path, strerror(e));
	}
	return fd; /* held for the process's life */
}

static int listen_socket(const char *path, bool *ours, struct chv_err *err)
{
	int n = sd_listen_fds(1);
	if (n > 0) {
		int fd = SD_LISTEN_FDS_START;
		if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0)
			return chv_err_set(err, -EINVAL, "the socket systemd passed is not a listening unix stream socket");
		*ours = false;
		dlog(DLOG_NOTICE, NULL, "serving the socket systemd passed (fd %d)", fd);
		return fd;
	}
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(a.sun_path))
		return chv_err_set(err, -ENAMETOOLONG, "--listen: %s is too long for a unix socket", path);
	strcpy(a.sun_path, path);
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return chv_err_set(err, -EEXIST, "--listen: %s exists and is not a socket", path);
		unlink(path); /* stale: we hold the lock */
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return chv_err_set(err, -errno, "socket: %s", strerror(errno));
	mode_t old = umask(0117); /* 0660 */
	int r = bind(fd, (struct sockaddr *)&a, sizeof(a));
	umask(old);
	if (r < 0 || listen(fd, 128) < 0) {
		int e = errno;
		close(fd);
		return chv_err_set(err, -e, "--listen: cannot listen on %s: %s", path, strerror(e));
	}
	*ours = true;
	return fd;
}

static void on_connect(void *ctx, int fd, pid_t pid, uid_t uid, gid_t gid)
{
	(void)ctx;
	dlog(DLOG_INFO, NULL, "connection fd %d from pid %d uid %u gid %u", fd, (int)pid,
	     (unsigned)uid, (unsigned)gid);
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
	char sockdir[PATH_MAX];
	dir_of(o.listen, sockdir);
	if ((r = mkdir_p(sockdir, 0755)) < 0 || (r = mkdir_p(o.runtime_dir, 0700)) < 0) {
		fprintf(stderr, "chvd: cannot create %s or %s: %s\n", sockdir, o.runtime_dir,
			strerror(-r));
		return 1;
	}
	if (take_lock(o.listen, &err) < 0 || store_init(o.state_dir, &err) < 0) {
		fprintf(stderr, "chvd: %s\n", err.msg);
		return 1;
	}
	struct vms_config vc = {o.vmm, o.runtime_dir, o.max_vms};
	if (vms_init(&vc, &err) < 0 || pool_start(8, &err) < 0) {
		fprintf(stderr, "chvd: %s\n", err.msg);
		return 1;
	}
	vms_restore();

	bool ours = false;
	int lfd = listen_socket(o.listen, &ours, &err);
	struct rpc_server *srv = NULL;
	struct rpc_server_opts so = {.on_connect = on_connect};
	struct health *health = NULL;
	size_t nm;
	const struct rpc_method *m = services_methods(&nm, on_api_shutdown);
	size_t nh;
	const struct rpc_method *hm;
	if (lfd < 0 || rpc_server_create(&srv, &so, &err) < 0 ||
	    rpc_server_add_methods(srv, m, nm, &err) < 0 || (r = health_create(&health)) < 0 ||
	    !(hm = health_methods(health, &nh)) || rpc_server_add_methods(srv, hm, nh, &err) < 0 ||
	    rpc_server_add_listener(srv, lfd, &err) < 0 || rpc_server_start(srv, &err) < 0) {
		fprintf(stderr, "chvd: %s\n", err.msg);
		return 1;
	}
	if (health_set(health, "chv.v1.Vm", HEALTH_SERVING) < 0 ||
	    health_set(health, "chv.v1.Vmm", HEALTH_SERVING) < 0)
		dlog(DLOG_WARNING, NULL, "cannot publish the health of the services");
	dlog(DLOG_NOTICE, NULL, "chvd %s serving %s (state %s, workers %s)", CHV_VERSION, o.listen,
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
	if (ours)
		unlink(o.listen);
	return 0;
}
