/* A bounded byte queue that keeps the newest bytes: writers never block,
 * and when it is full the oldest bytes make room. Positions count bytes
 * since the start, so [tail, head) is what it holds and a reader can tell
 * what it missed. Not locked: callers hold their own lock. */
#ifndef CHV_VM_BYTE_RING_H
#define CHV_VM_BYTE_RING_H

#include <stddef.h>
#include <stdint.h>

#include "vm/err.h"

struct byte_ring {
	uint8_t *buf;
	size_t cap;
	uint64_t head, tail;
};

chv_must_check int byte_ring_init(struct byte_ring *r, size_t cap);
void byte_ring_free(struct byte_ring *r); /* safe on a zeroed ring */

/* Appends n bytes, dropping the oldest ones when full; returns how many
 * bytes were dropped (old ones, or the front of an oversized write). head
 * always advances by n. */
uint64_t byte_ring_put(struct byte_ring *r, const uint8_t *p, size_t n);

/* Copies up to max bytes from position pos (clamped to tail) into dst;
 * returns how many. */
size_t byte_ring_copy(const struct byte_ring *r, uint64_t pos, uint8_t *dst, size_t max);

static inline uint64_t byte_ring_len(const struct byte_ring *r)
{
	return r->head - r->tail;
}

#endif
