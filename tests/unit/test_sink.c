#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "vm/sink.h"

/* A scratch directory per test run. */
static char dir[64];

static void path_in_dir(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

static long long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Input callback: collects bytes. */
struct input {
	pthread_mutex_t lock;
	char buf[256];
	size_t n;
};

static void on_input(void *ctx, const uint8_t *buf, size_t n)
{
	struct input *in = ctx;
	pthread_mutex_lock(&in->lock);
	for (size_t i = 0; i < n && in->n < sizeof(in->buf) - 1; i++)
		in->buf[in->n++] = (char)buf[i];
	pthread_mutex_unlock(&in->lock);
}

static bool wait_input(struct input *in, const char *want)
{
	long long end = now_ms() + 3000;
	while (now_ms() < end) {
		pthread_mutex_lock(&in->lock);
		bool ok = in->n == strlen(want) && memcmp(in->buf, want, in->n) == 0;
		pthread_mutex_unlock(&in->lock);
		if (ok)
			return true;
		usleep(1000);
	}
	return false;
}

/* Reads exactly n bytes within 3 s, or fails. */
static void read_exact(int fd, char *buf, size_t n)
{
	size_t got = 0;
	long long end = now_ms() + 3000;
	while (got < n) {
		long long left = end - now_ms();
		assert_true(left > 0);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		ssize_t r = read(fd, buf + got, n - got);
		assert_true(r > 0);
		got += (size_t)r;
	}
}

/* True when nothing arrives on fd within ms. */
static bool quiet(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, ms) == 0;
}

static void fill_sun(struct sockaddr_un *sa, const char *path)
{
	size_t len = strlen(path);
	assert_true(len < sizeof(sa->sun_path));
	memcpy(sa->sun_path, path, len + 1);
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	fill_sun(&sa, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void put(struct sink *s, const char *str)
{
	sink_write(s, (const uint8_t *)str, strlen(str));
}

static void test_null_and_off(void **state)
{
	(void)state;
	struct chv_err err = {0};
	struct console_config cc = {.mode = CONSOLE_NULL};
	struct sink *s = sink_open(&cc, &err);
	assert_non_null(s);
	put(s, "dropped");
	struct out_sink o = sink_out(s);
	assert_non_null(o.write);
	o.write(o.ctx, (const uint8_t *)"x", 1);
	assert_int_equal(sink_dropped(s), 0);
	sink_set_input(s, on_input, NULL);
	sink_close(s);

	cc.mode = CONSOLE_OFF;
	s = sink_open(&cc, &err);
	assert_non_null(s);
	put(s, "dropped");
	sink_close(s);

	/* NULL-safety */
	sink_close(NULL);
	sink_write(NULL, (const uint8_t *)"x", 1);
	o = sink_out(NULL);
	assert_null(o.write);
	assert_int_equal(sink_dropped(NULL), 0);
}

static void test_file_appends(void **state)
{
	(void)state;
	char path[128];
	path_in_dir(path, sizeof(path), "serial.log");
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("before\n", f);
	fclose(f);

	struct chv_err err = {0};
	struct console_config cc = {.mode = CONSOLE_FILE, .path = path};
	struct sink *s = sink_open(&cc, &err);
	assert_non_null(s);
	put(s, "one ");
	struct out_sink o = sink_out(s);
	o.write(o.ctx, (const uint8_t *)"two\n", 4);
	/* written at once: visible before close */
	char buf[64] = {0};
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf) - 1), 15);
	close(fd);
	assert_string_equal(buf, "before\none two\n");
	sink_close(s);

	s = sink_open(&cc, &err);
	assert_non_null(s);
	put(s, "again\n");
	sink_close(s);
	fd = open(path, O_RDONLY);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(read(fd, buf, sizeof(buf) - 1), 21);
	close(fd);
	assert_string_equal(buf, "before\none two\nagain\n");
	unlink(path);

	/* a new file is private to the owner */
	s = sink_open(&cc, &err);
	assert_non_null(s);
	sink_close(s);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	unlink(path);
}

static void test_file_errors(void **state)
{
	(void)state;
	char path[128];
	path_in_dir(path, sizeof(path), "no/such/dir/serial.log");
	struct chv_err err = {0};
	struct console_config cc = {.mode = CONSOLE_FILE, .path = path};
	assert_null(sink_open(&cc, &err));
	assert_int_equal(err.code, -ENOENT);
	assert_non_null(strstr(err.msg, "--serial file="));
	assert_non_null(strstr(err.msg, path));

	memset(&err, 0, sizeof(err));
	assert_null(sink_open_opt(&cc, "--console", &err));
	assert_non_null(strstr(err.msg, "--console file="));

	cc.path = NULL;
	assert_null(sink_open(&cc, &err));
	assert_int_equal(err.code, -EINVAL);
	assert_non_null(strstr(err.msg, "--serial file="));
	cc.path = "";
	assert_null(sink_open(&cc, &err));
	assert_int_equal(err.code, -EINVAL);
	cc.mode = CONSOLE_SOCKET;
	assert_null(sink_open(&cc, &err));
	assert_non_null(strstr(err.msg, "--serial socket="));
	cc.mode = (enum console_mode)42;
	assert_null(sink_open(&cc, &err));
	assert_int_equal(err.code, -EINVAL);
	assert_null(sink_open(NULL, &err));
	assert_null(sink_open(NULL, NULL));
}

static void test_socket_session(void **state)
{
	(void)state;
	char path[128];
	path_in_dir(path, sizeof(path), "console.sock");
	struct chv_err err = {0};
	struct console_config cc = {.mode = CONSOLE_SOCKET, .path = path};
	struct sink *s = sink_open(&cc, &err);
	assert_non_null(s);
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);

	struct input in = {.lock = PTHREAD_MUTEX_INITIALIZER};
	sink_set_input(s, on_input, &in);

	/* output before any client is kept for the first one */
	put(s, "boot log\n");
	int c = connect_to(path);
	char buf[64] = {0};
	read_exact(c, buf, 9);
	assert_string_equal(buf, "boot log\n");
	/* live output */
	put(s, "login: ");
	memset(buf, 0, sizeof(buf));
	read_exact(c, buf, 7);
	assert_string_equal(buf, "login: ");
	/* input reaches the callback */
	assert_int_equal(write(c, "root\r", 5), 5);
	assert_true(wait_input(&in, "root\r"));

	/* disconnect; output meanwhile is kept for the next client */
	close(c);
	usleep(50000);
	put(s, "after\n");
	c = connect_to(path);
	memset(buf, 0, sizeof(buf));
	read_exact(c, buf, 6);
	assert_string_equal(buf, "after\n");
	/* what the first client got is not repeated */
	assert_true(quiet(c, 100));
	assert_int_equal(write(c, "x", 1), 1);
	assert_true(wait_input(&in, "root\rx"));

	/* the client reads EOF when the sink closes; the file is removed */
	sink_close(s);
	assert_int_equal(read(c, buf, 1), 0);
	close(c);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_socket_input_without_callback(void **state)
{
	(void)state;
	char path[128];
	path_in_dir(path, sizeof(path), "cb.sock");
	struct chv_err err = {0};
	struct console_config cc = {.mode = CONSOLE_SOCKET, .path = path};
	struct sink *s = sink_open(&cc, &err);
	assert_non_null(s);
	int c = connect_to(path);
	assert_int_equal(write(c, "early", 5), 5);
	usleep(50000);
	/* kept in the kernel until a callback is set */
	struct input in = {.lock = PTHREAD_MUTEX_INITIALIZER};
	sink_set_input(s, on_input, &in);
	assert_true(wait_input(&in, "early"));
	/* a client disconnect is noticed without a callback too */
	sink_set_input(s, NULL, NULL);
	close(c);
	usleep(50000);
	c = connect_to(path);
	put(s, "hi");
	char buf[4] = {0};
	read_exact(c, buf, 2);
	assert_string_equal(buf, "hi");
	close(c);
	sink_close(s);
}

static void test_socket_slow_client(void **state)
{
	(void)state;
	char path[128];
	path_in_dir(path, sizeof(path), "slow.sock");
	struct chv_err err = {0};
	struct console_config cc = {.mode = CONSOLE_SOCKET, .path = path};
	struct sink *s = sink_open(&cc, &err);
	assert_non_null(s);
	int c = connect_to(path);
	usleep(50000);

	/* 4 MiB at a client that does not read: must not stall the writer */
	static uint8_t block[4096];
	long long t0 = now_ms();
	for (unsigned i = 0; i < 1024; i++) {
		memset(block, 'a' + (int)(i % 26), sizeof(block));
		sink_write(s, block, sizeof(block));
	}
	put(s, "END");
	assert_true(now_ms() - t0 < 1000);
	assert_true(sink_dropped(s) > 0);

	/* the client then reads: the newest bytes arrive, ending with END */
	char tail[3];
	size_t total = 0;
	char last3[3] = {0};
	for (;;) {
		char buf[8192];
		struct pollfd p = {.fd = c, .events = POLLIN};
		if (poll(&p, 1, 500) <= 0)
			break;
		ssize_t r = read(c, buf, sizeof(buf));
		assert_true(r > 0);
		for (ssize_t i = 0; i < r; i++) {
			last3[0] = last3[1];
			last3[1] = last3[2];
			last3[2] = buf[i];
		}
		total += (size_t)r;
	}
	memcpy(tail, last3, 3);
	assert_memory_equal(tail, "END", 3);
	assert_true(total < 4u * 1024 * 1024);
	assert_int_equal(total + sink_dropped(s), 4u * 1024 * 1024 + 3);
	close(c);
	sink_close(s);
}

static void test_socket_history_bounded(void **state)
{
	(void)state;
	char path[128];
	path_in_dir(path, sizeof(path), "hist.sock");
	struct chv_err err = {0};
	struct console_config cc = {.mode = CONSOLE_SOCKET, .path = path};
	struct sink *s = sink_open(&cc, &err);
	assert_non_null(s);
	/* more than the ring while nobody listens: the oldest bytes go */
	static uint8_t big[SINK_RING_SIZE + 1000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)('0' + i % 10);
	sink_write(s, big, 500);
	sink_write(s, big + 500, sizeof(big) - 500);
	assert_int_equal(sink_dropped(s), 1000);
	/* one write larger than the ring keeps its end */
	static uint8_t huge[2 * SINK_RING_SIZE];
	memset(huge, 'h', sizeof(huge));
	huge[sizeof(huge) - 1] = 'Z';
	sink_write(s, huge, sizeof(huge));
	assert_int_equal(sink_dropped(s), 1000 + sizeof(big) - 1000 + SINK_RING_SIZE);

	int c = connect_to(path);
	static char got[SINK_RING_SIZE];
	read_exact(c, got, sizeof(got));
	assert_int_equal(got[0], 'h');
	assert_int_equal(got[SINK_RING_SIZE - 1], 'Z');
	assert_true(quiet(c, 100));
	close(c);
	sink_close(s);
}

static void make_stale_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	fill_sun(&sa, path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd); /* the file stays: nobody listens */
}

static void test_socket_stale_replaced(void **state)
{
	(void)state;
	char path[128];
	path_in_dir(path, sizeof(path), "stale.sock");
	make_stale_socket(path);
	struct chv_err err = {0};
	struct console_config cc = {.mode = CONSOLE_SOCKET, .path = path};
	struct sink *s = sink_open(&cc, &err);
	assert_non_null(s);
	int c = connect_to(path);
	put(s, "ok");
	char buf[4] = {0};
	read_exact(c, buf, 2);
	assert_string_equal(buf, "ok");
	close(c);

	/* a second sink on the live socket is refused */
	struct chv_err err2 = {0};
	assert_null(sink_open_opt(&cc, "--console", &err2));
	assert_int_equal(err2.code, -EADDRINUSE);
	assert_non_null(strstr(err2.msg, "--console socket="));
	assert_non_null(strstr(err2.msg, path));
	sink_close(s);
}

static void test_socket_refuses_non_socket(void **state)
{
	(void)state;
	char path[128];
	path_in_dir(path, sizeof(path), "precious.txt");
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("keep me", f);
	fclose(f);
	struct chv_err err = {0};
	struct console_config cc = {.mode = CONSOLE_SOCKET, .path = path};
	assert_null(sink_open(&cc, &err));
	assert_int_equal(err.code, -EEXIST);
	assert_non_null(strstr(err.msg, "--serial socket="));
	assert_non_null(strstr(err.msg, path));
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 7);
	unlink(path);

	/* a directory is not replaced either */
	path_in_dir(path, sizeof(path), "adir");
	assert_int_equal(mkdir(path, 0700), 0);
	assert_null(sink_open(&cc, &err));
	assert_int_equal(err.code, -EEXIST);
	rmdir(path);

	/* too long for sun_path */
	char longp[200];
	memset(longp, 'a', sizeof(longp));
	longp[0] = '/';
	longp[sizeof(longp) - 1] = 0;
	cc.path = longp;
	assert_null(sink_open(&cc, &err));
	assert_int_equal(err.code, -ENAMETOOLONG);
	assert_non_null(strstr(err.msg, "--serial socket=/aaa"));

	/* a directory that does not exist */
	path_in_dir(path, sizeof(path), "none/x.sock");
	cc.path = path;
	assert_null(sink_open(&cc, &err));
	assert_int_equal(err.code, -ENOENT);
	assert_non_null(strstr(err.msg, path));
}

static void test_socket_not_ours_kept(void **state)
{
	(void)state;
	char path[128];
	path_in_dir(path, sizeof(path), "moved.sock");
	struct chv_err err = {0};
	struct console_config cc = {.mode = CONSOLE_SOCKET, .path = path};
	struct sink *s = sink_open(&cc, &err);
	assert_non_null(s);
	/* someone replaced the path meanwhile: close must not remove theirs */
	assert_int_equal(unlink(path), 0);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	sink_close(s);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	unlink(path);
}

/* tty mode on a pseudo-terminal standing in for stdin and stdout */
struct tty_fixture {
	int saved_in, saved_out, master, slave;
	struct sink *s;
};

static int tty_setup(void **state)
{
	struct tty_fixture *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	t->master = posix_openpt(O_RDWR | O_NOCTTY);
	if (t->master < 0 || grantpt(t->master) || unlockpt(t->master))
		return -1;
	t->slave = open(ptsname(t->master), O_RDWR | O_NOCTTY);
	if (t->slave < 0)
		return -1;
	fflush(stdout);
	t->saved_in = dup(0);
	t->saved_out = dup(1);
	if (dup2(t->slave, 0) < 0 || dup2(t->slave, 1) < 0)
		return -1;
	*state = t;
	return 0;
}

static int tty_teardown(void **state)
{
	struct tty_fixture *t = *state;
	sink_close(t->s);
	dup2(t->saved_in, 0);
	dup2(t->saved_out, 1);
	close(t->saved_in);
	close(t->saved_out);
	close(t->slave);
	close(t->master);
	free(t);
	return 0;
}

static void test_tty(void **state)
{
	struct tty_fixture *t = *state;
	struct termios before, during, after;
	assert_int_equal(tcgetattr(0, &before), 0);
	assert_true(before.c_lflag & ICANON);

	struct chv_err err = {0};
	struct console_config cc = {.mode = CONSOLE_TTY};
	t->s = sink_open(&cc, &err);
	assert_non_null(t->s);
	assert_int_equal(tcgetattr(0, &during), 0);
	assert_false(during.c_lflag & (ICANON | ECHO | ISIG));
	assert_false(during.c_iflag & ICRNL);

	/* only one tty console */
	struct chv_err err2 = {0};
	assert_null(sink_open_opt(&cc, "--console", &err2));
	assert_int_equal(err2.code, -EBUSY);
	assert_non_null(strstr(err2.msg, "--console tty"));

	struct input in = {.lock = PTHREAD_MUTEX_INITIALIZER};
	sink_set_input(t->s, on_input, &in);
	put(t->s, "guest says hi");
	char buf[32] = {0};
	read_exact(t->master, buf, 13);
	assert_string_equal(buf, "guest says hi");
	/* raw: a key arrives without a newline, Ctrl-C is a byte */
	assert_int_equal(write(t->master, "k\003", 2), 2);
	assert_true(wait_input(&in, "k\003"));

	sink_close(t->s);
	t->s = NULL;
	assert_int_equal(tcgetattr(0, &after), 0);
	assert_true(after.c_lflag & ICANON);
	assert_int_equal(after.c_lflag, before.c_lflag);
	assert_int_equal(after.c_iflag, before.c_iflag);

	/* a tty sink can be opened again once the first is closed */
	t->s = sink_open(&cc, &err);
	assert_non_null(t->s);
	sink_tty_restore(); /* what a signal handler would do */
	assert_int_equal(tcgetattr(0, &after), 0);
	assert_true(after.c_lflag & ICANON);
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_sink.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	return rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_null_and_off),
	    cmocka_unit_test(test_file_appends),
	    cmocka_unit_test(test_file_errors),
	    cmocka_unit_test(test_socket_session),
	    cmocka_unit_test(test_socket_input_without_callback),
	    cmocka_unit_test(test_socket_slow_client),
	    cmocka_unit_test(test_socket_history_bounded),
	    cmocka_unit_test(test_socket_stale_replaced),
	    cmocka_unit_test(test_socket_refuses_non_socket),
	    cmocka_unit_test(test_socket_not_ours_kept),
	    cmocka_unit_test_setup_teardown(test_tty, tty_setup, tty_teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
