/* virtio-blk requests (virtio/blk.c) from a hostile driver: the fake driver
 * of fz_common.c writes descriptors, headers, data and available entries
 * into guest RAM and kicks; each kick waits for the I/O to complete. The
 * device (two queues of up to 16 entries) is made once over a 64 KiB
 * temporary image that is unlinked at once, and reset for every input.
 *
 * Input: u8 features byte, u8 queue-size byte, then fz_common ops. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fz_common.h"
#include "virtio/blk.h"

#define IMG_BYTES (64 * 1024)

static struct virtio_blk blk;

static void blk_kick(void *ctx, uint16_t q)
{
	(void)ctx;
	virtio_dev_kick(&blk.vdev, q);
	virtio_blk_drain(&blk);
}

static void setup(void)
{
	char path[] = "/tmp/chv-fuzz-blk-XXXXXX";
	struct chv_err err = {0};
	int fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, IMG_BYTES))
		fz_fail("cannot create the image");
	const struct virtio_blk_opts o = {
	    .path = path,
	    .serial = "chv-fuzz-serial",
	    .num_queues = 2,
	    .queue_size = FZ_QSIZE_MAX,
	};
	int rc = virtio_blk_init(&blk, fz_mem(), &o, &err);
	unlink(path);
	close(fd);
	if (rc)
		fz_fail("virtio_blk_init: %s", err.msg);
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

	fz_init(&f, data, size);
	uint8_t fbyte = fz_u8(&f);
	fz_driver_up(&drv, &blk.vdev, fbyte, fz_u8(&f));
	while (fz_left(&f))
		fz_driver_op(&drv, &f, fz_u8(&f) % FZ_OP_DEVICE, blk_kick, NULL);
	virtio_blk_drain(&blk);
	return 0;
}
