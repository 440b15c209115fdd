#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vm/dev_pm.h"
#include "vm/layout.h"
#include "vm/log.h"

struct power_log {
	int n;
	enum power_req last;
};

static void on_power(void *ctx, enum power_req req)
{
	struct power_log *p = ctx;
	p->n++;
	p->last = req;
}

static void test_each_value(void **state)
{
	(void)state;
	assert_int_equal(log_init(0, "/dev/null"), 0); /* 200 unsupported-sleep warnings */
	for (unsigned v = 0; v < 256; v++) {
		struct power_log log = {0};
		struct power_ctl pc = {.request = on_power, .ctx = &log};
		struct pmdev *p = pmdev_create(&pc);
		assert_non_null(p);
		uint8_t b = (uint8_t)v;
		pmdev_io(p, 0, &b, 1, true);
		if (v == ACPI_RESET_VALUE) {
			assert_int_equal(log.n, 1);
			assert_int_equal(log.last, POWER_RESET);
		} else if ((v & 0x20) && ((v >> 2) & 7) == ACPI_S5_SLP_TYP) {
			assert_int_equal(log.n, 1);
			assert_int_equal(log.last, POWER_OFF);
		} else {
			assert_int_equal(log.n, 0);
		}
		pmdev_destroy(p);
	}
	log_close();
}

static void test_s5_values(void **state)
{
	(void)state;
	struct power_log log = {0};
	struct power_ctl pc = {.request = on_power, .ctx = &log};
	struct pmdev *p = pmdev_create(&pc);
	assert_non_null(p);
	uint8_t b = 0x34; /* SLP_EN | 5 << 2: what the test guest and Linux write */
	pmdev_io(p, 0, &b, 1, true);
	assert_int_equal(log.n, 1);
	assert_int_equal(log.last, POWER_OFF);
	b = 0x14; /* S5 without SLP_EN: nothing */
	pmdev_io(p, 0, &b, 1, true);
	assert_int_equal(log.n, 1);
	char path[] = "/tmp/test_pm.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(log_init(0, path), 0);
	b = 0x24; /* S1: ignored, warned once */
	pmdev_io(p, 0, &b, 1, true);
	pmdev_io(p, 0, &b, 1, true);
	b = 0x2c; /* S3 */
	pmdev_io(p, 0, &b, 1, true);
	log_close();
	assert_int_equal(log.n, 1);
	char text[1024] = {0};
	ssize_t n = read(fd, text, sizeof(text) - 1);
	assert_true(n > 0);
	close(fd);
	unlink(path);
	assert_non_null(strstr(text, "sleep type 1"));
	int lines = 0;
	for (ssize_t i = 0; i < n; i++)
		lines += text[i] == '\n';
	assert_int_equal(lines, 1);
	pmdev_destroy(p);
}

static void test_widths(void **state)
{
	(void)state;
	struct power_log log = {0};
	struct power_ctl pc = {.request = on_power, .ctx = &log};
	struct pmdev *p = pmdev_create(&pc);
	assert_non_null(p);
	uint8_t buf[8];
	for (uint32_t len = 1; len <= 8; len *= 2) {
		memset(buf, 0xaa, sizeof(buf));
		pmdev_io(p, 0, buf, len, false);
		for (uint32_t i = 0; i < len; i++)
			assert_int_equal(buf[i], 0);
		assert_int_equal(buf[len < 8 ? len : 7], len < 8 ? 0xaa : 0);
	}
	/* a 16-bit write of 0x0034: the low byte counts */
	uint8_t w16[2] = {0x34, 0x00};
	pmdev_io(p, 0, w16, 2, true);
	assert_int_equal(log.n, 1);
	assert_int_equal(log.last, POWER_OFF);
	/* a 32-bit write of 1: reset */
	uint8_t w32[4] = {0x01, 0, 0, 0};
	pmdev_io(p, 0, w32, 4, true);
	assert_int_equal(log.n, 2);
	assert_int_equal(log.last, POWER_RESET);
	/* the high byte of a wide write is not a register */
	uint8_t hi[2] = {0x00, 0x01};
	pmdev_io(p, 0, hi, 2, true);
	pmdev_io(p, 1, hi + 1, 1, true);
	pmdev_io(p, 0, hi, 0, true);
	assert_int_equal(log.n, 2);
	pmdev_destroy(p);
}

static void test_no_power_ctl(void **state)
{
	(void)state;
	struct pmdev *p = pmdev_create(NULL);
	assert_non_null(p);
	uint8_t b = 1;
	pmdev_io(p, 0, &b, 1, true);
	b = 0x34;
	pmdev_io(p, 0, &b, 1, true);
	pmdev_destroy(p);
	pmdev_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_each_value),
	    cmocka_unit_test(test_s5_values),
	    cmocka_unit_test(test_widths),
	    cmocka_unit_test(test_no_power_ctl),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
