/* Token buckets with exact integer refill, and the timer that wakes the
 * devices a limiter refused.
 *
 * Refill: after e nanoseconds a bucket gains floor((e * size + rem) /
 * refill_ns) tokens and keeps the remainder in rem, so refilling in many
 * small steps adds exactly what one big step would (no drift). The
 * products are taken in 128 bits: sizes and refill times are below 2^48
 * (rl_config_check), elapsed times below 2^64 ns and requests are clamped
 * to RL_MAX_TOKENS, so nothing overflows.
 *
 * Debt: budget is signed. A request larger than the bucket passes when the
 * bucket is full and drives the budget below zero; refills pay the debt
 * before anything else can pass. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "virtio/ratelimit.h"

typedef unsigned __int128 u128;

#define NS_PER_MS  1000000u
#define LIMIT_BITS 48
/* Larger requests count as this many tokens (a debt stays well inside
 * int64_t). No device asks for that much in one request. */
#define RL_MAX_TOKENS (1ull << 56)
/* Longest the timer is armed for (about 146 years): "never", safely. */
#define RL_MAX_WAIT (1ull << 62)

struct rl_bucket {
	uint64_t size; /* 0: unlimited */
	uint64_t burst;
	int64_t budget; /* <= size; negative: debt */
	u128 refill_ns;
	u128 rem; /* < refill_ns */
};

struct rl_waiter {
	void (*fn)(void *ctx);
	void *ctx;
};

struct ratelimit {
	pthread_mutex_t lock;
	pthread_cond_t idle; /* firing dropped to 0 */
	int tfd;
	struct rl_bucket bw, ops;
	uint64_t last_ns;  /* time of the last refill */
	uint64_t armed_at; /* clock time the timer waits for; 0: not armed */
	struct rl_waiter waiters[RATELIMIT_MAX_WAITERS];
	unsigned nwaiters;
	unsigned firing; /* ratelimit_fire() calls inside their waiters */
	struct ratelimit_counters ctr;
	uint64_t (*clock)(void *ctx);
	void *clock_ctx;
};

/* ---- configuration ---- */

bool rl_config_active(const struct rl_config *c)
{
	return c && (c->bw.size || c->ops.size);
}

static int check_bucket(const char *what, const struct rl_bucket_config *b, struct chv_err *err)
{
	const uint64_t lim = 1ull << LIMIT_BITS;
	if (b->size >= lim)
		return chv_err_set(err, -EINVAL, "%s_size=%" PRIu64 " is not below 2^%d", what,
				   b->size, LIMIT_BITS);
	if (b->one_time_burst >= lim)
		return chv_err_set(err, -EINVAL, "%s_one_time_burst=%" PRIu64 " is not below 2^%d",
				   what, b->one_time_burst, LIMIT_BITS);
	if (b->refill_ms >= lim)
		return chv_err_set(err, -EINVAL, "%s_refill_time=%" PRIu64 " is not below 2^%d ms",
				   what, b->refill_ms, LIMIT_BITS);
	if (b->size && !b->refill_ms)
		return chv_err_set(err, -EINVAL,
				   "%s_refill_time=0: a bucket with %s_size=%" PRIu64
				   " needs a refill time > 0 ms",
				   what, what, b->size);
	if (!b->size && b->one_time_burst)
		return chv_err_set(err, -EINVAL,
				   "%s_one_time_burst=%" PRIu64 " needs %s_size > 0 (without it "
				   "the bucket is unlimited)",
				   what, b->one_time_burst, what);
	if (!b->size && b->refill_ms)
		return chv_err_set(err, -EINVAL,
				   "%s_refill_time=%" PRIu64 " needs %s_size > 0 (without it the "
				   "bucket is unlimited)",
				   what, b->refill_ms, what);
	return 0;
}

int rl_config_check(const struct rl_config *c, struct chv_err *err)
{
	if (!c)
		return chv_err_set(err, -EINVAL, "rate limit: no configuration");
	int rc = check_bucket("bw", &c->bw, err);
	return rc ? rc : check_bucket("ops", &c->ops, err);
}

/* ---- buckets ---- */

static void bucket_init(struct rl_bucket *b, const struct rl_bucket_config *c)
{
	memset(b, 0, sizeof(*b));
	if (!c->size)
		return;
	b->size = c->size;
	b->burst = c->one_time_burst;
	b->budget = (int64_t)c->size;
	b->refill_ns = (u128)c->refill_ms * NS_PER_MS;
}

static void bucket_refill(struct rl_bucket *b, uint64_t elapsed)
{
	if (!b->size)
		return;
	if (b->budget >= (int64_t)b->size) {
		b->rem = 0;
		return;
	}
	u128 num = (u128)elapsed * b->size + b->rem;
	u128 add = num / b->refill_ns;
	u128 room = (u128)((int64_t)b->size - b->budget);
	if (add >= room) {
		b->budget = (int64_t)b->size;
		b->rem = 0;
	} else {
		b->budget += (int64_t)add;
		b->rem = num % b->refill_ns;
	}
}

static bool bucket_can(const struct rl_bucket *b, uint64_t tokens)
{
	if (!b->size)
		return true;
	if (b->budget + (int64_t)b->burst >= (int64_t)tokens)
		return true;
	/* Larger than the bucket: let through from a full bucket, in debt. */
	return tokens > b->size && b->budget >= (int64_t)b->size;
}

static void bucket_take(struct rl_bucket *b, uint64_t tokens)
{
	if (!b->size)
		return;
	uint64_t from_burst = tokens < b->burst ? tokens : b->burst;
	b->burst -= from_burst;
	b->budget -= (int64_t)(tokens - from_burst);
}

/* Nanoseconds until bucket_can(b, tokens) holds (b refused it now). */
static uint64_t bucket_wait(const struct rl_bucket *b, uint64_t tokens)
{
	if (!b->size || bucket_can(b, tokens))
		return 0;
	int64_t need_full = (int64_t)b->size - b->budget; /* >= 1 when refusing */
	int64_t need = need_full;
	if (tokens - (tokens < b->burst ? tokens : b->burst) <= b->size) {
		int64_t exact = (int64_t)tokens - (int64_t)b->burst - b->budget;
		if (exact < need)
			need = exact;
	}
	/* Smallest e with e * size + rem >= need * refill_ns. */
	u128 num = (u128)need * b->refill_ns - b->rem;
	u128 e = (num + b->size - 1) / b->size;
	return e > RL_MAX_WAIT ? RL_MAX_WAIT : (uint64_t)e;
}

/* ---- the limiter ---- */

static uint64_t mono_ns(void *ctx)
{
	(void)ctx;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(const struct ratelimit *rl)
{
	return rl->clock(rl->clock_ctx);
}

/* Under the lock. */
static void refill(struct ratelimit *rl, uint64_t now)
{
	if (now <= rl->last_ns)
		return; /* a clock that went back (tests) adds nothing */
	uint64_t e = now - rl->last_ns;
	rl->last_ns = now;
	bucket_refill(&rl->bw, e);
	bucket_refill(&rl->ops, e);
}

/* Under the lock: arms the timer for wait ns from now unless it is armed
 * for earlier already. Whoever is woken early retries and re-arms. */
static void arm(struct ratelimit *rl, uint64_t now, uint64_t wait)
{
	uint64_t at = now + wait;
	if (at < now)
		at = UINT64_MAX;
	if (rl->armed_at && rl->armed_at <= at)
		return;
	struct itimerspec its = {
	    .it_value = {.tv_sec = (time_t)(wait / 1000000000ull),
			 .tv_nsec = (long)(wait % 1000000000ull)},
	};
	/* Cannot fail for a valid fd and value; were it to, the next refusal
	 * (armed_at left alone) tries again. */
	if (timerfd_settime(rl->tfd, 0, &its, NULL) == 0)
		rl->armed_at = at ? at : 1;
}

int ratelimit_create(struct ratelimit **out, const struct rl_config *c, struct chv_err *err)
{
	*out = NULL;
	int rc = rl_config_check(c, err);
	if (rc)
		return rc;
	struct ratelimit *rl = calloc(1, sizeof(*rl));
	if (!rl)
		return chv_err_set(err, -ENOMEM, "rate limit: out of memory");
	rl->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (rl->tfd < 0) {
		rc = -errno;
		free(rl);
		return chv_err_set(err, rc, "rate limit: timerfd: %s", strerror(-rc));
	}
	rc = -pthread_mutex_init(&rl->lock, NULL);
	if (!rc) {
		rc = -pthread_cond_init(&rl->idle, NULL);
		if (rc)
			pthread_mutex_destroy(&rl->lock);
	}
	if (rc) {
		close(rl->tfd);
		free(rl);
		return chv_err_set(err, rc, "rate limit: %s", strerror(-rc));
	}
	bucket_init(&rl->bw, &c->bw);
	bucket_init(&rl->ops, &c->ops);
	rl->clock = mono_ns;
	rl->last_ns = now_ns(rl);
	*out = rl;
	return 0;
}

void ratelimit_destroy(struct ratelimit *rl)
{
	if (!rl)
		return;
	close(rl->tfd);
	pthread_cond_destroy(&rl->idle);
	pthread_mutex_destroy(&rl->lock);
	free(rl);
}

bool ratelimit_consume(struct ratelimit *rl, uint64_t bytes, uint64_t ops)
{
	if (!rl)
		return true;
	if (bytes > RL_MAX_TOKENS)
		bytes = RL_MAX_TOKENS;
	if (ops > RL_MAX_TOKENS)
		ops = RL_MAX_TOKENS;
	pthread_mutex_lock(&rl->lock);
	uint64_t now = now_ns(rl);
	refill(rl, now);
	bool ok = bucket_can(&rl->bw, bytes) && bucket_can(&rl->ops, ops);
	if (ok) {
		bucket_take(&rl->bw, bytes);
		bucket_take(&rl->ops, ops);
	} else {
		uint64_t w = bucket_wait(&rl->bw, bytes), w2 = bucket_wait(&rl->ops, ops);
		arm(rl, now, w > w2 ? w : w2);
		rl->ctr.throttled++;
	}
	pthread_mutex_unlock(&rl->lock);
	return ok;
}

int ratelimit_fd(const struct ratelimit *rl)
{
	return rl ? rl->tfd : -1;
}

void ratelimit_fire(struct ratelimit *rl)
{
	struct rl_waiter w[RATELIMIT_MAX_WAITERS];
	uint64_t expired = 0;

	pthread_mutex_lock(&rl->lock);
	ssize_t got = read(rl->tfd, &expired, sizeof(expired));
	if (got != (ssize_t)sizeof(expired))
		expired = 0; /* EAGAIN: re-armed since, or a spurious call */
	if (rl->armed_at && (expired || now_ns(rl) >= rl->armed_at))
		rl->armed_at = 0;
	rl->ctr.wakeups++;
	unsigned n = rl->nwaiters;
	memcpy(w, rl->waiters, n * sizeof(w[0]));
	rl->firing++;
	pthread_mutex_unlock(&rl->lock);

	for (unsigned i = 0; i < n; i++)
		w[i].fn(w[i].ctx);

	pthread_mutex_lock(&rl->lock);
	if (--rl->firing == 0)
		pthread_cond_broadcast(&rl->idle);
	pthread_mutex_unlock(&rl->lock);
}

int ratelimit_add_waiter(struct ratelimit *rl, void (*fn)(void *ctx), void *ctx)
{
	if (!rl || !fn)
		return -EINVAL;
	pthread_mutex_lock(&rl->lock);
	int rc = -ENOSPC;
	if (rl->nwaiters < RATELIMIT_MAX_WAITERS) {
		rl->waiters[rl->nwaiters++] = (struct rl_waiter){fn, ctx};
		rc = 0;
	}
	pthread_mutex_unlock(&rl->lock);
	return rc;
}

void ratelimit_remove_waiter(struct ratelimit *rl, void (*fn)(void *ctx), void *ctx)
{
	if (!rl)
		return;
	pthread_mutex_lock(&rl->lock);
	for (unsigned i = 0; i < rl->nwaiters; i++) {
		if (rl->waiters[i].fn != fn || rl->waiters[i].ctx != ctx)
			continue;
		memmove(&rl->waiters[i], &rl->waiters[i + 1],
			(rl->nwaiters - i - 1) * sizeof(rl->waiters[0]));
		rl->nwaiters--;
		break;
	}
	/* A fire that copied the list before may still be calling it. */
	while (rl->firing)
		pthread_cond_wait(&rl->idle, &rl->lock);
	pthread_mutex_unlock(&rl->lock);
}

void ratelimit_get_counters(struct ratelimit *rl, struct ratelimit_counters *out)
{
	if (!rl) {
		memset(out, 0, sizeof(*out));
		return;
	}
	pthread_mutex_lock(&rl->lock);
	*out = rl->ctr;
	pthread_mutex_unlock(&rl->lock);
}

uint64_t ratelimit_armed_at(struct ratelimit *rl)
{
	pthread_mutex_lock(&rl->lock);
	uint64_t at = rl->armed_at;
	pthread_mutex_unlock(&rl->lock);
	return at;
}

void ratelimit_set_clock(struct ratelimit *rl, uint64_t (*now)(void *ctx), void *ctx)
{
	pthread_mutex_lock(&rl->lock);
	rl->clock = now ? now : mono_ns;
	rl->clock_ctx = now ? ctx : NULL;
	/* Time starts again on the new clock; nothing refills for the jump. */
	rl->last_ns = now_ns(rl);
	rl->armed_at = 0;
	pthread_mutex_unlock(&rl->lock);
}
