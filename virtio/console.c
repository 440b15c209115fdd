/* virtio-console, one port: the transmit queue drained into an out_sink, input
 * copied into receive buffers or held in a bounded ring until buffers come. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/console.h"

static struct virtio_console *console_of(struct virtio_dev *d)
{
	return (struct virtio_console *)((char *)d - offsetof(struct virtio_console, vdev));
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void emit(struct virtio_console *c, const uint8_t *buf, size_t n, uint64_t *sent,
		 uint64_t *dropped)
{
	if (c->out.write) {
		c->out.write(c->out.ctx, buf, n);
		*sent += n;
	} else {
		*dropped += n;
	}
}

/* ---- configuration ---- */

static void console_config_read(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_console *c = console_of(d);
	uint8_t cfg[VIRTIO_CONSOLE_CONFIG_SIZE] = {0};

	pthread_mutex_lock(&c->lock);
	put_le16(cfg + VIRTIO_CONSOLE_CFG_COLS, c->cols);
	put_le16(cfg + VIRTIO_CONSOLE_CFG_ROWS, c->rows);
	pthread_mutex_unlock(&c->lock);
	/* Meaningful only with MULTIPORT, but it tells the truth: one port. */
	put_le32(cfg + VIRTIO_CONSOLE_CFG_MAX_NR_PORTS, 1);
	/* emerg_wr is write-only and reads 0. */
	memset(data, 0, len);
	if (off < sizeof(cfg) && len <= sizeof(cfg) - off)
		memcpy(data, cfg + off, len);
}

static void console_config_write(struct virtio_dev *d, uint32_t off, const uint8_t *data,
				 uint32_t len)
{
	struct virtio_console *c = console_of(d);
	/* Only emerg_wr is writable; the character is its low byte, whatever
	 * width the driver used. */
	if (off != VIRTIO_CONSOLE_CFG_EMERG_WR || len == 0 ||
	    !virtio_has_feature(d, VIRTIO_CONSOLE_F_EMERG_WRITE))
		return;
	uint64_t sent = 0, dropped = 0;
	emit(c, data, 1, &sent, &dropped);
	pthread_mutex_lock(&c->lock);
	c->st.tx_bytes += sent;
	c->st.tx_dropped += dropped;
	pthread_mutex_unlock(&c->lock);
}

void virtio_console_set_size(struct virtio_console *c, uint16_t cols, uint16_t rows)
{
	pthread_mutex_lock(&c->lock);
	bool changed = c->cols != cols || c->rows != rows;
	c->cols = cols;
	c->rows = rows;
	/* A driver that did not accept F_SIZE does not read the fields; before
	 * activation it reads them when it gets there. */
	bool tell = changed && c->live && c->size_feature;
	if (tell)
		c->st.config_changes++;
	pthread_mutex_unlock(&c->lock);
	if (tell)
		virtio_signal_config(&c->vdev);
}

/* ---- transmit ---- */

static void console_tx(struct virtio_console *c)
{
	struct virtio_dev *d = &c->vdev;
	struct vq *vq = &d->vqs[VIRTIO_CONSOLE_TXQ];
	struct vq_chain *ch = &c->tx_chain;
	uint64_t sent = 0, dropped = 0, reqs = 0, errors = 0;
	bool pushed = false, broken = false;

	for (;;) {
		int rc = vq_pop(vq, ch);
		if (rc == 0)
			break;
		if (rc < 0) {
			broken = true;
			break;
		}
		const struct iovec *out = vq_chain_out(ch);
		for (uint32_t i = 0; i < ch->nout; i++)
			emit(c, out[i].iov_base, out[i].iov_len, &sent, &dropped);
		if (ch->nin) {
			dropped += ch->in_len;
			errors++;
		}
		if (vq_push(vq, ch->head, 0)) {
			broken = true;
			break;
		}
		reqs++;
		pushed = true;
	}
	pthread_mutex_lock(&c->lock);
	c->st.tx_requests += reqs;
	c->st.tx_bytes += sent;
	c->st.tx_dropped += dropped;
	c->st.errors += errors;
	pthread_mutex_unlock(&c->lock);
	if (broken)
		virtio_queue_broken(d, VIRTIO_CONSOLE_TXQ);
	if (pushed)
		virtio_signal_queue(d, VIRTIO_CONSOLE_TXQ);
}

/* ---- receive ---- */

/* Moves waiting bytes into iov, in order, as many as fit; returns how many. */
static size_t drain_into(struct virtio_console *c, const struct iovec *iov, uint32_t niov)
{
	size_t done = 0;
	for (uint32_t i = 0; i < niov && c->pending_len; i++) {
		uint8_t *dst = iov[i].iov_base;
		size_t room = iov[i].iov_len;
		while (room && c->pending_len) {
			size_t run = VIRTIO_CONSOLE_RX_BUFFER - c->pending_head;
			if (run > c->pending_len)
				run = c->pending_len;
			if (run > room)
				run = room;
			memcpy(dst, c->pending + c->pending_head, run);
			dst += run;
			room -= run;
			done += run;
			c->pending_head = (c->pending_head + run) % VIRTIO_CONSOLE_RX_BUFFER;
			c->pending_len -= run;
		}
	}
	if (c->pending_len == 0)
		c->pending_head = 0;
	return done;
}

/* Hands waiting input to the guest's receive buffers. Called with the lock
 * held; returns whether the driver should be interrupted, and sets *broken
 * when the queue broke (both are acted on after unlocking). */
static bool rx_deliver(struct virtio_console *c, bool *broken)
{
	struct virtio_dev *d = &c->vdev;
	struct vq *vq = &d->vqs[VIRTIO_CONSOLE_RXQ];
	bool pushed = false;

	if (!c->live || (virtio_dev_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET))
		return false;
	while (c->pending_len) {
		struct vq_chain *ch = &c->rx_chain;
		int rc = vq_pop(vq, ch);
		if (rc == 0)
			break;
		if (rc < 0) {
			*broken = true;
			break;
		}
		if (ch->nout || ch->nin == 0)
			c->st.errors++;
		size_t n = drain_into(c, vq_chain_in(ch), ch->nin);
		if (vq_push(vq, ch->head, (uint32_t)n)) {
			*broken = true;
			break;
		}
		c->st.rx_requests++;
		c->st.rx_bytes += n;
		pushed = true;
	}
	return pushed && vq_need_notify(vq);
}

/* Raises what rx_deliver() asked for, with the lock dropped: the transport
 * may take its own lock to raise INTx, and reset() holds that one while it
 * takes ours. */
static void rx_finish(struct virtio_console *c, bool irq, bool broken)
{
	if (broken)
		virtio_queue_broken(&c->vdev, VIRTIO_CONSOLE_RXQ);
	if (irq)
		virtio_raise_queue(&c->vdev, VIRTIO_CONSOLE_RXQ);
}

void virtio_console_input(struct virtio_console *c, const uint8_t *buf, size_t n)
{
	bool irq = false, broken = false;

	if (!c->lock_init || !c->pending)
		return;
	pthread_mutex_lock(&c->lock);
	while (n) {
		size_t take = VIRTIO_CONSOLE_RX_BUFFER - c->pending_len;
		if (take > n)
			take = n;
		size_t tail = (c->pending_head + c->pending_len) % VIRTIO_CONSOLE_RX_BUFFER;
		size_t first = VIRTIO_CONSOLE_RX_BUFFER - tail;
		if (first > take)
			first = take;
		memcpy(c->pending + tail, buf, first);
		memcpy(c->pending, buf + first, take - first);
		c->pending_len += take;
		buf += take;
		n -= take;
		irq |= rx_deliver(c, &broken);
		if (n && c->pending_len == VIRTIO_CONSOLE_RX_BUFFER) {
			/* Full and the guest took nothing: the rest is lost. */
			c->st.rx_dropped += n;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	rx_finish(c, irq, broken);
}

void virtio_console_sink_input(void *ctx, const uint8_t *buf, size_t n)
{
	virtio_console_input(ctx, buf, n);
}

static void console_rx_kick(struct virtio_console *c)
{
	bool broken = false;
	pthread_mutex_lock(&c->lock);
	bool irq = rx_deliver(c, &broken);
	pthread_mutex_unlock(&c->lock);
	rx_finish(c, irq, broken);
}

/* ---- device ops ---- */

static void console_queue_notify(struct virtio_dev *d, uint16_t q)
{
	struct virtio_console *c = console_of(d);
	if (q == VIRTIO_CONSOLE_TXQ)
		console_tx(c);
	else if (q == VIRTIO_CONSOLE_RXQ)
		console_rx_kick(c);
}

static int console_activate(struct virtio_dev *d, struct chv_err *err)
{
	(void)err;
	struct virtio_console *c = console_of(d);
	bool broken = false;
	pthread_mutex_lock(&c->lock);
	c->live = true;
	c->size_feature = virtio_has_feature(d, VIRTIO_CONSOLE_F_SIZE);
	/* Input typed before the driver was ready goes out now if it posted
	 * buffers already (a driver may fill the receiveq before DRIVER_OK,
	 * when its kick was ignored). */
	bool irq = rx_deliver(c, &broken);
	pthread_mutex_unlock(&c->lock);
	rx_finish(c, irq, broken);
	return 0;
}

static void console_reset(struct virtio_dev *d)
{
	struct virtio_console *c = console_of(d);
	pthread_mutex_lock(&c->lock);
	/* After this the receive side keeps away from the queues, which the
	 * caller resets next. */
	c->live = false;
	c->size_feature = false;
	c->st.rx_dropped += c->pending_len;
	c->pending_len = 0;
	c->pending_head = 0;
	pthread_mutex_unlock(&c->lock);
}

static const struct virtio_dev_ops console_ops = {
    .config_read = console_config_read,
    .config_write = console_config_write,
    .queue_notify = console_queue_notify,
    .activate = console_activate,
    .reset = console_reset,
};

int virtio_console_init(struct virtio_console *c, const struct vm_mem *mem,
			const struct out_sink *out, uint16_t cols, uint16_t rows,
			struct chv_err *err)
{
	memset(c, 0, sizeof(*c));
	if (out)
		c->out = *out;
	c->cols = cols;
	c->rows = rows;
	if (pthread_mutex_init(&c->lock, NULL))
		return chv_err_set(err, -ENOMEM, "virtio-console: cannot create a lock");
	c->lock_init = true;
	c->pending = malloc(VIRTIO_CONSOLE_RX_BUFFER);
	if (!c->pending)
		return chv_err_set(err, -ENOMEM,
				   "virtio-console: out of memory for %u bytes of input",
				   VIRTIO_CONSOLE_RX_BUFFER);
	const struct virtio_dev_desc desc = {
	    .name = "virtio-console",
	    .device_id = VIRTIO_ID_CONSOLE,
	    .features = 1ull << VIRTIO_CONSOLE_F_SIZE | 1ull << VIRTIO_CONSOLE_F_EMERG_WRITE |
			1ull << VIRTIO_RING_F_INDIRECT_DESC | 1ull << VIRTIO_RING_F_EVENT_IDX,
	    .config_size = VIRTIO_CONSOLE_CONFIG_SIZE,
	    .num_queues = 2,
	    .queue_max = VIRTIO_CONSOLE_QUEUE_SIZE,
	};
	return virtio_dev_init(&c->vdev, &console_ops, mem, &desc, err);
}

void virtio_console_destroy(struct virtio_console *c)
{
	virtio_dev_destroy(&c->vdev);
	free(c->pending);
	c->pending = NULL;
	if (c->lock_init)
		pthread_mutex_destroy(&c->lock);
	c->lock_init = false;
}

void virtio_console_get_stats(struct virtio_console *c, struct virtio_console_stats *out)
{
	if (!c->lock_init) {
		memset(out, 0, sizeof(*out));
		return;
	}
	pthread_mutex_lock(&c->lock);
	*out = c->st;
	pthread_mutex_unlock(&c->lock);
}
