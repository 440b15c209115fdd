/* virtio-console (virtio 1.x, 5.3) with a single port: receiveq 0 carries
 * input to the guest, transmitq 1 its output. VIRTIO_CONSOLE_F_MULTIPORT is
 * not offered, so there are no control queues and no port messages; the one
 * port is the console.
 *
 * Offered: VIRTIO_CONSOLE_F_SIZE (cols/rows in the configuration, changed
 * with virtio_console_set_size(), which raises a configuration interrupt) and
 * VIRTIO_CONSOLE_F_EMERG_WRITE (a byte written to emerg_wr goes to the
 * output, for a driver that has no queues yet).
 *
 * Output: every device-readable segment of a transmit chain goes to the
 * out_sink, in order. A device-writable segment in a transmit chain is a
 * driver bug the specification gives no meaning to: it is skipped, its bytes
 * counted in tx_dropped and the chain counted in errors; the queue keeps
 * working (the rest of the chain is still written out). Chains are returned
 * with a used length of 0: the device writes nothing into them.
 *
 * Input: virtio_console_input() (or virtio_console_sink_input(), a
 * sink_input_fn) copies bytes into the device-writable segments of receive
 * chains. While the driver has no buffer posted (or before DRIVER_OK) up to
 * VIRTIO_CONSOLE_RX_BUFFER bytes wait in the device and go out when buffers
 * come (the driver's kick on receiveq); bytes beyond that are dropped
 * (rx_dropped), newest first, like a full UART FIFO. A device reset discards
 * what waits. Device-readable segments of a receive chain are skipped and
 * counted in errors; a chain with no writable byte is returned empty.
 *
 * A malformed chain (the virtqueue's validator) puts the device in
 * DEVICE_NEEDS_RESET. No snapshot support yet (save/restore are NULL).
 *
 * Threads: the transport calls the ops under its lock; input arrives on the
 * sink's thread and set_size from any thread. The receive side and the
 * configuration are guarded by the device's own lock, which is never held
 * while the transport is asked to raise an interrupt. */
#ifndef CHV_VIRTIO_CONSOLE_H
#define CHV_VIRTIO_CONSOLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio/virtio.h"
#include "virtio/virtqueue.h"
#include "vm/devctx.h"
#include "vm/err.h"
#include "vm/mem.h"

/* Feature bits (5.3.3). */
#define VIRTIO_CONSOLE_F_SIZE	     0
#define VIRTIO_CONSOLE_F_MULTIPORT   1
#define VIRTIO_CONSOLE_F_EMERG_WRITE 2

#define VIRTIO_CONSOLE_RXQ 0
#define VIRTIO_CONSOLE_TXQ 1

#define VIRTIO_CONSOLE_QUEUE_SIZE 256
/* Input kept while the guest has no receive buffer. */
#define VIRTIO_CONSOLE_RX_BUFFER (64 * 1024)

/* Configuration layout (5.3.4): le16 cols, le16 rows, le32 max_nr_ports,
 * le32 emerg_wr (write-only). */
#define VIRTIO_CONSOLE_CFG_COLS		0
#define VIRTIO_CONSOLE_CFG_ROWS		2
#define VIRTIO_CONSOLE_CFG_MAX_NR_PORTS 4
#define VIRTIO_CONSOLE_CFG_EMERG_WR	8
#define VIRTIO_CONSOLE_CONFIG_SIZE	12

struct virtio_console_stats {
	uint64_t tx_requests;	 /* transmit chains completed */
	uint64_t tx_bytes;	 /* bytes handed to the output (emergency writes included) */
	uint64_t tx_dropped;	 /* output bytes lost: no output, or writable TX segments */
	uint64_t rx_requests;	 /* receive chains completed */
	uint64_t rx_bytes;	 /* bytes delivered to the guest */
	uint64_t rx_dropped;	 /* input bytes lost: buffer full, or discarded at reset */
	uint64_t errors;	 /* chains with segments of the wrong direction, or empty */
	uint64_t config_changes; /* size changes signalled */
};

struct virtio_console {
	struct virtio_dev vdev;
	struct out_sink out;

	pthread_mutex_t lock;
	bool lock_init;
	/* Under lock: */
	bool live;	   /* activated and not reset since: the receiveq may be used */
	bool size_feature; /* the driver accepted VIRTIO_CONSOLE_F_SIZE */
	uint16_t cols, rows;
	uint8_t *pending; /* ring of VIRTIO_CONSOLE_RX_BUFFER bytes */
	size_t pending_head, pending_len;
	struct virtio_console_stats st;
	struct vq_chain rx_chain;

	/* Only in the transmit queue handler. */
	struct vq_chain tx_chain;
};

/* Sets up the device over mem with output to out (NULL, or out->write NULL:
 * output is dropped and counted) and the initial size. -ENOMEM, -EINVAL
 * with err set. Safe to destroy after a failure. */
chv_must_check int virtio_console_init(struct virtio_console *c, const struct vm_mem *mem,
				       const struct out_sink *out, uint16_t cols, uint16_t rows,
				       struct chv_err *err);
/* Safe on a zeroed or half-built object. */
void virtio_console_destroy(struct virtio_console *c);

/* Input from the user for the guest; never blocks on the guest. */
void virtio_console_input(struct virtio_console *c, const uint8_t *buf, size_t n);
/* The same as a sink_input_fn (vm/sink.h): ctx is the struct virtio_console. */
void virtio_console_sink_input(void *ctx, const uint8_t *buf, size_t n);

/* The terminal's new size; a change raises a configuration interrupt when
 * the driver is running and accepted VIRTIO_CONSOLE_F_SIZE. */
void virtio_console_set_size(struct virtio_console *c, uint16_t cols, uint16_t rows);

/* A consistent copy of the counters. */
void virtio_console_get_stats(struct virtio_console *c, struct virtio_console_stats *out);

#endif
