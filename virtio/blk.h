/* virtio-blk (virtio 1.x, 5.2) over a raw image file (virtio/blk_io.h).
 *
 * Requests are parsed by byte offset, not by descriptor (any layout): the
 * first 16 device-readable bytes are the header, the last device-writable
 * byte is the status, and what lies between is the data. How each malformed
 * shape is answered:
 *   - no device-writable byte: there is nowhere to report a status, so the
 *     chain is not completed and the device is failed (DEVICE_NEEDS_RESET;
 *     2.1.2 lets a device that enters an error state ask for a reset);
 *   - fewer than 16 readable bytes (a short or device-writable header),
 *     data in the wrong direction for the type, a data length that is not a
 *     whole number of sectors, more than seg_max * size_max bytes: IOERR,
 *     the queue goes on;
 *   - sectors beyond the capacity (or overflowing): IOERR, the image is not
 *     touched;
 *   - writes to a read-only disk: IOERR; discard and write-zeroes there (and
 *     whenever the feature was not negotiated) and unknown types: UNSUPP;
 *   - discard/write-zeroes: a segment list that is not whole 16-byte
 *     segments, more than max_*_seg segments or more than max_*_sectors in
 *     one: IOERR; unknown flags, or unmap on a discard: UNSUPP (5.2.6.2).
 * A chain the virtqueue itself refuses (loops, bad addresses...) breaks the
 * queue (virtio_queue_broken()).
 *
 * Threads: requests are popped by queue_notify (the transport's context)
 * and completed on the backend's threads. Each queue has a lock held around
 * every vq_* call; the interrupt is raised after it is dropped, so that
 * reset() (which runs under the transport's lock) can take the queue locks
 * without waiting for a completion thread inside the transport's signalling
 * path. reset() bumps an epoch: requests popped before it are dropped when
 * they complete (their I/O still finishes; a driver that resets with
 * requests in flight may see their data buffers written afterwards).
 *
 * Rate limiting (opts.rl, virtio/ratelimit.h): each request costs one op
 * and, for reads and writes, its data length in bytes (the header is read
 * once, so a driver cannot rewrite it between the charge and the I/O).
 * A refused request is put back in the ring (vq_unpop) and its queue stops,
 * kicks ignored, until the limiter's waiter (registered by init) runs the
 * queue again from the event loop. That waiter runs outside the transport's
 * lock, so each queue has a run token (busy/again): one thread drains a
 * queue at a time, a kick or wake-up that finds it busy makes the owner go
 * round once more, and every ring access checks, under the queue lock, that
 * no reset came in between (epoch, running). Without a limiter none of this
 * runs: the cost is one test of opts.rl per request. */
#ifndef CHV_VIRTIO_BLK_H
#define CHV_VIRTIO_BLK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtio/blk_io.h"
#include "virtio/ratelimit.h"
#include "virtio/virtio.h"
#include "virtio/virtqueue.h"
#include "vm/err.h"
#include "vm/mem.h"

/* Feature bits (5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX	  1
#define VIRTIO_BLK_F_SEG_MAX	  2
#define VIRTIO_BLK_F_GEOMETRY	  4
#define VIRTIO_BLK_F_RO		  5
#define VIRTIO_BLK_F_BLK_SIZE	  6
#define VIRTIO_BLK_F_FLUSH	  9
#define VIRTIO_BLK_F_TOPOLOGY	  10
#define VIRTIO_BLK_F_CONFIG_WCE	  11
#define VIRTIO_BLK_F_MQ		  12
#define VIRTIO_BLK_F_DISCARD	  13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status values (5.2.6). */
#define VIRTIO_BLK_T_IN		  0
#define VIRTIO_BLK_T_OUT	  1
#define VIRTIO_BLK_T_FLUSH	  4
#define VIRTIO_BLK_T_GET_ID	  8
#define VIRTIO_BLK_T_DISCARD	  11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK		  0
#define VIRTIO_BLK_S_IOERR	  1
#define VIRTIO_BLK_S_UNSUPP	  2

#define VIRTIO_BLK_SECTOR	   512u
#define VIRTIO_BLK_HDR_LEN	   16u
#define VIRTIO_BLK_ID_BYTES	   20u
#define VIRTIO_BLK_DWZ_SEG_LEN	   16u /* le64 sector, le32 num_sectors, le32 flags */
#define VIRTIO_BLK_DWZ_FLAG_UNMAP  1u
#define VIRTIO_BLK_DEFAULT_QUEUE   256u
#define VIRTIO_BLK_SIZE_MAX	   (1u << 20)
#define VIRTIO_BLK_MAX_DWZ_SECTORS (1u << 22) /* 2 GiB per segment */
#define VIRTIO_BLK_MAX_DWZ_SEG	   16u

/* struct virtio_blk_config, up to and including unused1 (60 bytes). */
#define VIRTIO_BLK_CFG_CAPACITY	       0
#define VIRTIO_BLK_CFG_SIZE_MAX	       8
#define VIRTIO_BLK_CFG_SEG_MAX	       12
#define VIRTIO_BLK_CFG_BLK_SIZE	       20
#define VIRTIO_BLK_CFG_NUM_QUEUES      34
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEC 36
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG 40
#define VIRTIO_BLK_CFG_DISCARD_ALIGN   44
#define VIRTIO_BLK_CFG_MAX_WZ_SEC      48
#define VIRTIO_BLK_CFG_MAX_WZ_SEG      52
#define VIRTIO_BLK_CFG_WZ_MAY_UNMAP    56
#define VIRTIO_BLK_CONFIG_SIZE	       60

struct virtio_blk_opts {
	const char *path;
	bool readonly;
	bool direct;	     /* O_DIRECT */
	bool no_uring;	     /* force the thread-pool backend */
	const char *serial;  /* GET_ID: at most 20 bytes; NULL: empty */
	uint32_t blk_size;   /* 512 or 4096; 0: 512 */
	uint16_t num_queues; /* 0: 1 */
	uint32_t queue_size; /* power of two up to VQ_MAX_SIZE; 0: 256 */
	unsigned io_threads; /* thread-pool size; 0: default */
	/* NULL: no limit. Not owned; must outlive the device, which registers
	 * a waiter on it at init and removes it at destroy. May be shared by
	 * several devices (a rate_limit_group). */
	struct ratelimit *rl;
};

struct virtio_blk_counters {
	uint64_t reads, writes, flushes, discards, write_zeroes, get_ids;
	uint64_t bytes_read, bytes_written;
	uint64_t errors;    /* requests answered IOERR or UNSUPP, and broken chains */
	uint64_t throttled; /* requests the rate limiter refused (each retry counts) */
};

struct virtio_blk_queue {
	struct virtio_blk *blk;
	uint16_t index;
	pthread_mutex_t lock;
	bool lock_init;
	/* Under lock: a thread is draining the queue; it should go round once
	 * more; the limiter refused and the queue waits for its waiter. */
	bool busy, again, throttled;
	struct vq_chain chain; /* scratch for popping, the busy thread's */
};

struct virtio_blk {
	struct virtio_dev vdev;
	struct blk_io io;
	struct virtio_blk_queue *queues;
	uint16_t nqueues;
	uint64_t capacity; /* sectors */
	uint32_t blk_size, seg_max;
	uint8_t id[VIRTIO_BLK_ID_BYTES];
	uint8_t config[VIRTIO_BLK_CONFIG_SIZE];
	uint32_t epoch;	      /* bumped by reset; __atomic */
	bool running;	      /* activated, not reset since; __atomic */
	struct ratelimit *rl; /* set once its waiter is registered */
	struct virtio_blk_counters counters;
};

/* Checks o completely (errors name --disk and the field), opens and locks
 * the image, and sets the device up over mem. Safe to destroy after a
 * failure. */
chv_must_check int virtio_blk_init(struct virtio_blk *b, const struct vm_mem *mem,
				   const struct virtio_blk_opts *o, struct chv_err *err);
/* Waits for requests in flight (their completions may still raise
 * interrupts: call it without the transport's lock), then frees. Safe on a
 * zeroed or half-built object. */
void virtio_blk_destroy(struct virtio_blk *b);

/* A consistent-enough snapshot of the counters (each one read atomically). */
void virtio_blk_get_counters(struct virtio_blk *b, struct virtio_blk_counters *out);

/* Waits until no request is in flight; for tests and quiescing. */
void virtio_blk_drain(struct virtio_blk *b);

#endif
