/* virtio-rng (virtio 1.x, 5.4): one request queue whose device-writable
 * buffers are filled from a host source, /dev/urandom unless told otherwise.
 * A source that fails or has nothing to give yields 0 bytes for that
 * request, never an error the guest can turn into a VMM failure. */
#ifndef CHV_VIRTIO_RNG_H
#define CHV_VIRTIO_RNG_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio/virtio.h"
#include "virtio/virtqueue.h"
#include "vm/err.h"
#include "vm/mem.h"

#define VIRTIO_RNG_DEFAULT_SRC "/dev/urandom"
#define VIRTIO_RNG_QUEUE_SIZE  256
/* Most bytes one request gets: bounds the time a kick can take. */
#define VIRTIO_RNG_MAX_REQUEST 65536u

struct virtio_rng {
	struct virtio_dev vdev;
	int fd;
	bool fd_open;
	/* Counters (read by the VM's statistics). */
	uint64_t requests, bytes, errors;
	struct vq_chain chain; /* the request in progress */
};

/* Opens src (NULL: VIRTIO_RNG_DEFAULT_SRC) without blocking reads, and sets
 * up the device over mem. Errors name src. Safe to destroy after a failure. */
chv_must_check int virtio_rng_init(struct virtio_rng *r, const struct vm_mem *mem, const char *src,
				   struct chv_err *err);
/* The same over an fd the caller already opened (it becomes the device's). */
chv_must_check int virtio_rng_init_fd(struct virtio_rng *r, const struct vm_mem *mem, int fd,
				      struct chv_err *err);
/* Closes the source. Safe on a zeroed or half-built object. */
void virtio_rng_destroy(struct virtio_rng *r);

#endif
