/* The virtio-blk backend: one raw image file, asynchronous I/O.
 *
 * Operations go to io_uring (liburing) when the kernel lets us set up a
 * ring, else to a small pool of threads doing preadv/pwritev/fdatasync/
 * fallocate. Either way an operation's done() callback runs on a backend
 * thread (never inside blk_io_submit()), exactly once per accepted op.
 *
 * The image is locked with an open file description lock: exclusive when
 * writable, shared when read-only, so two VMs cannot both write one image
 * (and nobody writes an image a VM reads).
 *
 * direct (O_DIRECT): buffers that are not aligned for direct I/O go through
 * an aligned bounce buffer; offsets or lengths that are not aligned go to a
 * second, buffered descriptor of the same file (the kernel keeps the page
 * cache coherent with direct I/O on one file). */
#ifndef CHV_VIRTIO_BLK_IO_H
#define CHV_VIRTIO_BLK_IO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vm/err.h"

enum blk_io_kind {
	BLK_IO_READ,
	BLK_IO_WRITE,
	BLK_IO_FLUSH,
	BLK_IO_DISCARD,	    /* punch a hole, keep the size */
	BLK_IO_WRITE_ZEROES /* zero the range; unmap lets it punch a hole */
};

struct blk_io_op;
/* res: 0 on success (every byte transferred), -errno otherwise. */
typedef void (*blk_io_done_fn)(struct blk_io_op *op, int res);

struct blk_io_op {
	enum blk_io_kind kind;
	uint64_t off; /* bytes */
	uint64_t len; /* bytes; READ/WRITE: the sum of the iovecs */
	const struct iovec *iov;
	unsigned iovcnt;
	bool unmap;
	blk_io_done_fn done;
	void *opaque; /* the caller's */

	/* The backend's own. */
	struct blk_io_op *next;
	void *bounce;
	struct iovec biov;
	int fd;
};

struct blk_io_opts {
	const char *path;
	bool readonly;
	bool direct;
	bool no_uring;	  /* use the thread pool even where io_uring works */
	unsigned threads; /* thread-pool size; 0: a default */
	unsigned depth;	  /* io_uring entries; 0: a default */
};

/* Runs first on every backend thread (the pool's workers, the io_uring
 * reaper), before it touches a request: the VM layer installs the thread's
 * system call filter here. Non-zero (a -errno, err saying why) ends the
 * thread and fails blk_io_open() with err's message. */
typedef int (*blk_io_thread_fn)(void *ctx, struct chv_err *err);

/* The hook for the images opened from now on, process-wide (chv_virtio
 * cannot call the VM layer: the program sets it once at start). NULL: none. */
void blk_io_set_thread_start(blk_io_thread_fn fn, void *ctx);

struct blk_io_counters {
	uint64_t bounced;  /* direct ops that went through a bounce buffer */
	uint64_t buffered; /* direct ops sent to the buffered descriptor */
};

struct blk_io {
	int fd;		 /* the image (O_DIRECT when direct) */
	int fd_buffered; /* direct only: for unaligned ranges; else -1 */
	bool fd_open, fd_buffered_open;
	uint64_t size; /* bytes */
	bool readonly, direct, uring;
	uint32_t mem_align, off_align; /* direct I/O constraints */

	pthread_mutex_t lock; /* submission side, the pool's queue */
	pthread_cond_t cond;
	bool lock_init;
	bool stopping;
	uint64_t inflight;   /* accepted, done() not yet returned */
	pthread_cond_t idle; /* inflight reached 0 */

	/* io_uring */
	void *ring; /* struct io_uring */
	unsigned ring_cap;
	unsigned ring_inflight;
	struct blk_io_op *backlog, *backlog_tail; /* waiting for a free entry */
	pthread_t reaper;
	bool reaper_started;

	/* thread pool */
	struct blk_io_op *queue, *queue_tail;
	pthread_t *workers;
	unsigned nworkers;

	/* The thread-start hook as it was at open, and what its runs said. */
	blk_io_thread_fn thread_start;
	void *thread_start_ctx;
	unsigned threads_begun;
	struct chv_err thread_err;

	struct blk_io_counters counters;
};

/* Opens and locks the image (errors name --disk and the path), measures
 * it and starts the I/O machinery. Safe to close after a failure. */
chv_must_check int blk_io_open(struct blk_io *io, const struct blk_io_opts *o, struct chv_err *err);
/* Waits for every accepted op to complete, stops the threads, closes. Must
 * not be called from a done() callback. Safe on a zeroed or half-built
 * object. */
void blk_io_close(struct blk_io *io);

/* Accepts op (its done() will run later, on a backend thread): 0; or
 * -ESHUTDOWN while closing, -ENOMEM for a bounce buffer, -EBADF for a write
 * to a read-only image: then done() is never called. */
chv_must_check int blk_io_submit(struct blk_io *io, struct blk_io_op *op);

static inline bool blk_io_uses_uring(const struct blk_io *io)
{
	return io->uring;
}

/* Waits until every accepted op's done() has returned. */
void blk_io_drain(struct blk_io *io);

void blk_io_get_counters(struct blk_io *io, struct blk_io_counters *out);

#endif
