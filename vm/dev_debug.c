#include "vm/dev_debug.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dbgport {
	pthread_mutex_t lock;
	struct timespec start;
	dbgport_log_fn log;
	void *ctx;
	uint8_t last;
	uint64_t count;
	uint64_t first_ns; /* CLOCK_MONOTONIC of the first code; 0: none yet */
};

const char *dbgport_class(uint8_t code)
{
	static const char *const names[] = {"firmware", "bootloader", "kernel", "userspace"};
	return code < 0x80 ? names[code >> 5] : "custom";
}

/* Never 0, so 0 can mean "no write yet". */
static uint64_t dbgport_now_ns(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	uint64_t ns = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
	return ns ? ns : 1;
}

static uint64_t dbgport_elapsed_us(const struct dbgport *d)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t ns = (int64_t)(now.tv_sec - d->start.tv_sec) * 1000000000LL +
		     (now.tv_nsec - d->start.tv_nsec);
	return ns > 0 ? (uint64_t)ns / 1000 : 0;
}

void dbgport_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct dbgport *d = opaque;

	if (!len)
		return;
	pthread_mutex_lock(&d->lock);
	if (!is_write) {
		memset(data, d->last, len);
		pthread_mutex_unlock(&d->lock);
		return;
	}
	if (offset != 0) {
		pthread_mutex_unlock(&d->lock);
		return;
	}
	uint8_t code = data[0];
	d->last = code;
	if (!d->count++)
		d->first_ns = dbgport_now_ns();
	pthread_mutex_unlock(&d->lock);

	if (!d->log)
		return;
	uint64_t us = dbgport_elapsed_us(d);
	char line[96];
	snprintf(line, sizeof(line), "debug port: %s code 0x%02x at %" PRIu64 ".%03u ms",
		 dbgport_class(code), code, us / 1000, (unsigned)(us % 1000));
	d->log(d->ctx, line);
}

uint8_t dbgport_last_code(struct dbgport *d)
{
	pthread_mutex_lock(&d->lock);
	uint8_t v = d->last;
	pthread_mutex_unlock(&d->lock);
	return v;
}

uint64_t dbgport_count(struct dbgport *d)
{
	pthread_mutex_lock(&d->lock);
	uint64_t v = d->count;
	pthread_mutex_unlock(&d->lock);
	return v;
}

uint64_t dbgport_first_ns(struct dbgport *d)
{
	pthread_mutex_lock(&d->lock);
	uint64_t v = d->first_ns;
	pthread_mutex_unlock(&d->lock);
	return v;
}

struct dbgport *dbgport_create(const struct timespec *start, dbgport_log_fn log, void *ctx)
{
	struct dbgport *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	int rc = pthread_mutex_init(&d->lock, NULL);
	if (rc) {
		free(d);
		errno = rc;
		return NULL;
	}
	if (start)
		d->start = *start;
	else
		clock_gettime(CLOCK_MONOTONIC, &d->start);
	d->log = log;
	d->ctx = ctx;
	return d;
}

void dbgport_destroy(struct dbgport *d)
{
	if (!d)
		return;
	pthread_mutex_destroy(&d->lock);
	free(d);
}
