/* virtio-blk: request parsing and completion; the I/O itself is blk_io's.
 * See blk.h for how each malformed request is answered and why. */
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/blk.h"

/* One request in flight: its chain's head, where its status goes, and the
 * backend operations it was split into (one, or one per discard segment). */
struct blk_req {
	struct virtio_blk_queue *q;
	uint16_t head;
	uint32_t epoch;
	uint8_t *status;
	uint32_t type;
	uint32_t written; /* the used length when it succeeds */
	uint64_t bytes;
	uint32_t pending; /* ops not yet done; __atomic */
	int err;	  /* the first op's error; __atomic */
	unsigned nops;
	struct blk_io_op *ops;
	struct iovec iov[];
};

/* Not a status: the request went to the backend, which answers it. */
#define SUBMITTED 0xff

static struct virtio_blk *blk_of(struct virtio_dev *d)
{
	return (struct virtio_blk *)((char *)d - offsetof(struct virtio_blk, vdev));
}

static void count(uint64_t *c, uint64_t n)
{
	__atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

/* ---- completion ---- */

/* Pushes the chain and interrupts the driver when the ring asks for it.
 * Not virtio_signal_queue(): its ring check must run under the queue lock
 * while the interrupt must be raised outside it (see blk.h), so the check
 * and the raise are done here in two steps. */
static void complete(struct virtio_blk_queue *q, uint16_t head, uint32_t epoch, uint8_t *status,
		     uint8_t st, uint32_t written)
{
	struct virtio_blk *b = q->blk;
	struct virtio_dev *d = &b->vdev;
	struct vq *vq = &d->vqs[q->index];
	bool need = false;
	int rc = 0;

	if (st != VIRTIO_BLK_S_OK) {
		count(&b->counters.errors, 1);
		written = 1;
	}
	pthread_mutex_lock(&q->lock);
	if (epoch == __atomic_load_n(&b->epoch, __ATOMIC_ACQUIRE)) {
		*status = st;
		rc = vq_push(vq, head, written);
		need = rc == 0 && vq_need_notify(vq);
	}
	pthread_mutex_unlock(&q->lock);
	if (rc)
		virtio_queue_broken(d, q->index);
	else if (need)
		virtio_raise_queue(d, q->index);
}

static void finish_req(struct blk_req *r)
{
	struct virtio_blk *b = r->q->blk;
	int err = __atomic_load_n(&r->err, __ATOMIC_ACQUIRE);
	if (!err) {
		switch (r->type) {
		case VIRTIO_BLK_T_IN:
			count(&b->counters.reads, 1);
			count(&b->counters.bytes_read, r->bytes);
			break;
		case VIRTIO_BLK_T_OUT:
			count(&b->counters.writes, 1);
			count(&b->counters.bytes_written, r->bytes);
			break;
		case VIRTIO_BLK_T_FLUSH:
			count(&b->counters.flushes, 1);
			break;
		case VIRTIO_BLK_T_DISCARD:
			count(&b->counters.discards, 1);
			break;
		case VIRTIO_BLK_T_WRITE_ZEROES:
			count(&b->counters.write_zeroes, 1);
			break;
		}
	}
	complete(r->q, r->head, r->epoch, r->status, err ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK,
		 r->written);
	free(r);
}

static void op_done(struct blk_io_op *op, int res)
{
	struct blk_req *r = op->opaque;
	if (res) {
		int zero = 0;
		__atomic_compare_exchange_n(&r->err, &zero, res, false, __ATOMIC_ACQ_REL,
					    __ATOMIC_ACQUIRE);
	}
	if (__atomic_sub_fetch(&r->pending, 1, __ATOMIC_ACQ_REL) == 0)
		finish_req(r);
}

/* ---- parsing ---- */

/* Copies len bytes found at byte offset off of the iovec list. */
static bool iov_gather(const struct iovec *iov, unsigned n, uint64_t off, void *dst, size_t len)
{
	uint8_t *out = dst;
	for (unsigned i = 0; i < n && len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		size_t k = iov[i].iov_len - (size_t)off;
		if (k > len)
			k = len;
		memcpy(out, (const uint8_t *)iov[i].iov_base + off, k);
		out += k;
		len -= k;
		off = 0;
	}
	return len == 0;
}

static void iov_scatter(struct iovec *iov, unsigned n, const void *src, size_t len)
{
	const uint8_t *p = src;
	for (unsigned i = 0; i < n && len; i++) {
		size_t k = iov[i].iov_len < len ? iov[i].iov_len : len;
		memcpy(iov[i].iov_base, p, k);
		p += k;
		len -= k;
	}
}

/* The iovecs of src from byte offset skip on, at most len bytes, into dst;
 * returns how many. */
static unsigned iov_slice(struct iovec *dst, const struct iovec *src, unsigned n, uint64_t skip,
			  uint64_t len)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n && len; i++) {
		if (skip >= src[i].iov_len) {
			skip -= src[i].iov_len;
			continue;
		}
		uint64_t take = src[i].iov_len - skip;
		if (take > len)
			take = len;
		dst[k].iov_base = (uint8_t *)src[i].iov_base + skip;
		dst[k].iov_len = (size_t)take;
		k++;
		len -= take;
		skip = 0;
	}
	return k;
}

static bool range_ok(const struct virtio_blk *b, uint64_t sector, uint64_t sectors)
{
	return sector <= b->capacity && sectors <= b->capacity - sector;
}

/* What was popped, as the parser sees it. */
struct parsed {
	uint16_t head;
	uint32_t epoch;
	uint8_t *status;
	uint32_t type;
	uint64_t sector;
	struct iovec *out; /* readable, header included */
	unsigned nout;
	uint64_t dout_len; /* readable bytes after the header */
	struct iovec *in;  /* writable, status included */
	unsigned nin;
	uint64_t din_len; /* writable bytes before the status */
};

static struct blk_req *new_req(struct virtio_blk_queue *q, const struct parsed *p, unsigned niov,
			       unsigned nops)
{
	size_t sz = sizeof(struct blk_req) + niov * sizeof(struct iovec);
	sz = (sz + _Alignof(struct blk_io_op) - 1) / _Alignof(struct blk_io_op) *
	     _Alignof(struct blk_io_op);
	struct blk_req *r = calloc(1, sz + nops * sizeof(struct blk_io_op));
	if (!r)
		return NULL;
	r->q = q;
	r->head = p->head;
	r->epoch = p->epoch;
	r->status = p->status;
	r->type = p->type;
	r->nops = nops;
	r->pending = nops;
	r->ops = (struct blk_io_op *)((char *)r + sz);
	for (unsigned i = 0; i < nops; i++) {
		r->ops[i].done = op_done;
		r->ops[i].opaque = r;
	}
	return r;
}

/* Hands every op of r to the backend; an op it refuses counts as failed. */
static void submit_req(struct virtio_blk *b, struct blk_req *r)
{
	unsigned n = r->nops;
	for (unsigned i = 0; i < n; i++) {
		int rc = blk_io_submit(&b->io, &r->ops[i]);
		if (rc)
			op_done(&r->ops[i], rc);
	}
}

static uint8_t do_rw(struct virtio_blk *b, struct virtio_blk_queue *q, const struct parsed *p)
{
	bool in = p->type == VIRTIO_BLK_T_IN;
	uint64_t len = in ? p->din_len : p->dout_len;
	if ((in ? p->dout_len : p->din_len) != 0 || len == 0 || len % VIRTIO_BLK_SECTOR ||
	    len > (uint64_t)b->seg_max * VIRTIO_BLK_SIZE_MAX)
		return VIRTIO_BLK_S_IOERR;
	if (!in && b->io.readonly)
		return VIRTIO_BLK_S_IOERR;
	if (!range_ok(b, p->sector, len / VIRTIO_BLK_SECTOR))
		return VIRTIO_BLK_S_IOERR;
	unsigned niov = in ? p->nin : p->nout;
	struct blk_req *r = new_req(q, p, niov, 1);
	if (!r)
		return VIRTIO_BLK_S_IOERR;
	unsigned k = in ? iov_slice(r->iov, p->in, p->nin, 0, len)
			: iov_slice(r->iov, p->out, p->nout, VIRTIO_BLK_HDR_LEN, len);
	r->bytes = len;
	r->written = in ? (uint32_t)len + 1 : 1;
	struct blk_io_op *op = &r->ops[0];
	op->kind = in ? BLK_IO_READ : BLK_IO_WRITE;
	op->off = p->sector * VIRTIO_BLK_SECTOR;
	op->len = len;
	op->iov = r->iov;
	op->iovcnt = k;
	submit_req(b, r);
	return SUBMITTED;
}

static uint8_t do_flush(struct virtio_blk *b, struct virtio_blk_queue *q, const struct parsed *p)
{
	if (p->dout_len || p->din_len)
		return VIRTIO_BLK_S_IOERR;
	struct blk_req *r = new_req(q, p, 0, 1);
	if (!r)
		return VIRTIO_BLK_S_IOERR;
	r->written = 1;
	r->ops[0].kind = BLK_IO_FLUSH;
	submit_req(b, r);
	return SUBMITTED;
}

static uint8_t do_dwz(struct virtio_blk *b, struct virtio_blk_queue *q, const struct parsed *p)
{
	bool discard = p->type == VIRTIO_BLK_T_DISCARD;
	unsigned feature = discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES;
	if (b->io.readonly || !(b->vdev.features >> feature & 1) ||
	    !virtio_has_feature(&b->vdev, feature))
		return VIRTIO_BLK_S_UNSUPP;
	if (p->din_len || p->dout_len == 0 || p->dout_len % VIRTIO_BLK_DWZ_SEG_LEN ||
	    p->dout_len / VIRTIO_BLK_DWZ_SEG_LEN > VIRTIO_BLK_MAX_DWZ_SEG)
		return VIRTIO_BLK_S_IOERR;
	unsigned nseg = (unsigned)(p->dout_len / VIRTIO_BLK_DWZ_SEG_LEN);
	struct {
		uint64_t sector;
		uint32_t num, flags;
	} seg[VIRTIO_BLK_MAX_DWZ_SEG];
	unsigned nops = 0;
	for (unsigned i = 0; i < nseg; i++) {
		uint8_t raw[VIRTIO_BLK_DWZ_SEG_LEN];
		if (!iov_gather(p->out, p->nout, VIRTIO_BLK_HDR_LEN + i * VIRTIO_BLK_DWZ_SEG_LEN,
				raw, sizeof(raw)))
			return VIRTIO_BLK_S_IOERR;
		uint64_t s;
		uint32_t n, f;
		memcpy(&s, raw, 8);
		memcpy(&n, raw + 8, 4);
		memcpy(&f, raw + 12, 4);
		s = le64toh(s);
		n = le32toh(n);
		f = le32toh(f);
		if (f & ~VIRTIO_BLK_DWZ_FLAG_UNMAP || (discard && f))
			return VIRTIO_BLK_S_UNSUPP;
		if (n > VIRTIO_BLK_MAX_DWZ_SECTORS || !range_ok(b, s, n))
			return VIRTIO_BLK_S_IOERR;
		if (n)
			seg[nops++] = (typeof(seg[0])){s, n, f};
	}
	if (nops == 0) {
		count(discard ? &b->counters.discards : &b->counters.write_zeroes, 1);
		return VIRTIO_BLK_S_OK;
	}
	struct blk_req *r = new_req(q, p, 0, nops);
	if (!r)
		return VIRTIO_BLK_S_IOERR;
	r->written = 1;
	for (unsigned i = 0; i < nops; i++) {
		r->ops[i].kind = discard ? BLK_IO_DISCARD : BLK_IO_WRITE_ZEROES;
		r->ops[i].off = seg[i].sector * VIRTIO_BLK_SECTOR;
		r->ops[i].len = (uint64_t)seg[i].num * VIRTIO_BLK_SECTOR;
		r->ops[i].unmap = seg[i].flags & VIRTIO_BLK_DWZ_FLAG_UNMAP;
	}
	submit_req(b, r);
	return SUBMITTED;
}

/* The header, read once: the charge for the limiter and the parse use the
 * same bytes, whatever the driver writes meanwhile. NULL when there are
 * fewer than 16 readable bytes. */
static const uint8_t *read_header(struct vq_chain *c, uint8_t hdr[VIRTIO_BLK_HDR_LEN])
{
	if (c->out_len < VIRTIO_BLK_HDR_LEN ||
	    !iov_gather(vq_chain_out(c), c->nout, 0, hdr, VIRTIO_BLK_HDR_LEN))
		return NULL;
	return hdr;
}

static uint32_t header_type(const uint8_t *hdr)
{
	uint32_t type;
	memcpy(&type, hdr, 4);
	return le32toh(type);
}

/* Answers or submits one popped chain (hdr from read_header()). Returns
 * false when the device had to be failed. */
static bool handle(struct virtio_blk *b, struct virtio_blk_queue *q, struct vq_chain *c,
		   uint32_t epoch, const uint8_t *hdr)
{
	struct parsed p = {
	    .head = c->head,
	    .epoch = epoch,
	    .out = vq_chain_out(c),
	    .nout = c->nout,
	    .in = vq_chain_in(c),
	    .nin = c->nin,
	};
	if (c->nin == 0) {
		count(&b->counters.errors, 1);
		virtio_set_needs_reset(&b->vdev,
				       "queue %u: request %u has no device-writable status byte",
				       q->index, c->head);
		return false;
	}
	struct iovec *last = &p.in[p.nin - 1];
	p.status = (uint8_t *)last->iov_base + last->iov_len - 1;
	p.din_len = c->in_len - 1;
	uint8_t st = VIRTIO_BLK_S_IOERR;
	if (hdr) {
		uint64_t sector;
		memcpy(&sector, hdr + 8, 8);
		p.type = header_type(hdr);
		p.sector = le64toh(sector);
		p.dout_len = c->out_len - VIRTIO_BLK_HDR_LEN;
		switch (p.type) {
		case VIRTIO_BLK_T_IN:
		case VIRTIO_BLK_T_OUT:
			st = do_rw(b, q, &p);
			break;
		case VIRTIO_BLK_T_FLUSH:
			st = do_flush(b, q, &p);
			break;
		case VIRTIO_BLK_T_DISCARD:
		case VIRTIO_BLK_T_WRITE_ZEROES:
			st = do_dwz(b, q, &p);
			break;
		case VIRTIO_BLK_T_GET_ID:
			if (p.dout_len == 0 && p.din_len > 0) {
				size_t n = p.din_len < VIRTIO_BLK_ID_BYTES ? (size_t)p.din_len
									   : VIRTIO_BLK_ID_BYTES;
				iov_scatter(p.in, p.nin, b->id, n);
				count(&b->counters.get_ids, 1);
				complete(q, p.head, p.epoch, p.status, VIRTIO_BLK_S_OK,
					 (uint32_t)n + 1);
				return true;
			}
			break;
		default:
			st = VIRTIO_BLK_S_UNSUPP;
			break;
		}
	}
	if (st != SUBMITTED)
		complete(q, p.head, p.epoch, p.status, st, 1);
	return true;
}

/* ---- draining a queue ---- */

/* May a drain that started at epoch touch the ring? Not once a reset came
 * (vq_reset() follows blk_reset(), which bumps the epoch and then takes
 * every queue lock), not before the next activation, not on a failed
 * device. Under q->lock. */
static bool live(struct virtio_blk *b, uint32_t epoch)
{
	if (!b->rl)
		return true; /* only kicks drain, under the transport's lock */
	return __atomic_load_n(&b->running, __ATOMIC_ACQUIRE) &&
	       __atomic_load_n(&b->epoch, __ATOMIC_ACQUIRE) == epoch &&
	       !(virtio_dev_status(&b->vdev) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

/* Pops under the queue lock (a completion thread may be pushing). */
static int pop(struct virtio_blk_queue *q, struct vq *vq, uint32_t epoch)
{
	pthread_mutex_lock(&q->lock);
	int rc = live(q->blk, epoch) ? vq_pop(vq, &q->chain) : 0;
	pthread_mutex_unlock(&q->lock);
	return rc;
}

/* One op, and the data length of a read or write in bytes. On a refusal the
 * chain goes back to the ring, untouched. */
static bool admit(struct virtio_blk *b, struct virtio_blk_queue *q, struct vq *vq,
		  const uint8_t *hdr, uint32_t epoch)
{
	struct vq_chain *c = &q->chain;
	uint64_t bytes = 0;
	if (hdr) {
		uint32_t type = header_type(hdr);
		if (type == VIRTIO_BLK_T_IN && c->in_len)
			bytes = c->in_len - 1;
		else if (type == VIRTIO_BLK_T_OUT)
			bytes = c->out_len - VIRTIO_BLK_HDR_LEN;
	}
	if (ratelimit_consume(b->rl, bytes, 1))
		return true;
	count(&b->counters.throttled, 1);
	pthread_mutex_lock(&q->lock);
	if (live(b, epoch))
		vq_unpop(vq);
	pthread_mutex_unlock(&q->lock);
	return false;
}

enum drain_end { DRAINED, THROTTLED, STOPPED };

/* Takes every request of the queue (or up to a refusal). Kicks are off
 * meanwhile; a chain that slipped in between the last pop and turning them
 * back on is caught by the re-check. A throttled queue leaves them off:
 * the waiter drains it again. */
static enum drain_end drain(struct virtio_blk *b, struct virtio_blk_queue *q, uint32_t epoch)
{
	struct virtio_dev *d = &b->vdev;
	struct vq *vq = &d->vqs[q->index];
	for (;;) {
		pthread_mutex_lock(&q->lock);
		bool ok = live(b, epoch);
		if (ok)
			vq_disable_notify(vq);
		pthread_mutex_unlock(&q->lock);
		if (!ok)
			return STOPPED;
		for (;;) {
			int rc = pop(q, vq, epoch);
			if (rc == 0)
				break;
			if (rc < 0) {
				count(&b->counters.errors, 1);
				virtio_queue_broken(d, q->index);
				return STOPPED;
			}
			uint8_t buf[VIRTIO_BLK_HDR_LEN];
			const uint8_t *hdr = read_header(&q->chain, buf);
			if (b->rl && !admit(b, q, vq, hdr, epoch))
				return THROTTLED;
			if (!handle(b, q, &q->chain, epoch, hdr))
				return STOPPED;
		}
		pthread_mutex_lock(&q->lock);
		int rc = live(b, epoch) ? vq_enable_notify(vq) : 0;
		pthread_mutex_unlock(&q->lock);
		if (rc == 0)
			return DRAINED;
		if (rc < 0) {
			virtio_queue_broken(d, q->index);
			return STOPPED;
		}
	}
}

/* With a limiter: the kick path (waker false) and the limiter's waiter
 * (waker true) share the queue through the run token. */
static void run_limited(struct virtio_blk *b, struct virtio_blk_queue *q, bool waker)
{
	pthread_mutex_lock(&q->lock);
	if (waker) {
		if (!q->throttled && !q->busy) {
			pthread_mutex_unlock(&q->lock);
			return;
		}
		q->throttled = false;
	} else if (q->throttled) {
		/* The timer is armed: the waiter drains it, kicks only cost. */
		pthread_mutex_unlock(&q->lock);
		return;
	}
	if (q->busy) {
		q->again = true;
		pthread_mutex_unlock(&q->lock);
		return;
	}
	q->busy = true;
	for (;;) {
		uint32_t epoch = __atomic_load_n(&b->epoch, __ATOMIC_ACQUIRE);
		pthread_mutex_unlock(&q->lock);
		enum drain_end end = drain(b, q, epoch);
		pthread_mutex_lock(&q->lock);
		if (q->again) {
			q->again = false;
			continue;
		}
		q->throttled = end == THROTTLED;
		q->busy = false;
		break;
	}
	pthread_mutex_unlock(&q->lock);
}

static void blk_queue_notify(struct virtio_dev *d, uint16_t qi)
{
	struct virtio_blk *b = blk_of(d);
	struct virtio_blk_queue *q = &b->queues[qi];
	if (!b->rl) {
		/* Only kicks drain the queue, serialised by the transport. */
		(void)drain(b, q, __atomic_load_n(&b->epoch, __ATOMIC_ACQUIRE));
		return;
	}
	run_limited(b, q, false);
}

/* The limiter's waiter, on the event loop's thread. */
static void blk_rl_wake(void *ctx)
{
	struct virtio_blk *b = ctx;
	for (uint16_t i = 0; i < b->nqueues; i++)
		run_limited(b, &b->queues[i], true);
}

static void blk_config_read(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_blk *b = blk_of(d);
	if (off >= sizeof(b->config) || len > sizeof(b->config) - off) {
		memset(data, 0, len);
		return;
	}
	memcpy(data, b->config + off, len);
}

/* Everything popped before a reset is dropped when it completes; taking
 * each queue lock once waits out a completion that is pushing right now. */
static void blk_reset(struct virtio_dev *d)
{
	struct virtio_blk *b = blk_of(d);
	__atomic_store_n(&b->running, false, __ATOMIC_RELEASE);
	__atomic_add_fetch(&b->epoch, 1, __ATOMIC_ACQ_REL);
	for (uint16_t i = 0; i < b->nqueues; i++) {
		pthread_mutex_lock(&b->queues[i].lock);
		b->queues[i].throttled = false;
		pthread_mutex_unlock(&b->queues[i].lock);
	}
}

/* Only now may the limiter's waiter touch the rings (they are set up). */
static int blk_activate(struct virtio_dev *d, struct chv_err *err)
{
	(void)err;
	__atomic_store_n(&blk_of(d)->running, true, __ATOMIC_RELEASE);
	return 0;
}

static const struct virtio_dev_ops blk_ops = {
    .config_read = blk_config_read,
    .queue_notify = blk_queue_notify,
    .activate = blk_activate,
    .reset = blk_reset,
};

static void put16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static void build_config(struct virtio_blk *b)
{
	uint8_t *c = b->config;
	uint32_t align = b->blk_size / VIRTIO_BLK_SECTOR;
	put64(c + VIRTIO_BLK_CFG_CAPACITY, b->capacity);
	put32(c + VIRTIO_BLK_CFG_SIZE_MAX, VIRTIO_BLK_SIZE_MAX);
	put32(c + VIRTIO_BLK_CFG_SEG_MAX, b->seg_max);
	put32(c + VIRTIO_BLK_CFG_BLK_SIZE, b->blk_size);
	put16(c + VIRTIO_BLK_CFG_NUM_QUEUES, b->nqueues);
	if (!b->io.readonly) {
		put32(c + VIRTIO_BLK_CFG_MAX_DISCARD_SEC, VIRTIO_BLK_MAX_DWZ_SECTORS);
		put32(c + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, VIRTIO_BLK_MAX_DWZ_SEG);
		put32(c + VIRTIO_BLK_CFG_DISCARD_ALIGN, align);
		put32(c + VIRTIO_BLK_CFG_MAX_WZ_SEC, VIRTIO_BLK_MAX_DWZ_SECTORS);
		put32(c + VIRTIO_BLK_CFG_MAX_WZ_SEG, VIRTIO_BLK_MAX_DWZ_SEG);
		c[VIRTIO_BLK_CFG_WZ_MAY_UNMAP] = 1;
	}
}

static int check_opts(const struct virtio_blk_opts *o, struct chv_err *err)
{
	if (!o || !o->path || !o->path[0])
		return chv_err_set(err, -EINVAL, "--disk: path is missing");
	if (o->blk_size && o->blk_size != 512 && o->blk_size != 4096)
		return chv_err_set(err, -EINVAL, "--disk: block_size=%u is not 512 or 4096",
				   o->blk_size);
	if (o->num_queues > VIRTIO_MAX_QUEUES)
		return chv_err_set(err, -EINVAL, "--disk: num_queues=%u is not in 1..%u",
				   o->num_queues, VIRTIO_MAX_QUEUES);
	uint32_t qs = o->queue_size;
	if (qs && (qs > VQ_MAX_SIZE || (qs & (qs - 1))))
		return chv_err_set(err, -EINVAL,
				   "--disk: queue_size=%u is not a power of two up to %u", qs,
				   VQ_MAX_SIZE);
	if (o->serial && strlen(o->serial) > VIRTIO_BLK_ID_BYTES)
		return chv_err_set(err, -EINVAL, "--disk: serial=%s is longer than %u bytes",
				   o->serial, VIRTIO_BLK_ID_BYTES);
	return 0;
}

int virtio_blk_init(struct virtio_blk *b, const struct vm_mem *mem, const struct virtio_blk_opts *o,
		    struct chv_err *err)
{
	memset(b, 0, sizeof(*b));
	int rc = check_opts(o, err);
	if (rc)
		return rc;
	b->blk_size = o->blk_size ? o->blk_size : 512;
	b->nqueues = o->num_queues ? o->num_queues : 1;
	uint32_t qs = o->queue_size ? o->queue_size : VIRTIO_BLK_DEFAULT_QUEUE;
	/* Header and status take a descriptor each when the driver has no
	 * indirect descriptors; a chain cannot be longer than the ring. */
	b->seg_max = qs > 2 ? qs - 2 : 1;
	if (b->seg_max > VQ_MAX_SEGS - 2)
		b->seg_max = VQ_MAX_SEGS - 2;
	if (o->serial)
		memcpy(b->id, o->serial, strlen(o->serial));

	const struct blk_io_opts io_opts = {
	    .path = o->path,
	    .readonly = o->readonly,
	    .direct = o->direct,
	    .no_uring = o->no_uring,
	    .threads = o->io_threads,
	};
	rc = blk_io_open(&b->io, &io_opts, err);
	if (rc)
		return rc;
	b->capacity = b->io.size / VIRTIO_BLK_SECTOR;

	uint64_t features = 1ull << VIRTIO_BLK_F_SIZE_MAX | 1ull << VIRTIO_BLK_F_SEG_MAX |
			    1ull << VIRTIO_BLK_F_BLK_SIZE | 1ull << VIRTIO_BLK_F_FLUSH |
			    1ull << VIRTIO_RING_F_INDIRECT_DESC | 1ull << VIRTIO_RING_F_EVENT_IDX;
	if (o->readonly)
		features |= 1ull << VIRTIO_BLK_F_RO;
	else
		features |= 1ull << VIRTIO_BLK_F_DISCARD | 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	if (b->nqueues > 1)
		features |= 1ull << VIRTIO_BLK_F_MQ;
	const struct virtio_dev_desc desc = {
	    .name = "virtio-blk",
	    .device_id = VIRTIO_ID_BLOCK,
	    .features = features,
	    .config_size = VIRTIO_BLK_CONFIG_SIZE,
	    .num_queues = b->nqueues,
	    .queue_max = qs,
	};
	rc = virtio_dev_init(&b->vdev, &blk_ops, mem, &desc, err);
	if (rc)
		return rc;
	b->queues = calloc(b->nqueues, sizeof(*b->queues));
	if (!b->queues)
		return chv_err_set(err, -ENOMEM, "--disk: out of memory for %u queues", b->nqueues);
	for (uint16_t i = 0; i < b->nqueues; i++) {
		struct virtio_blk_queue *q = &b->queues[i];
		q->blk = b;
		q->index = i;
		rc = pthread_mutex_init(&q->lock, NULL);
		if (rc)
			return chv_err_set(err, -rc, "--disk: mutex: %s", strerror(rc));
		q->lock_init = true;
	}
	build_config(b);
	if (o->rl) {
		rc = ratelimit_add_waiter(o->rl, blk_rl_wake, b);
		if (rc)
			return chv_err_set(err, rc,
					   "--disk: path=%s: its rate limiter has no room for "
					   "another device (at most %u)",
					   o->path, RATELIMIT_MAX_WAITERS);
		b->rl = o->rl;
	}
	return 0;
}

void virtio_blk_destroy(struct virtio_blk *b)
{
	/* First the limiter's wake-ups, which drain queues, then the
	 * completions, which still push into them. */
	ratelimit_remove_waiter(b->rl, blk_rl_wake, b); /* rl is set once it is added */
	b->rl = NULL;
	blk_io_close(&b->io);
	if (b->queues) {
		for (uint16_t i = 0; i < b->nqueues; i++)
			if (b->queues[i].lock_init)
				pthread_mutex_destroy(&b->queues[i].lock);
		free(b->queues);
	}
	b->queues = NULL;
	virtio_dev_destroy(&b->vdev);
}

void virtio_blk_drain(struct virtio_blk *b)
{
	blk_io_drain(&b->io);
}

void virtio_blk_get_counters(struct virtio_blk *b, struct virtio_blk_counters *out)
{
	const uint64_t *src = (const uint64_t *)&b->counters;
	uint64_t *dst = (uint64_t *)out;
	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}
