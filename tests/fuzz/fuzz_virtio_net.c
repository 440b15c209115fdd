/* virtio-net (virtio/net.c) from a hostile driver: transmit chains, receive
 * buffers for frames the input injects through the backend, and the control
 * queue (MQ pair changes). Two queue pairs, so the control queue (4) exists;
 * the backend is one SOCK_SEQPACKET socket pair per queue pair, made once.
 * Every frame the device transmits is read back and must be a whole frame
 * of at most header + 64 KiB.
 *
 * Input: u8 features byte, u8 queue-size byte, then fz_common ops and
 *   NET_OP_RX: u8 pair, u16 n, n bytes: a frame from the backend, then rx_ready. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fz_common.h"
#include "virtio/net.h"

#define PAIRS 2

static struct virtio_net net;
static int peer[PAIRS]; /* the backend's far ends */
static uint8_t frame[VIRTIO_NET_HDR_LEN + VIRTIO_NET_MAX_FRAME + 64];

static int configure(void *ctx, unsigned hdr_len, unsigned offloads)
{
	(void)ctx;
	if (hdr_len != VIRTIO_NET_HDR_LEN && hdr_len != VIRTIO_NET_HDR_LEN_LEGACY)
		fz_fail("backend told header length %u", hdr_len);
	if (offloads & ~0xfu)
		fz_fail("backend told offloads 0x%x", offloads);
	return 0;
}

static void poll_set(void *ctx, uint16_t pair, int fd, bool on)
{
	(void)ctx;
	(void)on;
	if (pair >= PAIRS || fd != net.be.fds[pair])
		fz_fail("poll hook for pair %u fd %d", pair, fd);
}

static void drain(int fd, bool check)
{
	for (;;) {
		ssize_t n = recv(fd, frame, sizeof(frame), MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		if (check && (size_t)n > VIRTIO_NET_HDR_LEN + VIRTIO_NET_MAX_FRAME)
			fz_fail("transmitted a frame of %zd bytes", n);
	}
}

static void net_kick(void *ctx, uint16_t q)
{
	(void)ctx;
	virtio_dev_kick(&net.vdev, q);
}

static void setup(void)
{
	struct virtio_net_backend be = {
	    .nfds = PAIRS,
	    .configure = configure,
	    .host_offloads = true,
	    .guest_offloads = true,
	};
	for (int k = 0; k < PAIRS; k++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
			fz_fail("socketpair: %s", strerror(errno));
		be.fds[k] = sv[0];
		peer[k] = sv[1];
	}
	const struct virtio_net_params p = {
	    .mac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56},
	    .mtu = 1500,
	    .queue_pairs = PAIRS,
	    .queue_size = FZ_QSIZE_MAX,
	};
	struct chv_err err = {0};
	if (virtio_net_init(&net, fz_mem(), &p, &be, &err))
		fz_fail("virtio_net_init: %s", err.msg);
	const struct virtio_net_poll poll = {.set = poll_set};
	virtio_net_set_poll(&net, &poll);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet_log();
	setup();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_driver drv;
	struct fz f;

	/* Nothing from the last input waits in the backend. */
	for (int k = 0; k < PAIRS; k++) {
		drain(net.be.fds[k], false);
		drain(peer[k], false);
	}
	fz_init(&f, data, size);
	uint8_t fbyte = fz_u8(&f);
	fz_driver_up(&drv, &net.vdev, fbyte, fz_u8(&f));
	while (fz_left(&f)) {
		uint8_t op = fz_u8(&f) % NET_OP_COUNT;
		if (op != NET_OP_RX) {
			fz_driver_op(&drv, &f, op, net_kick, NULL);
			for (int k = 0; k < PAIRS; k++)
				drain(peer[k], true);
			continue;
		}
		uint16_t pair = fz_u8(&f) % PAIRS;
		const uint8_t *b;
		size_t n = fz_bytes(&f, fz_u16(&f), &b);
		/* An empty datagram reads as end of file: the backend gone. */
		if (send(peer[pair], b, n, MSG_DONTWAIT) < 0 && errno != EAGAIN)
			fz_fail("send: %s", strerror(errno));
		virtio_net_rx_ready(&net, pair);
	}
	return 0;
}
