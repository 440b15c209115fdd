/* virtio-net: frames between the guest's virtqueues and a backend fd per
 * queue pair, the virtio-net header passing through unchanged (except
 * num_buffers, which is the device's to fill on receive). */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "virtio/net.h"

#define RX_BUF_SIZE (VIRTIO_NET_HDR_LEN + VIRTIO_NET_MAX_FRAME + 1)
#define CTRL_MAX    64u

enum rx_result { RX_DONE, RX_DROPPED, RX_NO_BUFFERS, RX_BROKEN };

static struct virtio_net *net_of(struct virtio_dev *d)
{
	return (struct virtio_net *)((char *)d - offsetof(struct virtio_net, vdev));
}

static void ctr_add(uint64_t *c, uint64_t v)
{
	__atomic_fetch_add(c, v, __ATOMIC_RELAXED);
}

static uint16_t rx_q(uint16_t pair)
{
	return (uint16_t)(2 * pair);
}

static uint16_t tx_q(uint16_t pair)
{
	return (uint16_t)(2 * pair + 1);
}

/* Copies up to len bytes from src into the iovecs; returns bytes copied. */
static size_t to_iov(const struct iovec *iov, uint32_t n, const uint8_t *src, size_t len)
{
	size_t done = 0;
	for (uint32_t i = 0; i < n && done < len; i++) {
		size_t k = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;
		memcpy(iov[i].iov_base, src + done, k);
		done += k;
	}
	return done;
}

static size_t from_iov(const struct iovec *iov, uint32_t n, uint8_t *dst, size_t len)
{
	size_t done = 0;
	for (uint32_t i = 0; i < n && done < len; i++) {
		size_t k = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;
		memcpy(dst + done, iov[i].iov_base, k);
		done += k;
	}
	return done;
}

static bool pair_live(struct virtio_net *n, uint16_t pair)
{
	struct virtio_dev *d = &n->vdev;
	uint8_t st = virtio_dev_status(d);
	return pair < n->active_pairs && d->activated && (st & VIRTIO_STATUS_DRIVER_OK) &&
	       !(st & VIRTIO_STATUS_DEVICE_NEEDS_RESET) &&
	       __atomic_load_n(&n->running, __ATOMIC_ACQUIRE) && d->vqs[rx_q(pair)].enabled;
}

/* What a queue run asks of its caller once the queue lock is dropped (the
 * transport may take its own lock to raise an interrupt, and reset() holds
 * that one while it takes ours). */
enum { RUN_IRQ = 1, RUN_BROKEN = 2 };

/* Called with the queue's lock held. */
static void set_polling(struct virtio_net *n, uint16_t pair, bool on)
{
	struct virtio_net_rxq *r = &n->rxq[pair];
	if (r->polling == on)
		return;
	r->polling = on;
	if (n->poll.set)
		n->poll.set(n->poll.ctx, pair, n->be.fds[pair], on);
}

/* ---- transmit ---- */

/* What the guest's header asks of the backend must have been negotiated:
 * the backend would otherwise act on offloads the device never offered. */
static bool tx_header_ok(struct virtio_net *n, const uint8_t *h)
{
	struct virtio_dev *d = &n->vdev;
	uint8_t flags = h[0], gso = h[1];
	if ((flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !virtio_has_feature(d, VIRTIO_NET_F_CSUM))
		return false;
	if (flags & ~(VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID))
		return false;
	if ((gso & VIRTIO_NET_HDR_GSO_ECN) && !virtio_has_feature(d, VIRTIO_NET_F_HOST_ECN))
		return false;
	switch (gso & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return !(gso & VIRTIO_NET_HDR_GSO_ECN);
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return virtio_has_feature(d, VIRTIO_NET_F_HOST_TSO4);
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return virtio_has_feature(d, VIRTIO_NET_F_HOST_TSO6);
	default:
		return false;
	}
}

/* Sends one chain; the chain is pushed back by the caller either way. */
static void tx_one(struct virtio_net *n, uint16_t pair, struct vq_chain *c)
{
	struct virtio_net_counters *k = &n->ctr;
	uint8_t hdr[VIRTIO_NET_HDR_LEN];

	if (c->nin) {
		ctr_add(&k->tx_errors, 1); /* writable buffers in a TX chain */
		return;
	}
	if (c->out_len < n->hdr_len || c->out_len > n->hdr_len + VIRTIO_NET_MAX_FRAME) {
		ctr_add(&k->tx_drops, 1);
		return;
	}
	from_iov(c->iov, c->nout, hdr, n->hdr_len);
	if (!tx_header_ok(n, hdr)) {
		ctr_add(&k->tx_errors, 1);
		return;
	}
	ssize_t w;
	do
		w = writev(n->be.fds[pair], c->iov, (int)c->nout);
	while (w < 0 && errno == EINTR);
	if (w < 0) {
		/* A full or down backend drops like a wire would; anything else
		 * (the backend refused the header) is the frame's fault. */
		if (errno == EAGAIN || errno == ENOBUFS || errno == EIO || errno == ENETDOWN)
			ctr_add(&k->tx_drops, 1);
		else
			ctr_add(&k->tx_errors, 1);
		return;
	}
	ctr_add(&k->tx_packets, 1);
	ctr_add(&k->tx_bytes, c->out_len - n->hdr_len);
}

/* Charges one frame: its length without the header, and one op. */
static bool tx_admit(struct virtio_net *n, struct vq *vq, const struct vq_chain *c)
{
	uint64_t bytes = c->out_len > n->hdr_len ? c->out_len - n->hdr_len : 0;
	if (ratelimit_consume(n->rl, bytes, 1))
		return true;
	vq_unpop(vq);
	ctr_add(&n->ctr.tx_throttled, 1);
	return false;
}

/* Drains the queue, or up to a frame the limiter refuses (then kicks stay
 * off: the waiter comes back). No budget otherwise: nothing would bring the
 * device back for chains left behind, since the driver kicked for them
 * already. Returns RUN_* flags; *throttled tells whether it stopped on a
 * refusal. */
static int tx_drain(struct virtio_net *n, uint16_t pair, bool *throttled)
{
	struct virtio_dev *d = &n->vdev;
	struct vq *vq = &d->vqs[tx_q(pair)];
	struct vq_chain *c = n->txq[pair].chain;
	bool pushed = false;
	int ret = 0;

	vq_disable_notify(vq);
	for (;;) {
		int rc = vq_pop(vq, c);
		if (rc == 0) {
			/* Kicks back on, then one more look: a chain added
			 * meanwhile came without a kick. */
			rc = vq_enable_notify(vq);
			if (rc == 0)
				break;
			if (rc > 0) {
				vq_disable_notify(vq);
				continue;
			}
		}
		if (rc < 0) {
			ret = RUN_BROKEN;
			break;
		}
		if (n->rl && !tx_admit(n, vq, c)) {
			*throttled = true;
			break;
		}
		tx_one(n, pair, c);
		if (vq_push(vq, c->head, 0)) {
			ret = RUN_BROKEN;
			break;
		}
		pushed = true;
	}
	if (pushed && vq_need_notify(vq))
		ret |= RUN_IRQ;
	return ret;
}

static void tx_after(struct virtio_net *n, uint16_t pair, int flags)
{
	struct virtio_dev *d = &n->vdev;
	if (flags & RUN_BROKEN)
		virtio_queue_broken(d, tx_q(pair));
	if (flags & RUN_IRQ) {
		ctr_add(&n->ctr.interrupts, 1);
		if (d->transport.signal)
			d->transport.signal(d->transport.ctx, VIRTIO_IRQ_QUEUE, tx_q(pair));
	}
}

/* May the limiter's waiter touch the rings? Not after a reset began (it
 * clears running, then takes every queue lock before the rings are reset),
 * nor on a failed device. */
static bool dev_live(struct virtio_net *n)
{
	return __atomic_load_n(&n->running, __ATOMIC_ACQUIRE) &&
	       !(virtio_dev_status(&n->vdev) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

/* A kick (waker false) or the limiter's waiter (waker true). */
static void tx_run(struct virtio_net *n, uint16_t pair, bool waker)
{
	struct virtio_net_txq *t = &n->txq[pair];
	bool throttled = false;
	if (!n->rl) {
		/* Only kicks, serialised by the transport. */
		tx_after(n, pair, tx_drain(n, pair, &throttled));
		return;
	}
	pthread_mutex_lock(&t->lock);
	/* While throttled the timer is armed: kicks only cost. */
	if (t->throttled != waker || !dev_live(n)) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	t->throttled = false;
	int flags = tx_drain(n, pair, &throttled);
	t->throttled = throttled;
	pthread_mutex_unlock(&t->lock);
	tx_after(n, pair, flags);
}

/* ---- receive ---- */

/* Pops a chain into c, dealing with ones that cannot take data: 1, 0 (no
 * buffers), -EINVAL (broken). */
static int rx_pop(struct virtio_net *n, struct vq *vq, struct vq_chain *c, bool *pushed)
{
	for (;;) {
		int rc = vq_pop(vq, c);
		if (rc <= 0)
			return rc;
		if (c->nout == 0 && c->in_len >= n->hdr_len)
			return 1;
		/* Readable buffers in RX, or one too small for a header. */
		ctr_add(&n->ctr.rx_errors, 1);
		if (vq_push(vq, c->head, 0))
			return -EINVAL;
		*pushed = true;
	}
}

/* Without MRG_RXBUF: the whole frame in one chain or dropped. */
static enum rx_result rx_single(struct virtio_net *n, struct virtio_net_rxq *r, struct vq *vq,
				bool *pushed)
{
	struct vq_chain *c = r->first;
	if (c->in_len < r->pending) {
		/* Keep the chain for the next frame. */
		return RX_DROPPED;
	}
	if (n->hdr_len == VIRTIO_NET_HDR_LEN) {
		r->buf[VIRTIO_NET_HDR_NUM_BUFFERS] = 1;
		r->buf[VIRTIO_NET_HDR_NUM_BUFFERS + 1] = 0;
	}
	to_iov(vq_chain_in(c), c->nin, r->buf, r->pending);
	r->have_first = false;
	if (vq_push(vq, c->head, r->pending))
		return RX_BROKEN;
	*pushed = true;
	return RX_DONE;
}

/* With MRG_RXBUF: as many chains as the frame needs, num_buffers set in the
 * first; when the ring runs out midway every chain goes back and the frame
 * waits in buf. */
static enum rx_result rx_merged(struct virtio_net *n, struct virtio_net_rxq *r, struct vq *vq,
				bool *pushed)
{
	uint32_t len = r->pending, off, nbuf = 1;
	struct vq_chain *c = r->first;

	off = (uint32_t)to_iov(vq_chain_in(c), c->nin, r->buf, len);
	r->heads[0] = c->head;
	r->lens[0] = off;
	while (off < len) {
		int rc = nbuf < vq->size ? vq_pop(vq, r->more) : 0;
		if (rc < 0)
			return RX_BROKEN;
		if (rc == 0) {
			for (uint32_t i = 0; i < nbuf; i++)
				vq_unpop(vq);
			r->have_first = false;
			/* A whole ring of buffers too small for it: it never fits. */
			return nbuf >= vq->size ? RX_DROPPED : RX_NO_BUFFERS;
		}
		struct vq_chain *m = r->more;
		uint32_t got = 0;
		if (m->nout == 0)
			got = (uint32_t)to_iov(vq_chain_in(m), m->nin, r->buf + off, len - off);
		else
			ctr_add(&n->ctr.rx_errors, 1);
		r->heads[nbuf] = m->head;
		r->lens[nbuf] = got;
		nbuf++;
		off += got;
	}
	uint8_t nb[2] = {(uint8_t)nbuf, (uint8_t)(nbuf >> 8)};
	/* The header sits in the first chain's leading bytes: rewrite them
	 * with num_buffers filled in. */
	memcpy(r->buf + VIRTIO_NET_HDR_NUM_BUFFERS, nb, 2);
	to_iov(vq_chain_in(c), c->nin, r->buf, VIRTIO_NET_HDR_LEN);
	r->have_first = false;
	/* One publication for the whole frame: a driver must never see its
	 * first buffer before the rest. */
	if (vq_push_batch(vq, r->heads, r->lens, nbuf))
		return RX_BROKEN;
	*pushed = true;
	return RX_DONE;
}

/* Reads the next frame into r->buf: 1, 0 (nothing there), -1 (the backend
 * is gone or failing: stop watching it). */
static int rx_read(struct virtio_net *n, uint16_t pair, struct virtio_net_rxq *r)
{
	for (;;) {
		ssize_t got = read(n->be.fds[pair], r->buf, RX_BUF_SIZE);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (got <= 0) {
			ctr_add(&n->ctr.rx_errors, 1);
			return -1;
		}
		if ((size_t)got < n->hdr_len) {
			ctr_add(&n->ctr.rx_errors, 1);
			continue;
		}
		if ((size_t)got > n->hdr_len + VIRTIO_NET_MAX_FRAME) {
			ctr_add(&n->ctr.rx_drops, 1);
			continue;
		}
		r->pending = (uint32_t)got;
		return 1;
	}
}

/* Moves frames while there are frames, buffers and tokens. Lock held.
 * Returns RUN_* flags. */
static int rx_process(struct virtio_net *n, uint16_t pair)
{
	struct virtio_dev *d = &n->vdev;
	struct virtio_net_rxq *r = &n->rxq[pair];
	uint16_t q = rx_q(pair);
	struct vq *vq = &d->vqs[q];
	bool pushed = false;

	if (!pair_live(n, pair)) {
		set_polling(n, pair, false);
		return 0;
	}
	for (unsigned done = 0; done < VIRTIO_NET_BUDGET; done++) {
		/* A buffer first, so that without one the frame stays queued in
		 * the backend. */
		if (!r->have_first) {
			int rc = rx_pop(n, vq, r->first, &pushed);
			if (rc < 0)
				goto broken;
			if (rc == 0) {
				set_polling(n, pair, false);
				break;
			}
			r->have_first = true;
			set_polling(n, pair, true);
		}
		if (!r->pending) {
			int rc = rx_read(n, pair, r);
			if (rc <= 0) {
				if (rc < 0)
					set_polling(n, pair, false);
				break;
			}
		}
		if (n->rl && !r->charged) {
			if (!ratelimit_consume(n->rl, r->pending - n->hdr_len, 1)) {
				/* The frame waits in buf, the rest in the
				 * backend, until the waiter comes. */
				ctr_add(&n->ctr.rx_throttled, 1);
				r->throttled = true;
				set_polling(n, pair, false);
				break;
			}
			r->charged = true;
		}
		enum rx_result res =
		    n->mrg_rxbuf ? rx_merged(n, r, vq, &pushed) : rx_single(n, r, vq, &pushed);
		if (res == RX_BROKEN)
			goto broken;
		if (res == RX_NO_BUFFERS) {
			set_polling(n, pair, false);
			break;
		}
		if (res == RX_DROPPED) {
			ctr_add(&n->ctr.rx_drops, 1);
		} else {
			ctr_add(&n->ctr.rx_packets, 1);
			ctr_add(&n->ctr.rx_bytes, r->pending - n->hdr_len);
		}
		r->pending = 0;
		r->charged = false;
	}
	return pushed && vq_need_notify(vq) ? RUN_IRQ : 0;
broken:
	r->have_first = false;
	set_polling(n, pair, false);
	return RUN_BROKEN;
}

static void rx_after(struct virtio_net *n, uint16_t pair, int flags)
{
	struct virtio_dev *d = &n->vdev;
	if (flags & RUN_BROKEN) {
		virtio_queue_broken(d, rx_q(pair));
	} else if (flags & RUN_IRQ) {
		ctr_add(&n->ctr.interrupts, 1);
		if (d->transport.signal)
			d->transport.signal(d->transport.ctx, VIRTIO_IRQ_QUEUE, rx_q(pair));
	}
}

/* The backend is readable or the guest added buffers (waker false), or the
 * limiter's waiter (waker true): a throttled pair is the waiter's alone. */
static void rx_run(struct virtio_net *n, uint16_t pair, bool waker)
{
	struct virtio_net_rxq *r = &n->rxq[pair];
	int flags = 0;
	pthread_mutex_lock(&r->lock);
	if (r->throttled == waker) {
		r->throttled = false;
		flags = rx_process(n, pair);
	}
	pthread_mutex_unlock(&r->lock);
	rx_after(n, pair, flags);
}

void virtio_net_rx_ready(struct virtio_net *n, uint16_t pair)
{
	if (pair < n->pairs)
		rx_run(n, pair, false);
}

/* The limiter's waiter, on the event loop's thread. */
static void net_rl_wake(void *ctx)
{
	struct virtio_net *n = ctx;
	for (uint16_t k = 0; k < n->pairs; k++) {
		tx_run(n, k, true);
		rx_run(n, k, true);
	}
}

bool virtio_net_rx_polling(struct virtio_net *n, uint16_t pair)
{
	if (pair >= n->pairs)
		return false;
	struct virtio_net_rxq *r = &n->rxq[pair];
	pthread_mutex_lock(&r->lock);
	bool on = r->polling;
	pthread_mutex_unlock(&r->lock);
	return on;
}

/* ---- control queue ---- */

static void set_active_pairs(struct virtio_net *n, uint16_t want)
{
	n->active_pairs = want;
	for (uint16_t k = 0; k < n->pairs; k++) {
		struct virtio_net_rxq *r = &n->rxq[k];
		pthread_mutex_lock(&r->lock);
		int flags = 0;
		if (k < want && !r->throttled) {
			set_polling(n, k, true);
			flags = rx_process(n, k);
		} else if (k >= want) {
			set_polling(n, k, false);
		}
		pthread_mutex_unlock(&r->lock);
		rx_after(n, k, flags);
	}
}

static uint8_t ctrl_command(struct virtio_net *n, const uint8_t *cmd, size_t len)
{
	if (len < 2 || cmd[0] != VIRTIO_NET_CTRL_MQ || cmd[1] != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET ||
	    !virtio_has_feature(&n->vdev, VIRTIO_NET_F_MQ))
		return VIRTIO_NET_ERR;
	if (len != 4)
		return VIRTIO_NET_ERR;
	uint16_t want = (uint16_t)(cmd[2] | cmd[3] << 8);
	if (want < 1 || want > n->pairs)
		return VIRTIO_NET_ERR;
	set_active_pairs(n, want);
	return VIRTIO_NET_OK;
}

static void ctrl_process(struct virtio_net *n)
{
	struct virtio_dev *d = &n->vdev;
	struct vq *vq = &d->vqs[n->ctrl_q];
	struct vq_chain *c = n->ctrl_chain;
	bool pushed = false;

	for (;;) {
		int rc = vq_pop(vq, c);
		if (rc == 0)
			break;
		if (rc < 0) {
			virtio_queue_broken(d, n->ctrl_q);
			return;
		}
		ctr_add(&n->ctr.ctrl_commands, 1);
		uint32_t written = 0;
		if (c->nin == 0 || c->out_len > CTRL_MAX) {
			ctr_add(&n->ctr.ctrl_errors, 1);
			if (c->nin) {
				uint8_t ack = VIRTIO_NET_ERR;
				written = (uint32_t)to_iov(vq_chain_in(c), c->nin, &ack, 1);
			}
		} else {
			uint8_t cmd[CTRL_MAX];
			size_t len = from_iov(c->iov, c->nout, cmd, c->out_len);
			uint8_t ack = ctrl_command(n, cmd, len);
			if (ack != VIRTIO_NET_OK)
				ctr_add(&n->ctr.ctrl_errors, 1);
			written = (uint32_t)to_iov(vq_chain_in(c), c->nin, &ack, 1);
		}
		if (vq_push(vq, c->head, written)) {
			virtio_queue_broken(d, n->ctrl_q);
			return;
		}
		pushed = true;
	}
	if (pushed)
		virtio_signal_queue(d, n->ctrl_q);
}

/* ---- device ops ---- */

static void net_queue_notify(struct virtio_dev *d, uint16_t q)
{
	struct virtio_net *n = net_of(d);
	ctr_add(&n->ctr.notifications, 1);
	if (n->ctrl_q && q == n->ctrl_q) {
		ctrl_process(n);
		return;
	}
	uint16_t pair = q / 2;
	if (pair >= n->pairs)
		return;
	if (q & 1) {
		tx_run(n, pair, false);
		return;
	}
	/* New receive buffers: watch the backend again and take what waits. */
	rx_run(n, pair, false);
}

static void net_config_read(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_net *n = net_of(d);
	uint8_t cfg[VIRTIO_NET_CFG_SIZE];
	memcpy(cfg + VIRTIO_NET_CFG_MAC, n->params.mac, 6);
	cfg[VIRTIO_NET_CFG_STATUS] = VIRTIO_NET_S_LINK_UP;
	cfg[VIRTIO_NET_CFG_STATUS + 1] = 0;
	cfg[VIRTIO_NET_CFG_MAX_PAIRS] = (uint8_t)n->pairs;
	cfg[VIRTIO_NET_CFG_MAX_PAIRS + 1] = (uint8_t)(n->pairs >> 8);
	cfg[VIRTIO_NET_CFG_MTU] = (uint8_t)n->params.mtu;
	cfg[VIRTIO_NET_CFG_MTU + 1] = (uint8_t)(n->params.mtu >> 8);
	memset(data, 0, len);
	for (uint32_t i = 0; i < len; i++)
		if (off + i < sizeof(cfg))
			data[i] = cfg[off + i];
}

static unsigned guest_offloads(const struct virtio_dev *d)
{
	unsigned f = 0;
	if (!virtio_has_feature(d, VIRTIO_NET_F_GUEST_CSUM))
		return 0; /* segmentation offloads need checksum offload */
	f |= VIRTIO_NET_OFFLOAD_CSUM;
	if (virtio_has_feature(d, VIRTIO_NET_F_GUEST_TSO4))
		f |= VIRTIO_NET_OFFLOAD_TSO4;
	if (virtio_has_feature(d, VIRTIO_NET_F_GUEST_TSO6))
		f |= VIRTIO_NET_OFFLOAD_TSO6;
	if ((f & (VIRTIO_NET_OFFLOAD_TSO4 | VIRTIO_NET_OFFLOAD_TSO6)) &&
	    virtio_has_feature(d, VIRTIO_NET_F_GUEST_ECN))
		f |= VIRTIO_NET_OFFLOAD_TSO_ECN;
	return f;
}

static int net_activate(struct virtio_dev *d, struct chv_err *err)
{
	struct virtio_net *n = net_of(d);
	n->mrg_rxbuf = virtio_has_feature(d, VIRTIO_NET_F_MRG_RXBUF);
	n->hdr_len = virtio_has_feature(d, VIRTIO_F_VERSION_1) || n->mrg_rxbuf
			 ? VIRTIO_NET_HDR_LEN
			 : VIRTIO_NET_HDR_LEN_LEGACY;
	if (n->be.configure) {
		int rc = n->be.configure(n->be.ctx, n->hdr_len, guest_offloads(d));
		if (rc)
			return chv_err_set(err, rc, "%s: backend refused header length %u: %s",
					   d->name, n->hdr_len, strerror(-rc));
	}
	n->active_pairs = 1;
	/* Before polling starts: pair_live() needs it. */
	__atomic_store_n(&n->running, true, __ATOMIC_RELEASE);
	for (uint16_t k = 0; k < n->pairs; k++) {
		struct virtio_net_rxq *r = &n->rxq[k];
		pthread_mutex_lock(&r->lock);
		r->pending = 0;
		r->have_first = false;
		r->charged = false;
		r->throttled = false;
		/* pair_live() needs activated, which the caller sets first. */
		set_polling(n, k, k < n->active_pairs && d->vqs[rx_q(k)].enabled);
		pthread_mutex_unlock(&r->lock);
	}
	return 0;
}

static void net_reset(struct virtio_dev *d)
{
	struct virtio_net *n = net_of(d);
	/* The limiter's waiter stops touching the rings: it checks running
	 * under the queue locks, which are taken here once each before the
	 * caller resets the rings. */
	__atomic_store_n(&n->running, false, __ATOMIC_RELEASE);
	for (uint16_t k = 0; k < n->pairs; k++) {
		struct virtio_net_rxq *r = &n->rxq[k];
		pthread_mutex_lock(&r->lock);
		r->pending = 0;
		r->have_first = false;
		r->charged = false;
		r->throttled = false;
		set_polling(n, k, false);
		pthread_mutex_unlock(&r->lock);
		struct virtio_net_txq *t = &n->txq[k];
		pthread_mutex_lock(&t->lock);
		t->throttled = false;
		pthread_mutex_unlock(&t->lock);
	}
	n->active_pairs = 1;
	n->mrg_rxbuf = false;
	n->hdr_len = VIRTIO_NET_HDR_LEN;
	/* Stop the backend sending offloaded frames a fresh driver may not
	 * accept; a failure here only matters to the next activation, which
	 * configures again. */
	if (n->be.configure)
		(void)n->be.configure(n->be.ctx, VIRTIO_NET_HDR_LEN, 0);
}

static const struct virtio_dev_ops net_ops = {
    .config_read = net_config_read,
    .queue_notify = net_queue_notify,
    .activate = net_activate,
    .reset = net_reset,
};

static uint64_t offered_features(const struct virtio_net_params *p,
				 const struct virtio_net_backend *be)
{
	uint64_t f = 1ull << VIRTIO_NET_F_MAC | 1ull << VIRTIO_NET_F_STATUS |
		     1ull << VIRTIO_NET_F_MRG_RXBUF | 1ull << VIRTIO_RING_F_INDIRECT_DESC |
		     1ull << VIRTIO_RING_F_EVENT_IDX;
	if (p->mtu)
		f |= 1ull << VIRTIO_NET_F_MTU;
	const bool tso = !p->no_tso;
	if (be->host_offloads) {
		f |= 1ull << VIRTIO_NET_F_CSUM;
		if (tso)
			f |= 1ull << VIRTIO_NET_F_HOST_TSO4 | 1ull << VIRTIO_NET_F_HOST_TSO6 |
			     1ull << VIRTIO_NET_F_HOST_ECN;
	}
	if (be->guest_offloads) {
		f |= 1ull << VIRTIO_NET_F_GUEST_CSUM;
		if (tso)
			f |= 1ull << VIRTIO_NET_F_GUEST_TSO4 | 1ull << VIRTIO_NET_F_GUEST_TSO6 |
			     1ull << VIRTIO_NET_F_GUEST_ECN;
	}
	if (p->queue_pairs > 1)
		f |= 1ull << VIRTIO_NET_F_CTRL_VQ | 1ull << VIRTIO_NET_F_MQ;
	return f;
}

static int check_params(const struct virtio_net_params *p, const struct virtio_net_backend *be,
			struct chv_err *err)
{
	if (p->queue_pairs < 1 || p->queue_pairs > VIRTIO_NET_MAX_PAIRS)
		return chv_err_set(err, -EINVAL, "--net: queue_pairs=%u is not in 1..%u",
				   p->queue_pairs, VIRTIO_NET_MAX_PAIRS);
	if (be->nfds != p->queue_pairs)
		return chv_err_set(err, -EINVAL,
				   "--net: %u queue pairs need %u backend fds, the backend has %u",
				   p->queue_pairs, p->queue_pairs, be->nfds);
	for (uint16_t k = 0; k < be->nfds; k++)
		if (be->fds[k] < 0)
			return chv_err_set(err, -EBADF, "--net: backend fd %u is %d", k,
					   be->fds[k]);
	if (p->mac[0] & 1)
		return chv_err_set(
		    err, -EINVAL, "--net: mac=%02x:%02x:%02x:%02x:%02x:%02x is a multicast address",
		    p->mac[0], p->mac[1], p->mac[2], p->mac[3], p->mac[4], p->mac[5]);
	if (p->mtu && p->mtu < 68)
		return chv_err_set(err, -EINVAL, "--net: mtu=%u is below 68", p->mtu);
	return 0;
}

int virtio_net_init(struct virtio_net *n, const struct vm_mem *mem,
		    const struct virtio_net_params *p, const struct virtio_net_backend *be,
		    struct chv_err *err)
{
	memset(n, 0, sizeof(*n));
	int rc = check_params(p, be, err);
	if (rc)
		return rc;
	n->params = *p;
	n->be = *be;
	n->pairs = p->queue_pairs;
	n->active_pairs = 1;
	n->hdr_len = VIRTIO_NET_HDR_LEN;
	uint32_t qsize = p->queue_size ? p->queue_size : VIRTIO_NET_QUEUE_SIZE;
	uint16_t nq = (uint16_t)(2 * n->pairs + (n->pairs > 1));
	if (n->pairs > 1)
		n->ctrl_q = (uint16_t)(2 * n->pairs);

	const struct virtio_dev_desc desc = {
	    .name = "virtio-net",
	    .device_id = VIRTIO_ID_NET,
	    .features = offered_features(p, be),
	    .config_size = VIRTIO_NET_CFG_SIZE,
	    .num_queues = nq,
	    .queue_max = qsize,
	};
	rc = virtio_dev_init(&n->vdev, &net_ops, mem, &desc, err);
	if (rc)
		return rc;
	n->ctrl_chain = malloc(sizeof(*n->ctrl_chain));
	if (!n->ctrl_chain)
		goto nomem;
	for (uint16_t k = 0; k < n->pairs; k++) {
		struct virtio_net_rxq *r = &n->rxq[k];
		struct virtio_net_txq *t = &n->txq[k];
		if (pthread_mutex_init(&r->lock, NULL))
			goto nomem;
		r->lock_init = true;
		if (pthread_mutex_init(&t->lock, NULL))
			goto nomem;
		t->lock_init = true;
		t->chain = malloc(sizeof(*t->chain));
		if (!t->chain)
			goto nomem;
		r->buf = malloc(RX_BUF_SIZE);
		r->first = malloc(sizeof(*r->first));
		r->more = malloc(sizeof(*r->more));
		r->heads = calloc(qsize, sizeof(*r->heads));
		r->lens = calloc(qsize, sizeof(*r->lens));
		if (!r->buf || !r->first || !r->more || !r->heads || !r->lens)
			goto nomem;
	}
	if (p->rl) {
		rc = ratelimit_add_waiter(p->rl, net_rl_wake, n);
		if (rc)
			return chv_err_set(err, rc,
					   "--net: its rate limiter has no room for another device "
					   "(at most %u)",
					   RATELIMIT_MAX_WAITERS);
		n->rl = p->rl;
	}
	return 0;
nomem:
	return chv_err_set(err, -ENOMEM, "--net: out of memory for %u queue pairs", n->pairs);
}

void virtio_net_destroy(struct virtio_net *n)
{
	ratelimit_remove_waiter(n->rl, net_rl_wake, n); /* rl is set once it is added */
	n->rl = NULL;
	for (uint16_t k = 0; k < VIRTIO_NET_MAX_PAIRS; k++) {
		struct virtio_net_txq *t = &n->txq[k];
		free(t->chain);
		if (t->lock_init)
			pthread_mutex_destroy(&t->lock);
		memset(t, 0, sizeof(*t));
		struct virtio_net_rxq *r = &n->rxq[k];
		free(r->buf);
		free(r->first);
		free(r->more);
		free(r->heads);
		free(r->lens);
		if (r->lock_init)
			pthread_mutex_destroy(&r->lock);
		memset(r, 0, sizeof(*r));
	}
	free(n->ctrl_chain);
	n->ctrl_chain = NULL;
	virtio_dev_destroy(&n->vdev);
}

void virtio_net_set_poll(struct virtio_net *n, const struct virtio_net_poll *poll)
{
	if (poll)
		n->poll = *poll;
	else
		memset(&n->poll, 0, sizeof(n->poll));
}

void virtio_net_get_counters(struct virtio_net *n, struct virtio_net_counters *out)
{
	const uint64_t *src = (const uint64_t *)&n->ctr;
	uint64_t *dst = (uint64_t *)out;
	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}
