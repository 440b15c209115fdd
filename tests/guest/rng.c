/* The virtio-rng check: the device found and set up through the virtio
 * core, then several entropy requests, one of them a two-buffer chain. The
 * requests and every byte loop run at CPL3: the bytes must not be all equal,
 * must spread over many values, and no request may repeat an earlier one. */
#include "guest.h"

#define VIRTIO_ID_RNG  4
#define RNG_REQS       4
#define RNG_REQ_LEN    4096
#define RNG_TIMEOUT_MS 5000
/* 4 KiB of uniform bytes cover nearly all 256 values; a stuck or patterned
 * source covers few. */
#define RNG_MIN_DISTINCT 128

static uint8_t ring_page[4096] __attribute__((aligned(4096)));
static uint8_t rng_buf[RNG_REQS][RNG_REQ_LEN] __attribute__((aligned(4096)));

struct rng_run {
	struct virtq *vq;
	uint64_t tsc_per_ms;
	/* results */
	unsigned done; /* requests answered */
	uint64_t bytes;
	bool short_req;
	int64_t got; /* what that request got: bytes, or -1 (no answer) */
	unsigned bad_req;
	bool all_equal, repeated;
	unsigned distinct;
};

static bool all_same(const uint8_t *p, uint64_t n)
{
	for (uint64_t i = 1; i < n; i++)
		if (p[i] != p[0])
			return false;
	return true;
}

static uint64_t rng_user(void *arg)
{
	struct rng_run *r = arg;
	bool seen[256] = {0};
	for (unsigned i = 0; i < RNG_REQS; i++) {
		uint8_t *b = rng_buf[i];
		memset(b, 0, RNG_REQ_LEN);
		/* Request 1 goes as two descriptors, the others as one. */
		struct virtq_buf bufs[2] = {
		    {(uint64_t)(uintptr_t)b, RNG_REQ_LEN, true},
		    {(uint64_t)(uintptr_t)b + RNG_REQ_LEN / 2, RNG_REQ_LEN / 2, true},
		};
		unsigned n = 1;
		if (i == 1) {
			bufs[0].len = RNG_REQ_LEN / 2;
			n = 2;
		}
		int64_t got =
		    virtq_transact(r->vq, bufs, n, rdtsc() + RNG_TIMEOUT_MS * r->tsc_per_ms);
		if (got != RNG_REQ_LEN) {
			r->short_req = true;
			r->got = got;
			r->bad_req = i;
			return 1;
		}
		r->done++;
		r->bytes += (uint64_t)got;
		if (all_same(b, RNG_REQ_LEN)) {
			r->all_equal = true;
			r->bad_req = i;
			return 1;
		}
		for (unsigned j = 0; j < i; j++)
			if (!memcmp(rng_buf[j], b, RNG_REQ_LEN)) {
				r->repeated = true;
				r->bad_req = i;
				return 1;
			}
		for (unsigned k = 0; k < RNG_REQ_LEN; k++)
			seen[b[k]] = true;
	}
	for (unsigned k = 0; k < 256; k++)
		r->distinct += seen[k];
	return 0;
}

void check_rng(void)
{
	static struct virtio_dev v;
	static struct virtq vq;
	char why[160];

	if (!virtio_open(VIRTIO_ID_RNG, &v, why, sizeof(why)) ||
	    !virtio_negotiate(&v, 0, why, sizeof(why)) ||
	    !virtio_queue_setup(&v, 0, &vq, (uint64_t)(uintptr_t)ring_page, why, sizeof(why))) {
		tap_fail("virtio-rng", "%s", why);
		return;
	}
	virtio_driver_ok(&v);
	tap_diag("virtio-rng: %02x:%02x.%x %04x:%04x, BAR%u at 0x%lx, features 0x%lx, queue size "
		 "%u, notify at 0x%lx",
		 v.pci.bus, v.pci.dev, v.pci.fn, v.pci.vendor, v.pci.device, v.bar, v.bar_pa,
		 v.features, vq.size, vq.notify);

	struct rng_run r = {.vq = &vq, .tsc_per_ms = tsc_khz(NULL)};
	uint64_t rc = user_call(rng_user, &r);
	uint8_t st = virtio_status(&v);
	tap_diag("virtio-rng: %u of %u requests answered, %lu bytes, %u distinct byte values, "
		 "status 0x%x",
		 r.done, RNG_REQS, r.bytes, r.distinct, st);
	virtio_reset(&v);
	if (r.short_req && r.got < 0)
		tap_fail("virtio-rng", "request %u: no answer within %u ms (or a wrong head)",
			 r.bad_req, RNG_TIMEOUT_MS);
	else if (r.short_req)
		tap_fail("virtio-rng", "request %u: %ld bytes of %u", r.bad_req, r.got,
			 RNG_REQ_LEN);
	else if (r.all_equal)
		tap_fail("virtio-rng", "request %u: all 4096 bytes are equal", r.bad_req);
	else if (r.repeated)
		tap_fail("virtio-rng", "request %u repeats an earlier one", r.bad_req);
	else if (rc || st & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED))
		tap_fail("virtio-rng", "status 0x%x after the requests", st);
	else if (r.distinct < RNG_MIN_DISTINCT)
		tap_fail("virtio-rng", "only %u distinct byte values in %lu bytes", r.distinct,
			 r.bytes);
	else
		tap_ok("virtio-rng");
}
