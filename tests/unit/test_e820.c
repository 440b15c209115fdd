/* The e820 map for each memory size: exact entries, sorted, no overlaps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vm/e820.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static void build(uint64_t size, struct e820_table *t)
{
	struct mem_layout l;

	layout_compute(size, &l);
	memset(t, 0xee, sizeof(*t)); /* e820_build must not rely on a clean table */
	e820_build(&l, t);
}

static void expect(const struct e820_table *t, unsigned i, uint64_t addr, uint64_t size,
		   uint32_t type)
{
	assert_true(i < t->n);
	assert_int_equal(t->e[i].addr, addr);
	assert_int_equal(t->e[i].size, size);
	assert_int_equal(t->e[i].type, type);
}

/* Invariants every map must hold. */
static void check_shape(const struct e820_table *t, uint64_t ram_size)
{
	uint64_t ram = 0;

	assert_true(t->n > 0 && t->n <= E820_MAX);
	for (unsigned i = 0; i < t->n; i++) {
		assert_true(t->e[i].size > 0);
		assert_true(t->e[i].type == E820_RAM || t->e[i].type == E820_RESERVED);
		if (t->e[i].type == E820_RAM)
			ram += t->e[i].size;
		if (i)
			assert_true(t->e[i - 1].addr + t->e[i - 1].size <= t->e[i].addr);
	}
	/* All RAM but the legacy hole [640 KiB, 1 MiB) is advertised. */
	if (ram_size >= MiB)
		assert_int_equal(ram, ram_size - (MiB - LAYOUT_LOW_RAM_END));
	else
		assert_int_equal(ram,
				 ram_size < LAYOUT_LOW_RAM_END ? ram_size : LAYOUT_LOW_RAM_END);
}

static void test_1m(void **state)
{
	struct e820_table t;

	(void)state;
	build(1 * MiB, &t);
	assert_int_equal(t.n, 3);
	expect(&t, 0, 0, LAYOUT_LOW_RAM_END, E820_RAM);
	expect(&t, 1, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE, E820_RESERVED);
	expect(&t, 2, LAYOUT_ECAM_START, LAYOUT_ECAM_SIZE, E820_RESERVED);
	check_shape(&t, 1 * MiB);
}

static void test_2m(void **state)
{
	struct e820_table t;

	(void)state;
	build(2 * MiB, &t);
	assert_int_equal(t.n, 4);
	expect(&t, 0, 0, LAYOUT_LOW_RAM_END, E820_RAM);
	expect(&t, 1, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE, E820_RESERVED);
	expect(&t, 2, MiB, MiB, E820_RAM);
	expect(&t, 3, LAYOUT_ECAM_START, LAYOUT_ECAM_SIZE, E820_RESERVED);
	check_shape(&t, 2 * MiB);
}

static void test_128m(void **state)
{
	struct e820_table t;

	(void)state;
	build(128 * MiB, &t);
	assert_int_equal(t.n, 4);
	expect(&t, 2, MiB, 127 * MiB, E820_RAM);
	check_shape(&t, 128 * MiB);
}

static void test_3g(void **state)
{
	struct e820_table t;

	(void)state;
	build(3 * GiB, &t);
	assert_int_equal(t.n, 4);
	expect(&t, 2, MiB, 3 * GiB - MiB, E820_RAM);
	expect(&t, 3, LAYOUT_ECAM_START, LAYOUT_ECAM_SIZE, E820_RESERVED);
	check_shape(&t, 3 * GiB);
}

static void test_above_4g(void **state)
{
	struct e820_table t;

	(void)state;
	build(5 * GiB, &t);
	assert_int_equal(t.n, 5);
	expect(&t, 0, 0, LAYOUT_LOW_RAM_END, E820_RAM);
	expect(&t, 1, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE, E820_RESERVED);
	expect(&t, 2, MiB, LAYOUT_MMIO32_START - MiB, E820_RAM);
	expect(&t, 3, LAYOUT_ECAM_START, LAYOUT_ECAM_SIZE, E820_RESERVED);
	expect(&t, 4, LAYOUT_RAM64_START, 2 * GiB, E820_RAM);
	check_shape(&t, 5 * GiB);

	build(3 * GiB + 4096, &t);
	assert_int_equal(t.n, 5);
	expect(&t, 4, LAYOUT_RAM64_START, 4096, E820_RAM);
	check_shape(&t, 3 * GiB + 4096);

	build(1024 * GiB, &t);
	expect(&t, 4, LAYOUT_RAM64_START, 1021 * GiB, E820_RAM);
	check_shape(&t, 1024 * GiB);
}

/* Below 1 MiB the RAM entry is clipped so it never advertises absent memory. */
static void test_tiny(void **state)
{
	struct e820_table t;

	(void)state;
	build(512 * 1024, &t);
	assert_int_equal(t.n, 3);
	expect(&t, 0, 0, 512 * 1024, E820_RAM);
	check_shape(&t, 512 * 1024);

	build(0, &t);
	assert_int_equal(t.n, 2); /* only the reserved ranges */
	assert_int_equal(t.e[0].type, E820_RESERVED);
	assert_int_equal(t.e[1].type, E820_RESERVED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_1m), cmocka_unit_test(test_2m),	cmocka_unit_test(test_128m),
	    cmocka_unit_test(test_3g), cmocka_unit_test(test_above_4g), cmocka_unit_test(test_tiny),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
