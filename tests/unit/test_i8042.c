#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vm/dev_i8042.h"

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

static uint8_t rd_data(struct i8042 *k)
{
	uint8_t v = 0x5a;
	i8042_data_io(k, 0, &v, 1, false);
	return v;
}

static uint8_t rd_status(struct i8042 *k)
{
	uint8_t v = 0x5a;
	i8042_cmd_io(k, 0, &v, 1, false);
	return v;
}

static void wr_data(struct i8042 *k, uint8_t v)
{
	i8042_data_io(k, 0, &v, 1, true);
}

static void wr_cmd(struct i8042 *k, uint8_t v)
{
	i8042_cmd_io(k, 0, &v, 1, true);
}

static void test_reset_command(void **state)
{
	(void)state;
	struct power_log p = {0};
	struct power_ctl pc = {.request = on_power, .ctx = &p};
	struct i8042 *k = i8042_create(&pc);
	assert_non_null(k);
	wr_cmd(k, 0xfe);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.last, POWER_RESET);
	/* other pulse commands with bit 0 clear also reset; bit 0 set do not */
	wr_cmd(k, 0xf0);
	assert_int_equal(p.n, 2);
	wr_cmd(k, 0xff);
	wr_cmd(k, 0xfd);
	assert_int_equal(p.n, 2);
	/* 0xFE written to the data port is a keyboard byte, not a reset */
	wr_data(k, 0xfe);
	assert_int_equal(p.n, 2);
	i8042_destroy(k);
}

static void test_other_commands_ignored(void **state)
{
	(void)state;
	struct power_log p = {0};
	struct power_ctl pc = {.request = on_power, .ctx = &p};
	struct i8042 *k = i8042_create(&pc);
	assert_non_null(k);
	for (unsigned c = 0; c < 0xf0; c++) {
		if (c == 0x60 || c == 0xd1) /* they wait for a parameter */
			continue;
		wr_cmd(k, (uint8_t)c);
		(void)rd_data(k);
	}
	assert_int_equal(p.n, 0);
	/* status: no output pending, system flag and command bit set */
	assert_int_equal(rd_status(k) & 0x01, 0);
	assert_int_equal(rd_data(k), 0);
	i8042_destroy(k);
}

static void test_data_reads_zero(void **state)
{
	(void)state;
	struct i8042 *k = i8042_create(NULL);
	assert_non_null(k);
	assert_int_equal(rd_status(k) & 0x01, 0);
	assert_int_equal(rd_data(k), 0);
	assert_int_equal(rd_data(k), 0);
	wr_cmd(k, 0xfe); /* no power_ctl: ignored, no crash */
	i8042_destroy(k);
	i8042_destroy(NULL);
}

static void test_self_test_and_ctr(void **state)
{
	(void)state;
	struct i8042 *k = i8042_create(NULL);
	assert_non_null(k);
	wr_cmd(k, 0xaa);
	assert_int_equal(rd_status(k) & 0x09, 0x09); /* OBF, last write a command */
	assert_int_equal(rd_data(k), 0x55);
	assert_int_equal(rd_status(k) & 0x01, 0);
	assert_int_equal(rd_data(k), 0);
	wr_cmd(k, 0xab);
	assert_int_equal(rd_data(k), 0x00);

	wr_cmd(k, 0x60);
	wr_data(k, 0x65);
	assert_int_equal(rd_status(k) & 0x08, 0);
	wr_cmd(k, 0x20);
	assert_int_equal(rd_data(k), 0x65);
	wr_cmd(k, 0xad); /* disable keyboard sets CTR bit 4 */
	wr_cmd(k, 0x20);
	assert_int_equal(rd_data(k), 0x75);
	wr_cmd(k, 0xae);
	wr_cmd(k, 0x20);
	assert_int_equal(rd_data(k), 0x65);
	i8042_destroy(k);
}

static void test_output_port_reset(void **state)
{
	(void)state;
	struct power_log p = {0};
	struct power_ctl pc = {.request = on_power, .ctx = &p};
	struct i8042 *k = i8042_create(&pc);
	assert_non_null(k);
	wr_cmd(k, 0xd0);
	assert_int_equal(rd_data(k) & 0x03, 0x03);
	wr_cmd(k, 0xd1);
	wr_data(k, 0x03); /* A20 on, reset line high: nothing */
	assert_int_equal(p.n, 0);
	wr_cmd(k, 0xd1);
	wr_data(k, 0x02);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.last, POWER_RESET);
	i8042_destroy(k);
}

static void test_widths_and_offsets(void **state)
{
	(void)state;
	struct power_log p = {0};
	struct power_ctl pc = {.request = on_power, .ctx = &p};
	struct i8042 *k = i8042_create(&pc);
	assert_non_null(k);
	uint8_t buf[8];
	for (uint32_t len = 1; len <= 8; len *= 2) {
		memset(buf, 0x42, sizeof(buf));
		i8042_data_io(k, 0, buf, len, false);
		assert_int_equal(buf[0], 0);
		for (uint32_t i = 1; i < len; i++)
			assert_int_equal(buf[i], 0xff);
		memset(buf, 0x42, sizeof(buf));
		i8042_cmd_io(k, 3, buf, len, false);
		assert_int_equal(buf[0], 0xff);
		memset(buf, 0xfe, sizeof(buf));
		i8042_cmd_io(k, 1, buf, len, true); /* not the command register */
		i8042_data_io(k, 2, buf, len, true);
	}
	assert_int_equal(p.n, 0);
	memset(buf, 0xfe, sizeof(buf));
	i8042_cmd_io(k, 0, buf, 4, true); /* low byte is the command */
	assert_int_equal(p.n, 1);
	i8042_cmd_io(k, 0, buf, 0, true);
	assert_int_equal(p.n, 1);
	i8042_destroy(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reset_command),     cmocka_unit_test(test_other_commands_ignored),
	    cmocka_unit_test(test_data_reads_zero),   cmocka_unit_test(test_self_test_and_ctr),
	    cmocka_unit_test(test_output_port_reset), cmocka_unit_test(test_widths_and_offsets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
