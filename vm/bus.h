/* One registration API for port-I/O and MMIO ranges. Lookups run on vCPU
 * threads without a global lock held across the handler: each range is
 * refcounted, so a range unregistered while a vCPU is inside its handler is
 * freed only when that handler returns (hot-unplug safety). */
#ifndef CHV_VM_BUS_H
#define CHV_VM_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vm/err.h"

/* offset is relative to the range's base. For reads the handler fills data[0..len). */
typedef void (*bus_io_fn)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			  bool is_write);

struct bus_range;

struct bus {
	pthread_rwlock_t lock;
	struct bus_range **ranges; /* sorted by base, non-overlapping */
	unsigned n, cap;
	const char *name; /* "pio" or "mmio", for messages */
};

chv_must_check int bus_init(struct bus *b, const char *name);
void bus_destroy(struct bus *b);

/* -EEXIST when [base, base + len) overlaps a registered range, -EINVAL for len 0 or wrap. */
chv_must_check int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_io_fn fn,
				void *opaque, const char *name);
/* Removes the range starting at base; waits for no handler. -ENOENT when absent. */
int bus_unregister(struct bus *b, uint64_t base);

/* Runs the handler of the range holding [addr, addr + len). Returns false when
 * nothing is registered there (reads then return all ones). */
bool bus_dispatch(struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
