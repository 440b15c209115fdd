/* virtio-net (virtio 1.x, 5.1) over a frame backend such as a tap device.
 *
 * Queues: receiveq/transmitq pairs (2k, 2k + 1) and, with more than one
 * pair, a control queue last (VIRTIO_NET_F_CTRL_VQ + VIRTIO_NET_F_MQ, only
 * VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET is understood).
 *
 * The backend is one file descriptor per queue pair that reads and writes
 * whole frames, each led by the virtio-net header of the negotiated size (a
 * tap with IFF_VNET_HDR, or a SOCK_SEQPACKET socket in tests). The header
 * passes through in both directions, so checksum and segmentation offloads
 * cost nothing here; the guest's receive offloads are handed to the backend
 * at activation.
 *
 * TX runs on the queue's kick. RX runs when the backend fd is readable: the
 * VM's event loop watches the fds this device asks for through
 * virtio_net_poll (level-triggered) and calls virtio_net_rx_ready(). While a
 * receive queue has no buffers the device stops asking for its fd, so frames
 * wait in the backend (the tap's queue) until the guest adds buffers and
 * kicks. Every guest-supplied chain is checked; a bad one is dropped and
 * counted, a bad ring breaks the queue (DEVICE_NEEDS_RESET).
 *
 * Rate limiting (params.rl, virtio/ratelimit.h): one limiter for both
 * directions of the device (Cloud Hypervisor gives RX and TX each their own
 * buckets with the same settings; sharing one is the simpler model, and the
 * one chv's configuration describes). A frame costs one op and its length
 * without the virtio-net header. TX: a refused chain goes back to the ring
 * and the queue stops (kicks ignored) until the limiter's waiter drains it
 * again. RX: the frame is read from the backend into the device's one-frame
 * buffer, charged before it is copied to the guest; a refused frame stays
 * in that buffer, the device stops watching the backend fd (the rest stays
 * queued in the tap) and the waiter resumes it. The waiter runs on the event
 * loop's thread, outside the transport's lock, so each TX queue has a lock
 * (taken only when there is a limiter) and interrupts and DEVICE_NEEDS_RESET
 * are raised after the queue locks are dropped.
 *
 * Not done: snapshot/restore of the device state, the CTRL_RX, CTRL_VLAN,
 * CTRL_MAC_ADDR and CTRL_GUEST_OFFLOADS classes (not offered). */
#ifndef CHV_VIRTIO_NET_H
#define CHV_VIRTIO_NET_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtio/ratelimit.h"
#include "virtio/virtio.h"
#include "virtio/virtqueue.h"
#include "vm/err.h"
#include "vm/mem.h"

/* Feature bits (5.1.3). */
#define VIRTIO_NET_F_CSUM	0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MTU	3
#define VIRTIO_NET_F_MAC	5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN	9
#define VIRTIO_NET_F_GUEST_UFO	10
#define VIRTIO_NET_F_HOST_TSO4	11
#define VIRTIO_NET_F_HOST_TSO6	12
#define VIRTIO_NET_F_HOST_ECN	13
#define VIRTIO_NET_F_HOST_UFO	14
#define VIRTIO_NET_F_MRG_RXBUF	15
#define VIRTIO_NET_F_STATUS	16
#define VIRTIO_NET_F_CTRL_VQ	17
#define VIRTIO_NET_F_MQ		22

/* Configuration layout (5.1.4): mac[6], le16 status, le16
 * max_virtqueue_pairs, le16 mtu. */
#define VIRTIO_NET_CFG_MAC	 0
#define VIRTIO_NET_CFG_STATUS	 6
#define VIRTIO_NET_CFG_MAX_PAIRS 8
#define VIRTIO_NET_CFG_MTU	 10
#define VIRTIO_NET_CFG_SIZE	 12
#define VIRTIO_NET_S_LINK_UP	 1

/* struct virtio_net_hdr_v1 (5.1.6): u8 flags, u8 gso_type, le16 hdr_len,
 * le16 gso_size, le16 csum_start, le16 csum_offset, le16 num_buffers. The
 * last field exists with VERSION_1 or MRG_RXBUF; without both the header is
 * 10 bytes. */
#define VIRTIO_NET_HDR_LEN	    12u
#define VIRTIO_NET_HDR_LEN_LEGACY   10u
#define VIRTIO_NET_HDR_NUM_BUFFERS  10u
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE	    0
#define VIRTIO_NET_HDR_GSO_TCPV4    1
#define VIRTIO_NET_HDR_GSO_UDP	    3
#define VIRTIO_NET_HDR_GSO_TCPV6    4
#define VIRTIO_NET_HDR_GSO_ECN	    0x80

/* Control queue (5.1.6.5): class, command, data..., then a writable ack. */
#define VIRTIO_NET_CTRL_MQ		4
#define VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET 0
#define VIRTIO_NET_OK			0
#define VIRTIO_NET_ERR			1

/* Backend offload bits (the values of linux/if_tun.h TUN_F_*). */
#define VIRTIO_NET_OFFLOAD_CSUM	   0x01
#define VIRTIO_NET_OFFLOAD_TSO4	   0x02
#define VIRTIO_NET_OFFLOAD_TSO6	   0x04
#define VIRTIO_NET_OFFLOAD_TSO_ECN 0x08

/* Largest frame (after the header) either way: a 64 KiB GSO packet. */
#define VIRTIO_NET_MAX_FRAME  65536u
#define VIRTIO_NET_MAX_PAIRS  16u
#define VIRTIO_NET_QUEUE_SIZE 256u
/* Frames one RX pass moves at most, so a flood cannot hold a vCPU (kick
 * path) or the event loop for long; level-triggered polling brings the loop
 * back for the rest. */
#define VIRTIO_NET_BUDGET 256u

/* The backend: fds[k] carries queue pair k (non-blocking, frame-preserving). */
struct virtio_net_backend {
	int fds[VIRTIO_NET_MAX_PAIRS];
	uint16_t nfds;
	/* At activation: the header length (10 or 12) and the guest's receive
	 * offloads (VIRTIO_NET_OFFLOAD_*) the backend may now send. NULL when
	 * there is nothing to tell. 0 or -errno (activation fails). */
	int (*configure)(void *ctx, unsigned hdr_len, unsigned offloads);
	void *ctx;
	/* The backend accepts frames with checksum/TSO metadata in their header:
	 * CSUM and HOST_TSO4/6/ECN are offered. */
	bool host_offloads;
	/* The backend may send such frames: GUEST_CSUM and GUEST_TSO4/6/ECN
	 * are offered. */
	bool guest_offloads;
};

/* How the device tells the event loop which backend fds to watch for
 * input. Called with on=true when pair k's receive queue can take frames,
 * false when it cannot (no buffers, reset, pair disabled by the driver). */
struct virtio_net_poll {
	void (*set)(void *ctx, uint16_t pair, int fd, bool on);
	void *ctx;
};

struct virtio_net_params {
	uint8_t mac[6];
	uint16_t mtu;	      /* 0: not offered (VIRTIO_NET_F_MTU off) */
	uint16_t queue_pairs; /* 1..VIRTIO_NET_MAX_PAIRS, one backend fd each */
	uint32_t queue_size;  /* 0: VIRTIO_NET_QUEUE_SIZE */
	bool no_tso;	      /* offer checksum offloads without segmentation */
	/* NULL: no limit. Both directions; not owned, must outlive the device,
	 * which registers a waiter on it at init and removes it at destroy. */
	struct ratelimit *rl;
};

struct virtio_net_counters {
	uint64_t tx_packets, tx_bytes, tx_drops, tx_errors;
	uint64_t rx_packets, rx_bytes, rx_drops, rx_errors;
	uint64_t notifications; /* kicks from the driver */
	uint64_t interrupts;	/* queue interrupts raised */
	uint64_t ctrl_commands, ctrl_errors;
	/* Frames the rate limiter refused (each retry counts). */
	uint64_t tx_throttled, rx_throttled;
};

/* One receive queue's state, guarded by lock (the event loop and kicks). */
struct virtio_net_rxq {
	pthread_mutex_t lock;
	bool lock_init;
	bool polling;	  /* the loop is told to watch the fd */
	bool have_first;  /* first holds a popped, unused chain */
	bool throttled;	  /* the limiter refused the pending frame */
	bool charged;	  /* the pending frame was taken from the limiter */
	uint32_t pending; /* bytes of a frame in buf awaiting buffers */
	uint8_t *buf;	  /* VIRTIO_NET_HDR_LEN + VIRTIO_NET_MAX_FRAME + 1 */
	struct vq_chain *first;
	struct vq_chain *more;
	uint16_t *heads; /* chains of one merged frame */
	uint32_t *lens;
};

/* One transmit queue's state. The lock is taken only with a limiter,
 * whose waiter may drain the queue while a kick does. */
struct virtio_net_txq {
	pthread_mutex_t lock;
	bool lock_init;
	bool throttled; /* the limiter refused; the waiter drains it again */
	struct vq_chain *chain;
};

struct virtio_net {
	struct virtio_dev vdev;
	struct virtio_net_params params;
	struct virtio_net_backend be;
	struct virtio_net_poll poll;
	uint16_t pairs;	       /* configured */
	uint16_t active_pairs; /* the driver's choice (MQ), 1 by default */
	uint16_t ctrl_q;       /* index of the control queue, 0 when none */
	unsigned hdr_len;      /* negotiated */
	bool mrg_rxbuf;
	struct virtio_net_rxq rxq[VIRTIO_NET_MAX_PAIRS];
	struct virtio_net_txq txq[VIRTIO_NET_MAX_PAIRS];
	struct vq_chain *ctrl_chain;
	struct ratelimit *rl; /* set once its waiter is registered */
	bool running;	      /* activated, not reset since; __atomic */
	/* Updated with __atomic builtins: TX runs on kicks, RX on the loop. */
	struct virtio_net_counters ctr;
};

/* Sets up the device over mem with this backend (its fds are not owned:
 * the caller closes them after virtio_net_destroy()). -EINVAL with err
 * naming the field for bad parameters (queue_pairs vs. the backend's fds,
 * a multicast mac, mtu below 68), -ENOMEM. Safe to destroy after failure. */
chv_must_check int virtio_net_init(struct virtio_net *n, const struct vm_mem *mem,
				   const struct virtio_net_params *p,
				   const struct virtio_net_backend *be, struct chv_err *err);
/* Safe on a zeroed or half-built object. */
void virtio_net_destroy(struct virtio_net *n);

/* Installs the event loop's hook (before the device goes live). */
void virtio_net_set_poll(struct virtio_net *n, const struct virtio_net_poll *poll);

/* The backend fd of pair k is readable: moves frames into the guest. */
void virtio_net_rx_ready(struct virtio_net *n, uint16_t pair);

/* Whether the device wants pair k's fd watched now. */
bool virtio_net_rx_polling(struct virtio_net *n, uint16_t pair);

/* A consistent-enough copy of the counters, for statistics. */
void virtio_net_get_counters(struct virtio_net *n, struct virtio_net_counters *out);

#endif
