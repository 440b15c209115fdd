/* Shared pieces of the libFuzzer targets (see fz_common.h). */
#include "fz_common.h"

#include <protobuf-c/protobuf-c.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vm/log.h"

void fz_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "fuzz invariant broken: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	abort();
}

void fz_debug(const char *fmt, ...)
{
	static int on = -1;
	if (on < 0)
		on = getenv("CHV_FUZZ_DEBUG") != NULL;
	if (!on)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

uint8_t fz_u8(struct fz *f)
{
	return f->pos < f->len ? f->p[f->pos++] : 0;
}

uint16_t fz_u16(struct fz *f)
{
	uint16_t lo = fz_u8(f);
	return (uint16_t)(lo | fz_u8(f) << 8);
}

uint32_t fz_u32(struct fz *f)
{
	uint32_t lo = fz_u16(f);
	return lo | (uint32_t)fz_u16(f) << 16;
}

uint64_t fz_u64(struct fz *f)
{
	uint64_t lo = fz_u32(f);
	return lo | (uint64_t)fz_u32(f) << 32;
}

size_t fz_bytes(struct fz *f, size_t n, const uint8_t **out)
{
	size_t left = fz_left(f);
	if (n > left)
		n = left;
	*out = f->p + f->pos;
	f->pos += n;
	return n;
}

void fz_quiet_log(void)
{
	static bool done;
	if (!done && log_init(0, "/dev/null") == 0)
		done = true;
}

struct vm_mem *fz_mem(void)
{
	static struct vm_mem m;
	static bool made;
	if (!made) {
		struct mem_layout l;
		struct chv_err err = {0};
		layout_compute(FZ_RAM_SIZE, &l);
		if (vm_mem_create(&m, &l, false, false, &err))
			fz_fail("guest memory: %s", err.msg);
		made = true;
	}
	return &m;
}

void fz_check_in_ram(const void *p, size_t len, const char *what)
{
	const struct vm_mem *m = fz_mem();
	const uint8_t *b = p, *lo = m->map, *hi = m->map + m->map_size;
	if (len == 0 || b < lo || b >= hi || len > (size_t)(hi - b))
		fz_fail("%s: [%p, +%zu) is not inside guest RAM [%p, %p)", what, p, len, (void *)lo,
			(void *)hi);
}

uint64_t fz_features(const struct virtio_dev *d, uint8_t fbyte)
{
	uint64_t want = 0;
	if (fbyte & 1)
		want |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	if (fbyte & 2)
		want |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	if (fbyte & 4)
		want |= 1ull << VIRTIO_F_VERSION_1;
	for (unsigned g = 0; g < 5; g++)
		if (fbyte & (8u << g))
			for (unsigned b = g; b < 24; b += 5)
				want |= 1ull << b;
	return d->features & want;
}

void fz_driver_up(struct fz_driver *drv, struct virtio_dev *d, uint8_t fbyte, uint8_t qbyte)
{
	struct vm_mem *m = fz_mem();
	struct chv_err err = {0};

	memset(m->map, 0, m->map_size);
	virtio_dev_reset(d);
	drv->d = d;
	drv->qsize = 1u << (qbyte % 5); /* 1..16 */
	memset(drv->avail_idx, 0, sizeof(drv->avail_idx));
	d->driver_features = fz_features(d, fbyte);
	for (uint16_t q = 0; q < d->num_queues && q < FZ_MAX_QUEUES; q++) {
		struct vq *vq = &d->vqs[q];
		uint32_t size = drv->qsize < vq->max_size ? drv->qsize : vq->max_size;
		if (vq_set_size(vq, size, &err) ||
		    vq_set_addrs(vq, FZ_DESC(q), FZ_AVAIL(q), FZ_USED(q), &err) ||
		    vq_enable(vq, d->driver_features, &err))
			fz_fail("queue %u set-up: %s", q, err.msg);
	}
	__atomic_store_n(&d->status,
			 VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK,
			 __ATOMIC_RELEASE);
	virtio_dev_activate(d);
}

static void put(uint64_t gpa, const void *src, size_t n)
{
	if (vm_mem_write(fz_mem(), gpa, src, n))
		fz_fail("harness write at 0x%llx", (unsigned long long)gpa);
}

static void config_op(struct virtio_dev *d, struct fz *f)
{
	uint32_t off = fz_u8(f), len = 1 + fz_u8(f) % 8;
	bool write = fz_u8(f) & 1;
	uint64_t v = fz_u64(f);
	uint8_t buf[8];

	/* The transport's rule: the access lies inside the configuration. */
	if (off + len > d->config_size)
		return;
	if (write) {
		memcpy(buf, &v, sizeof(buf));
		if (d->ops->config_write)
			d->ops->config_write(d, off, buf, len);
	} else if (d->ops->config_read) {
		d->ops->config_read(d, off, buf, len);
	}
}

void fz_driver_op(struct fz_driver *drv, struct fz *f, uint8_t op,
		  void (*kick)(void *ctx, uint16_t q), void *ctx)
{
	struct virtio_dev *d = drv->d;
	uint16_t nq = d->num_queues < FZ_MAX_QUEUES ? d->num_queues : FZ_MAX_QUEUES;

	switch (op) {
	case FZ_OP_MEM: {
		uint16_t gpa = fz_u16(f);
		const uint8_t *b;
		size_t n = fz_bytes(f, fz_u8(f), &b);
		if (gpa + n > FZ_RAM_SIZE)
			n = FZ_RAM_SIZE - gpa;
		if (n)
			put(gpa, b, n);
		break;
	}
	case FZ_OP_DESC: {
		uint16_t q = fz_u8(f) % nq, i = fz_u8(f) % FZ_QSIZE_MAX;
		uint64_t addr = fz_u16(f);
		uint32_t len = fz_u16(f);
		uint16_t flags = fz_u8(f), next = fz_u8(f);
		uint8_t raw[16];
		memcpy(raw, &addr, 8);
		memcpy(raw + 8, &len, 4);
		memcpy(raw + 12, &flags, 2);
		memcpy(raw + 14, &next, 2);
		put(FZ_DESC(q) + 16ull * i, raw, sizeof(raw));
		break;
	}
	case FZ_OP_AVAIL: {
		uint16_t q = fz_u8(f) % nq, head = fz_u8(f);
		uint16_t slot = drv->avail_idx[q] % drv->qsize;
		put(FZ_AVAIL(q) + 4 + 2ull * slot, &head, 2);
		drv->avail_idx[q]++;
		put(FZ_AVAIL(q) + 2, &drv->avail_idx[q], 2);
		break;
	}
	case FZ_OP_AVAIL_IDX: {
		uint16_t q = fz_u8(f) % nq, idx = fz_u16(f);
		drv->avail_idx[q] = idx;
		put(FZ_AVAIL(q) + 2, &idx, 2);
		break;
	}
	case FZ_OP_KICK:
		kick(ctx, fz_u8(f) % nq);
		break;
	case FZ_OP_RESET: {
		uint8_t fbyte = fz_u8(f);
		fz_driver_up(drv, d, fbyte, fz_u8(f));
		break;
	}
	case FZ_OP_CONFIG:
		config_op(d, f);
		break;
	default:
		break;
	}
}

/* A regular file the validators may open instead of the fuzzer's paths:
 * an unlinked temporary file reached through /proc/self/fd, so nothing is
 * left behind even when the target crashes. */
static const char *safe_file(void)
{
	static char path[64];
	if (!path[0]) {
		char tmpl[] = "/tmp/chv-fuzz-XXXXXX";
		int fd = mkstemp(tmpl);
		if (fd < 0)
			fz_fail("cannot create a temporary file");
		unlink(tmpl);
		if (write(fd, "chv fuzz placeholder\n", 21) != 21)
			fz_fail("cannot write the temporary file");
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	return path;
}

static void swap_path(char **p, const char *to)
{
	if (!*p || !**p)
		return;
	char *s = strdup(to);
	if (!s)
		fz_fail("out of memory");
	free(*p);
	*p = s;
}

void fz_config_safe_paths(struct vm_config *c)
{
	const char *file = safe_file();
	swap_path(&c->payload.kernel, file);
	swap_path(&c->payload.initramfs, file);
	swap_path(&c->rng.src, "/dev/zero");
	for (uint32_t i = 0; i < c->ndisks && i < CONFIG_MAX_DISKS; i++)
		swap_path(&c->disks[i].path, file);
}

static bool field_has_unknown(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
	const char *base = (const char *)m;
	if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
		return false;
	if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t n = *(const size_t *)(const void *)(base + fd->quantifier_offset);
		ProtobufCMessage *const *v =
		    *(ProtobufCMessage *const *const *)(const void *)(base + fd->offset);
		for (size_t i = 0; i < n; i++)
			if (v[i] && fz_pb_has_unknown(v[i]))
				return true;
		return false;
	}
	if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
	    *(const uint32_t *)(const void *)(base + fd->quantifier_offset) != fd->id)
		return false;
	const ProtobufCMessage *sub = *(ProtobufCMessage *const *)(const void *)(base + fd->offset);
	return sub && fz_pb_has_unknown(sub);
}

bool fz_pb_has_unknown(const ProtobufCMessage *m)
{
	if (m->n_unknown_fields)
		return true;
	for (unsigned i = 0; i < m->descriptor->n_fields; i++)
		if (field_has_unknown(m, &m->descriptor->fields[i]))
			return true;
	return false;
}
