/* Worker confinement; see vm/confine.h for the steps and their order. */
#include "vm/confine.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <pwd.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vm/log.h"

/* Landlock constants newer than some distributions' headers (values from
 * the kernel's include/uapi/linux/landlock.h). */
#define LL_FS_EXECUTE		  (1ull << 0)
#define LL_FS_WRITE_FILE	  (1ull << 1)
#define LL_FS_READ_FILE		  (1ull << 2)
#define LL_FS_READ_DIR		  (1ull << 3)
#define LL_FS_REMOVE_DIR	  (1ull << 4)
#define LL_FS_REMOVE_FILE	  (1ull << 5)
#define LL_FS_MAKE_CHAR		  (1ull << 6)
#define LL_FS_MAKE_DIR		  (1ull << 7)
#define LL_FS_MAKE_REG		  (1ull << 8)
#define LL_FS_MAKE_SOCK		  (1ull << 9)
#define LL_FS_MAKE_FIFO		  (1ull << 10)
#define LL_FS_MAKE_BLOCK	  (1ull << 11)
#define LL_FS_MAKE_SYM		  (1ull << 12)
#define LL_FS_REFER		  (1ull << 13) /* ABI 2 */
#define LL_FS_TRUNCATE		  (1ull << 14) /* ABI 3 */
#define LL_FS_IOCTL_DEV		  (1ull << 15) /* ABI 5 */
#define LL_NET_BIND_TCP		  (1ull << 0)  /* ABI 4 */
#define LL_NET_CONNECT_TCP	  (1ull << 1)
#define LL_SCOPE_ABSTRACT	  (1ull << 0) /* ABI 6 */
#define LL_SCOPE_SIGNAL		  (1ull << 1)
#define LL_RULE_PATH_BENEATH	  1
#define LL_CREATE_RULESET_VERSION (1u << 0)

struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

struct ll_path_beneath {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

/* The --vm-user account, looked up at start (NSS needs files that Landlock
 * and the seccomp filter later forbid), switched to at Create. */
static struct {
	bool set;
	uid_t uid;
	gid_t gid;
	gid_t groups[64];
	int ngroups;
	char name[64];
} user;

/* ---- capabilities (raw syscalls: no libcap) ---- */

static int caps_set(uint64_t keep)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) < 0)
		return -errno;
	uint64_t perm = ((uint64_t)d[1].permitted << 32 | d[0].permitted) & keep;
	d[0].effective = d[0].permitted = (uint32_t)perm;
	d[1].effective = d[1].permitted = (uint32_t)(perm >> 32);
	d[0].inheritable = d[1].inheritable = 0;
	if (syscall(SYS_capset, &h, d) < 0)
		return -errno;
	return 0;
}

static uint64_t caps_effective(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) < 0)
		return ~0ull;
	return (uint64_t)d[1].effective << 32 | d[0].effective;
}

/* The bounding set: what even a setuid-root exec could regain (none can
 * run: no_new_privs, and no exec in the filter). Needs CAP_SETPCAP; a
 * worker started without it has nothing to drop there. */
static void caps_bound(uint64_t keep)
{
	int dropped = 0, last = 0;
	for (int c = 0; c <= 63; c++) {
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) < 0)
			break;
		last = c;
		if (keep & (1ull << c))
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) == 0)
			dropped++;
	}
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	log_debug("confine: bounding set: %d of %d capabilities dropped", dropped, last + 1);
}

/* ---- fds ---- */

static int close_from(unsigned lo, unsigned hi)
{
	if (lo > hi)
		return 0;
	if (syscall(SYS_close_range, lo, hi, 0) == 0)
		return 0;
	if (errno != ENOSYS)
		return -errno;
	long max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 1 << 20)
		max = 1 << 20;
	for (long fd = lo; fd <= (long)hi && fd < max; fd++)
		close((int)fd);
	return 0;
}

int confine_close_fds(struct chv_err *err)
{
	int r = close_from(3, ~0u);
	if (r < 0)
		return chv_err_set(err, r, "confine: closing inherited fds: %s", strerror(-r));
	return 0;
}

/* ---- cgroup ---- */

/* The cgroup2 mount point and this process's path in it. */
static int cgroup_self(char *mnt, size_t mlen, char *path, size_t plen)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -errno;
	char line[PATH_MAX + 16];
	int found = -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = 0;
			snprintf(path, plen, "%s", line + 3);
			found = 0;
		}
	}
	fclose(f);
	if (found < 0)
		return found;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	found = -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		/* id parent major:minor root mountpoint opts... - fstype ... */
		char *sep = strstr(line, " - cgroup2 ");
		if (!sep)
			continue;
		char root[8], mp[PATH_MAX];
		if (sscanf(line, "%*s %*s %*s %7s %4095s", root, mp) == 2 &&
		    strcmp(root, "/") == 0) {
			snprintf(mnt, mlen, "%s", mp);
			found = 0;
			break;
		}
	}
	fclose(f);
	return found;
}

int confine_cgroup_dir(pid_t pid, char *buf, size_t len)
{
	char mnt[PATH_MAX], path[PATH_MAX];
	int r = cgroup_self(mnt, sizeof(mnt), path, sizeof(path));
	if (r < 0)
		return r;
	/* A worker already moved (this is the worker asking) sits one below. */
	char *slash = strrchr(path, '/');
	if (slash && strncmp(slash + 1, "chv-worker-", 11) == 0)
		*slash = 0;
	if (strcmp(path, "/") == 0)
		path[0] = 0;
	if (snprintf(buf, len, "%s%s/chv-worker-%d", mnt, path, (int)pid) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

/* Its own cgroup below chvd's, so a VM's memory and CPU can be read (and
 * limited, by whoever enables controllers) one worker at a time. Only
 * inside a delegated cgroup (not the root: that is the host's). */
static void join_cgroup(void)
{
	char mnt[PATH_MAX], path[PATH_MAX], dir[PATH_MAX], procs[PATH_MAX + 16];
	if (cgroup_self(mnt, sizeof(mnt), path, sizeof(path)) < 0) {
		log_debug("confine: cgroup: no cgroup2 hierarchy; skipped");
		return;
	}
	if (strcmp(path, "/") == 0) {
		log_debug("confine: cgroup: started in the root cgroup (not delegated); skipped");
		return;
	}
	if (confine_cgroup_dir(getpid(), dir, sizeof(dir)) < 0)
		return;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		log_debug("confine: cgroup: cannot create %s: %s; skipped", dir, strerror(errno));
		return;
	}
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
	int fd = open(procs, O_WRONLY | O_CLOEXEC);
	bool ok = fd >= 0 && write(fd, "0\n", 2) == 2;
	int e = errno;
	if (fd >= 0)
		close(fd);
	if (!ok) {
		log_debug("confine: cgroup: cannot join %s: %s; skipped", dir, strerror(e));
		rmdir(dir);
		return;
	}
	log_debug("confine: cgroup: in %s", dir);
}

/* ---- the user ---- */

static int lookup_user(const char *name, struct chv_err *err)
{
	char buf[4096];
	struct passwd pw, *res = NULL;
	int r = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
	if (!res) {
		char *end;
		errno = 0;
		unsigned long id = strtoul(name, &end, 10);
		if (*name && !*end && !errno && id > 0 && id < UINT32_MAX) {
			/* A bare uid with no account: its own group of the same id. */
			user.uid = user.gid = (uid_t)id;
			user.ngroups = 0;
		} else {
			return chv_err_set(err, r ? -r : -ENOENT, "--vm-user: no user \"%s\"%s%s",
					   name, r ? ": " : "", r ? strerror(r) : "");
		}
	} else {
		user.uid = pw.pw_uid;
		user.gid = pw.pw_gid;
		user.ngroups = (int)(sizeof(user.groups) / sizeof(user.groups[0]));
		if (getgrouplist(name, pw.pw_gid, user.groups, &user.ngroups) < 0)
			return chv_err_set(err, -E2BIG, "--vm-user: %s is in more than %zu groups",
					   name, sizeof(user.groups) / sizeof(user.groups[0]));
	}
	if (user.uid == 0)
		return chv_err_set(err, -EINVAL, "--vm-user: %s is root; name an unprivileged user",
				   name);
	user.set = true;
	snprintf(user.name, sizeof(user.name), "%s", name);
	return 0;
}

/* ---- the steps ---- */

int confine_start(const struct confine_opts *o, struct chv_err *err)
{
	int r;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return chv_err_set(err, -errno, "confine: no_new_privs: %s", strerror(errno));
	log_debug("confine: no_new_privs set");
	if (!o->no_cgroup)
		join_cgroup();
	if (o->vm_user && (r = lookup_user(o->vm_user, err)) < 0)
		return r;
	uint64_t keep = 1ull << CAP_NET_ADMIN;
	if (user.set)
		keep |= 1ull << CAP_SETUID | 1ull << CAP_SETGID;
	caps_bound(keep);
	if ((r = caps_set(keep)) < 0)
		return chv_err_set(err, r, "confine: dropping capabilities: %s", strerror(-r));
	log_debug("confine: capabilities cut to %#llx (CAP_NET_ADMIN for a tap%s)",
		  (unsigned long long)caps_effective(), user.set ? ", CAP_SETUID/SETGID" : "");
	return 0;
}

int confine_vm(const struct vm_config *cfg, struct chv_err *err)
{
	int r;
	if (user.set && getuid() != user.uid) {
		/* glibc applies these to every thread of the process. */
		if (setgroups((size_t)user.ngroups, user.groups) < 0 ||
		    setresgid(user.gid, user.gid, user.gid) < 0 ||
		    setresuid(user.uid, user.uid, user.uid) < 0)
			return chv_err_set(err, -errno, "--vm-user %s: cannot switch to uid %u: %s",
					   user.name, (unsigned)user.uid, strerror(errno));
		log_debug("confine: now uid %u gid %u (--vm-user %s)", (unsigned)user.uid,
			  (unsigned)user.gid, user.name);
	}
	/* A tap is opened (and maybe created and configured) on every build of
	 * the VM, reboots included: CAP_NET_ADMIN stays for a VM with a --net,
	 * unless it runs as --vm-user (then its taps must be made for that
	 * user beforehand). */
	uint64_t keep = cfg->nnets && !user.set ? 1ull << CAP_NET_ADMIN : 0;
	if ((r = caps_set(keep)) < 0)
		return chv_err_set(err, r, "confine: dropping capabilities: %s", strerror(-r));
	uint64_t eff = caps_effective();
	if (eff & ~keep)
		return chv_err_set(err, -EPERM, "confine: capabilities %#llx remain after the drop",
				   (unsigned long long)eff);
	log_debug("confine: capabilities now %#llx", (unsigned long long)eff);
	return 0;
}

/* ---- Landlock ---- */

int confine_landlock_abi(void)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
	return v < 0 ? -errno : (int)v;
}

struct ll {
	int fd;
	uint64_t handled;
	int abi;
};

/* Allows access beneath path (a file: that file). A path that does not
 * exist is left out: opening it fails later, as it would have anyway. */
static int ll_allow(struct ll *l, const char *path, uint64_t access, struct chv_err *err)
{
	if (!path || !path[0])
		return 0;
	int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0) {
		log_debug("confine: landlock: %s: %s; no rule", path, strerror(errno));
		return 0;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
		access &= LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE |
			  LL_FS_IOCTL_DEV;
	struct ll_path_beneath pb = {.allowed_access = access & l->handled, .parent_fd = fd};
	long r = pb.allowed_access
		     ? syscall(SYS_landlock_add_rule, l->fd, LL_RULE_PATH_BENEATH, &pb, 0)
		     : 0;
	int e = errno;
	close(fd);
	if (r < 0)
		return chv_err_set(err, -e, "confine: landlock rule for %s: %s", path, strerror(e));
	log_debug("confine: landlock: %s: %#llx", path, (unsigned long long)pb.allowed_access);
	return 0;
}

/* The directory part of path ("." for a bare name). */
static void dir_of(const char *path, char *out, size_t len)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(out, len, ".");
	else if (slash == path)
		snprintf(out, len, "/");
	else
		snprintf(out, len, "%.*s", (int)(slash - path), path);
}

static int ll_console(struct ll *l, const struct console_config *c, struct chv_err *err)
{
	if (c->mode == CONSOLE_FILE)
		return ll_allow(l, c->path, LL_FS_WRITE_FILE, err);
	if (c->mode == CONSOLE_SOCKET) {
		/* Rebound on a rebuild: a socket made, a stale one removed. */
		char dir[PATH_MAX];
		dir_of(c->path, dir, sizeof(dir));
		return ll_allow(l, dir, LL_FS_MAKE_SOCK | LL_FS_REMOVE_FILE, err);
	}
	return 0;
}

static int ll_rules(struct ll *l, const struct vm_config *cfg, const char *control_dir,
		    struct chv_err *err)
{
	const uint64_t rw = LL_FS_READ_FILE | LL_FS_WRITE_FILE | LL_FS_IOCTL_DEV;
	int r;
	if ((r = ll_allow(l, "/dev/kvm", rw, err)) ||
	    (r = ll_allow(l, cfg->payload.kernel, LL_FS_READ_FILE, err)) ||
	    (r = ll_allow(l, cfg->payload.initramfs, LL_FS_READ_FILE, err)) ||
	    (r = ll_allow(l, cfg->rng.src ? cfg->rng.src : VM_CONFIG_RNG_DEFAULT_SRC,
			  LL_FS_READ_FILE, err)))
		return r;
	for (uint32_t i = 0; i < cfg->ndisks; i++) {
		const struct disk_config *d = &cfg->disks[i];
		uint64_t a =
		    LL_FS_READ_FILE | LL_FS_IOCTL_DEV | (d->readonly ? 0 : LL_FS_WRITE_FILE);
		if ((r = ll_allow(l, d->path, a, err)))
			return r;
	}
	if (cfg->nnets && (r = ll_allow(l, "/dev/net/tun", rw, err)))
		return r;
	if ((r = ll_console(l, &cfg->serial, err)) || (r = ll_console(l, &cfg->console, err)))
		return r;
	if (control_dir && (r = ll_allow(l, control_dir, LL_FS_REMOVE_FILE, err)))
		return r;
#if defined(__SANITIZE_ADDRESS__)
	/* The sanitizer build's leak check and reports read /proc/self/maps. */
	if ((r = ll_allow(l, "/proc/self", LL_FS_READ_FILE | LL_FS_READ_DIR, err)))
		return r;
#endif
	return 0;
}

int confine_landlock(const struct vm_config *cfg, const char *control_dir, struct chv_err *err)
{
	static bool done; /* one domain per process: a second Create keeps it */
	if (done)
		return 0;
	int abi = confine_landlock_abi();
	if (abi < 0) {
		log_info("confine: Landlock is not available (%s); file access not restricted",
			 strerror(-abi));
		return 0;
	}
	struct ll l = {.fd = -1, .abi = abi};
	l.handled = LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_READ_DIR |
		    LL_FS_REMOVE_DIR | LL_FS_REMOVE_FILE | LL_FS_MAKE_CHAR | LL_FS_MAKE_DIR |
		    LL_FS_MAKE_REG | LL_FS_MAKE_SOCK | LL_FS_MAKE_FIFO | LL_FS_MAKE_BLOCK |
		    LL_FS_MAKE_SYM;
	if (abi >= 2)
		l.handled |= LL_FS_REFER;
	if (abi >= 3)
		l.handled |= LL_FS_TRUNCATE;
	if (abi >= 5)
		l.handled |= LL_FS_IOCTL_DEV;
	struct ll_ruleset_attr attr = {.handled_access_fs = l.handled};
	size_t size = sizeof(attr.handled_access_fs);
	if (abi >= 4) { /* no TCP at all */
		attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
		size = offsetof(struct ll_ruleset_attr, scoped);
	}
	if (abi >= 6) { /* no abstract sockets, no signals out of the domain */
		attr.scoped = LL_SCOPE_ABSTRACT | LL_SCOPE_SIGNAL;
		size = sizeof(attr);
	}
	l.fd = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (l.fd < 0)
		return chv_err_set(err, -errno, "confine: landlock ruleset (ABI %d): %s", abi,
				   strerror(errno));
	int r = ll_rules(&l, cfg, control_dir, err);
	if (r == 0 && syscall(SYS_landlock_restrict_self, l.fd, 0) < 0)
		r = chv_err_set(err, -errno, "confine: landlock_restrict_self: %s",
				strerror(errno));
	close(l.fd);
	done = r == 0;
	if (r == 0)
		log_info("confine: Landlock ABI %d: file access limited to the VM's files", abi);
	return r;
}
