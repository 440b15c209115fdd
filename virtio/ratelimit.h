/* Token-bucket rate limiting for virtio-blk and virtio-net (Cloud
 * Hypervisor's and Firecracker's model).
 *
 * A limiter has two buckets: bandwidth (bytes) and operations (requests or
 * frames). Each bucket holds at most `size` tokens and refills linearly, a
 * full `size` every `refill_ms` milliseconds; `one_time_burst` tokens are
 * extra, available once at start and never refilled. A bucket with size 0 is
 * unlimited. A request takes its bytes and one op from both buckets at once,
 * or nothing: a request larger than a bucket's size is let through when the
 * bucket is full and leaves it in debt, so any request size makes progress
 * and the long-run rate stays at size/refill_ms.
 *
 * One limiter may be shared by several devices (a rate_limit_group), from
 * several threads: every call is thread-safe.
 *
 * Waking up. A device that is refused stops taking requests from its queue
 * (leaving the refused one in the ring) and waits. The limiter owns a timerfd
 * (ratelimit_fd) that it arms, on a refusal, for when the tokens will be
 * there. The VM's event loop watches that fd and calls ratelimit_fire(),
 * which reads the timer and calls every waiter registered with
 * ratelimit_add_waiter(), each of which retries its queues. */
#ifndef CHV_VIRTIO_RATELIMIT_H
#define CHV_VIRTIO_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "vm/err.h"

struct rl_bucket_config {
	uint64_t size;		 /* tokens; 0: this bucket is unlimited */
	uint64_t one_time_burst; /* extra tokens at start, not refilled */
	uint64_t refill_ms;	 /* time to refill `size` tokens; > 0 when size > 0 */
};

/* bw: bytes; ops: requests (blk) or frames (net). Both 0: no limit. */
struct rl_config {
	struct rl_bucket_config bw, ops;
};

/* Whether c limits anything (some bucket has size > 0). */
bool rl_config_active(const struct rl_config *c);

/* Checks c: refill_ms must be > 0 for a bucket with size > 0 (err names
 * `what`_refill_time, with what "bw" or "ops"), sizes, bursts and times
 * below 2^48, and a burst or refill time without a size (meaningless on an
 * unlimited bucket) is refused too. -EINVAL with a message naming the key
 * and value, e.g. "bw_refill_time=0: ..." (no option prefix: the caller
 * adds "--disk: " or the like). */
chv_must_check int rl_config_check(const struct rl_config *c, struct chv_err *err);

struct ratelimit;

/* Creates a limiter (with its timerfd, CLOCK_MONOTONIC, non-blocking,
 * close-on-exec). Buckets start full plus their one_time_burst. */
chv_must_check int ratelimit_create(struct ratelimit **out, const struct rl_config *c,
				    struct chv_err *err);
/* Safe on NULL. Waiters must no longer run. */
void ratelimit_destroy(struct ratelimit *rl);

/* Takes `bytes` from the bandwidth bucket and `ops` from the ops bucket, or
 * nothing. true: go ahead. false: refused; the timer is armed for when the
 * request would pass, and the caller must leave the request queued and wait
 * for its waiter callback. rl == NULL always passes. The one-time burst is
 * spent before the bucket; a request above 2^56 tokens counts as 2^56.
 *
 * The promise devices build on: after a refusal, ratelimit_fire() will run
 * the waiters at least once more, starting after the refusal (the timer is
 * armed for the earliest refused request, and every fire clears it before
 * calling the waiters). A device therefore records "throttled" under the
 * same lock its waiter takes, in the section that called consume. */
bool ratelimit_consume(struct ratelimit *rl, uint64_t bytes, uint64_t ops);

/* The fd the event loop watches (readable when waiters should retry). */
int ratelimit_fd(const struct ratelimit *rl);

/* Called by the event loop when ratelimit_fd() is readable: drains the
 * timer and calls every waiter (outside the limiter's lock). */
void ratelimit_fire(struct ratelimit *rl);

/* Registers fn(ctx), called by ratelimit_fire(). At most
 * RATELIMIT_MAX_WAITERS per limiter; -ENOSPC beyond. Devices register their
 * own waiter when they are given a limiter (virtio_blk_init(),
 * virtio_net_init()) and remove it when destroyed. */
#define RATELIMIT_MAX_WAITERS 64
chv_must_check int ratelimit_add_waiter(struct ratelimit *rl, void (*fn)(void *ctx), void *ctx);
/* Removes the waiter (fn, ctx) if present and waits until no
 * ratelimit_fire() is still calling it: afterwards it is never called
 * again. Not from inside a waiter. Safe on NULL. */
void ratelimit_remove_waiter(struct ratelimit *rl, void (*fn)(void *ctx), void *ctx);

/* Counters: requests refused (throttle events) and timer wake-ups. */
struct ratelimit_counters {
	uint64_t throttled, wakeups;
};
void ratelimit_get_counters(struct ratelimit *rl, struct ratelimit_counters *out);

/* For tests: the limiter reads time from this clock (nanoseconds) instead of
 * CLOCK_MONOTONIC when set. NULL restores the real clock. Time restarts
 * from the new clock's present: the buckets keep their tokens. The timerfd
 * still counts real time. */
void ratelimit_set_clock(struct ratelimit *rl, uint64_t (*now_ns)(void *ctx), void *ctx);

/* For tests: the clock time (as the clock above reads it) the timer is armed
 * for, i.e. when the earliest refused request will pass; 0: not armed. */
uint64_t ratelimit_armed_at(struct ratelimit *rl);

#endif
