/* virtio-net without a transport: rings in a real struct vm_mem, a fake
 * guest driver, and two backends. A SOCK_SEQPACKET socketpair stands in for
 * the tap in the parser-level tests (frames keep their boundaries); a real
 * tap in a private network namespace (root and /dev/net/tun only, skipped
 * otherwise) exchanges UDP and ARP with the host's own stack. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "virtio/net.h"
#include "virtio/tap.h"

#define RAM	 (4ull << 20)
#define RINGS	 0x10000ull
#define BUF	 0x100000ull
#define QSIZE	 16u
#define MAXQ	 (2 * VIRTIO_NET_MAX_PAIRS + 1)
#define HDR	 VIRTIO_NET_HDR_LEN
#define F(b)	 (1ull << (b))
#define F_V1	 F(VIRTIO_F_VERSION_1)
#define TAP_NAME "chvtest0"
#define HOST_IP	 "10.77.0.1"
#define GUEST_IP "10.77.0.2"

static const uint8_t guest_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
static bool have_tap;

struct g {
	struct vm_mem m;
	struct virtio_net n;
	uint16_t pairs;
	int peer[VIRTIO_NET_MAX_PAIRS];
	int devfd[VIRTIO_NET_MAX_PAIRS];
	struct tap tap;
	bool tap_mode;
	uint16_t avail_idx[MAXQ];
	uint16_t next_desc[MAXQ];
	uint64_t bump;
	unsigned queue_irqs[MAXQ], config_irqs;
	bool poll_on[VIRTIO_NET_MAX_PAIRS];
	unsigned poll_calls;
	unsigned cfg_calls, cfg_hdr, cfg_off;
	int cfg_fail;
};

/* ---- the fake driver ---- */

static void on_signal(void *ctx, enum virtio_irq kind, uint16_t q)
{
	struct g *g = ctx;
	if (kind == VIRTIO_IRQ_QUEUE) {
		assert_true(q < MAXQ);
		g->queue_irqs[q]++;
	} else {
		g->config_irqs++;
	}
}

static void on_poll(void *ctx, uint16_t pair, int fd, bool on)
{
	struct g *g = ctx;
	assert_true(pair < g->pairs);
	assert_int_equal(fd, g->devfd[pair]);
	g->poll_on[pair] = on;
	g->poll_calls++;
}

static int on_configure(void *ctx, unsigned hdr_len, unsigned offloads)
{
	struct g *g = ctx;
	g->cfg_calls++;
	g->cfg_hdr = hdr_len;
	g->cfg_off = offloads;
	return g->cfg_fail;
}

static uint8_t *host(struct g *g, uint64_t gpa)
{
	return vm_mem_ptr(&g->m, gpa, 1);
}

static uint64_t ring(uint16_t q, unsigned which)
{
	return RINGS + 0x4000ull * q + 0x1000ull * which;
}

static void desc(struct g *g, uint16_t q, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	uint8_t *p = host(g, ring(q, 0) + 16ull * i);
	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

static void publish(struct g *g, uint16_t q, uint16_t head)
{
	uint8_t *a = host(g, ring(q, 1));
	memcpy(a + 4 + 2 * (g->avail_idx[q] % QSIZE), &head, 2);
	g->avail_idx[q]++;
	memcpy(a + 2, &g->avail_idx[q], 2);
}

static uint16_t used_idx(struct g *g, uint16_t q)
{
	uint16_t v;
	memcpy(&v, host(g, ring(q, 2) + 2), 2);
	return v;
}

static uint32_t used_id(struct g *g, uint16_t q, uint16_t n)
{
	uint32_t v;
	memcpy(&v, host(g, ring(q, 2) + 4 + 8ull * (n % QSIZE)), 4);
	return v;
}

static uint32_t used_len(struct g *g, uint16_t q, uint16_t n)
{
	uint32_t v;
	memcpy(&v, host(g, ring(q, 2) + 4 + 8ull * (n % QSIZE) + 4), 4);
	return v;
}

static uint64_t alloc(struct g *g, uint32_t len)
{
	uint64_t a = g->bump;
	g->bump = (g->bump + len + 63) & ~63ull;
	assert_true(g->bump < RAM);
	return a;
}

static uint16_t take_desc(struct g *g, uint16_t q)
{
	return (uint16_t)(g->next_desc[q]++ % QSIZE);
}

static void go_live(struct g *g, uint64_t features)
{
	struct virtio_dev *d = &g->n.vdev;
	struct chv_err err = {0};
	const struct virtio_transport tr = {.signal = on_signal, .ctx = g};
	const struct virtio_net_poll poll = {.set = on_poll, .ctx = g};

	virtio_dev_set_transport(d, &tr);
	virtio_net_set_poll(&g->n, &poll);
	memset(host(g, RINGS), 0, 0x4000ull * MAXQ);
	memset(g->avail_idx, 0, sizeof(g->avail_idx));
	memset(g->next_desc, 0, sizeof(g->next_desc));
	g->bump = BUF;
	assert_int_equal(features & ~d->features, 0);
	d->driver_features = features;
	for (uint16_t q = 0; q < d->num_queues; q++) {
		assert_int_equal(vq_set_size(&d->vqs[q], QSIZE, &err), 0);
		assert_int_equal(vq_set_addrs(&d->vqs[q], ring(q, 0), ring(q, 1), ring(q, 2), &err),
				 0);
		assert_int_equal(vq_enable(&d->vqs[q], features, &err), 0);
	}
	d->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
		    VIRTIO_STATUS_DRIVER_OK;
	virtio_dev_activate(d);
}

static int mem_setup(struct g *g)
{
	struct mem_layout l;
	struct chv_err err = {0};
	layout_compute(RAM, &l);
	return vm_mem_create(&g->m, &l, false, false, &err);
}

/* The next make_with() offers checksum offloads without TSO. */
static bool make_no_tso;

static struct g *make_with(uint16_t pairs, uint16_t mtu, struct ratelimit *rl)
{
	struct g *g = calloc(1, sizeof(*g));
	struct chv_err err = {0};
	struct virtio_net_backend be = {0};
	assert_non_null(g);
	assert_int_equal(mem_setup(g), 0);
	g->pairs = pairs;
	for (uint16_t k = 0; k < pairs; k++) {
		int sv[2];
		assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
		assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
		assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
		g->devfd[k] = be.fds[k] = sv[0];
		g->peer[k] = sv[1];
	}
	be.nfds = pairs;
	be.configure = on_configure;
	be.ctx = g;
	be.host_offloads = true;
	be.guest_offloads = true;
	struct virtio_net_params p = {
	    .mtu = mtu, .queue_pairs = pairs, .rl = rl, .no_tso = make_no_tso};
	memcpy(p.mac, guest_mac, 6);
	int rc = virtio_net_init(&g->n, &g->m, &p, &be, &err);
	if (rc)
		fail_msg("virtio_net_init: %s", err.msg);
	return g;
}

static struct g *make(uint16_t pairs, uint16_t mtu)
{
	return make_with(pairs, mtu, NULL);
}

static int setup(void **state)
{
	*state = make(1, 1500);
	go_live(*state, F_V1);
	return 0;
}

static int setup_mrg(void **state)
{
	*state = make(1, 0);
	go_live(*state, F_V1 | F(VIRTIO_NET_F_MRG_RXBUF));
	return 0;
}

static int teardown(void **state)
{
	struct g *g = *state;
	virtio_net_destroy(&g->n);
	if (g->tap_mode) {
		tap_close(&g->tap);
	} else {
		for (uint16_t k = 0; k < g->pairs; k++) {
			close(g->devfd[k]);
			close(g->peer[k]);
		}
	}
	vm_mem_destroy(&g->m);
	free(g);
	return 0;
}

static struct virtio_net_counters counters(struct g *g)
{
	struct virtio_net_counters c;
	virtio_net_get_counters(&g->n, &c);
	return c;
}

static bool needs_reset(struct g *g)
{
	return virtio_dev_status(&g->n.vdev) & VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

/* Guest TX: header in one descriptor, the frame in one or two more. */
static void guest_send(struct g *g, uint16_t pair, const uint8_t *hdr, const void *frame,
		       uint32_t len)
{
	uint16_t q = (uint16_t)(2 * pair + 1);
	uint64_t h = alloc(g, HDR), f = alloc(g, len ? len : 1);
	memcpy(host(g, h), hdr, HDR);
	if (len)
		memcpy(host(g, f), frame, len);
	uint16_t d0 = take_desc(g, q), d1 = take_desc(g, q), d2 = take_desc(g, q);
	uint32_t first = len / 2;
	if (len < 2) {
		desc(g, q, d0, h, HDR, len ? VIRTQ_DESC_F_NEXT : 0, d1);
		if (len)
			desc(g, q, d1, f, len, 0, 0);
	} else {
		desc(g, q, d0, h, HDR, VIRTQ_DESC_F_NEXT, d1);
		desc(g, q, d1, f, first, VIRTQ_DESC_F_NEXT, d2);
		desc(g, q, d2, f + first, len - first, 0, 0);
	}
	publish(g, q, d0);
	virtio_dev_kick(&g->n.vdev, q);
}

/* One writable buffer of len bytes in the receive queue of pair. */
static uint64_t guest_rx_buf(struct g *g, uint16_t pair, uint32_t len, bool kick)
{
	uint16_t q = (uint16_t)(2 * pair);
	uint64_t a = alloc(g, len);
	memset(host(g, a), 0xee, len);
	uint16_t d = take_desc(g, q);
	desc(g, q, d, a, len, VIRTQ_DESC_F_WRITE, 0);
	publish(g, q, d);
	if (kick)
		virtio_dev_kick(&g->n.vdev, q);
	return a;
}

static void peer_send(struct g *g, uint16_t pair, const uint8_t *hdr, const void *frame,
		      uint32_t len)
{
	struct iovec iov[2] = {{(void *)hdr, HDR}, {(void *)frame, len}};
	assert_int_equal(writev(g->peer[pair], iov, 2), HDR + len);
}

static ssize_t peer_recv(struct g *g, uint16_t pair, uint8_t *buf, size_t len)
{
	return recv(g->peer[pair], buf, len, MSG_DONTWAIT);
}

static void pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + seed);
}

static const uint8_t plain_hdr[HDR] = {0};

/* ---- device description ---- */

static void test_describes_itself(void **state)
{
	struct g *g = *state;
	struct virtio_dev *d = &g->n.vdev;
	assert_int_equal(d->device_id, VIRTIO_ID_NET);
	assert_int_equal(d->num_queues, 2);
	assert_int_equal(d->config_size, VIRTIO_NET_CFG_SIZE);
	assert_true(d->features & F(VIRTIO_NET_F_MAC));
	assert_true(d->features & F(VIRTIO_NET_F_MTU));
	assert_true(d->features & F(VIRTIO_NET_F_MRG_RXBUF));
	assert_true(d->features & F(VIRTIO_NET_F_CSUM));
	assert_true(d->features & F(VIRTIO_NET_F_GUEST_TSO4));
	assert_false(d->features & F(VIRTIO_NET_F_MQ));
	assert_false(d->features & F(VIRTIO_NET_F_CTRL_VQ));
	uint8_t cfg[VIRTIO_NET_CFG_SIZE + 4];
	for (uint32_t i = 0; i < sizeof(cfg); i += 4)
		d->ops->config_read(d, i, cfg + i, 4);
	assert_memory_equal(cfg, guest_mac, 6);
	assert_int_equal(cfg[6] | cfg[7] << 8, VIRTIO_NET_S_LINK_UP);
	assert_int_equal(cfg[8] | cfg[9] << 8, 1);
	assert_int_equal(cfg[10] | cfg[11] << 8, 1500);
	assert_int_equal(cfg[12] | cfg[13] | cfg[14] | cfg[15], 0);
	/* Unaligned and one-byte reads. */
	uint8_t b[2];
	d->ops->config_read(d, 5, b, 2);
	assert_int_equal(b[0], guest_mac[5]);
	assert_int_equal(b[1], VIRTIO_NET_S_LINK_UP);
	/* Activation told the backend, and asked for the fd. */
	assert_int_equal(g->cfg_hdr, HDR);
	assert_int_equal(g->cfg_off, 0);
	assert_true(g->poll_on[0]);
}

/* ---- transmit ---- */

static void test_tx_frame(void **state)
{
	struct g *g = *state;
	uint8_t frame[300], got[400];
	pattern(frame, sizeof(frame), 1);
	guest_send(g, 0, plain_hdr, frame, sizeof(frame));
	assert_int_equal(used_idx(g, 1), 1);
	assert_int_equal(used_len(g, 1, 0), 0);
	assert_int_equal(g->queue_irqs[1], 1);
	assert_int_equal(peer_recv(g, 0, got, sizeof(got)), HDR + sizeof(frame));
	assert_memory_equal(got, plain_hdr, HDR);
	assert_memory_equal(got + HDR, frame, sizeof(frame));
	struct virtio_net_counters c = counters(g);
	assert_int_equal(c.tx_packets, 1);
	assert_int_equal(c.tx_bytes, sizeof(frame));
	assert_int_equal(c.tx_drops + c.tx_errors, 0);
	assert_int_equal(c.notifications, 1);
	/* Several chains, one kick. */
	for (int i = 0; i < 4; i++) {
		uint16_t d = take_desc(g, 1);
		uint64_t a = alloc(g, HDR + 20);
		memset(host(g, a), 0, HDR);
		memset(host(g, a + HDR), i, 20);
		desc(g, 1, d, a, HDR + 20, 0, 0);
		publish(g, 1, d);
	}
	virtio_dev_kick(&g->n.vdev, 1);
	assert_int_equal(used_idx(g, 1), 5);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(peer_recv(g, 0, got, sizeof(got)), HDR + 20);
		assert_int_equal(got[HDR + 19], i);
	}
	assert_int_equal(counters(g).tx_packets, 5);
}

static void test_tx_offload_header_passes_through(void **state)
{
	struct g *g = *state;
	struct virtio_dev *d = &g->n.vdev;
	virtio_dev_reset(d);
	go_live(g,
		F_V1 | F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_ECN));
	const uint8_t hdr[HDR] = {VIRTIO_NET_HDR_F_NEEDS_CSUM,
				  VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN,
				  54,
				  0,
				  0xa8,
				  0x05,
				  34,
				  0,
				  16,
				  0,
				  0,
				  0};
	uint8_t frame[3000], got[3100];
	pattern(frame, sizeof(frame), 7);
	guest_send(g, 0, hdr, frame, sizeof(frame));
	assert_int_equal(peer_recv(g, 0, got, sizeof(got)), HDR + sizeof(frame));
	assert_memory_equal(got, hdr, HDR);
	assert_int_equal(counters(g).tx_packets, 1);
}

struct bad_tx {
	const char *what;
	uint64_t features;
	uint8_t hdr0, hdr1;
	uint32_t len; /* frame length after the header */
	int shape;    /* 0: normal, 1: short header, 2: writable descriptor */
	bool error;   /* counted as an error, else as a drop */
};

static void test_tx_malformed_table(void **state)
{
	struct g *g = *state;
	struct virtio_dev *d = &g->n.vdev;
	static const struct bad_tx cases[] = {
	    {"shorter than the header", 0, 0, 0, 0, 1, false},
	    {"longer than 64 KiB + header", 0, 0, 0, VIRTIO_NET_MAX_FRAME + 1, 0, false},
	    {"writable descriptor", 0, 0, 0, 64, 2, true},
	    {"NEEDS_CSUM without CSUM", 0, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 64, 0, true},
	    {"TSO4 without HOST_TSO4", F(VIRTIO_NET_F_CSUM), 1, VIRTIO_NET_HDR_GSO_TCPV4, 64, 0,
	     true},
	    {"TSO6 without HOST_TSO6", F(VIRTIO_NET_F_CSUM), 1, VIRTIO_NET_HDR_GSO_TCPV6, 64, 0,
	     true},
	    {"UFO never offered", F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4), 1,
	     VIRTIO_NET_HDR_GSO_UDP, 64, 0, true},
	    {"ECN alone", F(VIRTIO_NET_F_HOST_ECN) | F(VIRTIO_NET_F_CSUM), 0,
	     VIRTIO_NET_HDR_GSO_ECN, 64, 0, true},
	    {"ECN not negotiated", F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4), 1,
	     VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, 64, 0, true},
	    {"unknown flags", F(VIRTIO_NET_F_CSUM), 0x80, 0, 64, 0, true},
	    {"unknown gso type", F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4), 1, 2, 64, 0,
	     true},
	};
	static uint8_t big[VIRTIO_NET_MAX_FRAME + 1];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_tx *c = &cases[i];
		virtio_dev_reset(d);
		go_live(g, F_V1 | c->features);
		uint8_t hdr[HDR] = {c->hdr0, c->hdr1};
		struct virtio_net_counters before = counters(g);
		if (c->shape == 0) {
			guest_send(g, 0, hdr, big, c->len);
		} else {
			uint64_t a = alloc(g, 128);
			if (c->shape == 1) {
				desc(g, 1, 0, a, HDR - 4, 0, 0);
			} else {
				desc(g, 1, 0, a, HDR + c->len, VIRTQ_DESC_F_NEXT, 1);
				desc(g, 1, 1, a + 128, 16, VIRTQ_DESC_F_WRITE, 0);
			}
			publish(g, 1, 0);
			virtio_dev_kick(d, 1);
		}
		struct virtio_net_counters after = counters(g);
		uint8_t got[64];
		if (used_idx(g, 1) != 1 || used_len(g, 1, 0) != 0 || needs_reset(g) ||
		    peer_recv(g, 0, got, sizeof(got)) >= 0 || after.tx_packets != before.tx_packets)
			fail_msg("case '%s' was not refused cleanly", c->what);
		if (c->error)
			assert_int_equal(after.tx_errors, before.tx_errors + 1);
		else
			assert_int_equal(after.tx_drops, before.tx_drops + 1);
		/* The queue goes on working. */
		guest_send(g, 0, plain_hdr, "hello", 5);
		assert_int_equal(used_idx(g, 1), 2);
		assert_int_equal(peer_recv(g, 0, got, sizeof(got)), HDR + 5);
	}
}

static void test_tx_bad_ring_needs_reset(void **state)
{
	struct g *g = *state;
	desc(g, 1, 0, RAM - 8, 64, 0, 0);
	publish(g, 1, 0);
	virtio_dev_kick(&g->n.vdev, 1);
	assert_true(needs_reset(g));
	assert_int_equal(g->config_irqs, 1);
	assert_int_equal(used_idx(g, 1), 0);
	/* Reset and go on. */
	virtio_dev_reset(&g->n.vdev);
	assert_false(g->poll_on[0]);
	go_live(g, F_V1);
	guest_send(g, 0, plain_hdr, "x", 1);
	assert_int_equal(used_idx(g, 1), 1);
}

static void test_tx_backend_gone(void **state)
{
	struct g *g = *state;
	close(g->peer[0]);
	g->peer[0] = socket(AF_UNIX, SOCK_DGRAM, 0); /* something to close later */
	guest_send(g, 0, plain_hdr, "abc", 3);
	assert_int_equal(used_idx(g, 1), 1);
	struct virtio_net_counters c = counters(g);
	assert_int_equal(c.tx_packets, 0);
	assert_int_equal(c.tx_drops + c.tx_errors, 1);
	assert_false(needs_reset(g));
}

/* ---- receive ---- */

static void test_rx_frame(void **state)
{
	struct g *g = *state;
	uint8_t frame[200];
	pattern(frame, sizeof(frame), 3);
	const uint8_t hdr[HDR] = {VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 9};
	uint64_t a = guest_rx_buf(g, 0, 2048, true);
	assert_true(g->poll_on[0]);
	peer_send(g, 0, hdr, frame, sizeof(frame));
	virtio_net_rx_ready(&g->n, 0);
	assert_int_equal(used_idx(g, 0), 1);
	assert_int_equal(used_len(g, 0, 0), HDR + sizeof(frame));
	assert_int_equal(host(g, a)[0], VIRTIO_NET_HDR_F_DATA_VALID);
	/* num_buffers is the device's: 1 without MRG_RXBUF. */
	assert_int_equal(host(g, a)[10], 1);
	assert_int_equal(host(g, a)[11], 0);
	assert_memory_equal(host(g, a + HDR), frame, sizeof(frame));
	assert_int_equal(host(g, a + HDR + sizeof(frame))[0], 0xee);
	assert_int_equal(g->queue_irqs[0], 1);
	struct virtio_net_counters c = counters(g);
	assert_int_equal(c.rx_packets, 1);
	assert_int_equal(c.rx_bytes, sizeof(frame));
	/* Nothing more to read: still polling, the buffers are not used up. */
	virtio_net_rx_ready(&g->n, 0);
	assert_int_equal(used_idx(g, 0), 1);
	/* Out of buffers now: polling stops until a kick. */
	peer_send(g, 0, hdr, frame, 10);
	virtio_net_rx_ready(&g->n, 0);
	assert_false(g->poll_on[0]);
	assert_false(virtio_net_rx_polling(&g->n, 0));
	a = guest_rx_buf(g, 0, 2048, true);
	assert_int_equal(used_idx(g, 0), 2);
	assert_int_equal(used_len(g, 0, 1), HDR + 10);
	assert_false(g->poll_on[0]); /* that buffer went at once */
	guest_rx_buf(g, 0, 2048, true);
	assert_true(g->poll_on[0]);
}

static void test_rx_too_big_without_mrg_is_dropped(void **state)
{
	struct g *g = *state;
	uint8_t frame[1000];
	pattern(frame, sizeof(frame), 5);
	uint64_t a = guest_rx_buf(g, 0, 512, true);
	peer_send(g, 0, plain_hdr, frame, sizeof(frame));
	peer_send(g, 0, plain_hdr, frame, 100);
	virtio_net_rx_ready(&g->n, 0);
	/* The big one is gone, the small one took the same buffer. */
	assert_int_equal(used_idx(g, 0), 1);
	assert_int_equal(used_len(g, 0, 0), HDR + 100);
	assert_memory_equal(host(g, a + HDR), frame, 100);
	struct virtio_net_counters c = counters(g);
	assert_int_equal(c.rx_drops, 1);
	assert_int_equal(c.rx_packets, 1);
}

static void test_rx_chain_across_descriptors(void **state)
{
	struct g *g = *state;
	uint8_t frame[100];
	pattern(frame, sizeof(frame), 9);
	/* Header split over two descriptors, the rest in a third. */
	uint64_t a = alloc(g, 4), b = alloc(g, 20), c = alloc(g, 200);
	desc(g, 0, 0, a, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	desc(g, 0, 1, b, 20, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
	desc(g, 0, 2, c, 200, VIRTQ_DESC_F_WRITE, 0);
	publish(g, 0, 0);
	peer_send(g, 0, plain_hdr, frame, sizeof(frame));
	virtio_dev_kick(&g->n.vdev, 0);
	assert_int_equal(used_idx(g, 0), 1);
	assert_int_equal(used_len(g, 0, 0), HDR + 100);
	assert_int_equal(host(g, b)[6], 1); /* num_buffers, byte 10 of the header */
	assert_memory_equal(host(g, b + 8), frame, 12);
	assert_memory_equal(host(g, c), frame + 12, 88);
}

static void test_rx_mergeable(void **state)
{
	struct g *g = *state;
	uint8_t frame[150];
	pattern(frame, sizeof(frame), 11);
	uint64_t a[3];
	for (int i = 0; i < 3; i++)
		a[i] = guest_rx_buf(g, 0, 64, false);
	virtio_dev_kick(&g->n.vdev, 0);
	peer_send(g, 0, plain_hdr, frame, sizeof(frame));
	virtio_net_rx_ready(&g->n, 0);
	assert_int_equal(used_idx(g, 0), 3);
	assert_int_equal(used_len(g, 0, 0), 64);
	assert_int_equal(used_len(g, 0, 1), 64);
	assert_int_equal(used_len(g, 0, 2), HDR + 150 - 128);
	for (uint16_t i = 0; i < 3; i++)
		assert_int_equal(used_id(g, 0, i), i);
	assert_int_equal(host(g, a[0])[10], 3);
	assert_memory_equal(host(g, a[0] + HDR), frame, 64 - HDR);
	assert_memory_equal(host(g, a[1]), frame + 64 - HDR, 64);
	assert_memory_equal(host(g, a[2]), frame + 128 - HDR, 150 - 128 + HDR);
	assert_int_equal(g->queue_irqs[0], 1);
	assert_int_equal(counters(g).rx_packets, 1);

	/* A small frame in a big buffer: num_buffers 1. */
	uint64_t b = guest_rx_buf(g, 0, 4096, true);
	peer_send(g, 0, plain_hdr, frame, 20);
	virtio_net_rx_ready(&g->n, 0);
	assert_int_equal(used_idx(g, 0), 4);
	assert_int_equal(host(g, b)[10], 1);
}

static void test_rx_mergeable_waits_for_buffers(void **state)
{
	struct g *g = *state;
	uint8_t frame[1000];
	pattern(frame, sizeof(frame), 13);
	guest_rx_buf(g, 0, 256, true);
	guest_rx_buf(g, 0, 256, true);
	peer_send(g, 0, plain_hdr, frame, sizeof(frame));
	virtio_net_rx_ready(&g->n, 0);
	/* 512 bytes of buffers for 1012: nothing used, nothing lost. */
	assert_int_equal(used_idx(g, 0), 0);
	assert_false(g->poll_on[0]);
	assert_int_equal(counters(g).rx_drops, 0);
	uint64_t c = guest_rx_buf(g, 0, 256, true);
	assert_int_equal(used_idx(g, 0), 0);
	guest_rx_buf(g, 0, 512, true);
	assert_int_equal(used_idx(g, 0), 4);
	assert_int_equal(used_len(g, 0, 3), HDR + 1000 - 768);
	assert_memory_equal(host(g, c), frame + 512 - HDR, 256);
	/* Every buffer used up: not watching the backend again until a kick. */
	assert_false(g->poll_on[0]);
	assert_int_equal(counters(g).rx_packets, 1);
}

static void test_rx_mergeable_never_fits(void **state)
{
	struct g *g = *state;
	static uint8_t frame[VIRTIO_NET_MAX_FRAME];
	/* A whole ring of tiny buffers can never hold a 60 KiB frame. */
	for (unsigned i = 0; i < QSIZE; i++)
		guest_rx_buf(g, 0, 64, false);
	virtio_dev_kick(&g->n.vdev, 0);
	peer_send(g, 0, plain_hdr, frame, 60000);
	peer_send(g, 0, plain_hdr, frame, 30);
	virtio_net_rx_ready(&g->n, 0);
	assert_int_equal(counters(g).rx_drops, 1);
	assert_int_equal(used_idx(g, 0), 1);
	assert_int_equal(used_len(g, 0, 0), HDR + 30);
}

static void test_rx_no_buffers_frames_wait(void **state)
{
	struct g *g = *state;
	uint8_t got[64];
	for (int i = 0; i < 3; i++) {
		uint8_t f[40];
		memset(f, 0x10 + i, sizeof(f));
		peer_send(g, 0, plain_hdr, f, sizeof(f));
	}
	virtio_net_rx_ready(&g->n, 0);
	assert_false(g->poll_on[0]);
	assert_int_equal(used_idx(g, 0), 0);
	/* All three still queued in the backend. */
	int avail = 0;
	assert_int_equal(ioctl(g->devfd[0], FIONREAD, &avail), 0);
	assert_true(avail >= (int)(40 + HDR));
	(void)got;
	uint64_t a[3];
	for (int i = 0; i < 3; i++)
		a[i] = guest_rx_buf(g, 0, 128, false);
	virtio_dev_kick(&g->n.vdev, 0);
	assert_int_equal(used_idx(g, 0), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(host(g, a[i])[HDR], 0x10 + i);
	assert_int_equal(counters(g).rx_drops, 0);
	assert_false(g->poll_on[0]); /* all three buffers taken */
	guest_rx_buf(g, 0, 128, true);
	assert_true(g->poll_on[0]);
}

static void test_rx_malformed_chains(void **state)
{
	struct g *g = *state;
	/* Readable buffer, buffer shorter than the header, then a good one. */
	uint64_t r = alloc(g, 64), s = alloc(g, 64), ok = alloc(g, 256);
	memset(host(g, r), 0x77, 64);
	desc(g, 0, 0, r, 64, 0, 0);
	desc(g, 0, 1, s, HDR - 1, VIRTQ_DESC_F_WRITE, 0);
	desc(g, 0, 2, ok, 256, VIRTQ_DESC_F_WRITE, 0);
	publish(g, 0, 0);
	publish(g, 0, 1);
	publish(g, 0, 2);
	peer_send(g, 0, plain_hdr, "frame", 5);
	virtio_dev_kick(&g->n.vdev, 0);
	assert_int_equal(used_idx(g, 0), 3);
	assert_int_equal(used_len(g, 0, 0), 0);
	assert_int_equal(used_len(g, 0, 1), 0);
	assert_int_equal(used_id(g, 0, 2), 2);
	assert_int_equal(used_len(g, 0, 2), HDR + 5);
	assert_int_equal(host(g, r)[0], 0x77);
	assert_memory_equal(host(g, ok + HDR), "frame", 5);
	assert_int_equal(counters(g).rx_errors, 2);
	assert_false(needs_reset(g));
	/* A frame shorter than a header from the backend. */
	guest_rx_buf(g, 0, 256, true);
	assert_int_equal(write(g->peer[0], "tiny", 4), 4);
	virtio_net_rx_ready(&g->n, 0);
	assert_int_equal(counters(g).rx_errors, 3);
	assert_int_equal(used_idx(g, 0), 3);
	/* A ring pointing out of RAM breaks the queue. */
	desc(g, 0, 5, RAM + 4096, 64, VIRTQ_DESC_F_WRITE, 0);
	publish(g, 0, 5);
	peer_send(g, 0, plain_hdr, "x", 1);
	peer_send(g, 0, plain_hdr, "y", 1);
	virtio_net_rx_ready(&g->n, 0);
	virtio_net_rx_ready(&g->n, 0);
	assert_true(needs_reset(g));
	assert_false(g->poll_on[0]);
}

static void test_rx_mergeable_readable_mid_frame(void **state)
{
	struct g *g = *state;
	uint8_t frame[100];
	pattern(frame, sizeof(frame), 2);
	uint64_t a = alloc(g, 64), r = alloc(g, 64), c = alloc(g, 256);
	desc(g, 0, 0, a, 64, VIRTQ_DESC_F_WRITE, 0);
	desc(g, 0, 1, r, 64, 0, 0);
	desc(g, 0, 2, c, 256, VIRTQ_DESC_F_WRITE, 0);
	for (uint16_t i = 0; i < 3; i++)
		publish(g, 0, i);
	memset(host(g, r), 0x42, 64);
	peer_send(g, 0, plain_hdr, frame, sizeof(frame));
	virtio_dev_kick(&g->n.vdev, 0);
	/* The readable one is skipped (0 bytes) but counted in num_buffers. */
	assert_int_equal(used_idx(g, 0), 3);
	assert_int_equal(host(g, a)[10], 3);
	assert_int_equal(used_len(g, 0, 1), 0);
	assert_int_equal(host(g, r)[0], 0x42);
	assert_memory_equal(host(g, c), frame + 64 - HDR, 100 - 64 + HDR);
	assert_int_equal(counters(g).rx_errors, 1);
}

/* ---- activation, offloads, reset ---- */

/* offload_tso=off: checksum offloads still offered, segmentation not. */
static void test_no_tso_offer(void **state)
{
	(void)state;
	const uint64_t tso = F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_TSO6) |
			     F(VIRTIO_NET_F_HOST_ECN) | F(VIRTIO_NET_F_GUEST_TSO4) |
			     F(VIRTIO_NET_F_GUEST_TSO6) | F(VIRTIO_NET_F_GUEST_ECN);
	const uint64_t csum = F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_GUEST_CSUM);
	struct g *g = make(1, 1500);
	assert_int_equal(g->n.vdev.features & (tso | csum), tso | csum);
	void *st = g;
	teardown(&st);
	make_no_tso = true;
	g = make(1, 1500);
	make_no_tso = false;
	assert_int_equal(g->n.vdev.features & (tso | csum), csum);
	st = g;
	teardown(&st);
}

static void test_offloads_follow_negotiation(void **state)
{
	struct g *g = *state;
	struct virtio_dev *d = &g->n.vdev;
	virtio_dev_reset(d);
	assert_int_equal(g->cfg_off, 0);
	go_live(g, F_V1 | F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4) |
		       F(VIRTIO_NET_F_GUEST_ECN));
	assert_int_equal(g->cfg_hdr, HDR);
	assert_int_equal(g->cfg_off, VIRTIO_NET_OFFLOAD_CSUM | VIRTIO_NET_OFFLOAD_TSO4 |
					 VIRTIO_NET_OFFLOAD_TSO_ECN);
	virtio_dev_reset(d);
	assert_int_equal(g->cfg_off, 0);
	/* TSO without checksum offload makes no sense to the backend. */
	go_live(g, F_V1 | F(VIRTIO_NET_F_GUEST_TSO6));
	assert_int_equal(g->cfg_off, 0);
	virtio_dev_reset(d);
	go_live(g, F_V1 | F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO6));
	assert_int_equal(g->cfg_off, VIRTIO_NET_OFFLOAD_CSUM | VIRTIO_NET_OFFLOAD_TSO6);
	/* Legacy-sized header without VERSION_1 and MRG_RXBUF. */
	virtio_dev_reset(d);
	go_live(g, 0);
	assert_int_equal(g->cfg_hdr, VIRTIO_NET_HDR_LEN_LEGACY);
	uint8_t got[64];
	guest_send(g, 0, plain_hdr, "abcdef", 6); /* 12 + 6 readable: 10 + 8 on the wire */
	assert_int_equal(peer_recv(g, 0, got, sizeof(got)), 18);
	/* A backend that refuses: the device needs a reset. */
	virtio_dev_reset(d);
	g->cfg_fail = -EINVAL;
	go_live(g, F_V1);
	assert_true(needs_reset(g));
	assert_non_null(strstr(d->reset_reason.msg, "backend"));
	g->cfg_fail = 0;
}

static void test_reset_drops_pending_frame(void **state)
{
	struct g *g = *state;
	uint8_t frame[500];
	pattern(frame, sizeof(frame), 1);
	guest_rx_buf(g, 0, 128, true);
	peer_send(g, 0, plain_hdr, frame, sizeof(frame));
	virtio_net_rx_ready(&g->n, 0);
	assert_int_equal(used_idx(g, 0), 0);
	virtio_dev_reset(&g->n.vdev);
	assert_false(g->poll_on[0]);
	/* Frames arriving while reset go nowhere. */
	virtio_net_rx_ready(&g->n, 0);
	virtio_dev_kick(&g->n.vdev, 0);
	go_live(g, F_V1 | F(VIRTIO_NET_F_MRG_RXBUF));
	peer_send(g, 0, plain_hdr, "new", 3);
	guest_rx_buf(g, 0, 128, true);
	assert_int_equal(used_idx(g, 0), 1);
	assert_memory_equal(host(g, BUF + HDR), "new", 3);
}

/* ---- multiqueue ---- */

static uint8_t ctrl(struct g *g, const uint8_t *cmd, uint32_t len, bool with_ack)
{
	uint16_t q = g->n.ctrl_q;
	uint64_t a = alloc(g, len), k = alloc(g, 1);
	memcpy(host(g, a), cmd, len);
	host(g, k)[0] = 0xff;
	uint16_t d0 = take_desc(g, q), d1 = take_desc(g, q);
	desc(g, q, d0, a, len, with_ack ? VIRTQ_DESC_F_NEXT : 0, d1);
	desc(g, q, d1, k, 1, VIRTQ_DESC_F_WRITE, 0);
	publish(g, q, d0);
	virtio_dev_kick(&g->n.vdev, q);
	return host(g, k)[0];
}

static void test_multiqueue(void **state)
{
	(void)state;
	struct g *g = make(3, 0);
	struct virtio_dev *d = &g->n.vdev;
	assert_int_equal(d->num_queues, 7);
	assert_int_equal(g->n.ctrl_q, 6);
	assert_true(d->features & F(VIRTIO_NET_F_MQ));
	assert_true(d->features & F(VIRTIO_NET_F_CTRL_VQ));
	uint8_t cfg[2];
	d->ops->config_read(d, VIRTIO_NET_CFG_MAX_PAIRS, cfg, 2);
	assert_int_equal(cfg[0], 3);
	go_live(g, F_V1 | F(VIRTIO_NET_F_MQ) | F(VIRTIO_NET_F_CTRL_VQ));
	assert_true(g->poll_on[0]);
	assert_false(g->poll_on[1]);
	assert_false(g->poll_on[2]);

	const uint8_t set3[] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 3, 0};
	const uint8_t set4[] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 4, 0};
	const uint8_t set0[] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 0, 0};
	const uint8_t set1[] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 1, 0};
	const uint8_t rxmode[] = {0, 0, 1};
	const uint8_t shortc[] = {VIRTIO_NET_CTRL_MQ};
	const uint8_t longc[] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 2, 0, 0};
	/* Pair 2 has buffers but is not active yet. */
	guest_rx_buf(g, 2, 256, true);
	peer_send(g, 2, plain_hdr, "p2", 2);
	virtio_net_rx_ready(&g->n, 2);
	assert_int_equal(used_idx(g, 4), 0);

	assert_int_equal(ctrl(g, set3, sizeof(set3), true), VIRTIO_NET_OK);
	/* Pair 1 has no buffers yet; pair 2's one buffer took the frame. */
	assert_false(g->poll_on[1]);
	assert_false(g->poll_on[2]);
	assert_int_equal(g->n.active_pairs, 3);
	guest_rx_buf(g, 1, 256, true);
	assert_true(g->poll_on[1]);
	/* What waited on pair 2 was taken when it was enabled. */
	assert_int_equal(used_idx(g, 4), 1);
	assert_int_equal(ctrl(g, set4, sizeof(set4), true), VIRTIO_NET_ERR);
	assert_int_equal(ctrl(g, set0, sizeof(set0), true), VIRTIO_NET_ERR);
	assert_int_equal(ctrl(g, rxmode, sizeof(rxmode), true), VIRTIO_NET_ERR);
	assert_int_equal(ctrl(g, shortc, sizeof(shortc), true), VIRTIO_NET_ERR);
	assert_int_equal(ctrl(g, longc, sizeof(longc), true), VIRTIO_NET_ERR);
	assert_int_equal(ctrl(g, set1, sizeof(set1), false), 0xff); /* no ack: ignored */
	assert_int_equal(g->n.active_pairs, 3);
	uint8_t huge[100] = {VIRTIO_NET_CTRL_MQ, 0, 1, 0};
	assert_int_equal(ctrl(g, huge, sizeof(huge), true), VIRTIO_NET_ERR);
	assert_int_equal(ctrl(g, set1, sizeof(set1), true), VIRTIO_NET_OK);
	assert_false(g->poll_on[1] || g->poll_on[2]);
	struct virtio_net_counters c = counters(g);
	assert_int_equal(c.ctrl_commands, 9);
	assert_int_equal(c.ctrl_errors, 7);
	assert_false(needs_reset(g));
	/* Each pair's TX goes to its own fd. */
	uint8_t got[64];
	guest_send(g, 1, plain_hdr, "one", 3);
	guest_send(g, 2, plain_hdr, "two", 3);
	assert_int_equal(peer_recv(g, 1, got, sizeof(got)), HDR + 3);
	assert_memory_equal(got + HDR, "one", 3);
	assert_int_equal(peer_recv(g, 2, got, sizeof(got)), HDR + 3);
	assert_memory_equal(got + HDR, "two", 3);
	assert_true(peer_recv(g, 0, got, sizeof(got)) < 0);
	void *s = g;
	teardown(&s);
}

/* ---- a hostile driver ---- */

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static uint64_t rnd_addr(void)
{
	switch (rnd() % 32) {
	case 0:
		return rnd();
	case 1:
		return RAM - (rnd() % 256);
	default:
		return BUF + rnd() % (RAM - BUF);
	}
}

static void test_hostile_driver(void **state)
{
	(void)state;
	struct g *g = make(2, 0);
	struct virtio_dev *d = &g->n.vdev;
	static uint8_t junk[VIRTIO_NET_MAX_FRAME + 100];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)rnd();
	unsigned resets = 0;
	for (int round = 0; round < 300; round++) {
		uint64_t feat = F_V1 | (rnd() & d->features);
		go_live(g, feat);
		for (int step = 0; step < 40; step++) {
			uint16_t q = (uint16_t)(rnd() % d->num_queues);
			for (uint32_t i = 0; i < QSIZE; i++) {
				uint32_t len = (uint32_t)(rnd() % 32 ? rnd() % 2048 : rnd());
				uint16_t flags = (uint16_t)(rnd() % 32 ? rnd() & 3 : rnd() & 7);
				desc(g, q, i, rnd_addr(), len, flags,
				     (uint16_t)(rnd() % 32 ? rnd() % QSIZE : QSIZE + 1));
			}
			unsigned n = (unsigned)(rnd() % 4);
			for (unsigned i = 0; i < n; i++)
				publish(g, q, (uint16_t)(rnd() % 64 ? rnd() % QSIZE : QSIZE));
			if (rnd() % 64 == 0) {
				/* Lie about the available index. */
				uint16_t bogus = (uint16_t)rnd();
				memcpy(host(g, ring(q, 1) + 2), &bogus, 2);
			}
			uint16_t pair = (uint16_t)(rnd() % 2);
			if (rnd() % 2) {
				uint32_t flen =
				    (uint32_t)(rnd() % 3 ? rnd() % 1600 : rnd() % sizeof(junk));
				(void)!write(g->peer[pair], junk, flen);
			}
			virtio_dev_kick(d, q);
			virtio_net_rx_ready(&g->n, pair);
			uint8_t cfg[8];
			d->ops->config_read(d, (uint32_t)(rnd() % 12), cfg, 1);
			if (needs_reset(g))
				break;
		}
		resets += needs_reset(g);
		virtio_dev_reset(d);
		/* Drain what the device sent so the sockets never fill. */
		uint8_t sink[VIRTIO_NET_MAX_FRAME + 100];
		for (uint16_t k = 0; k < 2; k++)
			while (recv(g->peer[k], sink, sizeof(sink), MSG_DONTWAIT) > 0)
				;
	}
	struct virtio_net_counters c = counters(g);
	print_message("hostile: %u resets, tx %lu/%lu/%lu rx %lu/%lu/%lu\n", resets,
		      (unsigned long)c.tx_packets, (unsigned long)c.tx_drops,
		      (unsigned long)c.tx_errors, (unsigned long)c.rx_packets,
		      (unsigned long)c.rx_drops, (unsigned long)c.rx_errors);
	assert_true(resets > 0);
	assert_true(c.notifications > 0);
	void *s = g;
	teardown(&s);
}

/* ---- parameters ---- */

static void test_init_errors(void **state)
{
	(void)state;
	struct g g;
	memset(&g, 0, sizeof(g));
	struct chv_err err = {0};
	assert_int_equal(mem_setup(&g), 0);
	struct virtio_net_backend be = {.nfds = 1};
	struct virtio_net_params p = {.queue_pairs = 1};
	memcpy(p.mac, guest_mac, 6);
	be.fds[0] = 0;
	struct virtio_net n;

	p.queue_pairs = 0;
	assert_int_equal(virtio_net_init(&n, &g.m, &p, &be, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "queue_pairs=0"));
	virtio_net_destroy(&n);
	p.queue_pairs = VIRTIO_NET_MAX_PAIRS + 1;
	assert_int_equal(virtio_net_init(&n, &g.m, &p, &be, &err), -EINVAL);
	virtio_net_destroy(&n);
	p.queue_pairs = 2;
	assert_int_equal(virtio_net_init(&n, &g.m, &p, &be, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "fds"));
	virtio_net_destroy(&n);
	p.queue_pairs = 1;
	be.fds[0] = -1;
	assert_int_equal(virtio_net_init(&n, &g.m, &p, &be, &err), -EBADF);
	virtio_net_destroy(&n);
	be.fds[0] = 0;
	p.mac[0] = 0x01;
	assert_int_equal(virtio_net_init(&n, &g.m, &p, &be, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "mac=01:54:00:12:34:56"));
	virtio_net_destroy(&n);
	p.mac[0] = 0x52;
	p.mtu = 67;
	assert_int_equal(virtio_net_init(&n, &g.m, &p, &be, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "mtu=67"));
	virtio_net_destroy(&n);
	p.mtu = 0;
	p.queue_size = 100;
	assert_int_equal(virtio_net_init(&n, &g.m, &p, &be, &err), -EINVAL);
	virtio_net_destroy(&n);
	p.queue_size = 0;
	assert_int_equal(virtio_net_init(&n, NULL, &p, &be, &err), -EINVAL);
	virtio_net_destroy(&n);
	assert_int_equal(virtio_net_init(&n, &g.m, &p, &be, &err), 0);
	assert_false(n.vdev.features & F(VIRTIO_NET_F_MTU));
	assert_false(n.vdev.features & F(VIRTIO_NET_F_CSUM));
	assert_false(n.vdev.features & F(VIRTIO_NET_F_GUEST_CSUM));
	/* Out-of-range pairs from the loop are ignored. */
	virtio_net_rx_ready(&n, 1);
	virtio_net_rx_ready(&n, 0xffff);
	assert_false(virtio_net_rx_polling(&n, 5));
	virtio_net_destroy(&n);
	virtio_net_destroy(&n);
	struct virtio_net zero;
	memset(&zero, 0, sizeof(zero));
	virtio_net_destroy(&zero);
	vm_mem_destroy(&g.m);
}

static void test_parse_mac(void **state)
{
	(void)state;
	uint8_t m[6];
	assert_int_equal(tap_parse_mac("52:54:00:Ab:cD:ef", m), 0);
	const uint8_t want[6] = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};
	assert_memory_equal(m, want, 6);
	static const char *bad[] = {NULL,
				    "",
				    "52:54:00:ab:cd",
				    "52:54:00:ab:cd:ef:",
				    "52:54:00:ab:cd:eg",
				    "52-54-00-ab-cd-ef",
				    "52:54:00:ab:cd: f",
				    "5:254:00:ab:cd:ef",
				    "52:54:00:ab:cd:eff"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(tap_parse_mac(bad[i], m), -EINVAL);
}

static void test_tap_errors_without_device(void **state)
{
	(void)state;
	struct tap t;
	struct chv_err err = {0};
	struct tap_opts o = {.name = "a-very-long-tap-name-indeed"};
	assert_int_equal(tap_open(&t, &o, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "tap=a-very-long-tap-name-indeed"));
	tap_close(&t);
	o.name = "bad/name";
	assert_int_equal(tap_open(&t, &o, &err), -EINVAL);
	tap_close(&t);
	int p[2];
	assert_int_equal(pipe(p), 0);
	o.name = NULL;
	o.fds = p;
	o.nfds = 1;
	assert_true(tap_open(&t, &o, &err) < 0);
	assert_non_null(strstr(err.msg, "fd="));
	assert_non_null(strstr(err.msg, "not a tap"));
	tap_close(&t);
	/* Not owned: the pipe is still open. */
	assert_true(fcntl(p[0], F_GETFD) >= 0);
	int bad = -1;
	o.fds = &bad;
	assert_int_equal(tap_open(&t, &o, &err), -EBADF);
	tap_close(&t);
	o.fds = p;
	o.name = "tap0";
	assert_int_equal(tap_open(&t, &o, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "exclusive"));
	tap_close(&t);
	o.name = NULL;
	o.nfds = 2;
	o.queue_pairs = 1;
	assert_int_equal(tap_open(&t, &o, &err), -EINVAL);
	tap_close(&t);
	close(p[0]);
	close(p[1]);
	struct tap zero;
	memset(&zero, 0, sizeof(zero));
	tap_close(&zero);
}

/* ---- a real tap in a private network namespace ---- */

static void write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)!write(fd, s, strlen(s));
		close(fd);
	}
}

/* The whole test program moves to a fresh network namespace, so the host's
 * stays untouched and the tap disappears with the process. */
static int tap_group_setup(void **state)
{
	(void)state;
	if (geteuid() != 0 || access("/dev/net/tun", R_OK | W_OK) != 0)
		return 0;
	if (unshare(CLONE_NEWNET) != 0)
		return 0;
	/* No IPv6 chatter (router solicitations, MLD) on the test tap. */
	write_file("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
	write_file("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
	have_tap = true;
	return 0;
}

static struct g *make_tap(uint64_t features, const char *name)
{
	struct g *g = calloc(1, sizeof(*g));
	struct chv_err err = {0};
	assert_non_null(g);
	assert_int_equal(mem_setup(g), 0);
	g->pairs = 1;
	g->tap_mode = true;
	struct tap_opts o = {.name = name, .ip = HOST_IP, .mask = "255.255.255.0", .mtu = 1500};
	if (tap_open(&g->tap, &o, &err))
		fail_msg("tap_open: %s", err.msg);
	struct virtio_net_backend be;
	tap_backend(&g->tap, &be);
	g->devfd[0] = be.fds[0];
	struct virtio_net_params p = {.queue_pairs = 1, .mtu = 1500};
	memcpy(p.mac, guest_mac, 6);
	if (virtio_net_init(&g->n, &g->m, &p, &be, &err))
		fail_msg("virtio_net_init: %s", err.msg);
	go_live(g, features);
	return g;
}

static void tap_mac(const char *name, uint8_t mac[6])
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	assert_int_equal(ioctl(s, SIOCGIFHWADDR, &ifr), 0);
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	close(s);
}

/* The host learns the guest's MAC without ARP traffic. */
static void static_neigh(const char *dev)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct arpreq r;
	memset(&r, 0, sizeof(r));
	struct sockaddr_in *sin = (struct sockaddr_in *)(void *)&r.arp_pa;
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, GUEST_IP, &sin->sin_addr);
	r.arp_ha.sa_family = ARPHRD_ETHER;
	memcpy(r.arp_ha.sa_data, guest_mac, 6);
	r.arp_flags = ATF_COM | ATF_PERM;
	snprintf(r.arp_dev, sizeof(r.arp_dev), "%s", dev);
	assert_int_equal(ioctl(s, SIOCSARP, &r), 0);
	close(s);
}

static uint16_t ip_csum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* Ethernet + IPv4 + UDP from the guest to the host; returns the length. */
static size_t udp_frame(uint8_t *f, const uint8_t dst_mac[6], uint16_t sport, uint16_t dport,
			const char *payload, uint16_t udp_csum)
{
	size_t pl = strlen(payload);
	memcpy(f, dst_mac, 6);
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x08;
	f[13] = 0x00;
	uint8_t *ip = f + 14;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	uint16_t tot = (uint16_t)(20 + 8 + pl);
	ip[2] = (uint8_t)(tot >> 8);
	ip[3] = (uint8_t)tot;
	ip[8] = 64;
	ip[9] = 17;
	inet_pton(AF_INET, GUEST_IP, ip + 12);
	inet_pton(AF_INET, HOST_IP, ip + 16);
	uint16_t c = ip_csum(ip, 20);
	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
	uint8_t *udp = ip + 20;
	udp[0] = (uint8_t)(sport >> 8);
	udp[1] = (uint8_t)sport;
	udp[2] = (uint8_t)(dport >> 8);
	udp[3] = (uint8_t)dport;
	udp[4] = (uint8_t)((8 + pl) >> 8);
	udp[5] = (uint8_t)(8 + pl);
	udp[6] = (uint8_t)(udp_csum >> 8);
	udp[7] = (uint8_t)udp_csum;
	memcpy(udp + 8, payload, pl);
	return 14 + 20 + 8 + pl;
}

static int host_udp(uint16_t port)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, HOST_IP, &a.sin_addr);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	return s;
}

static ssize_t recv_wait(int s, void *buf, size_t len)
{
	struct pollfd p = {.fd = s, .events = POLLIN};
	if (poll(&p, 1, 2000) != 1)
		return -1;
	return recv(s, buf, len, MSG_DONTWAIT);
}

static void tap_guest_to_host(uint64_t features)
{
	struct g *g = make_tap(features, TAP_NAME);
	int s = host_udp(5555);
	uint8_t hmac[6], f[128], got[64];
	tap_mac(g->tap.name, hmac);
	size_t n = udp_frame(f, hmac, 4444, 5555, "ping from the guest", 0);
	guest_send(g, 0, plain_hdr, f, (uint32_t)n);
	assert_int_equal(used_idx(g, 1), 1);
	ssize_t r = recv_wait(s, got, sizeof(got));
	assert_int_equal(r, 19);
	assert_memory_equal(got, "ping from the guest", 19);
	assert_int_equal(counters(g).tx_packets, 1);
	close(s);
	void *st = g;
	teardown(&st);
}

/* Waits for the tap to be readable and lets the device move frames. */
static void pump_rx(struct g *g)
{
	struct pollfd p = {.fd = g->devfd[0], .events = POLLIN};
	if (poll(&p, 1, 2000) == 1)
		virtio_net_rx_ready(&g->n, 0);
}

/* Finds the UDP datagram for port in the RX used ring; returns its
 * payload's offset in the guest buffer, or 0. */
static bool find_udp(struct g *g, uint64_t buf, uint32_t len, uint16_t port, const char *want)
{
	if (len < HDR + 14 + 28)
		return false;
	uint8_t *f = host(g, buf + HDR);
	if (f[12] != 0x08 || f[13] != 0 || f[14 + 9] != 17)
		return false;
	if ((f[14 + 20 + 2] << 8 | f[14 + 20 + 3]) != port)
		return false;
	assert_memory_equal(f, guest_mac, 6);
	return memcmp(f + 42, want, strlen(want)) == 0;
}

static void tap_host_to_guest(uint64_t features, uint32_t bufsize, unsigned nbufs)
{
	struct g *g = make_tap(features, TAP_NAME);
	static_neigh(g->tap.name);
	uint64_t a[QSIZE];
	for (unsigned i = 0; i < nbufs; i++)
		a[i] = guest_rx_buf(g, 0, bufsize, true);
	int s = host_udp(5556);
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(6666)};
	inet_pton(AF_INET, GUEST_IP, &to.sin_addr);
	const char *msg = "hello guest, this datagram came from the host";
	assert_int_equal(sendto(s, msg, strlen(msg), 0, (struct sockaddr *)&to, sizeof(to)),
			 (ssize_t)strlen(msg));
	bool found = false;
	for (int tries = 0; tries < 10 && !found; tries++) {
		pump_rx(g);
		for (uint16_t u = 0; u < used_idx(g, 0) && !found; u++) {
			uint32_t id = used_id(g, 0, u);
			if (features & F(VIRTIO_NET_F_MRG_RXBUF)) {
				/* Small buffers: gather the merged frame. */
				unsigned nb = host(g, a[id])[10];
				uint8_t frame[2048];
				uint32_t off = 0;
				for (unsigned k = 0; k < nb; k++) {
					uint32_t l = used_len(g, 0, (uint16_t)(u + k));
					memcpy(frame + off,
					       host(g, a[used_id(g, 0, (uint16_t)(u + k))]), l);
					off += l;
				}
				uint64_t tmp = alloc(g, off);
				memcpy(host(g, tmp), frame, off);
				found = find_udp(g, tmp, off, 6666, msg);
				if (found)
					assert_true(nb > 1);
				u = (uint16_t)(u + nb - 1);
			} else {
				found = find_udp(g, a[id], used_len(g, 0, u), 6666, msg);
			}
		}
	}
	assert_true(found);
	assert_true(counters(g).rx_packets >= 1);
	assert_true(g->queue_irqs[0] >= 1);
	close(s);
	void *st = g;
	teardown(&st);
}

static void test_tap_udp_guest_to_host(void **state)
{
	(void)state;
	if (!have_tap)
		skip();
	tap_guest_to_host(F_V1);
	tap_guest_to_host(F_V1 | F(VIRTIO_NET_F_MRG_RXBUF));
}

static void test_tap_udp_host_to_guest(void **state)
{
	(void)state;
	if (!have_tap)
		skip();
	tap_host_to_guest(F_V1, 2048, 4);
	tap_host_to_guest(F_V1 | F(VIRTIO_NET_F_MRG_RXBUF), 32, QSIZE);
}

static void test_tap_arp(void **state)
{
	(void)state;
	if (!have_tap)
		skip();
	struct g *g = make_tap(F_V1 | F(VIRTIO_NET_F_MRG_RXBUF), TAP_NAME);
	uint8_t hmac[6];
	tap_mac(g->tap.name, hmac);
	uint64_t a[4];
	for (int i = 0; i < 4; i++)
		a[i] = guest_rx_buf(g, 0, 2048, true);
	/* Who has HOST_IP? tell GUEST_IP. */
	uint8_t f[42];
	memset(f, 0xff, 6);
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x08;
	f[13] = 0x06;
	const uint8_t arp_head[8] = {0, 1, 8, 0, 6, 4, 0, 1};
	memcpy(f + 14, arp_head, 8);
	memcpy(f + 22, guest_mac, 6);
	inet_pton(AF_INET, GUEST_IP, f + 28);
	memset(f + 32, 0, 6);
	inet_pton(AF_INET, HOST_IP, f + 38);
	guest_send(g, 0, plain_hdr, f, sizeof(f));
	bool found = false;
	for (int tries = 0; tries < 10 && !found; tries++) {
		pump_rx(g);
		for (uint16_t u = 0; u < used_idx(g, 0) && !found; u++) {
			uint8_t *r = host(g, a[used_id(g, 0, u)] + HDR);
			if (r[12] == 0x08 && r[13] == 0x06 && r[21] == 2) {
				assert_memory_equal(r, guest_mac, 6);
				assert_memory_equal(r + 22, hmac, 6); /* sender: the tap */
				found = true;
			}
		}
	}
	assert_true(found);
	void *st = g;
	teardown(&st);
}

static void test_tap_checksum_offload(void **state)
{
	(void)state;
	if (!have_tap)
		skip();
	/* TX: a datagram whose UDP checksum the guest left to the device
	 * (NEEDS_CSUM, partial checksum field garbage) still reaches the host:
	 * the header went through to the tap. */
	uint64_t feat = F_V1 | F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_GUEST_CSUM);
	struct g *g = make_tap(feat, TAP_NAME);
	int s = host_udp(5557);
	uint8_t hmac[6], f[128], got[64];
	tap_mac(g->tap.name, hmac);
	size_t n = udp_frame(f, hmac, 4444, 5557, "partial checksum", 0x1234);
	const uint8_t hdr[HDR] = {VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 0, 0, 34, 0, 6, 0, 0, 0};
	guest_send(g, 0, hdr, f, (uint32_t)n);
	assert_int_equal(recv_wait(s, got, sizeof(got)), 16);
	assert_memory_equal(got, "partial checksum", 16);
	/* Without the header, the same bad checksum is dropped by the host. */
	guest_send(g, 0, plain_hdr, f, (uint32_t)n);
	assert_int_equal(recv_wait(s, got, sizeof(got)), -1);

	/* RX: with GUEST_CSUM the tap hands over locally generated datagrams
	 * with their checksum still to do, marked in the header. */
	static_neigh(g->tap.name);
	uint64_t a[4];
	for (int i = 0; i < 4; i++)
		a[i] = guest_rx_buf(g, 0, 2048, true);
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(6667)};
	inet_pton(AF_INET, GUEST_IP, &to.sin_addr);
	assert_int_equal(sendto(s, "offload", 7, 0, (struct sockaddr *)&to, sizeof(to)), 7);
	bool found = false;
	for (int tries = 0; tries < 10 && !found; tries++) {
		pump_rx(g);
		for (uint16_t u = 0; u < used_idx(g, 0) && !found; u++) {
			uint64_t b = a[used_id(g, 0, u)];
			if (find_udp(g, b, used_len(g, 0, u), 6667, "offload")) {
				found = true;
				assert_true(host(g, b)[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM);
				assert_int_equal(host(g, b)[6], 34); /* csum_start */
				assert_int_equal(host(g, b)[8], 6);  /* csum_offset */
			}
		}
	}
	assert_true(found);
	close(s);
	void *st = g;
	teardown(&st);
}

static void test_tap_frames_wait_without_buffers(void **state)
{
	(void)state;
	if (!have_tap)
		skip();
	struct g *g = make_tap(F_V1, TAP_NAME);
	static_neigh(g->tap.name);
	int s = host_udp(5558);
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(6668)};
	inet_pton(AF_INET, GUEST_IP, &to.sin_addr);
	for (int i = 0; i < 3; i++) {
		char m[16];
		snprintf(m, sizeof(m), "wait-%d", i);
		assert_int_equal(sendto(s, m, strlen(m), 0, (struct sockaddr *)&to, sizeof(to)), 6);
	}
	pump_rx(g);
	assert_false(g->poll_on[0]);
	assert_int_equal(used_idx(g, 0), 0);
	uint64_t a[8];
	for (int i = 0; i < 8; i++)
		a[i] = guest_rx_buf(g, 0, 2048, false);
	virtio_dev_kick(&g->n.vdev, 0);
	int seen = 0;
	for (uint16_t u = 0; u < used_idx(g, 0); u++) {
		char m[16];
		snprintf(m, sizeof(m), "wait-%d", seen);
		if (find_udp(g, a[used_id(g, 0, u)], used_len(g, 0, u), 6668, m))
			seen++;
	}
	assert_int_equal(seen, 3);
	assert_int_equal(counters(g).rx_drops, 0);
	close(s);
	void *st = g;
	teardown(&st);
}

static void test_tap_open_variants(void **state)
{
	(void)state;
	if (!have_tap)
		skip();
	struct chv_err err = {0};
	struct tap t, t2;
	/* A new tap with a kernel-chosen name, multiqueue. */
	struct tap_opts o = {.queue_pairs = 2};
	assert_int_equal(tap_open(&t, &o, &err), 0);
	assert_int_equal(t.nfds, 2);
	assert_true(strlen(t.name) > 0);
	/* Attaching to it by name as a single-queue tap is refused. */
	struct tap_opts o2 = {.name = t.name};
	assert_true(tap_open(&t2, &o2, &err) < 0);
	assert_non_null(strstr(err.msg, t.name));
	tap_close(&t2);
	tap_close(&t);

	/* fd= adopts a tap opened elsewhere, checking how it was opened. */
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "chvfd0");
	assert_int_equal(ioctl(fd, TUNSETIFF, &ifr), 0);
	struct tap_opts o3 = {.fds = &fd, .nfds = 1, .ip = HOST_IP};
	assert_int_equal(tap_open(&t, &o3, &err), 0);
	assert_string_equal(t.name, "chvfd0");
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	tap_close(&t);
	assert_true(fcntl(fd, F_GETFD) >= 0); /* not ours to close */
	close(fd);
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	assert_int_equal(ioctl(fd, TUNSETIFF, &ifr), 0);
	assert_int_equal(tap_open(&t, &o3, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "IFF_VNET_HDR"));
	tap_close(&t);
	close(fd);

	/* Host-side settings are checked and name the option. */
	struct tap_opts bad[] = {
	    {.ip = "10.1.2"},
	    {.ip = HOST_IP, .mask = "255.0.255.0"},
	    {.ip = HOST_IP, .mask = "nonsense"},
	    {.mask = "255.255.255.0"},
	    {.mtu = 20},
	};
	const char *want[] = {"ip=10.1.2", "mask=255.0.255.0", "mask=nonsense", "mask=", "mtu=20"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(tap_open(&t, &bad[i], &err), -EINVAL);
		if (!strstr(err.msg, want[i]))
			fail_msg("case %zu: '%s' does not name %s", i, err.msg, want[i]);
		tap_close(&t);
	}
}

/* ---- rate limiting ---- */

#define TXB   (BUF + 0x100000ull) /* TX slot k: HDR + frame at TXB + 2048 k */
#define RXB   (BUF + 0x180000ull) /* RX slot k: 2048 writable bytes */
#define SLOT  2048u
#define NSLOT 8u

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct ratelimit *limiter(uint64_t bw, uint64_t bw_ms, uint64_t ops, uint64_t ops_ms)
{
	const struct rl_config c = {.bw = {bw, 0, bw_ms}, .ops = {ops, 0, ops_ms}};
	struct ratelimit *rl;
	struct chv_err err = {0};
	if (ratelimit_create(&rl, &c, &err))
		fail_msg("ratelimit_create: %s", err.msg);
	return rl;
}

static void unmake_limited(struct g *g, struct ratelimit *rl)
{
	void *state = g;
	teardown(&state);
	ratelimit_destroy(rl);
}

/* TX slot k: one descriptor (k) holding the header and len bytes, the
 * first 4 of them the frame's sequence number. */
static void tx_post(struct g *g, unsigned k, uint32_t seq, uint32_t len)
{
	uint64_t a = TXB + (uint64_t)SLOT * k;
	memset(host(g, a), 0, HDR);
	pattern(host(g, a + HDR), len, seq);
	memcpy(host(g, a + HDR), &seq, 4);
	desc(g, 1, k, a, HDR + len, 0, 0);
	publish(g, 1, (uint16_t)k);
}

static void rx_post(struct g *g, unsigned k)
{
	uint64_t a = RXB + (uint64_t)SLOT * k;
	memset(host(g, a), 0xee, SLOT);
	desc(g, 0, k, a, SLOT, VIRTQ_DESC_F_WRITE, 0);
	publish(g, 0, (uint16_t)k);
}

static void fire_if_ready(struct ratelimit *rl, int timeout_ms)
{
	struct pollfd p = {.fd = ratelimit_fd(rl), .events = POLLIN};
	if (poll(&p, 1, timeout_ms) > 0)
		ratelimit_fire(rl);
}

static void within(double got, double want, const char *what)
{
	print_message("%s: %.3f, limit %.3f (%+.2f%%)\n", what, got, want,
		      (got - want) * 100 / want);
	if (got < want * 0.9 || got > want * 1.1)
		fail_msg("%s: %.1f is not within 10%% of %.1f", what, got, want);
}

struct rate {
	double bytes_per_s, frames_per_s;
};

/* The guest keeps NSLOT frames of len bytes queued for transmission, the
 * peer reads them and checks their sequence (nothing lost, nothing twice),
 * and the loop plays the event loop: ratelimit_fd -> ratelimit_fire. */
static struct rate drive_tx(struct g *g, struct ratelimit *rl, uint32_t len, double secs,
			    double warm)
{
	uint32_t seq = 0, expect = 0;
	uint16_t seen = used_idx(g, 1);
	for (unsigned k = 0; k < NSLOT; k++)
		tx_post(g, k, seq++, len);
	virtio_dev_kick(&g->n.vdev, 1);
	struct virtio_net_counters c0 = {0}, c1;
	double t0 = now_s(), tw = 0, now;
	bool warmed = false;
	static uint8_t got[SLOT];
	while ((now = now_s()) < t0 + secs) {
		if (!warmed && now >= t0 + warm) {
			c0 = counters(g);
			tw = now;
			warmed = true;
		}
		if (rl)
			fire_if_ready(rl, 1);
		ssize_t r;
		while ((r = peer_recv(g, 0, got, sizeof(got))) > 0) {
			assert_int_equal(r, HDR + len);
			uint32_t s;
			memcpy(&s, got + HDR, 4);
			assert_int_equal(s, expect);
			expect++;
		}
		bool any = false;
		for (uint16_t u = used_idx(g, 1); seen != u; seen++) {
			uint32_t id = used_id(g, 1, seen);
			assert_true(id < NSLOT);
			tx_post(g, id, seq++, len);
			any = true;
		}
		if (any)
			virtio_dev_kick(&g->n.vdev, 1);
	}
	c1 = counters(g);
	assert_int_equal(c1.tx_drops + c1.tx_errors, 0);
	return (struct rate){(double)(c1.tx_bytes - c0.tx_bytes) / (now - tw),
			     (double)(c1.tx_packets - c0.tx_packets) / (now - tw)};
}

/* TX at 2 MiB/s (a 256 KiB bucket every 125 ms, 1000-byte frames) and at
 * 2000 frames/s (200 every 100 ms, 64-byte frames). */
static void test_rate_tx(void **state)
{
	(void)state;
	struct g *g = make(1, 1500);
	go_live(g, F_V1);
	struct rate r = drive_tx(g, NULL, 1000, 0.3, 0.05);
	double unlimited = r.bytes_per_s;
	print_message("unlimited: %.1f MiB/s, %.0f frames/s\n", r.bytes_per_s / (1 << 20),
		      r.frames_per_s);
	void *state0 = g;
	teardown(&state0);

	struct ratelimit *rl = limiter(256 << 10, 125, 0, 0);
	g = make_with(1, 1500, rl);
	go_live(g, F_V1);
	r = drive_tx(g, rl, 1000, 1.8, 0.3);
	within(r.bytes_per_s / (1 << 20), 2.0, "TX bandwidth, MiB/s");
	assert_true(unlimited > 3 * r.bytes_per_s);
	struct virtio_net_counters c = counters(g);
	print_message("%" PRIu64 " frames, %" PRIu64 " refused\n", c.tx_packets, c.tx_throttled);
	assert_true(c.tx_throttled > 10);
	assert_int_equal(c.rx_throttled, 0);
	unmake_limited(g, rl);

	rl = limiter(0, 0, 200, 100);
	g = make_with(1, 1500, rl);
	go_live(g, F_V1);
	r = drive_tx(g, rl, 64, 1.8, 0.3);
	within(r.frames_per_s, 2000, "TX frames/s");
	unmake_limited(g, rl);
}

/* The peer keeps the backend full of numbered 1000-byte frames; the guest
 * keeps NSLOT buffers posted; the loop watches the backend fd only while
 * the device asks for it. RX at 2 MiB/s (256 KiB every 125 ms). */
static void test_rate_rx(void **state)
{
	(void)state;
	struct ratelimit *rl = limiter(256 << 10, 125, 0, 0);
	struct g *g = make_with(1, 1500, rl);
	go_live(g, F_V1);
	const uint32_t len = 1000;
	uint32_t sent = 0, expect = 0;
	uint16_t seen = 0;
	static uint8_t frame[1000];
	for (unsigned k = 0; k < NSLOT; k++)
		rx_post(g, k);
	virtio_dev_kick(&g->n.vdev, 0);
	struct virtio_net_counters c0 = {0}, c1;
	double t0 = now_s(), tw = 0, now;
	bool warmed = false;
	unsigned throttled_polls = 0;
	while ((now = now_s()) < t0 + 1.8) {
		if (!warmed && now >= t0 + 0.3) {
			c0 = counters(g);
			tw = now;
			warmed = true;
		}
		/* The backend stays full. */
		for (;;) {
			pattern(frame, len, sent);
			memcpy(frame, &sent, 4);
			struct iovec iov[2] = {{(void *)plain_hdr, HDR}, {frame, len}};
			if (writev(g->peer[0], iov, 2) < 0) {
				assert_int_equal(errno, EAGAIN);
				break;
			}
			sent++;
		}
		/* While refused, the device must not ask for its fd. */
		if (g->n.rxq[0].throttled) {
			assert_false(g->poll_on[0]);
			throttled_polls++;
		}
		struct pollfd p[2] = {{.fd = ratelimit_fd(rl), .events = POLLIN},
				      {.fd = g->poll_on[0] ? g->devfd[0] : -1, .events = POLLIN}};
		if (poll(p, 2, 1) > 0) {
			if (p[0].revents)
				ratelimit_fire(rl);
			if (p[1].revents)
				virtio_net_rx_ready(&g->n, 0);
		}
		bool any = false;
		for (uint16_t u = used_idx(g, 0); seen != u; seen++) {
			uint32_t id = used_id(g, 0, seen);
			assert_true(id < NSLOT);
			assert_int_equal(used_len(g, 0, seen), HDR + len);
			uint8_t *b = host(g, RXB + (uint64_t)SLOT * id);
			uint32_t s;
			memcpy(&s, b + HDR, 4);
			assert_int_equal(s, expect);
			assert_int_equal(b[HDR + len - 1], (uint8_t)((len - 1) * 31 + s));
			expect++;
			rx_post(g, id);
			any = true;
		}
		if (any)
			virtio_dev_kick(&g->n.vdev, 0);
	}
	c1 = counters(g);
	within((double)(c1.rx_bytes - c0.rx_bytes) / (now - tw) / (1 << 20), 2.0,
	       "RX bandwidth, MiB/s");
	print_message("%" PRIu64 " frames, %" PRIu64 " refused; fd unwatched while refused at "
		      "%u checks\n",
		      c1.rx_packets, c1.rx_throttled, throttled_polls);
	assert_int_equal(c1.rx_drops + c1.rx_errors, 0);
	assert_true(c1.rx_throttled > 10 && throttled_polls > 10);
	assert_int_equal(c1.tx_throttled, 0);
	unmake_limited(g, rl);
}

/* One limiter for both directions, and no frame lost or doubled across a
 * refusal: 4 ops, then TX and RX wait for the same timer. */
static void test_rate_shared_and_exact(void **state)
{
	(void)state;
	struct ratelimit *rl = limiter(0, 0, 4, 100); /* 40/s, 4 at once */
	struct g *g = make_with(1, 1500, rl);
	go_live(g, F_V1);
	for (unsigned k = 0; k < 4; k++)
		tx_post(g, k, k, 100);
	virtio_dev_kick(&g->n.vdev, 1);
	assert_int_equal(used_idx(g, 1), 4);
	/* The bucket is empty: the next frame either way waits. */
	tx_post(g, 4, 4, 100);
	virtio_dev_kick(&g->n.vdev, 1);
	assert_int_equal(used_idx(g, 1), 4);
	assert_int_equal(g->n.vdev.vqs[1].last_avail_idx, 4); /* back in the ring */
	virtio_dev_kick(&g->n.vdev, 1);			      /* kicks change nothing */
	assert_int_equal(used_idx(g, 1), 4);
	uint8_t frame[100];
	pattern(frame, sizeof(frame), 9);
	peer_send(g, 0, plain_hdr, frame, sizeof(frame));
	rx_post(g, 0);
	virtio_dev_kick(&g->n.vdev, 0);
	assert_int_equal(used_idx(g, 0), 0);
	assert_true(g->n.rxq[0].throttled);
	assert_false(g->poll_on[0]);
	virtio_net_rx_ready(&g->n, 0); /* a stale readiness changes nothing */
	assert_int_equal(used_idx(g, 0), 0);
	/* 25 ms per op: both pass within a few wake-ups. */
	double t0 = now_s();
	while ((used_idx(g, 1) != 5 || used_idx(g, 0) != 1) && now_s() < t0 + 2)
		fire_if_ready(rl, 10);
	assert_int_equal(used_idx(g, 1), 5);
	assert_int_equal(used_idx(g, 0), 1);
	assert_memory_equal(host(g, RXB + HDR), frame, sizeof(frame));
	uint8_t got[SLOT];
	for (uint32_t k = 0; k < 5; k++) {
		assert_int_equal(peer_recv(g, 0, got, sizeof(got)), HDR + 100);
		uint32_t s;
		memcpy(&s, got + HDR, 4);
		assert_int_equal(s, k);
	}
	assert_true(peer_recv(g, 0, got, sizeof(got)) < 0);
	struct virtio_net_counters c = counters(g);
	assert_int_equal(c.tx_packets, 5);
	assert_int_equal(c.rx_packets, 1);
	assert_true(c.tx_throttled >= 1 && c.rx_throttled >= 1);
	struct ratelimit_counters k;
	ratelimit_get_counters(rl, &k);
	assert_int_equal(k.throttled, c.tx_throttled + c.rx_throttled);
	unmake_limited(g, rl);
}

struct kicker {
	struct g *g;
	bool stop; /* __atomic */
};

/* Kicks the transmit queue from another thread, as a vCPU would. */
static void *kicker_main(void *arg)
{
	struct kicker *k = arg;
	while (!__atomic_load_n(&k->stop, __ATOMIC_ACQUIRE)) {
		virtio_dev_kick(&k->g->n.vdev, 1);
		usleep(200);
	}
	return NULL;
}

/* A full ring of frames through a tight limit while another thread keeps
 * kicking: each frame leaves once, in order. */
static void test_rate_tx_concurrent_kicks(void **state)
{
	(void)state;
	struct ratelimit *rl = limiter(0, 0, 2, 10); /* 200/s, 2 at once */
	struct g *g = make_with(1, 1500, rl);
	go_live(g, F_V1);
	for (unsigned k = 0; k < QSIZE; k++)
		tx_post(g, k, k, 200);
	struct kicker kk = {.g = g};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, kicker_main, &kk), 0);
	uint32_t expect = 0;
	uint8_t got[SLOT];
	double t0 = now_s();
	while (expect < QSIZE && now_s() < t0 + 5) {
		fire_if_ready(rl, 2);
		ssize_t r;
		while ((r = peer_recv(g, 0, got, sizeof(got))) > 0) {
			assert_int_equal(r, HDR + 200);
			uint32_t s;
			memcpy(&s, got + HDR, 4);
			assert_int_equal(s, expect);
			expect++;
		}
	}
	double took = now_s() - t0;
	__atomic_store_n(&kk.stop, true, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	print_message("%u frames in %.3f s (limit 200/s after 2)\n", expect, took);
	assert_int_equal(expect, QSIZE);
	assert_true(peer_recv(g, 0, got, sizeof(got)) < 0);
	assert_int_equal(used_idx(g, 1), QSIZE);
	assert_true(took > 0.05);
	struct virtio_net_counters c = counters(g);
	assert_int_equal(c.tx_packets, QSIZE);
	assert_true(c.tx_throttled > 0);
	assert_false(needs_reset(g));
	unmake_limited(g, rl);
}

/* Throttled both ways, then reset: the wake-up leaves the reset device
 * alone, and a fresh driver's frames pass. */
static void test_rate_throttled_across_reset(void **state)
{
	(void)state;
	struct ratelimit *rl = limiter(0, 0, 1, 50);
	struct g *g = make_with(1, 1500, rl);
	go_live(g, F_V1);
	tx_post(g, 0, 0, 60);
	tx_post(g, 1, 1, 60);
	virtio_dev_kick(&g->n.vdev, 1);
	assert_int_equal(used_idx(g, 1), 1);
	peer_send(g, 0, plain_hdr, "abc", 3);
	rx_post(g, 0);
	virtio_dev_kick(&g->n.vdev, 0);
	assert_true(g->n.rxq[0].throttled && g->n.txq[0].throttled);
	virtio_dev_reset(&g->n.vdev);
	assert_false(g->n.rxq[0].throttled || g->n.txq[0].throttled);
	struct pollfd p = {.fd = ratelimit_fd(rl), .events = POLLIN};
	assert_int_equal(poll(&p, 1, 1000), 1);
	ratelimit_fire(rl);
	assert_false(g->n.vdev.vqs[1].enabled);
	assert_int_equal(g->n.vdev.vqs[1].last_avail_idx, 0);
	assert_false(needs_reset(g));
	go_live(g, F_V1);
	uint8_t got[SLOT];
	assert_int_equal(peer_recv(g, 0, got, sizeof(got)), HDR + 60); /* the first */
	tx_post(g, 0, 7, 60);
	virtio_dev_kick(&g->n.vdev, 1);
	double t0 = now_s();
	while (used_idx(g, 1) != 1 && now_s() < t0 + 2)
		fire_if_ready(rl, 10);
	assert_int_equal(peer_recv(g, 0, got, sizeof(got)), HDR + 60);
	uint32_t s;
	memcpy(&s, got + HDR, 4);
	assert_int_equal(s, 7);
	unmake_limited(g, rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_describes_itself, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_frame, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_offload_header_passes_through, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_malformed_table, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_bad_ring_needs_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_backend_gone, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_frame, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_too_big_without_mrg_is_dropped, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_rx_chain_across_descriptors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_mergeable, setup_mrg, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_mergeable_waits_for_buffers, setup_mrg,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_rx_mergeable_never_fits, setup_mrg, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_mergeable_readable_mid_frame, setup_mrg,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_rx_no_buffers_frames_wait, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_malformed_chains, setup, teardown),
	    cmocka_unit_test(test_no_tso_offer),
	    cmocka_unit_test_setup_teardown(test_offloads_follow_negotiation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_drops_pending_frame, setup_mrg, teardown),
	    cmocka_unit_test(test_multiqueue),
	    cmocka_unit_test(test_hostile_driver),
	    cmocka_unit_test(test_init_errors),
	    cmocka_unit_test(test_parse_mac),
	    cmocka_unit_test(test_tap_errors_without_device),
	    cmocka_unit_test(test_tap_udp_guest_to_host),
	    cmocka_unit_test(test_tap_udp_host_to_guest),
	    cmocka_unit_test(test_tap_arp),
	    cmocka_unit_test(test_tap_checksum_offload),
	    cmocka_unit_test(test_tap_frames_wait_without_buffers),
	    cmocka_unit_test(test_tap_open_variants),
	    cmocka_unit_test(test_rate_shared_and_exact),
	    cmocka_unit_test(test_rate_throttled_across_reset),
	    cmocka_unit_test(test_rate_tx_concurrent_kicks),
	    cmocka_unit_test(test_rate_tx),
	    cmocka_unit_test(test_rate_rx),
	};
	return cmocka_run_group_tests(tests, tap_group_setup, NULL);
}
