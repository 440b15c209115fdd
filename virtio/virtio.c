/* The transport-independent half of a virtio device: its queues, status and
 * the glue devices use to reach their transport's interrupts. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/virtio.h"
#include "vm/log.h"

int virtio_dev_init(struct virtio_dev *d, const struct virtio_dev_ops *ops,
		    const struct vm_mem *mem, const struct virtio_dev_desc *desc,
		    struct chv_err *err)
{
	memset(d, 0, sizeof(*d));
	if (!ops || !ops->queue_notify)
		return chv_err_set(err, -EINVAL, "virtio: device without a queue_notify op");
	if (!desc || !desc->name)
		return chv_err_set(err, -EINVAL, "virtio: device without a name");
	if (desc->num_queues == 0 || desc->num_queues > VIRTIO_MAX_QUEUES)
		return chv_err_set(err, -EINVAL, "%s: num_queues=%u is not in 1..%u", desc->name,
				   desc->num_queues, VIRTIO_MAX_QUEUES);
	if (desc->config_size > VIRTIO_MAX_CONFIG)
		return chv_err_set(err, -EINVAL, "%s: config_size=%u is over %u", desc->name,
				   desc->config_size, VIRTIO_MAX_CONFIG);
	d->vqs = calloc(desc->num_queues, sizeof(*d->vqs));
	if (!d->vqs)
		return chv_err_set(err, -ENOMEM, "%s: out of memory for %u queues", desc->name,
				   desc->num_queues);
	for (uint16_t q = 0; q < desc->num_queues; q++) {
		int rc = vq_init(&d->vqs[q], mem, q, desc->queue_max, err);
		if (rc) {
			free(d->vqs);
			d->vqs = NULL;
			return rc;
		}
	}
	d->ops = ops;
	d->mem = mem;
	d->name = desc->name;
	d->device_id = desc->device_id;
	d->features = desc->features | 1ull << VIRTIO_F_VERSION_1;
	d->config_size = desc->config_size;
	d->num_queues = desc->num_queues;
	return 0;
}

void virtio_dev_destroy(struct virtio_dev *d)
{
	free(d->vqs);
	d->vqs = NULL;
	d->num_queues = 0;
}

void virtio_dev_set_transport(struct virtio_dev *d, const struct virtio_transport *t)
{
	if (t)
		d->transport = *t;
	else
		memset(&d->transport, 0, sizeof(d->transport));
}

void virtio_dev_reset(struct virtio_dev *d)
{
	if (d->ops && d->ops->reset)
		d->ops->reset(d);
	for (uint16_t q = 0; q < d->num_queues; q++)
		vq_reset(&d->vqs[q]);
	d->driver_features = 0;
	d->activated = false;
	d->reset_reason_logged = false;
	memset(&d->reset_reason, 0, sizeof(d->reset_reason));
	__atomic_store_n(&d->status, 0, __ATOMIC_RELEASE);
}

void virtio_dev_activate(struct virtio_dev *d)
{
	if (d->activated)
		return;
	d->activated = true;
	if (!d->ops->activate)
		return;
	struct chv_err err = {0};
	int rc = d->ops->activate(d, &err);
	if (rc)
		virtio_set_needs_reset(d, "activation failed: %s",
				       err.msg[0] ? err.msg : strerror(-rc));
}

void virtio_dev_kick(struct virtio_dev *d, uint16_t q)
{
	uint8_t st = virtio_dev_status(d);
	if (q >= d->num_queues || !d->activated || !(st & VIRTIO_STATUS_DRIVER_OK) ||
	    (st & VIRTIO_STATUS_DEVICE_NEEDS_RESET) || !d->vqs[q].enabled)
		return;
	d->ops->queue_notify(d, q);
}

static void raise_irq(struct virtio_dev *d, enum virtio_irq kind, uint16_t q)
{
	if (d->transport.signal)
		d->transport.signal(d->transport.ctx, kind, q);
}

void virtio_signal_queue(struct virtio_dev *d, uint16_t q)
{
	if (q >= d->num_queues || !vq_need_notify(&d->vqs[q]))
		return;
	raise_irq(d, VIRTIO_IRQ_QUEUE, q);
}

void virtio_raise_queue(struct virtio_dev *d, uint16_t q)
{
	if (q < d->num_queues)
		raise_irq(d, VIRTIO_IRQ_QUEUE, q);
}

void virtio_signal_config(struct virtio_dev *d)
{
	__atomic_add_fetch(&d->config_generation, 1, __ATOMIC_RELEASE);
	raise_irq(d, VIRTIO_IRQ_CONFIG, 0);
}

void virtio_set_needs_reset(struct virtio_dev *d, const char *fmt, ...)
{
	uint8_t old =
	    __atomic_fetch_or(&d->status, VIRTIO_STATUS_DEVICE_NEEDS_RESET, __ATOMIC_ACQ_REL);
	if (old & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
		return;
	if (!d->reset_reason_logged) {
		d->reset_reason_logged = true;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(d->reset_reason.msg, sizeof(d->reset_reason.msg), fmt, ap);
		va_end(ap);
		d->reset_reason.code = -EIO;
		log_warn("%s: device needs a reset: %s", d->name, d->reset_reason.msg);
	}
	/* Before DRIVER_OK the driver reads status when it next looks; after,
	 * it must be told (4.1.4.3: a configuration change notification). */
	if (old & VIRTIO_STATUS_DRIVER_OK)
		raise_irq(d, VIRTIO_IRQ_CONFIG, 0);
}

void virtio_queue_broken(struct virtio_dev *d, uint16_t q)
{
	const char *why = q < d->num_queues ? vq_error_once(&d->vqs[q]) : NULL;
	virtio_set_needs_reset(d, "queue %u: %s", q, why ? why : "broken");
}
