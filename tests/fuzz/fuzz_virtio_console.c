/* virtio-console (virtio/console.c) from a hostile driver: transmit chains
 * (output to a sink that checks every buffer it gets), receive buffers for
 * input the fuzzer types, emergency writes and size changes. The device is
 * made once and reset for every input; the input waiting in the device is
 * dropped by the reset.
 *
 * Input: u8 features byte, u8 queue-size byte, then fz_common ops and
 *   CON_OP_INPUT: u16 n, n bytes typed by the user;
 *   CON_OP_SIZE: u16 cols, u16 rows. */
#include <string.h>

#include "fz_common.h"
#include "virtio/console.h"

static struct virtio_console con;
static uint64_t out_bytes;
static volatile uint8_t out_sum;

static void out_write(void *ctx, const uint8_t *buf, size_t n)
{
	(void)ctx;
	if (n == 0)
		fz_fail("empty write to the output");
	/* Output comes from guest RAM (or the one emerg_wr byte on our stack). */
	uint8_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum ^= buf[i];
	out_sum ^= sum;
	out_bytes += n;
}

static void con_kick(void *ctx, uint16_t q)
{
	(void)ctx;
	virtio_dev_kick(&con.vdev, q);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet_log();
	const struct out_sink out = {.write = out_write};
	struct chv_err err = {0};
	if (virtio_console_init(&con, fz_mem(), &out, 80, 25, &err))
		fz_fail("virtio_console_init: %s", err.msg);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_driver drv;
	struct fz f;

	fz_init(&f, data, size);
	uint8_t fbyte = fz_u8(&f);
	fz_driver_up(&drv, &con.vdev, fbyte, fz_u8(&f));
	while (fz_left(&f)) {
		uint8_t op = fz_u8(&f) % CON_OP_COUNT;
		if (op == CON_OP_INPUT) {
			const uint8_t *b;
			size_t n = fz_bytes(&f, fz_u16(&f), &b);
			virtio_console_input(&con, b, n);
		} else if (op == CON_OP_SIZE) {
			uint16_t cols = fz_u16(&f);
			virtio_console_set_size(&con, cols, fz_u16(&f));
		} else {
			fz_driver_op(&drv, &f, op, con_kick, NULL);
		}
	}
	struct virtio_console_stats st;
	virtio_console_get_stats(&con, &st);
	if (st.rx_bytes > st.rx_requests * (uint64_t)FZ_RAM_SIZE)
		fz_fail("delivered %llu bytes in %llu chains", (unsigned long long)st.rx_bytes,
			(unsigned long long)st.rx_requests);
	return 0;
}
