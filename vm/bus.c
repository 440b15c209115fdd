#include "vm/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct bus_range {
	uint64_t base, len;
	bus_io_fn fn;
	void *opaque;
	const char *name;
	unsigned refs; /* the bus's own reference + one per handler running */
};

static void range_put(struct bus_range *r)
{
	if (__atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(r);
}

int bus_init(struct bus *b, const char *name)
{
	memset(b, 0, sizeof(*b));
	b->name = name;
	return -pthread_rwlock_init(&b->lock, NULL);
}

void bus_destroy(struct bus *b)
{
	for (unsigned i = 0; i < b->n; i++)
		range_put(b->ranges[i]);
	free(b->ranges);
	b->ranges = NULL;
	b->n = b->cap = 0;
	pthread_rwlock_destroy(&b->lock);
}

/* Index of the first range whose end is above addr. Caller holds the lock. */
static unsigned bus_lower_bound(const struct bus *b, uint64_t addr)
{
	unsigned lo = 0, hi = b->n;
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		const struct bus_range *r = b->ranges[mid];
		if (r->base + r->len <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_io_fn fn, void *opaque,
		 const char *name)
{
	if (len == 0 || base + len < base || !fn)
		return -EINVAL;
	struct bus_range *r = malloc(sizeof(*r));
	if (!r)
		return -ENOMEM;
	*r = (struct bus_range){base, len, fn, opaque, name, 1};
	pthread_rwlock_wrlock(&b->lock);
	unsigned i = bus_lower_bound(b, base);
	if (i < b->n && b->ranges[i]->base < base + len) {
		pthread_rwlock_unlock(&b->lock);
		free(r);
		return -EEXIST;
	}
	if (b->n == b->cap) {
		unsigned cap = b->cap ? b->cap * 2 : 16;
		struct bus_range **nr = realloc(b->ranges, cap * sizeof(*nr));
		if (!nr) {
			pthread_rwlock_unlock(&b->lock);
			free(r);
			return -ENOMEM;
		}
		b->ranges = nr;
		b->cap = cap;
	}
	memmove(&b->ranges[i + 1], &b->ranges[i], (b->n - i) * sizeof(*b->ranges));
	b->ranges[i] = r;
	b->n++;
	pthread_rwlock_unlock(&b->lock);
	return 0;
}

int bus_unregister(struct bus *b, uint64_t base)
{
	pthread_rwlock_wrlock(&b->lock);
	unsigned i = bus_lower_bound(b, base);
	if (i >= b->n || b->ranges[i]->base != base) {
		pthread_rwlock_unlock(&b->lock);
		return -ENOENT;
	}
	struct bus_range *r = b->ranges[i];
	memmove(&b->ranges[i], &b->ranges[i + 1], (b->n - i - 1) * sizeof(*b->ranges));
	b->n--;
	pthread_rwlock_unlock(&b->lock);
	range_put(r);
	return 0;
}

bool bus_dispatch(struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct bus_range *r = NULL;
	pthread_rwlock_rdlock(&b->lock);
	unsigned i = bus_lower_bound(b, addr);
	if (i < b->n && b->ranges[i]->base <= addr &&
	    addr + len <= b->ranges[i]->base + b->ranges[i]->len && addr + len >= addr) {
		r = b->ranges[i];
		__atomic_add_fetch(&r->refs, 1, __ATOMIC_ACQ_REL);
	}
	pthread_rwlock_unlock(&b->lock);
	if (!r) {
		if (!is_write)
			memset(data, 0xff, len);
		return false;
	}
	r->fn(r->opaque, addr - r->base, data, len, is_write);
	range_put(r);
	return true;
}
