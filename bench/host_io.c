/* The host's own I/O rate on a file, the physical limit the guest's
 * virtio-blk figures are compared with (bench/blk.sh), and the host's TSC
 * rate (to rescale the figures of a guest that does not know its own):
 *   host_io KIND FILE SECONDS direct|cached [DEPTH [io_uring|threads]]
 *     KIND: randread (4 KiB reads at random 4 KiB-aligned offsets), seqread
 *     or seqwrite (1 MiB, in order, wrapping at the end; writes end with one
 *     fdatasync, timed with them); direct: O_DIRECT, cached: through the page
 *     cache; DEPTH requests in flight (default 16 for randread, 4 otherwise:
 *     what the guest keeps in flight), either from one thread through
 *     io_uring (the default; threads where the kernel refuses io_uring) or
 *     from DEPTH threads with one request each (which copies from the page
 *     cache on several CPUs at once: bench/blk.sh runs both and takes the
 *     better as the host's limit).
 *     -> "host_io: KIND MODE depth=D ops=N bytes=N seconds=S iops=X mib_s=Y
 *         engine=io_uring|threads"
 *   host_io tsc
 *     -> "host_io: tsc_khz=K" (the TSC against CLOCK_MONOTONIC over 200 ms)
 * Exit status 0, or 1 with a message naming what failed. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#define MAX_DEPTH 256
#define ALIGN	  4096

enum kind { RANDREAD, SEQREAD, SEQWRITE };

struct run {
	enum kind kind;
	int fd;
	uint64_t size, req, nreqs; /* file bytes, request bytes, whole requests in the file */
	double end;		   /* CLOCK_MONOTONIC seconds */
	atomic_uint_fast64_t next; /* seq: the next request index */
	atomic_uint_fast64_t ops;
	atomic_int err; /* first errno seen */
};

struct worker {
	struct run *r;
	pthread_t t;
	uint64_t seed;
};

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void set_err(struct run *r, int e)
{
	int zero = 0;
	atomic_compare_exchange_strong(&r->err, &zero, e);
}

/* The next request's offset. */
static off_t next_off(struct run *r, uint64_t *seed)
{
	uint64_t i = r->kind == RANDREAD ? xorshift(seed) % r->nreqs
					 : atomic_fetch_add(&r->next, 1) % r->nreqs;
	return (off_t)(i * r->req);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->r;
	void *buf;
	if (posix_memalign(&buf, ALIGN, r->req)) {
		set_err(r, ENOMEM);
		return NULL;
	}
	memset(buf, 0x5a, r->req);
	while (!atomic_load(&r->err) && now_s() < r->end) {
		off_t off = next_off(r, &w->seed);
		ssize_t n = r->kind == SEQWRITE ? pwrite(r->fd, buf, r->req, off)
						: pread(r->fd, buf, r->req, off);
		if (n != (ssize_t)r->req) {
			set_err(r, n < 0 ? errno : EIO);
			break;
		}
		atomic_fetch_add(&r->ops, 1);
	}
	free(buf);
	return NULL;
}

static void prep(struct run *r, struct io_uring_sqe *sqe, void *buf, uint64_t *seed, long slot)
{
	if (r->kind == SEQWRITE)
		io_uring_prep_write(sqe, r->fd, buf, (unsigned)r->req, (uint64_t)next_off(r, seed));
	else
		io_uring_prep_read(sqe, r->fd, buf, (unsigned)r->req, (uint64_t)next_off(r, seed));
	io_uring_sqe_set_data64(sqe, (uint64_t)slot);
}

/* DEPTH requests in flight from this thread; each completion before the
 * end is replaced at once. 0, or -errno when io_uring cannot be set up
 * (nothing was done then); an I/O error is in r->err. */
static int run_uring(struct run *r, long depth)
{
	struct io_uring ring;
	int rc = io_uring_queue_init((unsigned)depth, &ring, 0);
	if (rc)
		return rc;
	static void *bufs[MAX_DEPTH];
	for (long i = 0; i < depth; i++) {
		if (posix_memalign(&bufs[i], ALIGN, r->req)) {
			set_err(r, ENOMEM);
			depth = i;
			goto out;
		}
		memset(bufs[i], 0x5a, r->req);
	}
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	for (long i = 0; i < depth; i++)
		prep(r, io_uring_get_sqe(&ring), bufs[i], &seed, i);
	long inflight = depth;
	io_uring_submit(&ring);
	while (inflight) {
		struct io_uring_cqe *cqe;
		rc = io_uring_wait_cqe(&ring, &cqe);
		if (rc) {
			set_err(r, -rc);
			break;
		}
		long slot = (long)io_uring_cqe_get_data64(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&ring, cqe);
		inflight--;
		if (res != (int)r->req) {
			set_err(r, res < 0 ? -res : EIO);
			continue;
		}
		atomic_fetch_add(&r->ops, 1);
		if (!atomic_load(&r->err) && now_s() < r->end) {
			prep(r, io_uring_get_sqe(&ring), bufs[slot], &seed, slot);
			io_uring_submit(&ring);
			inflight++;
		}
	}
	rc = 0;
out:
	for (long i = 0; i < depth; i++)
		free(bufs[i]);
	io_uring_queue_exit(&ring);
	return rc;
}

static int run_threads(struct run *r, long depth)
{
	static struct worker w[MAX_DEPTH];
	for (long i = 0; i < depth; i++) {
		w[i] = (struct worker){.r = r, .seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1)};
		int rc = pthread_create(&w[i].t, NULL, work, &w[i]);
		if (rc) {
			set_err(r, rc);
			depth = i;
		}
	}
	for (long i = 0; i < depth; i++)
		pthread_join(w[i].t, NULL);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: host_io randread|seqread|seqwrite FILE SECONDS direct|cached "
			"[DEPTH [io_uring|threads]]\n       host_io tsc\n");
	return 2;
}

static int tsc(void)
{
	double t0 = now_s();
	uint64_t c0 = __rdtsc();
	while (now_s() - t0 < 0.2)
		;
	uint64_t c1 = __rdtsc();
	double t1 = now_s();
	printf("host_io: tsc_khz=%.0f\n", (double)(c1 - c0) / (t1 - t0) / 1e3);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "tsc"))
		return tsc();
	if (argc < 5 || argc > 7)
		return usage();
	bool threads = argc == 7 && !strcmp(argv[6], "threads");
	if (argc == 7 && !threads && strcmp(argv[6], "io_uring"))
		return usage();
	struct run r = {0};
	if (!strcmp(argv[1], "randread"))
		r.kind = RANDREAD;
	else if (!strcmp(argv[1], "seqread"))
		r.kind = SEQREAD;
	else if (!strcmp(argv[1], "seqwrite"))
		r.kind = SEQWRITE;
	else
		return usage();
	bool direct = !strcmp(argv[4], "direct");
	if (!direct && strcmp(argv[4], "cached"))
		return usage();
	char *e;
	long secs = strtol(argv[3], &e, 10);
	if (*e || secs < 1 || secs > 3600) {
		fprintf(stderr, "host_io: SECONDS=%s is not in 1..3600\n", argv[3]);
		return 2;
	}
	long depth = r.kind == RANDREAD ? 16 : 4;
	if (argc >= 6) {
		depth = strtol(argv[5], &e, 10);
		if (*e || depth < 1 || depth > MAX_DEPTH) {
			fprintf(stderr, "host_io: DEPTH=%s is not in 1..%d\n", argv[5], MAX_DEPTH);
			return 2;
		}
	}
	r.req = r.kind == RANDREAD ? 4096 : 1u << 20;
	int flags = (r.kind == SEQWRITE ? O_RDWR : O_RDONLY) | (direct ? O_DIRECT : 0);
	r.fd = open(argv[2], flags | O_CLOEXEC);
	if (r.fd < 0) {
		fprintf(stderr, "host_io: cannot open %s%s: %s\n", argv[2],
			direct ? " with O_DIRECT" : "", strerror(errno));
		return 1;
	}
	struct stat st;
	if (fstat(r.fd, &st) || st.st_size < (off_t)r.req) {
		fprintf(stderr, "host_io: %s is smaller than one %" PRIu64 "-byte request\n",
			argv[2], r.req);
		return 1;
	}
	r.size = (uint64_t)st.st_size;
	r.nreqs = r.size / r.req;

	double t0 = now_s();
	r.end = t0 + (double)secs;
	const char *engine = "io_uring";
	if (threads || run_uring(&r, depth)) {
		engine = "threads";
		t0 = now_s();
		r.end = t0 + (double)secs;
		run_threads(&r, depth);
	}
	if (r.kind == SEQWRITE && !atomic_load(&r.err) && fdatasync(r.fd))
		set_err(&r, errno);
	double t = now_s() - t0;
	close(r.fd);
	if (atomic_load(&r.err)) {
		fprintf(stderr, "host_io: %s on %s: %s\n", argv[1], argv[2],
			strerror(atomic_load(&r.err)));
		return 1;
	}
	uint64_t ops = atomic_load(&r.ops), bytes = ops * r.req;
	printf("host_io: %s %s depth=%ld ops=%" PRIu64 " bytes=%" PRIu64
	       " seconds=%.3f iops=%.0f mib_s=%.2f engine=%s\n",
	       argv[1], argv[4], depth, ops, bytes, t, (double)ops / t,
	       (double)bytes / t / 1048576.0, engine);
	return 0;
}
