/* Guest memory: layouts, the checked accessor, private vs shared mappings,
 * and every refused configuration. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "vm/mem.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static void create_ok(struct vm_mem *m, uint64_t size, bool shared)
{
	struct mem_layout l;
	struct chv_err err = {0};

	layout_compute(size, &l);
	assert_int_equal(vm_mem_create(m, &l, shared, false, &err), 0);
}

static void check_layout_size(uint64_t size, unsigned nregions)
{
	struct vm_mem m;
	struct mem_layout l;
	uint8_t b = 0;

	layout_compute(size, &l);
	create_ok(&m, size, false);
	assert_int_equal(m.nregions, nregions);
	assert_true(m.fd >= 0);
	assert_non_null(m.map);
	assert_int_equal(m.map_size, size);
	assert_int_equal(m.region[0].gpa, 0);
	assert_int_equal(m.region[0].size, l.low_size);
	assert_int_equal(m.region[0].fd_offset, 0);
	assert_ptr_equal(m.region[0].hva, m.map);

	/* First and last byte of low RAM, and nothing past it. */
	assert_ptr_equal(vm_mem_ptr(&m, 0, 1), m.map);
	assert_ptr_equal(vm_mem_ptr(&m, l.low_size - 1, 1), m.map + l.low_size - 1);
	assert_null(vm_mem_ptr(&m, l.low_size, 1));
	assert_null(vm_mem_ptr(&m, l.low_size - 1, 2));
	assert_ptr_equal(vm_mem_ptr(&m, 0, l.low_size), m.map);
	assert_null(vm_mem_ptr(&m, 0, l.low_size + 1));
	assert_int_equal(vm_mem_write(&m, l.low_size - 1, "\x5a", 1), 0);
	assert_int_equal(vm_mem_read(&m, l.low_size - 1, &b, 1), 0);
	assert_int_equal(b, 0x5a);

	if (nregions == 2) {
		assert_int_equal(m.region[1].gpa, LAYOUT_RAM64_START);
		assert_int_equal(m.region[1].size, l.high_size);
		assert_int_equal(m.region[1].fd_offset, l.low_size);
		assert_ptr_equal(m.region[1].hva, m.map + l.low_size);
		assert_ptr_equal(vm_mem_ptr(&m, LAYOUT_RAM64_START, 1), m.map + l.low_size);
		assert_ptr_equal(vm_mem_ptr(&m, LAYOUT_RAM64_START + l.high_size - 8, 8),
				 m.map + size - 8);
		assert_null(vm_mem_ptr(&m, LAYOUT_RAM64_START + l.high_size, 1));
		assert_null(vm_mem_ptr(&m, LAYOUT_RAM64_START + l.high_size - 8, 9));
		assert_null(vm_mem_ptr(&m, LAYOUT_RAM64_START - 1, 2));	 /* from the hole */
		assert_null(vm_mem_ptr(&m, LAYOUT_MMIO32_START, 1));	 /* the hole */
		assert_null(vm_mem_ptr(&m, LAYOUT_MMIO32_START - 1, 2)); /* low into hole */
		assert_int_equal(vm_mem_write(&m, LAYOUT_RAM64_START + l.high_size - 1, "\xa5", 1),
				 0);
		assert_int_equal(m.map[size - 1], 0xa5);
	} else {
		assert_null(vm_mem_ptr(&m, LAYOUT_RAM64_START, 1));
	}
	vm_mem_destroy(&m);
	assert_int_equal(m.fd, -1);
	assert_null(m.map);
	assert_int_equal(m.nregions, 0);
}

static void test_layout_1m(void **state)
{
	(void)state;
	check_layout_size(1 * MiB, 1);
}

static void test_layout_2m(void **state)
{
	(void)state;
	check_layout_size(2 * MiB, 1);
}

static void test_layout_128m(void **state)
{
	(void)state;
	check_layout_size(128 * MiB, 1);
}

static void test_layout_3g(void **state)
{
	(void)state;
	check_layout_size(3 * GiB, 1);
}

static void test_layout_5g(void **state)
{
	(void)state;
	check_layout_size(5 * GiB, 2);
}

static void test_layout_3g_plus_one_page(void **state)
{
	struct vm_mem m;

	(void)state;
	check_layout_size(3 * GiB + 4096, 2);
	create_ok(&m, 3 * GiB + 4096, false);
	assert_int_equal(m.region[1].size, 4096);
	vm_mem_destroy(&m);
}

static void test_ptr_edges(void **state)
{
	struct vm_mem m;
	uint8_t buf[16] = {0};

	(void)state;
	create_ok(&m, 2 * MiB, false);
	assert_null(vm_mem_ptr(&m, 0x1000, 0));			 /* len 0 */
	assert_null(vm_mem_ptr(&m, UINT64_MAX, 1));		 /* far outside */
	assert_null(vm_mem_ptr(&m, UINT64_MAX - 1, 4));		 /* gpa + len wraps */
	assert_null(vm_mem_ptr(&m, 0x1000, UINT64_MAX));	 /* huge len */
	assert_null(vm_mem_ptr(&m, 0x1000, UINT64_MAX - 0xfff)); /* gpa + len == 2^64 */
	assert_null(vm_mem_ptr(&m, 2 * MiB - 4, 8));		 /* crosses the end */
	assert_non_null(vm_mem_ptr(&m, 2 * MiB - 8, 8));
	assert_null(vm_mem_ptr(NULL, 0, 1));
	assert_int_equal(vm_mem_read(&m, 2 * MiB - 4, buf, 8), -EFAULT);
	assert_int_equal(vm_mem_write(&m, 2 * MiB - 4, buf, 8), -EFAULT);
	assert_int_equal(vm_mem_read(&m, 0, buf, 0), -EFAULT);
	assert_int_equal(vm_mem_write(&m, 0x1234, "hello", 5), 0);
	assert_int_equal(vm_mem_read(&m, 0x1234, buf, 5), 0);
	assert_memory_equal(buf, "hello", 5);
	assert_memory_equal(vm_mem_ptr(&m, 0x1234, 5), "hello", 5);
	vm_mem_destroy(&m);
	/* After destroy nothing resolves. */
	assert_null(vm_mem_ptr(&m, 0, 1));
}

/* MAP_PRIVATE: the guest's writes stay in anonymous pages, not in the memfd.
 * MAP_SHARED: they reach the memfd. */
static void test_private_vs_shared(void **state)
{
	struct vm_mem m;
	uint8_t b = 0xff;

	(void)state;
	create_ok(&m, 2 * MiB, false);
	assert_false(m.shared);
	assert_int_equal(vm_mem_write(&m, 0x3000, "\x77", 1), 0);
	assert_int_equal(pread(m.fd, &b, 1, 0x3000), 1);
	assert_int_equal(b, 0);
	vm_mem_destroy(&m);

	create_ok(&m, 5 * GiB, true);
	assert_true(m.shared);
	assert_int_equal(vm_mem_write(&m, 0x3000, "\x77", 1), 0);
	assert_int_equal(pread(m.fd, &b, 1, 0x3000), 1);
	assert_int_equal(b, 0x77);
	/* The high region sits at file offset low_size. */
	assert_int_equal(vm_mem_write(&m, LAYOUT_RAM64_START + 0x10, "\x66", 1), 0);
	assert_int_equal(pread(m.fd, &b, 1, (off_t)(3 * GiB + 0x10)), 1);
	assert_int_equal(b, 0x66);
	vm_mem_destroy(&m);
}

static void expect_fail(const struct mem_layout *l, bool hugepages, int code, const char *needle)
{
	struct vm_mem m;
	struct chv_err err = {0};

	memset(&m, 0x5c, sizeof(m));
	assert_int_equal(vm_mem_create(&m, l, false, hugepages, &err), code);
	assert_int_equal(err.code, code);
	assert_non_null(strstr(err.msg, "--memory"));
	if (needle && !strstr(err.msg, needle))
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, needle);
	/* A failed create leaves nothing behind, and destroy is still safe. */
	assert_int_equal(m.fd, -1);
	assert_null(m.map);
	assert_int_equal(m.nregions, 0);
	vm_mem_destroy(&m);
}

static void test_refused_layouts(void **state)
{
	struct mem_layout l;

	(void)state;
	layout_compute(0, &l);
	expect_fail(&l, false, -EINVAL, "size=0");
	layout_compute(2 * MiB + 100, &l);
	expect_fail(&l, false, -EINVAL, "4 KiB");
	layout_compute(3 * MiB, &l);
	expect_fail(&l, true, -EINVAL, "2 MiB");
	layout_compute(3 * GiB + 4096, &l);
	expect_fail(&l, true, -EINVAL, "2 MiB");

	/* Layouts layout_compute() would never produce. */
	l = (struct mem_layout){.ram_size = 8 * MiB, .low_size = 4 * MiB, .high_size = 0};
	expect_fail(&l, false, -EINVAL, "inconsistent");
	l = (struct mem_layout){.ram_size = 8 * MiB, .low_size = 4 * MiB, .high_size = 4 * MiB};
	expect_fail(&l, false, -EINVAL, "inconsistent");
	l = (struct mem_layout){.ram_size = 4 * GiB, .low_size = 4 * GiB, .high_size = 0};
	expect_fail(&l, false, -EINVAL, "inconsistent");
	l = (struct mem_layout){.ram_size = 0, .low_size = 0, .high_size = 4096};
	expect_fail(&l, false, -EINVAL, NULL);
	layout_compute(UINT64_MAX & ~0xfffULL, &l);
	expect_fail(&l, false, -EINVAL, "too large");
}

static void test_mmap_failure(void **state)
{
	struct mem_layout l;

	(void)state;
	/* 256 TiB is more than a 4-level-paging address space holds. */
	layout_compute(1ULL << 48, &l);
	expect_fail(&l, false, -ENOMEM, "mmap");
}

static void test_memfd_failure(void **state)
{
	struct rlimit old, low;
	struct mem_layout l;
	struct vm_mem m;
	struct chv_err err = {0};
	int probe, rc;

	(void)state;
	/* The lowest free descriptor becomes the limit, so memfd_create fails. */
	probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(probe >= 0);
	close(probe);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)probe;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	layout_compute(2 * MiB, &l);
	rc = vm_mem_create(&m, &l, false, false, &err);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(rc, -EMFILE);
	assert_non_null(strstr(err.msg, "memfd_create"));
	assert_int_equal(m.fd, -1);
	vm_mem_destroy(&m);
}

static long free_huge_pages(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	long n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "HugePages_Free: %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

static void test_hugepages(void **state)
{
	struct mem_layout l;
	struct vm_mem m;
	struct chv_err err = {0};
	long nfree = free_huge_pages();
	int rc;

	(void)state;
	layout_compute(2 * MiB, &l);
	rc = vm_mem_create(&m, &l, false, true, &err);
	if (nfree >= 1) {
		assert_int_equal(rc, 0);
		assert_true(m.hugepages);
		assert_int_equal(vm_mem_write(&m, 0, "x", 1), 0);
		vm_mem_destroy(&m);
	} else {
		/* No free huge pages: a clear error now, not a SIGBUS later. */
		assert_true(rc < 0);
		assert_non_null(strstr(err.msg, "hugepages=on"));
		if (rc == -ENOMEM)
			assert_non_null(strstr(err.msg, "no free huge pages"));
		assert_int_equal(m.fd, -1);
	}
	/* Never more than the host has. */
	layout_compute(((uint64_t)nfree + 1) * 2 * MiB, &l);
	rc = vm_mem_create(&m, &l, false, true, &err);
	assert_true(rc < 0);
	assert_non_null(strstr(err.msg, "hugepages=on"));
	vm_mem_destroy(&m);
}

static void test_destroy_zeroed(void **state)
{
	struct vm_mem m;
	int before = fcntl(0, F_GETFD);

	(void)state;
	/* A zeroed struct has fd 0: destroy must not close descriptor 0. */
	memset(&m, 0, sizeof(m));
	vm_mem_destroy(&m);
	assert_int_equal(fcntl(0, F_GETFD), before);
	assert_int_equal(m.fd, -1);
	vm_mem_destroy(&m); /* twice */
	vm_mem_destroy(NULL);

	create_ok(&m, 1 * MiB, false);
	vm_mem_destroy(&m);
	vm_mem_destroy(&m);
	assert_int_equal(fcntl(0, F_GETFD), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_layout_1m),	    cmocka_unit_test(test_layout_2m),
	    cmocka_unit_test(test_layout_128m),	    cmocka_unit_test(test_layout_3g),
	    cmocka_unit_test(test_layout_5g),	    cmocka_unit_test(test_layout_3g_plus_one_page),
	    cmocka_unit_test(test_ptr_edges),	    cmocka_unit_test(test_private_vs_shared),
	    cmocka_unit_test(test_refused_layouts), cmocka_unit_test(test_mmap_failure),
	    cmocka_unit_test(test_memfd_failure),   cmocka_unit_test(test_hugepages),
	    cmocka_unit_test(test_destroy_zeroed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
