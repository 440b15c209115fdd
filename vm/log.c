#include "vm/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static int log_fd = 2;
static int log_verbosity;
static struct timespec log_t0;
static int log_started;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

int log_init(int verbosity, const char *path)
{
	clock_gettime(CLOCK_MONOTONIC, &log_t0);
	log_started = 1;
	log_verbosity = verbosity;
	if (path) {
		int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
		log_fd = fd;
	}
	return 0;
}

void log_close(void)
{
	if (log_fd > 2)
		close(log_fd);
	log_fd = 2;
}

int log_enabled(enum log_level lvl)
{
	return (int)lvl <= log_verbosity + 1;
}

double log_uptime(void)
{
	struct timespec t;
	if (!log_started)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - log_t0.tv_sec) + (double)(t.tv_nsec - log_t0.tv_nsec) / 1e9;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	if (!log_enabled(lvl))
		return;
	char line[2048];
	int n =
	    snprintf(line, sizeof(line), "[%10.6f] chv-vmm: %s: ", log_uptime(), level_names[lvl]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	ssize_t w = write(log_fd, line, len);
	(void)w;
}
