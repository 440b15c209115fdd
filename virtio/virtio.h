/* The virtio device model, independent of any transport (virtio 1.x).
 *
 * A device embeds a struct virtio_dev, describes itself (id, offered
 * features, configuration size, queues) and fills an ops table; a transport
 * (pci/virtio_pci.h) owns the registers the driver sees and calls the ops at
 * the right moments. The device talks back only through the glue below:
 * signal a used queue, signal a configuration change, or declare itself
 * broken (DEVICE_NEEDS_RESET).
 *
 * Threads: the transport serialises its calls into the ops (register
 * accesses, queue_notify, activate, reset) under its own lock. The glue may
 * be called from that context or from a device's worker thread. reset() runs
 * with the transport lock held: a device with workers must stop them there
 * without waiting for one that is inside the glue's signalling path. */
#ifndef CHV_VIRTIO_VIRTIO_H
#define CHV_VIRTIO_VIRTIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio/virtqueue.h"
#include "vm/err.h"
#include "vm/mem.h"

/* Device status bits (2.1); DEVICE_NEEDS_RESET comes from virtqueue.h. */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER	  0x02
#define VIRTIO_STATUS_DRIVER_OK	  0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_FAILED	  0x80

/* Transport-independent feature bits. */
#define VIRTIO_F_VERSION_1	 32
#define VIRTIO_F_ACCESS_PLATFORM 33

/* Device ids (5). */
#define VIRTIO_ID_NET	  1
#define VIRTIO_ID_BLOCK	  2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG	  4

/* Most queues one device may have (multiqueue net: 2 per vCPU + control). */
#define VIRTIO_MAX_QUEUES 256
/* Largest device-specific configuration structure a device may expose. */
#define VIRTIO_MAX_CONFIG 4096

struct virtio_dev;

/* What a device does; everything but queue_notify may be NULL. */
struct virtio_dev_ops {
	/* Device-specific configuration: off + len <= config_size, len 1..8.
	 * Reads fill data[0..len) little-endian; bytes a device has no
	 * value for read 0. */
	void (*config_read)(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len);
	void (*config_write)(struct virtio_dev *d, uint32_t off, const uint8_t *data, uint32_t len);
	/* The driver made buffers available on queue q (enabled, DRIVER_OK).
	 * The device pops what it can, pushes, and calls virtio_signal_queue();
	 * on vq_pop() returning -EINVAL it calls virtio_queue_broken(). */
	void (*queue_notify)(struct virtio_dev *d, uint16_t q);
	/* The driver set DRIVER_OK: the negotiated features are in
	 * d->driver_features and the enabled queues are set up. A failure
	 * puts the device in DEVICE_NEEDS_RESET. */
	int (*activate)(struct virtio_dev *d, struct chv_err *err);
	/* The driver reset the device: drop everything in flight and return
	 * to the state of a fresh device. Queues are reset by the caller. */
	void (*reset)(struct virtio_dev *d);
	/* Snapshot and migration: the device's own state as bytes (a
	 * versioned message); save with buf NULL returns the size needed. */
	chv_must_check int (*save)(struct virtio_dev *d, void *buf, size_t len, size_t *out_len);
	chv_must_check int (*restore)(struct virtio_dev *d, const void *buf, size_t len,
				      struct chv_err *err);
};

/* How the device reaches its transport's interrupts. */
enum virtio_irq { VIRTIO_IRQ_QUEUE, VIRTIO_IRQ_CONFIG };

struct virtio_transport {
	void (*signal)(void *ctx, enum virtio_irq kind, uint16_t q);
	void *ctx;
};

/* What a device declares about itself. */
struct virtio_dev_desc {
	const char *name; /* "virtio-rng", for messages */
	uint16_t device_id;
	uint64_t features; /* offered; VIRTIO_F_VERSION_1 is added */
	uint32_t config_size;
	uint16_t num_queues; /* 1..VIRTIO_MAX_QUEUES */
	uint32_t queue_max;  /* per queue: a power of two, 1..VQ_MAX_SIZE */
};

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	const struct vm_mem *mem;
	const char *name;
	uint16_t device_id;
	uint64_t features;	  /* offered */
	uint64_t driver_features; /* accepted by the transport at FEATURES_OK */
	uint32_t config_size;
	uint16_t num_queues;
	struct vq *vqs;
	/* The status register; the device sets DEVICE_NEEDS_RESET from any
	 * thread, so it is read and changed with __atomic builtins. */
	uint8_t status;
	uint8_t config_generation;
	bool activated;
	struct virtio_transport transport;
	/* Why the device needs a reset; logged once per reset cycle. */
	bool reset_reason_logged;
	struct chv_err reset_reason;
};

/* Sets up d for a device with these ops: queues of desc->queue_max entries
 * over mem, status 0. -EINVAL (with err naming the field) for a bad
 * description, -ENOMEM. Safe to destroy after a failure. */
chv_must_check int virtio_dev_init(struct virtio_dev *d, const struct virtio_dev_ops *ops,
				   const struct vm_mem *mem, const struct virtio_dev_desc *desc,
				   struct chv_err *err);
/* Safe on a zeroed or half-built object. */
void virtio_dev_destroy(struct virtio_dev *d);

/* Called by the transport it is attached to. */
void virtio_dev_set_transport(struct virtio_dev *d, const struct virtio_transport *t);

static inline bool virtio_has_feature(const struct virtio_dev *d, unsigned bit)
{
	return bit < 64 && (d->driver_features >> bit & 1);
}

static inline uint8_t virtio_dev_status(const struct virtio_dev *d)
{
	return __atomic_load_n(&d->status, __ATOMIC_ACQUIRE);
}

/* ---- For transports ---- */

/* The driver wrote 0 to status: the device's reset op, every queue reset,
 * status, features and activation cleared. */
void virtio_dev_reset(struct virtio_dev *d);
/* DRIVER_OK: calls activate once; on failure the device needs a reset. */
void virtio_dev_activate(struct virtio_dev *d);
/* Passes a kick on to the device when it may process queue q (DRIVER_OK
 * set, no reset pending, q enabled); ignored otherwise. */
void virtio_dev_kick(struct virtio_dev *d, uint16_t q);

/* ---- For devices ---- */

/* After pushing to queue q: interrupts the driver when the ring asks for it. */
void virtio_signal_queue(struct virtio_dev *d, uint16_t q);
/* Interrupts the driver for queue q unconditionally: for a device that asked
 * vq_need_notify() itself under its own queue lock (completion threads), and
 * raises the interrupt after dropping that lock. */
void virtio_raise_queue(struct virtio_dev *d, uint16_t q);
/* The device configuration changed: bumps config_generation and interrupts. */
void virtio_signal_config(struct virtio_dev *d);
/* The device cannot go on: sets DEVICE_NEEDS_RESET, logs why (once until the
 * next reset) and, after DRIVER_OK, raises the configuration interrupt. */
__attribute__((format(printf, 2, 3))) void virtio_set_needs_reset(struct virtio_dev *d,
								  const char *fmt, ...);
/* Queue q broke (vq_pop()/vq_push() returned -EINVAL): the above with the
 * virtqueue's own message. */
void virtio_queue_broken(struct virtio_dev *d, uint16_t q);

#endif
