/* The virtio-console check: the device found and set up through the virtio
 * core (receiveq 0, transmitq 1), its configuration read, then one known
 * line sent through the transmit queue from CPL3. The host side decides
 * whether the line arrived (the integration test reads the console's file
 * or socket); here the device must return the chain and stay healthy. */
#include "guest.h"

#define VIRTIO_ID_CONSOLE  3
#define VCON_F_SIZE	   0
#define VCON_CFG_COLS	   0
#define VCON_CFG_ROWS	   2
#define VCON_CFG_MAX_PORTS 4
#define VCON_TIMEOUT_MS	   5000
#define VCON_LINE	   "chv-testguest virtio-console hello\n"

static uint8_t rx_ring[4096] __attribute__((aligned(4096)));
static uint8_t tx_ring[4096] __attribute__((aligned(4096)));
static char tx_buf[64] __attribute__((aligned(64)));

struct vcon_run {
	struct virtq *vq;
	uint64_t tsc_per_ms;
	int64_t got; /* the used length, or -1: no answer */
};

/* The line goes as two descriptors, so the device must join the segments. */
static uint64_t vcon_user(void *arg)
{
	struct vcon_run *r = arg;
	const uint32_t n = sizeof(VCON_LINE) - 1, half = n / 2;
	memcpy(tx_buf, VCON_LINE, n);
	const struct virtq_buf bufs[2] = {
	    {(uint64_t)(uintptr_t)tx_buf, half, false},
	    {(uint64_t)(uintptr_t)tx_buf + half, n - half, false},
	};
	r->got = virtq_transact(r->vq, bufs, 2, rdtsc() + VCON_TIMEOUT_MS * r->tsc_per_ms);
	return r->got < 0;
}

void check_vcon(void)
{
	static struct virtio_dev v;
	static struct virtq rxq, txq;
	char why[160];

	if (!virtio_open(VIRTIO_ID_CONSOLE, &v, why, sizeof(why)) ||
	    !virtio_negotiate(&v, 1ull << VCON_F_SIZE, why, sizeof(why)) ||
	    !virtio_queue_setup(&v, 0, &rxq, (uint64_t)(uintptr_t)rx_ring, why, sizeof(why)) ||
	    !virtio_queue_setup(&v, 1, &txq, (uint64_t)(uintptr_t)tx_ring, why, sizeof(why))) {
		tap_fail("virtio-console", "%s", why);
		return;
	}
	virtio_driver_ok(&v);
	volatile uint8_t *cfg = (volatile uint8_t *)(uintptr_t)v.device;
	uint16_t cols = *(volatile uint16_t *)(cfg + VCON_CFG_COLS);
	uint16_t rows = *(volatile uint16_t *)(cfg + VCON_CFG_ROWS);
	uint32_t ports = *(volatile uint32_t *)(cfg + VCON_CFG_MAX_PORTS);
	bool size = v.features & (1ull << VCON_F_SIZE);
	tap_diag("virtio-console: %02x:%02x.%x %04x:%04x, BAR%u at 0x%lx, features 0x%lx, config "
		 "%u bytes, size %s%ux%u, max_nr_ports %u",
		 v.pci.bus, v.pci.dev, v.pci.fn, v.pci.vendor, v.pci.device, v.bar, v.bar_pa,
		 v.features, v.device_len, size ? "" : "(not offered) ", cols, rows, ports);

	struct vcon_run r = {.vq = &txq, .tsc_per_ms = tsc_khz(NULL), .got = -1};
	uint64_t rc = user_call(vcon_user, &r);
	uint8_t st = virtio_status(&v);
	virtio_reset(&v);
	if (r.got < 0)
		tap_fail("virtio-console", "the transmit chain came not back within %u ms",
			 VCON_TIMEOUT_MS);
	else if (rc || st & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED))
		tap_fail("virtio-console", "status 0x%x after the transmit", st);
	else if (v.device_len < VCON_CFG_MAX_PORTS)
		tap_fail("virtio-console", "configuration of %u bytes lacks cols and rows",
			 v.device_len);
	else if (size && (!cols || !rows))
		tap_fail("virtio-console", "F_SIZE offered but the size is %ux%u", cols, rows);
	else
		tap_ok("virtio-console");
}
