#include "vm/byte_ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int byte_ring_init(struct byte_ring *r, size_t cap)
{
	r->head = r->tail = 0;
	r->cap = cap;
	r->buf = cap ? malloc(cap) : NULL;
	return r->buf ? 0 : -ENOMEM;
}

void byte_ring_free(struct byte_ring *r)
{
	free(r->buf);
	r->buf = NULL;
}

uint64_t byte_ring_put(struct byte_ring *r, const uint8_t *p, size_t n)
{
	uint64_t dropped = 0;
	/* An empty write may come with p NULL (protobuf-c's empty bytes),
	 * which memcpy() must not be given even for 0 bytes. */
	if (n == 0)
		return 0;
	if (n > r->cap) {
		/* Only the newest cap bytes fit: the front of the write passes
		 * through the positions as if written and dropped at once. */
		dropped = n - r->cap + (r->head - r->tail);
		r->head += n - r->cap;
		r->tail = r->head;
		p += n - r->cap;
		n = r->cap;
	}
	uint64_t queued = r->head - r->tail;
	if (queued + n > r->cap) {
		uint64_t lose = queued + n - r->cap;
		dropped += lose;
		r->tail += lose;
	}
	size_t at = (size_t)(r->head % r->cap);
	size_t first = r->cap - at < n ? r->cap - at : n;
	memcpy(r->buf + at, p, first);
	memcpy(r->buf, p + first, n - first);
	r->head += n;
	return dropped;
}

size_t byte_ring_copy(const struct byte_ring *r, uint64_t pos, uint8_t *dst, size_t max)
{
	if (pos < r->tail)
		pos = r->tail;
	if (pos >= r->head)
		return 0;
	size_t n = (size_t)(r->head - pos) < max ? (size_t)(r->head - pos) : max;
	size_t at = (size_t)(pos % r->cap);
	size_t first = r->cap - at < n ? r->cap - at : n;
	memcpy(dst, r->buf + at, first);
	memcpy(dst + first, r->buf, n - first);
	return n;
}
