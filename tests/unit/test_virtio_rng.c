/* virtio-rng alone, without a transport: rings in a real struct vm_mem, the
 * device kicked through the generic glue, requests of every shape, sources
 * that give data, run dry or fail, malformed chains (DEVICE_NEEDS_RESET and a
 * configuration interrupt), and the generic device object's own checks. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "virtio/rng.h"

#define RAM	 (4ull << 20)
#define DESC	 0x10000ull
#define AVAIL	 0x11000ull
#define USED	 0x12000ull
#define BUF	 0x100000ull
#define QSIZE	 8u
#define F_V1	 (1ull << VIRTIO_F_VERSION_1)
#define ALL_FEAT (F_V1 | 1ull << VIRTIO_RING_F_INDIRECT_DESC | 1ull << VIRTIO_RING_F_EVENT_IDX)

struct t {
	struct vm_mem m;
	struct virtio_rng r;
	uint16_t avail_idx;
	unsigned queue_irqs, config_irqs;
};

static void on_signal(void *ctx, enum virtio_irq kind, uint16_t q)
{
	struct t *t = ctx;
	assert_int_equal(q, 0);
	if (kind == VIRTIO_IRQ_QUEUE)
		t->queue_irqs++;
	else
		t->config_irqs++;
}

static uint8_t *host(struct t *t, uint64_t gpa)
{
	return vm_mem_ptr(&t->m, gpa, 1);
}

static void desc(struct t *t, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	uint8_t *p = host(t, DESC + 16ull * i);
	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

static void publish(struct t *t, uint16_t head)
{
	uint8_t *a = host(t, AVAIL);
	memcpy(a + 4 + 2 * (t->avail_idx % QSIZE), &head, 2);
	t->avail_idx++;
	memcpy(a + 2, &t->avail_idx, 2);
}

static uint16_t used_idx(struct t *t)
{
	uint16_t v;
	memcpy(&v, host(t, USED + 2), 2);
	return v;
}

static uint32_t used_len(struct t *t, uint16_t n)
{
	uint32_t v;
	memcpy(&v, host(t, USED + 4 + 8ull * (n % QSIZE) + 4), 4);
	return v;
}

/* What a transport does for a driver that set the queue up and DRIVER_OK. */
static void go_live(struct t *t)
{
	struct virtio_dev *d = &t->r.vdev;
	struct chv_err err = {0};
	const struct virtio_transport tr = {.signal = on_signal, .ctx = t};

	virtio_dev_set_transport(d, &tr);
	memset(host(t, DESC), 0, 0x3000);
	t->avail_idx = 0;
	d->driver_features = F_V1;
	assert_int_equal(vq_set_size(&d->vqs[0], QSIZE, &err), 0);
	assert_int_equal(vq_set_addrs(&d->vqs[0], DESC, AVAIL, USED, &err), 0);
	assert_int_equal(vq_enable(&d->vqs[0], d->driver_features, &err), 0);
	d->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
		    VIRTIO_STATUS_DRIVER_OK;
	virtio_dev_activate(d);
}

static int mem_setup(struct t *t)
{
	struct mem_layout l;
	struct chv_err err = {0};
	layout_compute(RAM, &l);
	return vm_mem_create(&t->m, &l, false, false, &err);
}

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	struct chv_err err = {0};
	if (!t || mem_setup(t)) {
		free(t);
		return -1;
	}
	if (virtio_rng_init(&t->r, &t->m, NULL, &err)) {
		vm_mem_destroy(&t->m);
		free(t);
		return -1;
	}
	go_live(t);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;
	virtio_rng_destroy(&t->r);
	vm_mem_destroy(&t->m);
	free(t);
	return 0;
}

/* Replaces the device's source (keeps the queue set-up). */
static void use_fd(struct t *t, int fd)
{
	close(t->r.fd);
	t->r.fd = fd;
}

static void kick(struct t *t)
{
	virtio_dev_kick(&t->r.vdev, 0);
}

static bool all_equal(const uint8_t *p, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (p[i] != p[0])
			return false;
	return true;
}

static void test_describes_itself(void **state)
{
	struct t *t = *state;
	struct virtio_dev *d = &t->r.vdev;
	assert_int_equal(d->device_id, VIRTIO_ID_RNG);
	assert_int_equal(d->features, ALL_FEAT);
	assert_int_equal(d->num_queues, 1);
	assert_int_equal(d->config_size, 0);
	assert_int_equal(d->vqs[0].max_size, VIRTIO_RNG_QUEUE_SIZE);
	assert_string_equal(d->name, "virtio-rng");
}

static void test_round_trip(void **state)
{
	struct t *t = *state;
	memset(host(t, BUF), 0, 4096);
	desc(t, 0, BUF, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	desc(t, 1, BUF + 1024, 48, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 0);
	kick(t);
	assert_int_equal(used_idx(t), 1);
	assert_int_equal(used_len(t, 0), 64);
	assert_int_equal(t->queue_irqs, 1);
	assert_false(all_equal(host(t, BUF), 16) && all_equal(host(t, BUF + 1024), 48) &&
		     host(t, BUF)[0] == host(t, BUF + 1024)[0]);
	/* Nothing past the buffers was touched. */
	assert_true(all_equal(host(t, BUF + 16), 1024 - 16) && host(t, BUF + 16)[0] == 0);
	assert_int_equal(t->r.requests, 1);
	assert_int_equal(t->r.bytes, 64);
}

static void test_many_requests_one_kick(void **state)
{
	struct t *t = *state;
	for (uint16_t i = 0; i < QSIZE; i++) {
		desc(t, i, BUF + 256ull * i, 32 + i, VIRTQ_DESC_F_WRITE, 0);
		publish(t, i);
	}
	kick(t);
	assert_int_equal(used_idx(t), QSIZE);
	for (uint16_t i = 0; i < QSIZE; i++)
		assert_int_equal(used_len(t, i), 32 + i);
	assert_int_equal(t->queue_irqs, 1);
	/* The next round reuses the ring after the wrap. */
	for (uint16_t i = 0; i < 3; i++)
		publish(t, i);
	kick(t);
	assert_int_equal(used_idx(t), QSIZE + 3);
}

static void test_source_contents_and_eof(void **state)
{
	struct t *t = *state;
	char path[] = "/tmp/virtio-rng-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	uint8_t pattern[40];
	for (unsigned i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(write(fd, pattern, sizeof(pattern)), sizeof(pattern));
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	use_fd(t, fd);

	desc(t, 0, BUF, 32, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 0);
	kick(t);
	assert_int_equal(used_len(t, 0), 32);
	assert_memory_equal(host(t, BUF), pattern, 32);
	/* 8 bytes left for a 32-byte request, then nothing at all. */
	desc(t, 1, BUF + 64, 32, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 1);
	desc(t, 2, BUF + 128, 32, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 2);
	kick(t);
	assert_int_equal(used_idx(t), 3);
	assert_int_equal(used_len(t, 1), 8);
	assert_memory_equal(host(t, BUF + 64), pattern + 32, 8);
	assert_int_equal(used_len(t, 2), 0);
	assert_int_equal(t->r.errors, 0);
	assert_int_equal(virtio_dev_status(&t->r.vdev) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
}

static void test_read_error_gives_zero_bytes(void **state)
{
	struct t *t = *state;
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	use_fd(t, fd);
	memset(host(t, BUF), 0xaa, 64);
	desc(t, 0, BUF, 64, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 0);
	kick(t);
	assert_int_equal(used_idx(t), 1);
	assert_int_equal(used_len(t, 0), 0);
	assert_true(all_equal(host(t, BUF), 64) && host(t, BUF)[0] == 0xaa);
	assert_int_equal(t->r.errors, 1);
	assert_int_equal(virtio_dev_status(&t->r.vdev) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
}

static void test_empty_pipe_does_not_block(void **state)
{
	struct t *t = *state;
	int p[2];
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	use_fd(t, p[0]);
	desc(t, 0, BUF, 64, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 0);
	kick(t);
	assert_int_equal(used_len(t, 0), 0);
	assert_int_equal(write(p[1], "abc", 3), 3);
	publish(t, 0);
	kick(t);
	assert_int_equal(used_len(t, 1), 3);
	assert_memory_equal(host(t, BUF), "abc", 3);
	close(p[1]);
}

static void test_request_size_is_bounded(void **state)
{
	struct t *t = *state;
	desc(t, 0, BUF, 4096, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	desc(t, 1, BUF + 4096, 2 * VIRTIO_RNG_MAX_REQUEST, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
	     2);
	desc(t, 2, BUF + 0x30000, 4096, VIRTQ_DESC_F_WRITE, 0);
	memset(host(t, BUF + 0x30000), 0, 4096);
	publish(t, 0);
	kick(t);
	assert_int_equal(used_len(t, 0), VIRTIO_RNG_MAX_REQUEST);
	/* The third buffer is past the bound and stays untouched. */
	assert_true(all_equal(host(t, BUF + 0x30000), 4096) && host(t, BUF + 0x30000)[0] == 0);
}

static void test_readable_buffers_are_left_alone(void **state)
{
	struct t *t = *state;
	memset(host(t, BUF), 0x55, 32);
	desc(t, 0, BUF, 32, VIRTQ_DESC_F_NEXT, 1);
	desc(t, 1, BUF + 64, 16, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 0);
	desc(t, 2, BUF + 128, 16, 0, 0); /* nothing writable at all */
	publish(t, 2);
	kick(t);
	assert_int_equal(used_idx(t), 2);
	assert_int_equal(used_len(t, 0), 16);
	assert_int_equal(used_len(t, 1), 0);
	assert_true(all_equal(host(t, BUF), 32) && host(t, BUF)[0] == 0x55);
}

static void test_broken_chain_needs_reset(void **state)
{
	struct t *t = *state;
	struct virtio_dev *d = &t->r.vdev;
	/* A descriptor pointing past guest RAM, then a loop. */
	desc(t, 0, RAM - 8, 64, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 0);
	kick(t);
	assert_true(virtio_dev_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(t->config_irqs, 1);
	assert_int_equal(used_idx(t), 0);
	assert_non_null(strstr(d->reset_reason.msg, "queue 0"));
	/* Kicks are ignored until a reset; a second failure is not signalled. */
	desc(t, 1, BUF, 16, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 1);
	kick(t);
	assert_int_equal(used_idx(t), 0);
	virtio_set_needs_reset(d, "again");
	assert_int_equal(t->config_irqs, 1);
	assert_null(strstr(d->reset_reason.msg, "again"));

	virtio_dev_reset(d);
	assert_int_equal(virtio_dev_status(d), 0);
	assert_false(d->vqs[0].enabled);
	assert_false(d->vqs[0].broken);
	assert_int_equal(d->driver_features, 0);
	go_live(t);
	desc(t, 0, BUF, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	desc(t, 1, BUF + 16, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0); /* loop */
	publish(t, 0);
	kick(t);
	assert_true(virtio_dev_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(t->config_irqs, 2);
}

static void test_no_config_irq_before_driver_ok(void **state)
{
	struct t *t = *state;
	struct virtio_dev *d = &t->r.vdev;
	d->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
	virtio_set_needs_reset(d, "test %d", 1);
	assert_true(virtio_dev_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(t->config_irqs, 0);
	assert_string_equal(d->reset_reason.msg, "test 1");
}

static void test_kick_gating(void **state)
{
	struct t *t = *state;
	struct virtio_dev *d = &t->r.vdev;
	desc(t, 0, BUF, 16, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 0);
	d->status &= (uint8_t)~VIRTIO_STATUS_DRIVER_OK;
	kick(t);
	assert_int_equal(used_idx(t), 0);
	d->status |= VIRTIO_STATUS_DRIVER_OK;
	virtio_dev_kick(d, 1); /* no such queue */
	virtio_dev_kick(d, 0xffff);
	assert_int_equal(used_idx(t), 0);
	kick(t);
	assert_int_equal(used_idx(t), 1);
}

static void test_config_signal_bumps_generation(void **state)
{
	struct t *t = *state;
	struct virtio_dev *d = &t->r.vdev;
	uint8_t g = d->config_generation;
	virtio_signal_config(d);
	assert_int_equal(d->config_generation, (uint8_t)(g + 1));
	assert_int_equal(t->config_irqs, 1);
	/* Signals for queues that do not exist go nowhere. */
	virtio_signal_queue(d, 7);
	assert_int_equal(t->queue_irqs, 0);
}

static void test_init_errors(void **state)
{
	(void)state;
	struct t t = {0};
	struct chv_err err = {0};
	assert_int_equal(mem_setup(&t), 0);

	assert_int_equal(virtio_rng_init(&t.r, &t.m, "/nonexistent/rng", &err), -ENOENT);
	assert_non_null(strstr(err.msg, "src=/nonexistent/rng"));
	virtio_rng_destroy(&t.r);
	assert_int_equal(virtio_rng_init(&t.r, &t.m, "/tmp", &err), -EISDIR);
	assert_non_null(strstr(err.msg, "src=/tmp"));
	virtio_rng_destroy(&t.r);
	assert_int_equal(virtio_rng_init_fd(&t.r, &t.m, -1, &err), -EBADF);
	virtio_rng_destroy(&t.r);
	assert_int_equal(virtio_rng_init(&t.r, NULL, NULL, &err), -EINVAL);
	virtio_rng_destroy(&t.r);

	/* A zeroed device owns no fd: fd 0 stays as it was. */
	struct virtio_rng zero;
	memset(&zero, 0, sizeof(zero));
	int fd0 = fcntl(0, F_GETFD);
	virtio_rng_destroy(&zero);
	assert_int_equal(fcntl(0, F_GETFD), fd0);

	/* The generic object checks the description. */
	static const struct virtio_dev_ops none = {0};
	struct virtio_dev d;
	struct virtio_dev_desc desc = {.name = "x", .num_queues = 1, .queue_max = 8};
	assert_int_equal(virtio_dev_init(&d, &none, &t.m, &desc, &err), -EINVAL);
	virtio_dev_destroy(&d);
	assert_int_equal(virtio_rng_init(&t.r, &t.m, NULL, &err), 0);
	const struct virtio_dev_ops *ops = t.r.vdev.ops;
	desc.num_queues = 0;
	assert_int_equal(virtio_dev_init(&d, ops, &t.m, &desc, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "num_queues=0"));
	desc.num_queues = VIRTIO_MAX_QUEUES + 1;
	assert_int_equal(virtio_dev_init(&d, ops, &t.m, &desc, &err), -EINVAL);
	desc.num_queues = 2;
	desc.queue_max = 100;
	assert_int_equal(virtio_dev_init(&d, ops, &t.m, &desc, &err), -EINVAL);
	desc.queue_max = 8;
	desc.config_size = VIRTIO_MAX_CONFIG + 1;
	assert_int_equal(virtio_dev_init(&d, ops, &t.m, &desc, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "config_size"));
	desc.config_size = 8;
	desc.name = NULL;
	assert_int_equal(virtio_dev_init(&d, ops, &t.m, &desc, &err), -EINVAL);
	desc.name = "x";
	assert_int_equal(virtio_dev_init(&d, ops, &t.m, &desc, &err), 0);
	assert_int_equal(d.features, F_V1);
	assert_int_equal(d.num_queues, 2);
	virtio_dev_destroy(&d);
	virtio_dev_destroy(&d);
	virtio_rng_destroy(&t.r);
	vm_mem_destroy(&t.m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_describes_itself, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_requests_one_kick, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_source_contents_and_eof, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_error_gives_zero_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_pipe_does_not_block, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_request_size_is_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readable_buffers_are_left_alone, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_broken_chain_needs_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_config_irq_before_driver_ok, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kick_gating, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_config_signal_bumps_generation, setup, teardown),
	    cmocka_unit_test(test_init_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
