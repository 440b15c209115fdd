/* virtio-rng: each request is a chain of device-writable buffers, filled
 * with one readv() from the source. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "virtio/rng.h"

static struct virtio_rng *rng_of(struct virtio_dev *d)
{
	return (struct virtio_rng *)((char *)d - offsetof(struct virtio_rng, vdev));
}

/* Fills the writable part of c, up to VIRTIO_RNG_MAX_REQUEST bytes; returns
 * how many bytes were written (0 when the source failed or ran dry). */
static uint32_t fill(struct virtio_rng *r, struct vq_chain *c)
{
	struct iovec *in = vq_chain_in(c);
	uint32_t n = 0;
	uint64_t total = 0;

	while (n < c->nin && total < VIRTIO_RNG_MAX_REQUEST) {
		uint64_t room = VIRTIO_RNG_MAX_REQUEST - total;
		if (in[n].iov_len > room)
			in[n].iov_len = room;
		total += in[n].iov_len;
		n++;
	}
	if (n == 0)
		return 0;
	ssize_t got;
	do
		got = readv(r->fd, in, (int)n);
	while (got < 0 && errno == EINTR);
	if (got <= 0) {
		if (got < 0)
			r->errors++;
		return 0;
	}
	return (uint32_t)got;
}

static void rng_queue_notify(struct virtio_dev *d, uint16_t q)
{
	struct virtio_rng *r = rng_of(d);
	struct vq *vq = &d->vqs[q];
	bool pushed = false;

	for (;;) {
		int rc = vq_pop(vq, &r->chain);
		if (rc == 0)
			break;
		if (rc < 0) {
			virtio_queue_broken(d, q);
			break;
		}
		uint32_t n = fill(r, &r->chain);
		r->requests++;
		r->bytes += n;
		if (vq_push(vq, r->chain.head, n)) {
			virtio_queue_broken(d, q);
			break;
		}
		pushed = true;
	}
	if (pushed)
		virtio_signal_queue(d, q);
}

static const struct virtio_dev_ops rng_ops = {
    .queue_notify = rng_queue_notify,
};

int virtio_rng_init_fd(struct virtio_rng *r, const struct vm_mem *mem, int fd, struct chv_err *err)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	if (fd < 0)
		return chv_err_set(err, -EBADF, "rng: fd=%d is not an open file", fd);
	r->fd_open = true;
	const struct virtio_dev_desc desc = {
	    .name = "virtio-rng",
	    .device_id = VIRTIO_ID_RNG,
	    .features = 1ull << VIRTIO_RING_F_INDIRECT_DESC | 1ull << VIRTIO_RING_F_EVENT_IDX,
	    .config_size = 0,
	    .num_queues = 1,
	    .queue_max = VIRTIO_RNG_QUEUE_SIZE,
	};
	return virtio_dev_init(&r->vdev, &rng_ops, mem, &desc, err);
}

int virtio_rng_init(struct virtio_rng *r, const struct vm_mem *mem, const char *src,
		    struct chv_err *err)
{
	memset(r, 0, sizeof(*r));
	if (!src)
		src = VIRTIO_RNG_DEFAULT_SRC;
	/* Non-blocking: a source with nothing to give must not stall the
	 * thread serving the queue; that request gets 0 bytes. */
	int fd = open(src, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return chv_err_set(err, -errno, "rng: src=%s: %s", src, strerror(errno));
	struct stat st;
	int e = fstat(fd, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
	if (e) {
		close(fd);
		return chv_err_set(err, -e, "rng: src=%s: %s", src, strerror(e));
	}
	return virtio_rng_init_fd(r, mem, fd, err);
}

void virtio_rng_destroy(struct virtio_rng *r)
{
	virtio_dev_destroy(&r->vdev);
	if (r->fd_open)
		close(r->fd);
	r->fd_open = false;
	r->fd = -1;
}
