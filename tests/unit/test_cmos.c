#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "vm/dev_cmos.h"

#define GiB (1024ULL * 1024 * 1024)
#define MiB (1024ULL * 1024)

static uint8_t rd(struct cmos *c, uint8_t idx)
{
	uint8_t v = idx;
	cmos_io(c, 0, &v, 1, true);
	v = 0x5a;
	cmos_io(c, 1, &v, 1, false);
	return v;
}

static void wr(struct cmos *c, uint8_t idx, uint8_t val)
{
	cmos_io(c, 0, &idx, 1, true);
	cmos_io(c, 1, &val, 1, true);
}

static int bcd(uint8_t v)
{
	return (v >> 4) * 10 + (v & 0xf);
}

/* Reads the clock as a guest would and converts it to a time_t. */
static time_t read_rtc(struct cmos *c, bool binary, bool h24)
{
	int (*dec)(uint8_t) = bcd;
	struct tm tm = {0};
	uint8_t hour;
	if (binary)
		dec = NULL;
#define D(x) (dec ? dec(x) : (int)(x))
	tm.tm_sec = D(rd(c, CMOS_SECONDS));
	tm.tm_min = D(rd(c, CMOS_MINUTES));
	hour = rd(c, CMOS_HOURS);
	if (h24) {
		tm.tm_hour = D(hour);
	} else {
		int h = D(hour & 0x7f);
		assert_in_range(h, 1, 12);
		tm.tm_hour = (h % 12) + ((hour & 0x80) ? 12 : 0);
	}
	tm.tm_mday = D(rd(c, CMOS_DAY));
	tm.tm_mon = D(rd(c, CMOS_MONTH)) - 1;
	tm.tm_year = D(rd(c, CMOS_CENTURY)) * 100 + D(rd(c, CMOS_YEAR)) - 1900;
	int wday = D(rd(c, CMOS_WEEKDAY));
#undef D
	time_t t = timegm(&tm);
	assert_int_equal(wday, tm.tm_wday + 1);
	return t;
}

static void assert_near(time_t a, time_t b)
{
	long long d = (long long)a - (long long)b;
	if (d < -2 || d > 2)
		fail_msg("times differ by %lld s", d);
}

static void test_defaults(void **state)
{
	(void)state;
	struct cmos *c = cmos_create(512 * MiB, 0);
	assert_non_null(c);
	assert_int_equal(rd(c, CMOS_STATUS_A) & 0x7f, 0x26);
	assert_int_equal(rd(c, CMOS_STATUS_B), 0x02);
	assert_int_equal(rd(c, CMOS_STATUS_D), 0x80);
	cmos_destroy(c);
	cmos_destroy(NULL);
}

static void test_time_bcd_24h(void **state)
{
	(void)state;
	struct cmos *c = cmos_create(512 * MiB, 0);
	assert_non_null(c);
	/* every time field is valid BCD */
	static const uint8_t idx[] = {0, 2, 4, 6, 7, 8, 9, 0x32};
	for (size_t i = 0; i < sizeof(idx); i++) {
		uint8_t v = rd(c, idx[i]);
		assert_true((v & 0x0f) <= 9);
		assert_true((v >> 4) <= 9);
	}
	assert_near(read_rtc(c, false, true), time(NULL));
	cmos_destroy(c);
}

static void test_time_binary(void **state)
{
	(void)state;
	struct cmos *c = cmos_create(512 * MiB, 0);
	assert_non_null(c);
	wr(c, CMOS_STATUS_B, 0x06);
	assert_int_equal(rd(c, CMOS_STATUS_B), 0x06);
	assert_near(read_rtc(c, true, true), time(NULL));
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	assert_int_equal(rd(c, CMOS_CENTURY), (tm.tm_year + 1900) / 100);
	cmos_destroy(c);
}

static void test_time_12h(void **state)
{
	(void)state;
	struct cmos *c = cmos_create(512 * MiB, 0);
	assert_non_null(c);
	wr(c, CMOS_STATUS_B, 0x00); /* BCD, 12 hour */
	assert_near(read_rtc(c, false, false), time(NULL));
	wr(c, CMOS_STATUS_B, 0x04); /* binary, 12 hour */
	assert_near(read_rtc(c, true, false), time(NULL));

	/* set 00:30 (12 AM), 12:30 (12 PM) and 23:30 (11 PM) in 12h mode */
	wr(c, CMOS_STATUS_B, 0x00);
	wr(c, CMOS_HOURS, 0x12);
	wr(c, CMOS_STATUS_B, 0x02);
	assert_int_equal(rd(c, CMOS_HOURS), 0x00);
	wr(c, CMOS_STATUS_B, 0x00);
	wr(c, CMOS_HOURS, 0x92);
	wr(c, CMOS_STATUS_B, 0x02);
	assert_int_equal(rd(c, CMOS_HOURS), 0x12);
	wr(c, CMOS_STATUS_B, 0x00);
	assert_int_equal(rd(c, CMOS_HOURS), 0x92);
	wr(c, CMOS_HOURS, 0x91);
	assert_int_equal(rd(c, CMOS_HOURS), 0x91);
	wr(c, CMOS_STATUS_B, 0x02);
	assert_int_equal(rd(c, CMOS_HOURS), 0x23);
	cmos_destroy(c);
}

static void test_write_fields(void **state)
{
	(void)state;
	struct cmos *c = cmos_create(512 * MiB, 0);
	assert_non_null(c);
	time_t before = read_rtc(c, false, true);
	/* a year written alone moves the whole clock by whole years */
	wr(c, CMOS_YEAR, 0x37);
	assert_int_equal(rd(c, CMOS_YEAR), 0x37);
	wr(c, CMOS_CENTURY, 0x21);
	assert_int_equal(rd(c, CMOS_CENTURY), 0x21);
	assert_int_equal(rd(c, CMOS_YEAR), 0x37);
	time_t after = read_rtc(c, false, true);
	assert_true(after > before + 100LL * 365 * 86400);
	/* and it keeps running: still an offset from host time */
	struct timespec ts = {.tv_sec = 1, .tv_nsec = 100000000};
	nanosleep(&ts, NULL);
	time_t later = read_rtc(c, false, true);
	assert_true(later > after);
	assert_true(later <= after + 3);
	cmos_destroy(c);
}

static void test_write_set_sequence(void **state)
{
	(void)state;
	struct cmos *c = cmos_create(512 * MiB, 0);
	assert_non_null(c);
	/* the way Linux's mc146818_set_time writes: SET, fields, clear SET */
	wr(c, CMOS_STATUS_B, 0x82 | 0x10);
	assert_int_equal(rd(c, CMOS_STATUS_B), 0x82); /* SET clears UIE */
	wr(c, CMOS_DAY, 0x31);			      /* before the month: must not normalise */
	wr(c, CMOS_MONTH, 0x01);
	wr(c, CMOS_YEAR, 0x24);
	wr(c, CMOS_CENTURY, 0x20);
	wr(c, CMOS_HOURS, 0x23);
	wr(c, CMOS_MINUTES, 0x59);
	wr(c, CMOS_SECONDS, 0x58);
	/* held: the registers read what was written, the clock stopped */
	assert_int_equal(rd(c, CMOS_DAY), 0x31);
	assert_int_equal(rd(c, CMOS_WEEKDAY), 0x04); /* 2024-01-31: Wednesday */
	assert_int_equal(rd(c, CMOS_STATUS_A) & 0x80, 0);
	assert_int_equal(rd(c, CMOS_STATUS_C), 0);
	wr(c, CMOS_STATUS_B, 0x02);
	struct tm want = {
	    .tm_year = 124, .tm_mon = 0, .tm_mday = 31, .tm_hour = 23, .tm_min = 59, .tm_sec = 58};
	assert_near(read_rtc(c, false, true), timegm(&want));
	cmos_destroy(c);
}

static void test_write_binary(void **state)
{
	(void)state;
	struct cmos *c = cmos_create(512 * MiB, 0);
	assert_non_null(c);
	wr(c, CMOS_STATUS_B, 0x86);
	wr(c, CMOS_CENTURY, 20);
	wr(c, CMOS_YEAR, 30);
	wr(c, CMOS_MONTH, 6);
	wr(c, CMOS_DAY, 15);
	wr(c, CMOS_HOURS, 8);
	wr(c, CMOS_MINUTES, 0);
	wr(c, CMOS_SECONDS, 0);
	wr(c, CMOS_WEEKDAY, 1); /* ignored: follows the date */
	wr(c, CMOS_STATUS_B, 0x06);
	struct tm want = {.tm_year = 130, .tm_mon = 5, .tm_mday = 15, .tm_hour = 8};
	assert_near(read_rtc(c, true, true), timegm(&want));
	cmos_destroy(c);
}

static struct timespec fake_now;

static void fake_clock(struct timespec *ts)
{
	*ts = fake_now;
}

static void test_uip_and_uf(void **state)
{
	(void)state;
	struct cmos *c = cmos_create(512 * MiB, 0);
	assert_non_null(c);
	fake_now = (struct timespec){.tv_sec = 1700000000, .tv_nsec = 500000000};
	cmos_set_clock(c, fake_clock);
	(void)rd(c, CMOS_STATUS_C);
	/* UIP is set for the last 244 us of each second, and only then */
	assert_int_equal(rd(c, CMOS_STATUS_A) & 0x80, 0);
	fake_now.tv_nsec = 1000000000L - 244001;
	assert_int_equal(rd(c, CMOS_STATUS_A) & 0x80, 0);
	fake_now.tv_nsec = 1000000000L - 244000;
	assert_int_equal(rd(c, CMOS_STATUS_A) & 0x80, 0x80);
	fake_now.tv_nsec = 999999999L;
	assert_int_equal(rd(c, CMOS_STATUS_A) & 0x80, 0x80);
	fake_now = (struct timespec){.tv_sec = 1700000001, .tv_nsec = 0};
	assert_int_equal(rd(c, CMOS_STATUS_A) & 0x80, 0);
	/* a second boundary passed: UF, once */
	assert_int_equal(rd(c, CMOS_STATUS_C) & 0x10, 0x10);
	assert_int_equal(rd(c, CMOS_STATUS_C), 0);
	/* writes to A keep UIP read-only */
	wr(c, CMOS_STATUS_A, 0xff);
	assert_int_equal(rd(c, CMOS_STATUS_A), 0x7f);
	wr(c, CMOS_STATUS_A, 0x26);
	assert_int_equal(rd(c, CMOS_STATUS_A) & 0x7f, 0x26);
	cmos_destroy(c);
}

static void test_read_only_regs(void **state)
{
	(void)state;
	struct cmos *c = cmos_create(512 * MiB, 0);
	assert_non_null(c);
	wr(c, CMOS_STATUS_D, 0x00);
	assert_int_equal(rd(c, CMOS_STATUS_D), 0x80);
	wr(c, CMOS_STATUS_C, 0xff);
	assert_int_equal(rd(c, CMOS_STATUS_C) & 0xef, 0);
	cmos_destroy(c);
}

static void test_memory_registers(void **state)
{
	(void)state;
	struct cmos *c = cmos_create(3 * GiB, 1 * GiB);
	assert_non_null(c);
	unsigned below = rd(c, CMOS_MEM_16M_LO) | (rd(c, CMOS_MEM_16M_LO + 1) << 8);
	assert_int_equal(below, (3 * GiB - 16 * MiB) / 65536);
	unsigned above = rd(c, 0x5b) | (rd(c, 0x5c) << 8) | ((unsigned)rd(c, 0x5d) << 16);
	assert_int_equal(above, GiB / 65536);
	assert_int_equal(rd(c, 0x15) | (rd(c, 0x16) << 8), 640);
	assert_int_equal(rd(c, 0x17) | (rd(c, 0x18) << 8), 0xffff);
	assert_int_equal(rd(c, 0x30) | (rd(c, 0x31) << 8), 0xffff);
	cmos_destroy(c);

	c = cmos_create(8 * MiB, 0);
	assert_non_null(c);
	assert_int_equal(rd(c, 0x34), 0);
	assert_int_equal(rd(c, 0x35), 0);
	assert_int_equal(rd(c, 0x5b) | rd(c, 0x5c) | rd(c, 0x5d), 0);
	assert_int_equal(rd(c, 0x17) | (rd(c, 0x18) << 8), 7 * 1024);
	cmos_destroy(c);

	c = cmos_create(3 * GiB, 2048 * GiB); /* more than 24 bits of 64 KiB */
	assert_non_null(c);
	assert_int_equal(rd(c, 0x5b) & rd(c, 0x5c) & rd(c, 0x5d), 0xff);
	cmos_destroy(c);

	c = cmos_create(256 * 1024, 0);
	assert_non_null(c);
	assert_int_equal(rd(c, 0x15) | (rd(c, 0x16) << 8), 256);
	cmos_destroy(c);
}

static void test_ram_and_index(void **state)
{
	(void)state;
	struct cmos *c = cmos_create(512 * MiB, 0);
	assert_non_null(c);
	for (unsigned i = 0x0e; i < 0x80; i++) {
		if (i == CMOS_CENTURY)
			continue;
		wr(c, (uint8_t)i, (uint8_t)(i ^ 0xa5));
	}
	for (unsigned i = 0x0e; i < 0x80; i++) {
		if (i == CMOS_CENTURY)
			continue;
		assert_int_equal(rd(c, (uint8_t)i), (uint8_t)(i ^ 0xa5));
	}
	/* bit 7 of the index is the NMI mask: same register */
	assert_int_equal(rd(c, 0x80 | 0x40), 0x40 ^ 0xa5);
	wr(c, 0xff, 0x11);
	assert_int_equal(rd(c, 0x7f), 0x11);
	assert_int_equal(rd(c, 0x80 | CMOS_STATUS_D), 0x80);
	/* alarm registers are plain storage */
	wr(c, 0x01, 0x33);
	assert_int_equal(rd(c, 0x01), 0x33);
	cmos_destroy(c);
}

static void test_offsets_and_widths(void **state)
{
	(void)state;
	struct cmos *c = cmos_create(512 * MiB, 0);
	assert_non_null(c);
	uint8_t buf[8];
	/* the index port is write-only */
	memset(buf, 0, sizeof(buf));
	cmos_io(c, 0, buf, 1, false);
	assert_int_equal(buf[0], 0xff);
	for (uint64_t off = 2; off < 10; off++) {
		memset(buf, 0, sizeof(buf));
		cmos_io(c, off, buf, 1, false);
		assert_int_equal(buf[0], 0xff);
		buf[0] = CMOS_STATUS_D;
		cmos_io(c, off, buf, 1, true);
	}
	cmos_io(c, UINT64_MAX, buf, 4, false);
	assert_int_equal(buf[0], 0xff);
	cmos_io(c, UINT64_MAX, buf, 4, true);
	/* outw: index in the low byte, data in the high */
	uint8_t w[2] = {0x40, 0x77};
	cmos_io(c, 0, w, 2, true);
	assert_int_equal(rd(c, 0x40), 0x77);
	/* a 4-byte read from the index port: 0xff, data, then past the end */
	uint8_t idx = 0x40;
	cmos_io(c, 0, &idx, 1, true);
	cmos_io(c, 0, buf, 4, false);
	assert_int_equal(buf[0], 0xff);
	assert_int_equal(buf[1], 0x77);
	assert_int_equal(buf[2], 0xff);
	assert_int_equal(buf[3], 0xff);
	for (uint32_t len = 1; len <= 8; len *= 2) {
		cmos_io(c, 1, buf, len, false);
		cmos_io(c, 0, buf, len, false);
	}
	cmos_destroy(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),	   cmocka_unit_test(test_time_bcd_24h),
	    cmocka_unit_test(test_time_binary),	   cmocka_unit_test(test_time_12h),
	    cmocka_unit_test(test_write_fields),   cmocka_unit_test(test_write_set_sequence),
	    cmocka_unit_test(test_write_binary),   cmocka_unit_test(test_uip_and_uf),
	    cmocka_unit_test(test_read_only_regs), cmocka_unit_test(test_memory_registers),
	    cmocka_unit_test(test_ram_and_index),  cmocka_unit_test(test_offsets_and_widths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
