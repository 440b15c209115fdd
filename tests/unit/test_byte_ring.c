/* The bounded byte ring: order, wrap-around, dropping the oldest bytes,
 * oversized writes, copies from any position. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vm/byte_ring.h"

static void fill(uint8_t *p, size_t n, uint8_t start)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(start + i);
}

static void test_order_and_wrap(void **state)
{
	(void)state;
	struct byte_ring r;
	uint8_t in[16], out[16];
	assert_int_equal(byte_ring_init(&r, 10), 0);
	fill(in, 7, 0);
	assert_int_equal(byte_ring_put(&r, in, 7), 0);
	assert_int_equal(byte_ring_copy(&r, 0, out, 16), 7);
	assert_memory_equal(out, in, 7);
	r.tail = 5; /* a reader consumed 5 */
	fill(in, 6, 7);
	assert_int_equal(byte_ring_put(&r, in, 6), 0); /* wraps: 2 + 6 = 8 <= 10 */
	assert_int_equal(byte_ring_len(&r), 8);
	assert_int_equal(byte_ring_copy(&r, r.tail, out, 16), 8);
	for (int i = 0; i < 8; i++)
		assert_int_equal(out[i], 5 + i);
	/* A copy from a position inside, and one limited by max. */
	assert_int_equal(byte_ring_copy(&r, 9, out, 2), 2);
	assert_int_equal(out[0], 9);
	assert_int_equal(out[1], 10);
	assert_int_equal(byte_ring_copy(&r, r.head, out, 16), 0);
	byte_ring_free(&r);
}

static void test_drops_oldest(void **state)
{
	(void)state;
	struct byte_ring r;
	uint8_t in[32], out[32];
	assert_int_equal(byte_ring_init(&r, 8), 0);
	fill(in, 6, 0);
	assert_int_equal(byte_ring_put(&r, in, 6), 0);
	fill(in, 5, 6);
	assert_int_equal(byte_ring_put(&r, in, 5), 3); /* 11 bytes into 8 */
	assert_int_equal(r.tail, 3);
	/* A copy from before the tail starts at the tail. */
	assert_int_equal(byte_ring_copy(&r, 0, out, 32), 8);
	for (int i = 0; i < 8; i++)
		assert_int_equal(out[i], 3 + i);
	/* An oversized write keeps its newest cap bytes. */
	fill(in, 20, 100);
	assert_int_equal(byte_ring_put(&r, in, 20), 12 + 8);
	assert_int_equal(byte_ring_copy(&r, r.tail, out, 32), 8);
	for (int i = 0; i < 8; i++)
		assert_int_equal(out[i], 112 + i);
	assert_int_equal(r.head, 31);
	byte_ring_free(&r);
	byte_ring_free(&r); /* twice is fine */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order_and_wrap),
	    cmocka_unit_test(test_drops_oldest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
