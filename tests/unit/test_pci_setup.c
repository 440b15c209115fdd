/* The VM's PCI root (vm/pci_setup.c) on a fake hypervisor: configuration
 * space through the VM's buses, BAR registration as the guest moves BARs,
 * MSI-X vectors routed to GSIs from 24 with an irqfd each, the INTx swizzle
 * and the 64-bit window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "pci/pci.h"
#include "vm/layout.h"
#include "vm/vm_internal.h"

static uint32_t routed_gsi, irqfd_gsi, n_routes, n_irqfd;
static struct hv_msi routed_msg;

static int fake_irq_line(struct hv_vm *vm, uint32_t gsi, bool level)
{
	(void)vm, (void)gsi, (void)level;
	return 0;
}
static int fake_route_msi(struct hv_vm *vm, uint32_t gsi, const struct hv_msi *msi)
{
	(void)vm;
	routed_gsi = gsi;
	routed_msg = *msi;
	n_routes++;
	return 0;
}
static int fake_irqfd(struct hv_vm *vm, int fd, uint32_t gsi, bool assign)
{
	(void)vm, (void)fd;
	if (assign) {
		irqfd_gsi = gsi;
		n_irqfd++;
	}
	return 0;
}
static const struct hv_ops fake_ops = {
    .name = "fake", .irq_line = fake_irq_line, .route_msi = fake_route_msi, .irqfd = fake_irqfd};

static struct vm_config cfg;
static struct vm vm;

static int setup(void **state)
{
	(void)state;
	memset(&vm, 0, sizeof(vm));
	memset(&cfg, 0, sizeof(cfg));
	cfg.memory.size = 5ULL << 30; /* 3 GiB low, 2 GiB high */
	cfg.cpus.max_phys_bits = 40;
	vm.cfg = &cfg;
	vm.ops = &fake_ops;
	assert_int_equal(bus_init(&vm.pio, "pio"), 0);
	assert_int_equal(bus_init(&vm.mmio, "mmio"), 0);
	struct chv_err err = {0};
	assert_int_equal(vm_pci_create(&vm, &err), 0);
	n_routes = n_irqfd = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vm_pci_destroy(&vm);
	assert_null(vm.pci);
	bus_destroy(&vm.mmio);
	bus_destroy(&vm.pio);
	return 0;
}

static uint32_t mmio32(uint64_t a)
{
	uint8_t b[4];
	assert_true(bus_dispatch(&vm.mmio, a, b, 4, false));
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static void wmmio32(uint64_t a, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	assert_true(bus_dispatch(&vm.mmio, a, b, 4, true));
}

static void test_host_bridge_both_mechanisms(void **state)
{
	(void)state;
	assert_int_equal(mmio32(LAYOUT_ECAM_START), 0x0d578086);
	assert_int_equal(mmio32(LAYOUT_ECAM_START + (1 << 15)), 0xffffffff); /* empty slot */
	uint8_t b[4] = {0x00, 0x00, 0x00, 0x80}; /* enable, 00:00.0, reg 0 */
	assert_true(bus_dispatch(&vm.pio, 0xcf8, b, 4, true));
	assert_true(bus_dispatch(&vm.pio, 0xcfc, b, 4, false));
	assert_int_equal(b[0] | b[1] << 8, 0x8086);
	assert_int_equal(b[2] | b[3] << 8, 0x0d57);
}

static void test_window_and_swizzle(void **state)
{
	(void)state;
	uint64_t s, n;
	vm_pci_windows(&vm, &s, &n);
	assert_int_equal(s, 0x180000000ULL); /* 4 GiB + 2 GiB */
	assert_int_equal(n, (1ULL << 40) - 0x180000000ULL);
	vm_pci_mem64_window(1ULL << 30, 46, &s, &n); /* no high RAM */
	assert_int_equal(s, 1ULL << 32);
	vm_pci_mem64_window((1ULL << 30) * 3 + 1, 46, &s, &n); /* rounded up to 1 GiB */
	assert_int_equal(s, 5ULL << 30);
	vm_pci_mem64_window(64ULL << 30, 36, &s, &n); /* nothing left */
	assert_int_equal(n, 0);
	assert_int_equal(vm_pci_intx_gsi(0, 1), 16);
	assert_int_equal(vm_pci_intx_gsi(1, 1), 17);
	assert_int_equal(vm_pci_intx_gsi(7, 2), 16);
	assert_int_equal(vm_pci_intx_gsi(31, 4), 18);
}

static uint32_t last_off;
static void dev_bar_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	(void)opaque;
	last_off = (uint32_t)off;
	if (!is_write)
		memset(data, 0x5a, len);
}

static void dev_bar_moved(struct pci_dev *dev, unsigned bar, uint64_t o, uint64_t n)
{
	vm_pci_bar_moved(&vm, dev, bar, o, n);
}
static const struct pci_dev_ops dev_ops = {.bar_moved = dev_bar_moved};

static void test_device_bars_and_msix(void **state)
{
	(void)state;
	struct pci_dev dev = {0};
	struct chv_err err = {0};
	const struct pci_dev_info info = {.vendor = 0x1af4, .device = 0x1044, .irq_pin = 1};
	assert_int_equal(pci_dev_init(&dev, &info, &dev_ops, NULL), 0);
	assert_int_equal(pci_dev_set_bar(&dev, 0, PCI_BAR_MEM32, 0x4000, false, &err), 0);
	const struct pci_msix_cfg mc = {
	    .nvec = 3, .table_bar = 0, .table_off = 0x2000, .pba_bar = 0, .pba_off = 0x3000};
	struct vm_pci_fn fn = {.dev = &dev, .slot = 3, .name = "t", .msix = &mc};
	fn.bar_io[0] = dev_bar_io;
	struct pci_msix *m = NULL;
	assert_int_equal(vm_pci_add_device(&vm, &fn, &m, &err), 3);
	assert_non_null(m);
	/* Slot taken, bad slot. */
	struct pci_dev d2 = {0};
	assert_int_equal(pci_dev_init(&d2, &info, NULL, NULL), 0);
	struct vm_pci_fn f2 = {.dev = &d2, .slot = 3};
	assert_int_equal(vm_pci_add_device(&vm, &f2, NULL, &err), -EBUSY);
	f2.slot = 32;
	assert_int_equal(vm_pci_add_device(&vm, &f2, NULL, &err), -EINVAL);
	f2.slot = 0;
	assert_int_equal(vm_pci_add_device(&vm, &f2, NULL, &err), -EINVAL);
	pci_dev_destroy(&d2);
	/* The INTx line and what firmware would write. */
	assert_int_equal(pci_cfg_get8(&dev, PCI_INTERRUPT_LINE), vm_pci_intx_gsi(3, 1));

	uint64_t bar = pci_bar_addr(&dev, 0);
	assert_int_equal(bar, LAYOUT_MMIO32_START);
	assert_int_equal(mmio32(bar + 0x10), 0x5a5a5a5a);
	assert_int_equal(last_off, 0x10);
	/* Vector 1: message, then unmask: routed on GSI 24 + 1, irqfd bound. */
	wmmio32(bar + 0x2000 + 16 + 0, 0xfee00000);
	wmmio32(bar + 0x2000 + 16 + 8, 0x41);
	uint64_t cfgbase = LAYOUT_ECAM_START + (3 << 15);
	uint8_t cap = pci_find_cap(&dev, PCI_CAP_ID_MSIX, 0);
	assert_true(cap != 0);
	wmmio32(cfgbase + cap, (uint32_t)PCI_MSIX_CTRL_ENABLE << 16);
	wmmio32(bar + 0x2000 + 16 + 12, 0);
	assert_int_equal(routed_gsi, 25);
	assert_int_equal(routed_msg.address, 0xfee00000);
	assert_int_equal(routed_msg.data, 0x41);
	assert_int_equal(irqfd_gsi, 25);
	int fd = vm_pci_msix_fd(&vm, &dev, 1);
	assert_true(fd >= 0);
	assert_int_equal(vm_pci_msix_fd(&vm, &dev, 0), -ENOENT);
	assert_int_equal(vm_pci_msix_fd(&vm, &dev, 3), -EINVAL);
	assert_int_equal(pci_msix_notify(m, 1), PCI_MSIX_SENT);
	uint64_t cnt = 0;
	assert_int_equal(read(fd, &cnt, sizeof(cnt)), sizeof(cnt));
	assert_int_equal(cnt, 1);

	/* The guest moves the BAR: the old range goes, the new one serves. */
	wmmio32(cfgbase + PCI_BAR0, 0xd0000000);
	assert_false(bus_dispatch(&vm.mmio, bar, (uint8_t[4]){0}, 4, false));
	assert_int_equal(mmio32(0xd0000000 + 0x20), 0x5a5a5a5a);
	/* Decoding off: nothing there. */
	wmmio32(cfgbase + PCI_COMMAND, 0);
	assert_false(bus_dispatch(&vm.mmio, 0xd0000000, (uint8_t[4]){0}, 4, false));
	/* A BAR put over ECAM is not mapped, and the VM goes on. */
	wmmio32(cfgbase + PCI_BAR0, (uint32_t)LAYOUT_ECAM_START);
	wmmio32(cfgbase + PCI_COMMAND, PCI_COMMAND_MEMORY);
	assert_int_equal(mmio32(LAYOUT_ECAM_START), 0x0d578086);

	/* A second device on the first free slot gets its GSIs after the first's. */
	struct pci_dev d3 = {0};
	assert_int_equal(pci_dev_init(&d3, &info, &dev_ops, NULL), 0);
	assert_int_equal(pci_dev_set_bar(&d3, 0, PCI_BAR_MEM64, 0x4000, false, &err), 0);
	struct vm_pci_fn f3 = {.dev = &d3, .slot = -1, .msix = &mc};
	assert_int_equal(vm_pci_add_device(&vm, &f3, &m, &err), 1);
	assert_true(pci_bar_addr(&d3, 0) >= 0x180000000ULL); /* the 64-bit window */
	vm_pci_destroy(&vm); /* takes both off the bus before their owners destroy them */
	pci_dev_destroy(&d3);
	pci_dev_destroy(&dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_host_bridge_both_mechanisms, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_window_and_swizzle, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_device_bars_and_msix, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
