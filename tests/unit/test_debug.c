#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vm/dev_debug.h"

struct capture {
	char lines[16][128];
	int n;
};

static void on_line(void *ctx, const char *line)
{
	struct capture *c = ctx;
	if (c->n < 16)
		snprintf(c->lines[c->n], sizeof(c->lines[0]), "%s", line);
	c->n++;
}

static void put(struct dbgport *d, uint8_t code)
{
	dbgport_io(d, 0, &code, 1, true);
}

static void test_classes(void **state)
{
	(void)state;
	assert_string_equal(dbgport_class(0x00), "firmware");
	assert_string_equal(dbgport_class(0x1f), "firmware");
	assert_string_equal(dbgport_class(0x20), "bootloader");
	assert_string_equal(dbgport_class(0x3f), "bootloader");
	assert_string_equal(dbgport_class(0x40), "kernel");
	assert_string_equal(dbgport_class(0x5f), "kernel");
	assert_string_equal(dbgport_class(0x60), "userspace");
	assert_string_equal(dbgport_class(0x7f), "userspace");
	assert_string_equal(dbgport_class(0x80), "custom");
	assert_string_equal(dbgport_class(0xff), "custom");
}

static void test_log_lines(void **state)
{
	(void)state;
	struct capture cap = {0};
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	start.tv_sec -= 2; /* the VMM started 2 s ago */
	struct dbgport *d = dbgport_create(&start, on_line, &cap);
	assert_non_null(d);
	put(d, 0x41);
	put(d, 0x05);
	put(d, 0x22);
	put(d, 0x7a);
	put(d, 0xe3);
	assert_int_equal(cap.n, 5);
	const char *want[] = {"kernel code 0x41", "firmware code 0x05", "bootloader code 0x22",
			      "userspace code 0x7a", "custom code 0xe3"};
	for (int i = 0; i < 5; i++) {
		char prefix[64];
		snprintf(prefix, sizeof(prefix), "debug port: %s at ", want[i]);
		assert_memory_equal(cap.lines[i], prefix, strlen(prefix));
		const char *ms = cap.lines[i] + strlen(prefix);
		char *end;
		double v = strtod(ms, &end);
		assert_string_equal(end, " ms");
		assert_true(v >= 2000.0 && v < 12000.0);
		assert_non_null(strchr(ms, '.'));
	}
	assert_int_equal(dbgport_last_code(d), 0xe3);
	assert_int_equal(dbgport_count(d), 5);
	dbgport_destroy(d);
}

static void test_reads_and_widths(void **state)
{
	(void)state;
	struct capture cap = {0};
	struct dbgport *d = dbgport_create(NULL, on_line, &cap);
	assert_non_null(d);
	uint8_t buf[4] = {0x42, 0x43, 0x44, 0x45};
	dbgport_io(d, 0, buf, 4, true); /* one code: the low byte */
	assert_int_equal(cap.n, 1);
	assert_int_equal(dbgport_last_code(d), 0x42);
	memset(buf, 0, sizeof(buf));
	dbgport_io(d, 0, buf, 2, false);
	assert_int_equal(buf[0], 0x42);
	assert_int_equal(buf[1], 0x42);
	assert_int_equal(buf[2], 0);
	assert_int_equal(cap.n, 1); /* reads log nothing */
	dbgport_io(d, 1, buf, 1, true);
	dbgport_io(d, 0, buf, 0, true);
	assert_int_equal(cap.n, 1);
	assert_int_equal(dbgport_count(d), 1);
	/* the start defaults to now */
	const char *want = "debug port: kernel code 0x42 at 0.";
	assert_memory_equal(cap.lines[0], want, strlen(want));
	dbgport_destroy(d);
}

static void test_no_log(void **state)
{
	(void)state;
	struct dbgport *d = dbgport_create(NULL, NULL, NULL);
	assert_non_null(d);
	put(d, 1);
	put(d, 2);
	assert_int_equal(dbgport_count(d), 2);
	assert_int_equal(dbgport_last_code(d), 2);
	dbgport_destroy(d);
	dbgport_destroy(NULL);
}

static uint64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static void test_first_write_time(void **state)
{
	(void)state;
	struct dbgport *d = dbgport_create(NULL, NULL, NULL);
	assert_non_null(d);
	assert_int_equal(dbgport_first_ns(d), 0);
	/* Reads, empty writes and writes past the port are not a code. */
	uint8_t b = 0x40;
	dbgport_io(d, 0, &b, 1, false);
	dbgport_io(d, 0, &b, 0, true);
	dbgport_io(d, 1, &b, 1, true);
	assert_int_equal(dbgport_first_ns(d), 0);

	uint64_t before = mono_ns();
	put(d, 0x40);
	uint64_t after = mono_ns();
	uint64_t first = dbgport_first_ns(d);
	assert_true(first >= before && first <= after);
	/* Later codes keep the first time. */
	struct timespec pause = {0, 2000000};
	nanosleep(&pause, NULL);
	put(d, 0x41);
	put(d, 0x4f);
	assert_int_equal(dbgport_first_ns(d), first);
	assert_int_equal(dbgport_count(d), 3);
	dbgport_destroy(d);

	/* A new device (a rebuilt VM) starts again from none. */
	d = dbgport_create(NULL, NULL, NULL);
	assert_non_null(d);
	assert_int_equal(dbgport_first_ns(d), 0);
	put(d, 0x00);
	assert_true(dbgport_first_ns(d) > first);
	dbgport_destroy(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_classes),	     cmocka_unit_test(test_log_lines),
	    cmocka_unit_test(test_reads_and_widths), cmocka_unit_test(test_no_log),
	    cmocka_unit_test(test_first_write_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
