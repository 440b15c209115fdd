/* vm/confine.c, each step in a forked child (they cannot be undone), checked
 * through the kernel's own view: /proc/self/status, open(2) results. The
 * capability and user checks need root; they skip otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "vm/confine.h"

static char dir[64];

/* Runs body in a child; its exit status (0: all good). */
static int in_child(int (*body)(void))
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(body());
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* "Field:\tvalue" of /proc/self/status as a number (base 16 for Cap*). */
static unsigned long long status_field(const char *name, int base)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	unsigned long long v = ~0ull;
	size_t n = strlen(name);
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, name, n) == 0 && line[n] == ':')
			v = strtoull(line + n + 1, NULL, base);
	if (f)
		fclose(f);
	return v;
}

static void make_file(const char *name, char *path, size_t len)
{
	snprintf(path, len, "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/chv-confine.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- fds ---- */

static int body_close_fds(void)
{
	int a = open("/dev/null", O_RDONLY), b = dup2(a, 40);
	if (a < 3 || b != 40)
		return 1;
	struct chv_err err = {0};
	if (confine_close_fds(&err) < 0)
		return 2;
	if (fcntl(a, F_GETFD) != -1 || errno != EBADF || fcntl(40, F_GETFD) != -1)
		return 3;
	return fcntl(2, F_GETFD) >= 0 ? 0 : 4; /* stdio stays */
}

static void test_close_fds(void **state)
{
	(void)state;
	assert_int_equal(in_child(body_close_fds), 0);
}

/* ---- start and VM steps ---- */

static int body_start(void)
{
	struct confine_opts o = {.no_cgroup = true};
	struct chv_err err = {0};
	if (confine_start(&o, &err) < 0)
		return 1;
	if (status_field("NoNewPrivs", 10) != 1)
		return 2;
	if (geteuid() != 0)
		return status_field("CapEff", 16) == 0 ? 0 : 3;
	if (status_field("CapEff", 16) != 1ull << 12 || status_field("CapPrm", 16) != 1ull << 12)
		return 4; /* CAP_NET_ADMIN only */
	if (status_field("CapBnd", 16) != 1ull << 12 || status_field("CapInh", 16) != 0)
		return 5;
	/* A VM without a --net: nothing left. */
	struct vm_config cfg;
	vm_config_init(&cfg);
	int r = confine_vm(&cfg, &err);
	vm_config_free(&cfg);
	if (r < 0 || status_field("CapEff", 16) != 0 || status_field("CapPrm", 16) != 0)
		return 6;
	return 0;
}

static void test_start_then_vm(void **state)
{
	(void)state;
	assert_int_equal(in_child(body_start), 0);
}

static int body_vm_with_net(void)
{
	struct confine_opts o = {.no_cgroup = true};
	struct chv_err err = {0};
	if (confine_start(&o, &err) < 0)
		return 1;
	struct vm_config cfg;
	vm_config_init(&cfg);
	cfg.nnets = 1; /* its tap is reopened on a reboot */
	int r = confine_vm(&cfg, &err);
	cfg.nnets = 0;
	vm_config_free(&cfg);
	return r == 0 && status_field("CapEff", 16) == 1ull << 12 ? 0 : 2;
}

static void test_net_keeps_net_admin(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(in_child(body_vm_with_net), 0);
}

static int body_vm_user(void)
{
	struct passwd *pw = getpwnam("nobody");
	struct confine_opts o = {.vm_user = "nobody", .no_cgroup = true};
	struct chv_err err = {0};
	if (!pw || confine_start(&o, &err) < 0)
		return 1;
	/* Until Create: still root, with what the switch needs. */
	if (getuid() != 0 || status_field("CapEff", 16) != (1ull << 12 | 1ull << 7 | 1ull << 6))
		return 2;
	struct vm_config cfg;
	vm_config_init(&cfg);
	cfg.nnets = 1; /* even so: a --vm-user worker keeps nothing */
	int r = confine_vm(&cfg, &err);
	cfg.nnets = 0;
	vm_config_free(&cfg);
	if (r < 0)
		return 3;
	if (getuid() != pw->pw_uid || geteuid() != pw->pw_uid || getgid() != pw->pw_gid)
		return 4;
	return status_field("CapEff", 16) == 0 && status_field("CapPrm", 16) == 0 ? 0 : 5;
}

static void test_vm_user(void **state)
{
	(void)state;
	if (geteuid() != 0 || !getpwnam("nobody"))
		skip();
	assert_int_equal(in_child(body_vm_user), 0);
}

static void test_unknown_or_root_user(void **state)
{
	(void)state;
	struct chv_err err = {0};
	struct confine_opts o = {.vm_user = "no-such-user-chv", .no_cgroup = true};
	/* In a child: confine_start sets no_new_privs before the lookup. */
	pid_t pid = fork();
	if (pid == 0) {
		int r = confine_start(&o, &err);
		_exit(r == -ENOENT && strstr(err.msg, "--vm-user: no user \"no-such-user-chv\"")
			  ? 0
			  : 1);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	pid = fork();
	if (pid == 0) {
		o.vm_user = "root";
		int r = confine_start(&o, &err);
		_exit(r == -EINVAL && strstr(err.msg, "root; name an unprivileged user") ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---- Landlock ---- */

static int body_landlock(void)
{
	char kernel[128], disk[128], ro[128], other[128], con[128], sockdir[128];
	make_file("kernel", kernel, sizeof(kernel));
	make_file("disk", disk, sizeof(disk));
	make_file("ro", ro, sizeof(ro));
	make_file("other", other, sizeof(other));
	make_file("con", con, sizeof(con));
	snprintf(sockdir, sizeof(sockdir), "%s/socks", dir);
	if (mkdir(sockdir, 0700) < 0)
		return 1;
	struct vm_config cfg;
	vm_config_init(&cfg);
	cfg.payload.kernel = strdup(kernel);
	cfg.disks[0].path = strdup(disk);
	cfg.disks[1].path = strdup(ro);
	cfg.disks[1].readonly = true;
	cfg.ndisks = 2;
	cfg.serial.mode = CONSOLE_FILE;
	cfg.serial.path = strdup(con);
	char sock[160];
	snprintf(sock, sizeof(sock), "%s/console.sock", sockdir);
	cfg.console.mode = CONSOLE_SOCKET;
	cfg.console.path = strdup(sock);
	struct chv_err err = {0};
	int r = confine_landlock(&cfg, NULL, &err);
	vm_config_free(&cfg);
	if (r < 0)
		return 2;
	int fd;
	if ((fd = open(kernel, O_RDONLY)) < 0)
		return 3;
	close(fd);
	if (open(kernel, O_WRONLY) >= 0 || errno != EACCES)
		return 4; /* read only */
	if ((fd = open(disk, O_RDWR)) < 0)
		return 5;
	close(fd);
	if ((fd = open(ro, O_RDONLY)) < 0)
		return 6;
	close(fd);
	if (open(ro, O_RDWR) >= 0 || errno != EACCES)
		return 7;
	if (open(other, O_RDONLY) >= 0 || errno != EACCES)
		return 8; /* not the VM's */
	if (open("/etc/passwd", O_RDONLY) >= 0 || errno != EACCES)
		return 9;
	if ((fd = open(con, O_WRONLY | O_APPEND)) < 0)
		return 10;
	close(fd);
	char made[160];
	snprintf(made, sizeof(made), "%s/new", dir);
	if (open(made, O_WRONLY | O_CREAT, 0600) >= 0 || errno != EACCES)
		return 11; /* no new files */
	return 0;
}

static void test_landlock_allows_only_the_vm_files(void **state)
{
	(void)state;
	int abi = confine_landlock_abi();
	if (abi < 0) {
		printf("# no Landlock here (%s): skipped\n", strerror(-abi));
		skip();
	}
	assert_int_equal(in_child(body_landlock), 0);
}

static void test_cgroup_dir_names_the_pid(void **state)
{
	(void)state;
	char buf[4096];
	int r = confine_cgroup_dir(1234, buf, sizeof(buf));
	if (r == -ENOENT)
		skip(); /* no cgroup2 mounted */
	assert_int_equal(r, 0);
	size_t n = strlen(buf);
	assert_true(n > 16);
	assert_string_equal(buf + n - 16, "/chv-worker-1234");
	assert_int_equal(confine_cgroup_dir(1, buf, 8), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_close_fds),
	    cmocka_unit_test(test_start_then_vm),
	    cmocka_unit_test(test_net_keeps_net_admin),
	    cmocka_unit_test(test_vm_user),
	    cmocka_unit_test(test_unknown_or_root_user),
	    cmocka_unit_test(test_landlock_allows_only_the_vm_files),
	    cmocka_unit_test(test_cgroup_dir_names_the_pid),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
