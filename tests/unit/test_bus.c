/* The I/O bus: registration rules, dispatch, unhandled accesses, removal. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vm/bus.h"

struct rec {
	uint64_t offset;
	uint32_t len;
	bool is_write;
	int calls;
	uint8_t value;
};

static void rec_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct rec *r = opaque;
	r->offset = offset;
	r->len = len;
	r->is_write = is_write;
	r->calls++;
	if (is_write)
		r->value = data[0];
	else
		memset(data, r->value, len);
}

static int setup(void **state)
{
	static struct bus b;
	assert_int_equal(bus_init(&b, "pio"), 0);
	*state = &b;
	return 0;
}

static int teardown(void **state)
{
	bus_destroy(*state);
	return 0;
}

static void test_register_rules(void **state)
{
	struct bus *b = *state;
	struct rec r = {0};
	assert_int_equal(bus_register(b, 0x3f8, 8, rec_io, &r, "uart"), 0);
	assert_int_equal(bus_register(b, 0x3f8, 8, rec_io, &r, "dup"), -EEXIST);
	assert_int_equal(bus_register(b, 0x3f0, 9, rec_io, &r, "overlap-low"), -EEXIST);
	assert_int_equal(bus_register(b, 0x3ff, 1, rec_io, &r, "overlap-high"), -EEXIST);
	assert_int_equal(bus_register(b, 0x3f0, 8, rec_io, &r, "adjacent-low"), 0);
	assert_int_equal(bus_register(b, 0x400, 1, rec_io, &r, "adjacent-high"), 0);
	assert_int_equal(bus_register(b, 0x500, 0, rec_io, &r, "empty"), -EINVAL);
	assert_int_equal(bus_register(b, UINT64_MAX - 1, 4, rec_io, &r, "wraps"), -EINVAL);
	assert_int_equal(bus_register(b, 0x600, 1, NULL, &r, "nofn"), -EINVAL);
}

static void test_dispatch(void **state)
{
	struct bus *b = *state;
	struct rec a = {.value = 0x11}, c = {.value = 0x22};
	assert_int_equal(bus_register(b, 0x70, 2, rec_io, &a, "cmos"), 0);
	assert_int_equal(bus_register(b, 0x3f8, 8, rec_io, &c, "uart"), 0);
	uint8_t d[4] = {0x5a};
	assert_true(bus_dispatch(b, 0x3fd, d, 1, true));
	assert_int_equal(c.offset, 5);
	assert_int_equal(c.value, 0x5a);
	assert_int_equal(a.calls, 0);
	assert_true(bus_dispatch(b, 0x71, d, 1, false));
	assert_int_equal(a.offset, 1);
	assert_int_equal(d[0], 0x11);
	/* An access that runs past the end of a range is not that range's. */
	memset(d, 0, sizeof(d));
	assert_false(bus_dispatch(b, 0x71, d, 2, false));
	assert_int_equal(d[0], 0xff);
	assert_int_equal(d[1], 0xff);
	/* Nothing there: reads float high, writes vanish. */
	assert_false(bus_dispatch(b, 0x80, d, 4, false));
	assert_memory_equal(d, "\xff\xff\xff\xff", 4);
	assert_false(bus_dispatch(b, 0x80, d, 4, true));
	assert_false(bus_dispatch(b, UINT64_MAX, d, 4, false));
}

static void test_unregister(void **state)
{
	struct bus *b = *state;
	struct rec r = {0};
	for (uint64_t base = 0; base < 64 * 16; base += 16)
		assert_int_equal(bus_register(b, base, 16, rec_io, &r, "many"), 0);
	assert_int_equal(bus_unregister(b, 0x105), -ENOENT);
	assert_int_equal(bus_unregister(b, 0x100), 0);
	assert_int_equal(bus_unregister(b, 0x100), -ENOENT);
	uint8_t d = 0;
	assert_false(bus_dispatch(b, 0x104, &d, 1, false));
	assert_true(bus_dispatch(b, 0x114, &d, 1, false));
	assert_int_equal(bus_register(b, 0x100, 16, rec_io, &r, "again"), 0);
	assert_true(bus_dispatch(b, 0x104, &d, 1, false));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_register_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dispatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unregister, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
