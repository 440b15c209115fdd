/* The virtio-blk backend: image open and locking, io_uring with a reaper
 * thread, or a thread pool when io_uring is unavailable or refused. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "virtio/blk_io.h"

#define DEFAULT_THREADS 4u
#define DEFAULT_DEPTH	128u
#define ZERO_CHUNK	65536u

static const uint8_t zeros[ZERO_CHUNK];

static bool is_write_kind(enum blk_io_kind k)
{
	return k == BLK_IO_WRITE || k == BLK_IO_DISCARD || k == BLK_IO_WRITE_ZEROES;
}

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* O_DIRECT's limits for this file; conservative when the kernel does not
 * say (before Linux 6.1, or a file system that does not report them). */
static void dio_alignment(struct blk_io *io)
{
	struct statx sx;
	io->mem_align = 4096;
	io->off_align = 4096;
	if (statx(io->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
	    (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_mem_align && sx.stx_dio_offset_align) {
		io->mem_align = sx.stx_dio_mem_align;
		io->off_align = sx.stx_dio_offset_align;
	}
	if (io->mem_align < sizeof(void *))
		io->mem_align = sizeof(void *);
}

static int image_size(int fd, const struct stat *st, uint64_t *size)
{
	if (S_ISREG(st->st_mode)) {
		*size = (uint64_t)st->st_size;
		return 0;
	}
	if (S_ISBLK(st->st_mode))
		return ioctl(fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
	return -EINVAL;
}

static int lock_image(struct blk_io *io, const char *path, struct chv_err *err)
{
	struct flock fl = {
	    .l_type = io->readonly ? F_RDLCK : F_WRLCK,
	    .l_whence = SEEK_SET,
	};
	if (fcntl(io->fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	int e = errno;
	if (e == EAGAIN || e == EACCES)
		return chv_err_set(err, -EBUSY,
				   "--disk: path=%s is in use: %s by another process or VM", path,
				   io->readonly ? "open for writing" : "open");
	return chv_err_set(err, -e, "--disk: path=%s: cannot lock: %s", path, strerror(e));
}

static void finish(struct blk_io *io, struct blk_io_op *op, int res);

/* ---- synchronous execution (the pool, and io_uring fallbacks) ---- */

static int write_zeros(int fd, uint64_t off, uint64_t len)
{
	while (len) {
		size_t n = len < ZERO_CHUNK ? (size_t)len : ZERO_CHUNK;
		ssize_t w = pwrite(fd, zeros, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		off += (uint64_t)w;
		len -= (uint64_t)w;
	}
	return 0;
}

/* preadv/pwritev until every byte moved: short transfers resume where
 * they stopped; end of file is an I/O error (the image shrank). */
static int rw_all(struct blk_io_op *op, const struct iovec *iov, unsigned cnt)
{
	struct iovec tmp[IOV_MAX];
	memcpy(tmp, iov, cnt * sizeof(*iov));
	struct iovec *v = tmp;
	uint64_t off = op->off;
	while (cnt) {
		ssize_t r = op->kind == BLK_IO_READ ? preadv(op->fd, v, (int)cnt, (off_t)off)
						    : pwritev(op->fd, v, (int)cnt, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		off += (uint64_t)r;
		while (cnt && (size_t)r >= v->iov_len) {
			r -= (ssize_t)v->iov_len;
			v++;
			cnt--;
		}
		if (cnt) {
			v->iov_base = (uint8_t *)v->iov_base + r;
			v->iov_len -= (size_t)r;
		}
	}
	return 0;
}

static int fallocate_mode(const struct blk_io_op *op)
{
	if (op->kind == BLK_IO_DISCARD || op->unmap)
		return FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	return FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
}

static int run_sync(struct blk_io_op *op)
{
	switch (op->kind) {
	case BLK_IO_READ:
	case BLK_IO_WRITE:
		if (op->bounce)
			return rw_all(op, &op->biov, 1);
		return rw_all(op, op->iov, op->iovcnt);
	case BLK_IO_FLUSH:
		return fdatasync(op->fd) < 0 ? -errno : 0;
	case BLK_IO_DISCARD:
	case BLK_IO_WRITE_ZEROES:
		return fallocate(op->fd, fallocate_mode(op), (off_t)op->off, (off_t)op->len) < 0
			   ? -errno
			   : 0;
	}
	return -EINVAL;
}

static blk_io_thread_fn hook_fn;
static void *hook_ctx;

void blk_io_set_thread_start(blk_io_thread_fn fn, void *ctx)
{
	hook_fn = fn;
	hook_ctx = ctx;
}

/* The hook, then a report to blk_io_open(); false: the thread must end. */
static bool thread_begin(struct blk_io *io)
{
	struct chv_err e = {0};
	int rc = io->thread_start ? io->thread_start(io->thread_start_ctx, &e) : 0;
	pthread_mutex_lock(&io->lock);
	io->threads_begun++;
	if (rc < 0 && io->thread_err.code == 0) {
		io->thread_err = e;
		io->thread_err.code = rc;
	}
	pthread_cond_broadcast(&io->idle); /* idle's waiters re-check: harmless */
	pthread_mutex_unlock(&io->lock);
	return rc >= 0;
}

/* Waits until n threads have run the hook; 0, or the first failure. */
static int threads_wait(struct blk_io *io, unsigned n, const char *path, struct chv_err *err)
{
	if (!io->thread_start)
		return 0;
	pthread_mutex_lock(&io->lock);
	while (io->threads_begun < n)
		pthread_cond_wait(&io->idle, &io->lock);
	int rc = io->thread_err.code;
	pthread_mutex_unlock(&io->lock);
	if (rc < 0)
		return chv_err_set(err, rc, "--disk: path=%s: I/O thread: %s", path,
				   io->thread_err.msg);
	return 0;
}

static void *pool_worker(void *arg)
{
	struct blk_io *io = arg;
	if (!thread_begin(io))
		return NULL;
	for (;;) {
		pthread_mutex_lock(&io->lock);
		while (!io->queue && !io->stopping)
			pthread_cond_wait(&io->cond, &io->lock);
		struct blk_io_op *op = io->queue;
		if (!op) {
			pthread_mutex_unlock(&io->lock);
			return NULL;
		}
		io->queue = op->next;
		if (!io->queue)
			io->queue_tail = NULL;
		pthread_mutex_unlock(&io->lock);
		finish(io, op, run_sync(op));
	}
}

/* ---- io_uring ---- */

/* Under io->lock; the ring has room (ring_inflight < ring_cap). */
static void uring_queue(struct blk_io *io, struct blk_io_op *op)
{
	struct io_uring *ring = io->ring;
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	/* Cannot fail: every SQE is handed to the kernel right after it is
	 * filled, and at most ring_cap < entries are in flight. */
	if (!sqe)
		abort();
	switch (op->kind) {
	case BLK_IO_READ:
		if (op->bounce)
			io_uring_prep_readv(sqe, op->fd, &op->biov, 1, op->off);
		else
			io_uring_prep_readv(sqe, op->fd, op->iov, op->iovcnt, op->off);
		break;
	case BLK_IO_WRITE:
		if (op->bounce)
			io_uring_prep_writev(sqe, op->fd, &op->biov, 1, op->off);
		else
			io_uring_prep_writev(sqe, op->fd, op->iov, op->iovcnt, op->off);
		break;
	case BLK_IO_FLUSH:
		io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
		break;
	case BLK_IO_DISCARD:
	case BLK_IO_WRITE_ZEROES:
		io_uring_prep_fallocate(sqe, op->fd, fallocate_mode(op), (off_t)op->off,
					(off_t)op->len);
		break;
	}
	io_uring_sqe_set_data(sqe, op);
	io->ring_inflight++;
	int rc;
	do
		rc = io_uring_submit(ring);
	while (rc == -EINTR || rc == -EAGAIN);
}

static void uring_wake(struct blk_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(io->ring);
	if (!sqe)
		abort();
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data(sqe, NULL);
	int rc;
	do
		rc = io_uring_submit(io->ring);
	while (rc == -EINTR || rc == -EAGAIN);
}

static void *uring_reaper(void *arg)
{
	struct blk_io *io = arg;
	struct io_uring *ring = io->ring;
	if (!thread_begin(io))
		return NULL;
	for (;;) {
		pthread_mutex_lock(&io->lock);
		bool done = io->stopping && io->inflight == 0;
		pthread_mutex_unlock(&io->lock);
		if (done)
			return NULL;
		struct io_uring_cqe *cqe;
		int rc = io_uring_wait_cqe(ring, &cqe);
		if (rc == -EINTR || rc == -EAGAIN)
			continue;
		if (rc < 0)
			return NULL; /* a broken ring; nothing sane is left to do */
		struct blk_io_op *op = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(ring, cqe);
		if (!op)
			continue;
		pthread_mutex_lock(&io->lock);
		io->ring_inflight--;
		while (io->backlog && io->ring_inflight < io->ring_cap) {
			struct blk_io_op *b = io->backlog;
			io->backlog = b->next;
			if (!io->backlog)
				io->backlog_tail = NULL;
			uring_queue(io, b);
		}
		pthread_mutex_unlock(&io->lock);
		if ((op->kind == BLK_IO_READ || op->kind == BLK_IO_WRITE) && res >= 0) {
			/* A short transfer on a file means its end moved:
			 * redo it synchronously, which resumes short
			 * transfers and reports the end of the file. */
			if ((uint64_t)res == op->len)
				res = 0;
			else
				res = run_sync(op);
		} else if (res > 0) {
			res = 0;
		}
		finish(io, op, res);
	}
}

/* ---- common ---- */

static void finish(struct blk_io *io, struct blk_io_op *op, int res)
{
	if (op->kind == BLK_IO_WRITE_ZEROES && (res == -EOPNOTSUPP || res == -EINVAL))
		res =
		    write_zeros(io->fd_buffered >= 0 ? io->fd_buffered : io->fd, op->off, op->len);
	if (op->kind == BLK_IO_DISCARD && res == -EOPNOTSUPP)
		res = 0; /* discarding is advisory */
	if (op->bounce) {
		if (op->kind == BLK_IO_READ && res == 0) {
			const uint8_t *src = op->bounce;
			for (unsigned i = 0; i < op->iovcnt; i++) {
				memcpy(op->iov[i].iov_base, src, op->iov[i].iov_len);
				src += op->iov[i].iov_len;
			}
		}
		free(op->bounce);
		op->bounce = NULL;
	}
	op->done(op, res);
	pthread_mutex_lock(&io->lock);
	if (--io->inflight == 0)
		pthread_cond_broadcast(&io->idle);
	pthread_mutex_unlock(&io->lock);
}

void blk_io_drain(struct blk_io *io)
{
	if (!io->lock_init)
		return;
	pthread_mutex_lock(&io->lock);
	while (io->inflight)
		pthread_cond_wait(&io->idle, &io->lock);
	pthread_mutex_unlock(&io->lock);
}

/* Where a direct op goes: straight, through a bounce buffer, or to the
 * buffered descriptor. */
static int prepare_direct(struct blk_io *io, struct blk_io_op *op)
{
	if (op->off % io->off_align || op->len % io->off_align) {
		op->fd = io->fd_buffered;
		__atomic_add_fetch(&io->counters.buffered, 1, __ATOMIC_RELAXED);
		return 0;
	}
	if (op->kind != BLK_IO_READ && op->kind != BLK_IO_WRITE)
		return 0;
	bool aligned = true;
	for (unsigned i = 0; i < op->iovcnt && aligned; i++)
		aligned = (uintptr_t)op->iov[i].iov_base % io->mem_align == 0 &&
			  op->iov[i].iov_len % io->off_align == 0;
	if (aligned)
		return 0;
	op->bounce = aligned_alloc(io->mem_align, round_up(op->len, io->mem_align));
	if (!op->bounce)
		return -ENOMEM;
	if (op->kind == BLK_IO_WRITE) {
		uint8_t *dst = op->bounce;
		for (unsigned i = 0; i < op->iovcnt; i++) {
			memcpy(dst, op->iov[i].iov_base, op->iov[i].iov_len);
			dst += op->iov[i].iov_len;
		}
	}
	op->biov.iov_base = op->bounce;
	op->biov.iov_len = op->len;
	__atomic_add_fetch(&io->counters.bounced, 1, __ATOMIC_RELAXED);
	return 0;
}

int blk_io_submit(struct blk_io *io, struct blk_io_op *op)
{
	op->next = NULL;
	op->bounce = NULL;
	op->fd = io->fd;
	if (io->readonly && is_write_kind(op->kind))
		return -EBADF;
	if ((op->kind == BLK_IO_READ || op->kind == BLK_IO_WRITE) &&
	    (op->iovcnt == 0 || op->iovcnt > IOV_MAX))
		return -EINVAL;
	if (io->direct) {
		int rc = prepare_direct(io, op);
		if (rc)
			return rc;
	}
	pthread_mutex_lock(&io->lock);
	if (io->stopping) {
		pthread_mutex_unlock(&io->lock);
		free(op->bounce);
		op->bounce = NULL;
		return -ESHUTDOWN;
	}
	io->inflight++;
	if (io->uring) {
		if (io->ring_inflight < io->ring_cap) {
			uring_queue(io, op);
		} else {
			if (io->backlog_tail)
				io->backlog_tail->next = op;
			else
				io->backlog = op;
			io->backlog_tail = op;
		}
	} else {
		if (io->queue_tail)
			io->queue_tail->next = op;
		else
			io->queue = op;
		io->queue_tail = op;
		pthread_cond_signal(&io->cond);
	}
	pthread_mutex_unlock(&io->lock);
	return 0;
}

static int start_uring(struct blk_io *io, unsigned depth)
{
	struct io_uring *ring = calloc(1, sizeof(*ring));
	if (!ring)
		return -ENOMEM;
	int rc = io_uring_queue_init(depth, ring, 0);
	if (rc < 0) {
		free(ring);
		return rc;
	}
	io->ring = ring;
	/* One entry stays free for the wake-up at close; the completion
	 * queue (twice the size) can then never overflow. */
	io->ring_cap = ring->sq.ring_entries - 1;
	rc = -pthread_create(&io->reaper, NULL, uring_reaper, io);
	if (rc) {
		io_uring_queue_exit(ring);
		free(ring);
		io->ring = NULL;
		return rc;
	}
	io->reaper_started = true;
	io->uring = true;
	return 0;
}

static int start_pool(struct blk_io *io, unsigned n, struct chv_err *err)
{
	io->workers = calloc(n, sizeof(*io->workers));
	if (!io->workers)
		return chv_err_set(err, -ENOMEM, "--disk: out of memory for I/O threads");
	for (; io->nworkers < n; io->nworkers++) {
		int rc = pthread_create(&io->workers[io->nworkers], NULL, pool_worker, io);
		if (rc)
			return chv_err_set(err, -rc, "--disk: cannot start an I/O thread: %s",
					   strerror(rc));
	}
	return 0;
}

int blk_io_open(struct blk_io *io, const struct blk_io_opts *o, struct chv_err *err)
{
	memset(io, 0, sizeof(*io));
	io->fd = -1;
	io->fd_buffered = -1;
	if (!o || !o->path || !o->path[0])
		return chv_err_set(err, -EINVAL, "--disk: path is missing");
	const char *path = o->path;
	io->readonly = o->readonly;
	io->direct = o->direct;
	int flags = (o->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY;
	io->fd = open(path, flags | (o->direct ? O_DIRECT : 0));
	if (io->fd < 0) {
		int e = errno;
		if (o->direct && e == EINVAL)
			return chv_err_set(err, -e,
					   "--disk: path=%s: direct=on is not supported by its "
					   "file system",
					   path);
		return chv_err_set(err, -e, "--disk: path=%s: %s", path, strerror(e));
	}
	io->fd_open = true;
	struct stat st;
	if (fstat(io->fd, &st) < 0)
		return chv_err_set(err, -errno, "--disk: path=%s: %s", path, strerror(errno));
	int rc = image_size(io->fd, &st, &io->size);
	if (rc == -EINVAL)
		return chv_err_set(err, rc, "--disk: path=%s is not a file or block device", path);
	if (rc)
		return chv_err_set(err, rc, "--disk: path=%s: size: %s", path, strerror(-rc));
	rc = lock_image(io, path, err);
	if (rc)
		return rc;
	if (o->direct) {
		dio_alignment(io);
		char self[64];
		snprintf(self, sizeof(self), "/proc/self/fd/%d", io->fd);
		/* The same inode even if path was renamed meanwhile. */
		io->fd_buffered = open(self, flags);
		if (io->fd_buffered < 0)
			return chv_err_set(err, -errno, "--disk: path=%s: reopen: %s", path,
					   strerror(errno));
		io->fd_buffered_open = true;
	}
	rc = pthread_mutex_init(&io->lock, NULL);
	if (rc)
		return chv_err_set(err, -rc, "--disk: mutex: %s", strerror(rc));
	rc = pthread_cond_init(&io->cond, NULL);
	if (!rc) {
		rc = pthread_cond_init(&io->idle, NULL);
		if (rc)
			pthread_cond_destroy(&io->cond);
	}
	if (rc) {
		pthread_mutex_destroy(&io->lock);
		return chv_err_set(err, -rc, "--disk: condvar: %s", strerror(rc));
	}
	io->lock_init = true;
	io->thread_start = hook_fn;
	io->thread_start_ctx = hook_ctx;
	if (!o->no_uring && start_uring(io, o->depth ? o->depth : DEFAULT_DEPTH) == 0)
		return threads_wait(io, 1, path, err);
	rc = start_pool(io, o->threads ? o->threads : DEFAULT_THREADS, err);
	if (rc < 0)
		return rc;
	return threads_wait(io, io->nworkers, path, err);
}

void blk_io_close(struct blk_io *io)
{
	if (io->lock_init) {
		pthread_mutex_lock(&io->lock);
		io->stopping = true;
		if (io->uring)
			uring_wake(io);
		pthread_cond_broadcast(&io->cond);
		pthread_mutex_unlock(&io->lock);
		if (io->reaper_started)
			pthread_join(io->reaper, NULL);
		for (unsigned i = 0; i < io->nworkers; i++)
			pthread_join(io->workers[i], NULL);
		pthread_cond_destroy(&io->idle);
		pthread_cond_destroy(&io->cond);
		pthread_mutex_destroy(&io->lock);
	}
	io->lock_init = false;
	io->reaper_started = false;
	if (io->ring) {
		io_uring_queue_exit(io->ring);
		free(io->ring);
	}
	io->ring = NULL;
	io->uring = false;
	free(io->workers);
	io->workers = NULL;
	io->nworkers = 0;
	if (io->fd_buffered_open)
		close(io->fd_buffered);
	if (io->fd_open)
		close(io->fd); /* drops the OFD lock */
	io->fd_open = io->fd_buffered_open = false;
	io->fd = io->fd_buffered = -1;
}

void blk_io_get_counters(struct blk_io *io, struct blk_io_counters *out)
{
	out->bounced = __atomic_load_n(&io->counters.bounced, __ATOMIC_RELAXED);
	out->buffered = __atomic_load_n(&io->counters.buffered, __ATOMIC_RELAXED);
}
