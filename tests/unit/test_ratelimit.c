/* The token-bucket limiter: its arithmetic against a fake clock (refill,
 * burst, debt, exact deadlines, big values), its configuration checks, and
 * its real timerfd and waiters. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>

#include <cmocka.h>

#include "virtio/ratelimit.h"

#define MS 1000000ull
#define S  1000000000ull

static uint64_t fake_now;

static uint64_t fake_clock(void *ctx)
{
	(void)ctx;
	return __atomic_load_n(&fake_now, __ATOMIC_RELAXED);
}

/* A limiter on the fake clock, starting at t = 1 s. */
static struct ratelimit *make(uint64_t bw, uint64_t bw_burst, uint64_t bw_ms, uint64_t ops,
			      uint64_t ops_burst, uint64_t ops_ms)
{
	const struct rl_config c = {{bw, bw_burst, bw_ms}, {ops, ops_burst, ops_ms}};
	struct ratelimit *rl;
	struct chv_err err = {0};
	if (ratelimit_create(&rl, &c, &err))
		fail_msg("ratelimit_create: %s", err.msg);
	fake_now = S;
	ratelimit_set_clock(rl, fake_clock, NULL);
	return rl;
}

static void at(uint64_t t)
{
	fake_now = t;
}

/* How many single tokens the bandwidth bucket gives right now. */
static uint64_t drain_bw(struct ratelimit *rl)
{
	uint64_t n = 0;
	while (ratelimit_consume(rl, 1, 0))
		n++;
	return n;
}

static void test_config_check(void **state)
{
	(void)state;
	static const struct {
		struct rl_config c;
		const char *needle;
	} bad[] = {
	    {{{1000, 0, 0}, {0, 0, 0}}, "bw_refill_time=0"},
	    {{{0, 0, 0}, {10, 0, 0}}, "ops_refill_time=0"},
	    {{{1ull << 48, 0, 10}, {0, 0, 0}}, "bw_size=281474976710656"},
	    {{{1, 1ull << 48, 10}, {0, 0, 0}}, "bw_one_time_burst=281474976710656"},
	    {{{1, 0, 1ull << 48}, {0, 0, 0}}, "bw_refill_time=281474976710656"},
	    {{{0, 0, 0}, {5, 0, 1ull << 50}}, "ops_refill_time=1125899906842624"},
	    {{{0, 7, 0}, {0, 0, 0}}, "bw_one_time_burst=7"},
	    {{{0, 0, 0}, {0, 0, 100}}, "ops_refill_time=100"},
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct chv_err err = {0};
		struct ratelimit *rl = (struct ratelimit *)1;
		assert_int_equal(rl_config_check(&bad[i].c, &err), -EINVAL);
		if (!strstr(err.msg, bad[i].needle))
			fail_msg("message '%s' does not name '%s'", err.msg, bad[i].needle);
		memset(&err, 0, sizeof(err));
		assert_int_equal(ratelimit_create(&rl, &bad[i].c, &err), -EINVAL);
		assert_null(rl);
		assert_non_null(strstr(err.msg, bad[i].needle));
	}
	const struct rl_config none = {0}, good = {{(1ull << 48) - 1, (1ull << 48) - 1, 1},
						   {1, 0, (1ull << 48) - 1}};
	const struct rl_config ops_only = {.ops = {100, 0, 1000}};
	struct chv_err err = {0};
	assert_int_equal(rl_config_check(&none, &err), 0);
	assert_int_equal(rl_config_check(&good, &err), 0);
	assert_false(rl_config_active(&none));
	assert_false(rl_config_active(NULL));
	assert_true(rl_config_active(&good));
	assert_true(rl_config_active(&ops_only));
}

static void test_starts_full_and_refills_exactly(void **state)
{
	(void)state;
	/* 3 tokens per 10 ms: 0.3 per ms, a remainder at almost every step. */
	struct ratelimit *rl = make(3, 0, 10, 0, 0, 0);
	assert_int_equal(drain_bw(rl), 3);
	at(S + 3 * MS);
	assert_int_equal(drain_bw(rl), 0); /* 0.9 */
	at(S + 4 * MS);
	assert_int_equal(drain_bw(rl), 1); /* 1.2 */
	/* In 777 ns steps for 1 s: exactly 300 tokens (300.0 - 0 drift). */
	uint64_t got = 0, t = S + 4 * MS;
	for (; t + 777 <= S + 1004 * MS; t += 777) {
		at(t);
		got += drain_bw(rl);
	}
	at(S + 1004 * MS);
	got += drain_bw(rl);
	assert_int_equal(got, 300); /* floor(1004 * 0.3) = 301, one of them taken before */
	/* A long pause fills the bucket, no more. */
	at(S + 3600 * S);
	assert_int_equal(drain_bw(rl), 3);
	ratelimit_destroy(rl);
}

static void test_refusal_takes_nothing(void **state)
{
	(void)state;
	struct ratelimit *rl = make(1000, 0, 1000, 2, 0, 1000);
	assert_true(ratelimit_consume(rl, 10, 1));
	assert_true(ratelimit_consume(rl, 10, 1));
	/* The ops bucket is empty: the bytes are refused and not taken. */
	assert_false(ratelimit_consume(rl, 10, 1));
	assert_false(ratelimit_consume(rl, 10, 1));
	assert_true(ratelimit_consume(rl, 980, 0));
	assert_false(ratelimit_consume(rl, 1, 0));
	/* And the other way round: 500 bytes and 1 op are back. */
	at(S + 500 * MS);
	assert_false(ratelimit_consume(rl, 501, 1));
	assert_true(ratelimit_consume(rl, 0, 1));
	assert_true(ratelimit_consume(rl, 500, 0));
	struct ratelimit_counters c;
	ratelimit_get_counters(rl, &c);
	assert_int_equal(c.throttled, 4);
	assert_int_equal(c.wakeups, 0);
	ratelimit_destroy(rl);
}

static void test_one_time_burst(void **state)
{
	(void)state;
	struct ratelimit *rl = make(100, 50, 100, 0, 0, 0);
	assert_true(ratelimit_consume(rl, 150, 0));
	assert_false(ratelimit_consume(rl, 1, 0));
	/* Never refilled: a full refill time brings back the 100, not 150. */
	at(S + 100 * MS);
	assert_int_equal(drain_bw(rl), 100);
	ratelimit_destroy(rl);
	/* Spent first: after 50 from the burst, the bucket is still full. */
	rl = make(100, 50, 100, 0, 0, 0);
	assert_true(ratelimit_consume(rl, 50, 0));
	assert_true(ratelimit_consume(rl, 100, 0));
	assert_false(ratelimit_consume(rl, 1, 0));
	ratelimit_destroy(rl);
	/* The ops bucket has its own. */
	rl = make(0, 0, 0, 2, 3, 1000);
	for (int i = 0; i < 5; i++)
		assert_true(ratelimit_consume(rl, 1ull << 40, 1));
	assert_false(ratelimit_consume(rl, 0, 1));
	ratelimit_destroy(rl);
}

static void test_debt(void **state)
{
	(void)state;
	/* 1 token per ms. */
	struct ratelimit *rl = make(100, 0, 100, 0, 0, 0);
	/* Larger than the bucket: refused until the bucket is full. */
	assert_true(ratelimit_consume(rl, 50, 0));
	assert_false(ratelimit_consume(rl, 250, 0));
	assert_int_equal(ratelimit_armed_at(rl), S + 50 * MS);
	at(S + 50 * MS - 1);
	assert_false(ratelimit_consume(rl, 250, 0));
	at(S + 50 * MS);
	assert_true(ratelimit_consume(rl, 250, 0));
	/* 150 in debt: the next token is there 151 ms later, not before. */
	assert_false(ratelimit_consume(rl, 1, 0));
	uint64_t t0 = S + 50 * MS;
	assert_int_equal(ratelimit_armed_at(rl), t0); /* still armed for the past */
	at(t0 + 151 * MS - 1);
	assert_false(ratelimit_consume(rl, 1, 0));
	at(t0 + 151 * MS);
	assert_true(ratelimit_consume(rl, 1, 0));
	/* The long-run rate stays size/refill: 10 s of 250-token requests. */
	uint64_t passed = 0;
	for (uint64_t t = t0 + 151 * MS; t <= t0 + 151 * MS + 10 * S; t += MS) {
		at(t);
		if (ratelimit_consume(rl, 250, 0))
			passed++;
	}
	assert_int_equal(passed, 10000 / 250);
	ratelimit_destroy(rl);
}

static void test_exact_deadlines(void **state)
{
	(void)state;
	/* 3 tokens per 10 s. */
	struct ratelimit *rl = make(3, 0, 10000, 0, 0, 0);
	assert_int_equal(drain_bw(rl), 3);
	assert_int_equal(ratelimit_armed_at(rl), S + 3333333334ull); /* ceil(10 s / 3) */
	/* Two tokens would be later: the earlier deadline stays. */
	assert_false(ratelimit_consume(rl, 2, 0));
	assert_int_equal(ratelimit_armed_at(rl), S + 3333333334ull);
	at(S + 3333333333ull);
	assert_false(ratelimit_consume(rl, 1, 0));
	at(S + 3333333334ull);
	/* A fire clears a passed deadline; the next refusal arms the next
	 * one, counted from the remainder left over (2 of 3 * 10^10). */
	ratelimit_fire(rl);
	assert_int_equal(ratelimit_armed_at(rl), 0);
	assert_false(ratelimit_consume(rl, 2, 0));
	assert_int_equal(ratelimit_armed_at(rl), S + 6666666667ull);
	/* The timerfd itself waits that long (in real time). */
	struct itimerspec its;
	assert_int_equal(timerfd_gettime(ratelimit_fd(rl), &its), 0);
	uint64_t left = (uint64_t)its.it_value.tv_sec * S + (uint64_t)its.it_value.tv_nsec;
	assert_true(left > 3 * S && left <= 3333333333ull);
	at(S + 6666666666ull);
	assert_false(ratelimit_consume(rl, 2, 0));
	at(S + 6666666667ull);
	assert_true(ratelimit_consume(rl, 2, 0));
	ratelimit_destroy(rl);
	/* Both buckets refuse: the later of the two. 1 byte/ms, 1 op/100 ms. */
	rl = make(1000, 0, 1000, 10, 0, 1000);
	assert_true(ratelimit_consume(rl, 1000, 10));
	assert_false(ratelimit_consume(rl, 5, 1));
	assert_int_equal(ratelimit_armed_at(rl), S + 100 * MS);
	ratelimit_fire(rl); /* early (spurious): the deadline stays */
	assert_int_equal(ratelimit_armed_at(rl), S + 100 * MS);
	ratelimit_destroy(rl);
	rl = make(1000, 0, 1000, 10, 0, 1000);
	assert_true(ratelimit_consume(rl, 1000, 10));
	assert_false(ratelimit_consume(rl, 500, 1));
	assert_int_equal(ratelimit_armed_at(rl), S + 500 * MS);
	/* An earlier need re-arms earlier. */
	assert_false(ratelimit_consume(rl, 0, 1));
	assert_int_equal(ratelimit_armed_at(rl), S + 100 * MS);
	ratelimit_destroy(rl);
}

static void test_unlimited(void **state)
{
	(void)state;
	struct ratelimit *rl = make(0, 0, 0, 0, 0, 0);
	for (int i = 0; i < 1000; i++)
		assert_true(ratelimit_consume(rl, UINT64_MAX, UINT64_MAX));
	assert_int_equal(ratelimit_armed_at(rl), 0);
	ratelimit_destroy(rl);
	/* Only ops limited: bytes cost nothing. */
	rl = make(0, 0, 0, 2, 0, 1000);
	assert_true(ratelimit_consume(rl, UINT64_MAX, 1));
	assert_true(ratelimit_consume(rl, UINT64_MAX, 1));
	assert_false(ratelimit_consume(rl, 0, 1));
	assert_true(ratelimit_consume(rl, UINT64_MAX, 0));
	ratelimit_destroy(rl);
	/* NULL: no limiter at all. */
	assert_true(ratelimit_consume(NULL, UINT64_MAX, UINT64_MAX));
	ratelimit_destroy(NULL);
}

static void test_big_values(void **state)
{
	(void)state;
	const uint64_t max = (1ull << 48) - 1;
	/* One token per 2^48 - 1 ms: the wait is clamped to 2^62 ns. */
	struct ratelimit *rl = make(1, 0, max, 0, 0, 0);
	assert_true(ratelimit_consume(rl, 1, 0));
	assert_false(ratelimit_consume(rl, 1, 0));
	assert_int_equal(ratelimit_armed_at(rl), S + (1ull << 62));
	ratelimit_destroy(rl);
	/* The largest sizes and bursts, 2^48 - 1 tokens per ms. */
	rl = make(max, max, 1, max, max, 1);
	assert_true(ratelimit_consume(rl, 2 * max, 0));
	assert_false(ratelimit_consume(rl, 1, 0));
	/* Centuries later it is full, no more, and a request of 2^64 - 1
	 * (counted as 2^56) passes into a debt of 2^56 - 2^48 + 1 tokens,
	 * repaid after 256 ms. */
	const uint64_t t = UINT64_MAX / 2;
	at(t);
	assert_true(ratelimit_consume(rl, UINT64_MAX, 0));
	assert_false(ratelimit_consume(rl, 1, 0));
	at(t + 255 * MS);
	assert_false(ratelimit_consume(rl, 1, 0));
	at(t + 257 * MS);
	assert_true(ratelimit_consume(rl, 1, 0));
	/* Ops: burst and bucket, then empty. */
	assert_true(ratelimit_consume(rl, 0, 2 * max));
	assert_false(ratelimit_consume(rl, 0, 1));
	/* Near the end of the clock: deadlines saturate instead of wrapping. */
	at(UINT64_MAX - 1);
	assert_true(ratelimit_consume(rl, 0, max));
	assert_false(ratelimit_consume(rl, 0, 1));
	ratelimit_fire(rl);
	assert_false(ratelimit_consume(rl, 0, 1));
	assert_int_equal(ratelimit_armed_at(rl), UINT64_MAX);
	ratelimit_destroy(rl);
}

static unsigned called[3];

static void waiter(void *ctx)
{
	__atomic_add_fetch(&called[(uintptr_t)ctx], 1, __ATOMIC_RELAXED);
}

static void test_waiters_and_real_timer(void **state)
{
	(void)state;
	const struct rl_config c = {.ops = {1, 0, 30}}; /* one op per 30 ms */
	struct ratelimit *rl;
	struct chv_err err = {0};
	assert_int_equal(ratelimit_create(&rl, &c, &err), 0);
	memset(called, 0, sizeof(called));
	assert_int_equal(ratelimit_add_waiter(rl, waiter, (void *)0), 0);
	assert_int_equal(ratelimit_add_waiter(rl, waiter, (void *)1), 0);
	assert_int_equal(ratelimit_add_waiter(rl, waiter, (void *)2), 0);
	ratelimit_remove_waiter(rl, waiter, (void *)2);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_true(ratelimit_consume(rl, 0, 1));
	assert_false(ratelimit_consume(rl, 0, 1));
	struct pollfd p = {.fd = ratelimit_fd(rl), .events = POLLIN};
	assert_int_equal(poll(&p, 1, 0), 0); /* not yet */
	assert_int_equal(poll(&p, 1, 1000), 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	uint64_t waited =
	    (uint64_t)(t1.tv_sec - t0.tv_sec) * S + (uint64_t)t1.tv_nsec - (uint64_t)t0.tv_nsec;
	print_message("woken after %.2f ms for a 30 ms refill\n", waited / 1e6);
	assert_true(waited >= 29 * MS && waited < 500 * MS);
	ratelimit_fire(rl);
	assert_int_equal(called[0], 1);
	assert_int_equal(called[1], 1);
	assert_int_equal(called[2], 0);
	assert_int_equal(poll(&p, 1, 0), 0); /* drained */
	assert_int_equal(ratelimit_armed_at(rl), 0);
	assert_true(ratelimit_consume(rl, 0, 1));
	struct ratelimit_counters k;
	ratelimit_get_counters(rl, &k);
	assert_int_equal(k.throttled, 1);
	assert_int_equal(k.wakeups, 1);
	/* Bounded number of waiters. */
	for (unsigned i = 2; i < RATELIMIT_MAX_WAITERS; i++)
		assert_int_equal(ratelimit_add_waiter(rl, waiter, (void *)2), 0);
	assert_int_equal(ratelimit_add_waiter(rl, waiter, (void *)2), -ENOSPC);
	assert_int_equal(ratelimit_add_waiter(rl, NULL, NULL), -EINVAL);
	ratelimit_destroy(rl);
}

struct race {
	struct ratelimit *rl;
	uint64_t got;
};

static void *hammer(void *arg)
{
	struct race *r = arg;
	for (int i = 0; i < 100000; i++)
		if (ratelimit_consume(r->rl, 3, 1))
			r->got++;
	return NULL;
}

/* Four threads against one bucket on a stopped clock: exactly what the
 * buckets held is handed out. */
static void test_threads(void **state)
{
	(void)state;
	struct ratelimit *rl = make(3 * 50000, 1000, 1000, 0, 0, 0);
	struct race r[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		r[i] = (struct race){rl, 0};
		assert_int_equal(pthread_create(&th[i], NULL, hammer, &r[i]), 0);
	}
	uint64_t total = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		total += r[i].got;
	}
	assert_int_equal(total, 50000 + 1000 / 3);
	ratelimit_destroy(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_check),
	    cmocka_unit_test(test_starts_full_and_refills_exactly),
	    cmocka_unit_test(test_refusal_takes_nothing),
	    cmocka_unit_test(test_one_time_burst),
	    cmocka_unit_test(test_debt),
	    cmocka_unit_test(test_exact_deadlines),
	    cmocka_unit_test(test_unlimited),
	    cmocka_unit_test(test_big_values),
	    cmocka_unit_test(test_waiters_and_real_timer),
	    cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
