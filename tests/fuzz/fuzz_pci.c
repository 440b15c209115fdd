/* The PCI core and the virtio-pci transport (pci/) from a hostile guest:
 * configuration space through ECAM and 0xCF8/0xCFC, the virtio BAR (common
 * configuration, ISR, device configuration, notifications, MSI-X table and
 * PBA) at any offset and width, kicks, and hot-unplug. Two functions sit on
 * the bus: virtio-rng (over /dev/zero) in slot 1 and virtio-console in slot
 * 2, so queue set-up and requests reach a device. The bus and transports
 * are built for every input; the virtio devices are made once and reset.
 *
 * Input: a sequence of ops, each u8 op then its arguments:
 *   ECAM: u32 offset, u8 len, u32 value, u8 write
 *   CF8/CFC: u8 offset, u8 len, u32 value, u8 write
 *   BAR: u8 function, u16 offset, u8 len, u64 value, u8 write
 *   KICK: u8 function, u16 queue
 *   REMOVE: u8 slot
 *   MEM/DESC/AVAIL/AVAIL_IDX: as in fz_common.h (rings of queue q at
 *   FZ_DESC/AVAIL/USED(q), if the driver put them there). */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fz_common.h"
#include "pci/virtio_pci.h"
#include "virtio/console.h"
#include "virtio/rng.h"
#include "vm/layout.h"

#define NFN 2

static struct virtio_rng rng;
static struct virtio_console con;
static struct virtio_dev *vdevs[NFN];

struct fn {
	struct virtio_pci vp;
	bool on_bus;
	uint64_t bar_at;
};

static void deliver(void *opaque, uint16_t vector, const struct pci_msi_msg *msg)
{
	struct fn *fn = opaque;
	if (vector >= fn->vp.nvec)
		fz_fail("MSI-X vector %u delivered, the function has %u", vector, fn->vp.nvec);
	(void)msg;
}

static void vector_changed(void *opaque, uint16_t vector, const struct pci_msi_msg *msg,
			   bool masked)
{
	struct fn *fn = opaque;
	(void)msg;
	(void)masked;
	if (vector >= fn->vp.nvec)
		fz_fail("MSI-X vector %u changed, the function has %u", vector, fn->vp.nvec);
}

static const struct pci_msix_ops msix_ops = {.deliver = deliver, .vector_changed = vector_changed};

static void bar_moved(void *ctx, uint64_t old_addr, uint64_t new_addr)
{
	struct fn *fn = ctx;
	if (old_addr != fn->bar_at)
		fz_fail("BAR moved from 0x%llx, it was at 0x%llx", (unsigned long long)old_addr,
			(unsigned long long)fn->bar_at);
	fn->bar_at = new_addr;
}

static int set_irq(void *ctx, uint32_t gsi, bool level)
{
	(void)ctx;
	(void)gsi;
	(void)level;
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	struct chv_err err = {0};
	fz_quiet_log();
	int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || virtio_rng_init_fd(&rng, fz_mem(), fd, &err))
		fz_fail("virtio-rng: %s", err.msg);
	if (virtio_console_init(&con, fz_mem(), NULL, 80, 25, &err))
		fz_fail("virtio-console: %s", err.msg);
	vdevs[0] = &rng.vdev;
	vdevs[1] = &con.vdev;
	return 0;
}

static uint32_t width(uint8_t b)
{
	/* Mostly the widths a CPU makes, sometimes anything 1..8. */
	static const uint8_t w[] = {1, 2, 4, 8, 1, 2, 4, 3};
	return b & 0x80 ? 1u + (b & 7) : w[b & 7];
}

static void io(void (*fn)(void *, uint64_t, uint8_t *, uint32_t, bool), void *opaque, uint64_t off,
	       uint32_t len, uint64_t v, bool write)
{
	uint8_t buf[8];
	memcpy(buf, &v, sizeof(buf));
	fn(opaque, off, buf, len, write);
}

static void no_kick(void *ctx, uint16_t q)
{
	(void)ctx;
	(void)q;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pci_bus bus;
	struct fn fns[NFN];
	struct chv_err err = {0};
	struct fz f;

	memset(fz_mem()->map, 0, fz_mem()->map_size);
	memset(fns, 0, sizeof(fns));
	if (pci_bus_init(&bus, LAYOUT_RAM64_START + (1ull << 30), 1ull << 34, &err))
		fz_fail("pci_bus_init: %s", err.msg);
	for (int i = 0; i < NFN; i++) {
		virtio_dev_reset(vdevs[i]);
		const struct virtio_pci_host host = {
		    .msix_ops = &msix_ops,
		    .msix_opaque = &fns[i],
		    .bar_moved = bar_moved,
		    .ctx = &fns[i],
		};
		fns[i].bar_at = PCI_BAR_UNMAPPED;
		if (virtio_pci_init(&fns[i].vp, vdevs[i], &host, &err))
			fz_fail("virtio_pci_init: %s", err.msg);
		const struct irq_line line = {.set = set_irq, .gsi = 16u + (unsigned)i};
		pci_dev_set_intx_line(&fns[i].vp.pci, &line);
		if (pci_bus_add(&bus, &fns[i].vp.pci, 1 + i) != 1 + i)
			fz_fail("pci_bus_add");
		fns[i].on_bus = true;
	}
	/* The driver ops for rings and memory, over the first function. */
	struct fz_driver drv = {.d = vdevs[0], .qsize = FZ_QSIZE_MAX};

	fz_init(&f, data, size);
	while (fz_left(&f)) {
		uint8_t op = fz_u8(&f) % PCI_OP_COUNT;
		switch (op) {
		case PCI_OP_ECAM: {
			uint64_t off = fz_u32(&f) % LAYOUT_ECAM_SIZE;
			uint32_t len = width(fz_u8(&f));
			uint32_t v = fz_u32(&f);
			io(pci_ecam_io, &bus, off, len, v, fz_u8(&f) & 1);
			break;
		}
		case PCI_OP_CF8:
		case PCI_OP_CFC: {
			uint64_t off = fz_u8(&f) % 4;
			uint32_t len = width(fz_u8(&f));
			uint32_t v = fz_u32(&f);
			io(op == PCI_OP_CF8 ? pci_cf8_io : pci_cfc_io, &bus, off, len, v,
			   fz_u8(&f) & 1);
			break;
		}
		case PCI_OP_BAR: {
			struct fn *fn = &fns[fz_u8(&f) % NFN];
			uint64_t off = fz_u16(&f) % VIRTIO_PCI_BAR_SIZE;
			uint32_t len = width(fz_u8(&f));
			uint64_t v = fz_u64(&f);
			bool write = fz_u8(&f) & 1;
			if (fn->on_bus)
				io(virtio_pci_bar_io, &fn->vp, off, len, v, write);
			break;
		}
		case PCI_OP_KICK: {
			struct fn *fn = &fns[fz_u8(&f) % NFN];
			uint16_t q = fz_u16(&f);
			if (fn->on_bus)
				virtio_pci_kick(&fn->vp, q);
			break;
		}
		case PCI_OP_REMOVE: {
			int slot = fz_u8(&f) % PCI_SLOTS;
			struct pci_dev *dev = pci_bus_remove(&bus, slot);
			for (int i = 0; i < NFN; i++)
				if (dev == &fns[i].vp.pci) {
					fns[i].on_bus = false;
					if (fns[i].bar_at != PCI_BAR_UNMAPPED)
						fz_fail("removed function still mapped");
				}
			break;
		}
		case FZ_OP_MEM:
		case FZ_OP_DESC:
		case FZ_OP_AVAIL:
		case FZ_OP_AVAIL_IDX:
			fz_driver_op(&drv, &f, op, no_kick, NULL);
			break;
		default:
			break; /* kicks, resets and config go through the registers */
		}
	}
	for (int i = 0; i < NFN; i++)
		if (fns[i].on_bus && !pci_bus_remove(&bus, 1 + i))
			fz_fail("function %d vanished from the bus", i);
	for (int i = 0; i < NFN; i++)
		virtio_pci_destroy(&fns[i].vp);
	pci_bus_destroy(&bus);
	return 0;
}
