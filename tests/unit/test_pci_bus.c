/* The PCI bus: slots, the host bridge, ECAM and 0xCF8/0xCFC decoding, BAR
 * placement in the MMIO windows. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pci/pci.h"
#include "vm/layout.h"

#define MEM64_START 0x4000000000ULL
#define MEM64_SIZE  0x1000000000ULL

static const struct pci_dev_info info = {
    .vendor = 0x1af4, .device = 0x1041, .class_code = 0x020000, .irq_pin = 1};

struct fixture {
	struct pci_bus bus;
	struct pci_dev dev;
};

static int setup(void **state)
{
	static struct fixture f;
	struct chv_err err = {0};
	assert_int_equal(pci_bus_init(&f.bus, MEM64_START, MEM64_SIZE, &err), 0);
	assert_int_equal(pci_dev_init(&f.dev, &info, NULL, NULL), 0);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	pci_bus_destroy(&f->bus);
	pci_dev_destroy(&f->dev);
	return 0;
}

static uint32_t ecam_read(struct pci_bus *b, uint64_t off, uint32_t len)
{
	uint8_t d[8];
	memset(d, 0x5a, sizeof(d));
	pci_ecam_io(b, off, d, len, false);
	uint32_t v = 0;
	for (uint32_t i = 0; i < len && i < 4; i++)
		v |= (uint32_t)d[i] << (8 * i);
	for (uint32_t i = len; i < 8; i++)
		assert_int_equal(d[i], 0x5a); /* nothing past the access */
	return v;
}

static void ecam_write(struct pci_bus *b, uint64_t off, uint32_t len, uint32_t v)
{
	uint8_t d[8] = {0};
	for (uint32_t i = 0; i < len && i < 4; i++)
		d[i] = (uint8_t)(v >> (8 * i));
	pci_ecam_io(b, off, d, len, true);
}

static uint64_t ecam(uint32_t bus, uint32_t dev, uint32_t fn, uint32_t reg)
{
	return (uint64_t)bus << 20 | dev << 15 | fn << 12 | reg;
}

static void test_init_errors(void **state)
{
	(void)state;
	struct pci_bus b;
	struct chv_err err = {0};
	assert_int_equal(pci_bus_init(&b, UINT64_MAX - 0xfff, 0x2000, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "wraps"));
	pci_bus_destroy(&b);
	assert_int_equal(pci_bus_init(&b, 0x80000000, 0x1000, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "0x80000000"));
	pci_bus_destroy(&b);
	/* No 64-bit window at all is fine. */
	assert_int_equal(pci_bus_init(&b, 0, 0, &err), 0);
	pci_bus_destroy(&b);
	pci_bus_destroy(&b);
}

static void test_host_bridge(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(ecam_read(&f->bus, ecam(0, 0, 0, 0), 4),
			 PCI_HOST_BRIDGE_DEVICE << 16 | PCI_HOST_BRIDGE_VENDOR);
	assert_int_equal(ecam_read(&f->bus, ecam(0, 0, 0, PCI_CLASS_DEVICE), 2), 0x0600);
	assert_int_equal(ecam_read(&f->bus, ecam(0, 0, 0, PCI_HEADER_TYPE), 1), 0);
	ecam_write(&f->bus, ecam(0, 0, 0, PCI_COMMAND), 2, 0xffff);
	assert_int_equal(ecam_read(&f->bus, ecam(0, 0, 0, PCI_COMMAND), 2), 0);
	assert_ptr_equal(pci_bus_get(&f->bus, 0), &f->bus.host_bridge);
	assert_null(pci_bus_remove(&f->bus, 0));
	assert_ptr_equal(pci_bus_get(&f->bus, 0), &f->bus.host_bridge);
}

static void test_ecam_decode(void **state)
{
	struct fixture *f = *state;
	struct pci_bus *b = &f->bus;
	assert_int_equal(pci_bus_add(b, &f->dev, 3), 3);
	/* Every width at every aligned offset matches the device's own view. */
	for (uint32_t reg = 0; reg < 0x1000; reg++) {
		for (uint32_t len = 1; len <= 4; len *= 2) {
			if (reg % len)
				continue;
			assert_int_equal(ecam_read(b, ecam(0, 3, 0, reg), len),
					 pci_cfg_read(&f->dev, reg, len));
		}
	}
	assert_int_equal(ecam_read(b, ecam(0, 3, 0, 0), 4), 0x10411af4);
	/* Writes at each width reach the register. */
	ecam_write(b, ecam(0, 3, 0, PCI_COMMAND), 2, PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY);
	assert_int_equal(pci_cfg_read(&f->dev, PCI_COMMAND, 2), 6);
	ecam_write(b, ecam(0, 3, 0, PCI_COMMAND + 1), 1, 0x04);
	assert_int_equal(pci_cfg_read(&f->dev, PCI_COMMAND, 2), 0x0406);
	ecam_write(b, ecam(0, 3, 0, PCI_INTERRUPT_LINE), 4, 0xffffff0b);
	assert_int_equal(pci_cfg_read(&f->dev, PCI_INTERRUPT_LINE, 1), 0x0b);
	ecam_write(b, ecam(0, 3, 0, PCI_COMMAND), 4, 0);
	assert_int_equal(pci_cfg_read(&f->dev, PCI_COMMAND, 2), 0);

	/* Unaligned and odd widths: all ones, writes ignored. */
	static const struct {
		uint32_t reg, len;
	} bad[] = {{1, 2}, {3, 2}, {2, 4}, {5, 4}, {0, 3}, {0, 8}, {4, 8}, {0, 5}, {0xfff, 2}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint32_t all = bad[i].len >= 4 ? 0xffffffffu : (1u << (8 * bad[i].len)) - 1;
		assert_int_equal(ecam_read(b, ecam(0, 3, 0, bad[i].reg), bad[i].len), all);
		ecam_write(b, ecam(0, 3, 0, bad[i].reg), bad[i].len, 0xffffffff);
	}
	ecam_write(b, ecam(0, 3, 0, PCI_COMMAND - 1), 2, 0xffff);
	ecam_write(b, ecam(0, 3, 0, PCI_COMMAND - 2), 4, 0xffffffff);
	assert_int_equal(pci_cfg_read(&f->dev, PCI_COMMAND, 2), 0);
	uint8_t wide[8];
	memset(wide, 0, sizeof(wide));
	pci_ecam_io(b, ecam(0, 3, 0, 0), wide, 8, false);
	for (int i = 0; i < 8; i++)
		assert_int_equal(wide[i], 0xff);

	/* Other buses, functions, empty slots, and past the window: absent. */
	assert_int_equal(ecam_read(b, ecam(1, 3, 0, 0), 4), 0xffffffff);
	assert_int_equal(ecam_read(b, ecam(255, 3, 0, 0), 4), 0xffffffff);
	for (uint32_t fn = 1; fn < 8; fn++)
		assert_int_equal(ecam_read(b, ecam(0, 3, fn, 0), 4), 0xffffffff);
	for (uint32_t s = 0; s < PCI_SLOTS; s++)
		if (s != 0 && s != 3)
			assert_int_equal(ecam_read(b, ecam(0, s, 0, 0), 2), 0xffff);
	assert_int_equal(ecam_read(b, LAYOUT_ECAM_SIZE, 4), 0xffffffff);
	assert_int_equal(ecam_read(b, UINT64_MAX - 3, 4), 0xffffffff);
	ecam_write(b, ecam(1, 3, 0, PCI_COMMAND), 2, 0xffff);
	ecam_write(b, ecam(0, 3, 1, PCI_COMMAND), 2, 0xffff);
	ecam_write(b, ecam(0, 3 + 32, 0, PCI_COMMAND), 2, 0xffff); /* = bus 1, slot 3 */
	assert_int_equal(pci_cfg_read(&f->dev, PCI_COMMAND, 2), 0);
	assert_ptr_equal(pci_bus_remove(b, 3), &f->dev);
}

static void cf8(struct pci_bus *b, uint32_t v)
{
	uint8_t d[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	pci_cf8_io(b, 0, d, 4, true);
}

static uint32_t cfc_read(struct pci_bus *b, uint64_t off, uint32_t len)
{
	uint8_t d[4] = {0x5a, 0x5a, 0x5a, 0x5a};
	pci_cfc_io(b, off, d, len, false);
	uint32_t v = 0;
	for (uint32_t i = 0; i < len; i++)
		v |= (uint32_t)d[i] << (8 * i);
	for (uint32_t i = len; i < 4; i++)
		assert_int_equal(d[i], 0x5a);
	return v;
}

static void cfc_write(struct pci_bus *b, uint64_t off, uint32_t len, uint32_t v)
{
	uint8_t d[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	pci_cfc_io(b, off, d, len, true);
}

static uint32_t cf8_addr(uint32_t bus, uint32_t dev, uint32_t fn, uint32_t reg)
{
	return PCI_CF8_ENABLE | bus << 16 | dev << 11 | fn << 8 | reg;
}

static void test_cf8_cfc(void **state)
{
	struct fixture *f = *state;
	struct pci_bus *b = &f->bus;
	assert_int_equal(pci_bus_add(b, &f->dev, 5), 5);
	/* The latch: dword only, reserved bits read 0. */
	uint8_t d[4];
	cf8(b, 0x80000000);
	pci_cf8_io(b, 0, d, 4, false);
	assert_int_equal(d[3], 0x80);
	assert_int_equal(d[0] | d[1] | d[2], 0);
	cf8(b, 0xffffffff);
	pci_cf8_io(b, 0, d, 4, false);
	assert_int_equal(d[0] | d[1] << 8 | d[2] << 16 | (uint32_t)d[3] << 24, 0x80fffffc);
	d[0] = 0x01;
	pci_cf8_io(b, 3, d, 1, true); /* the type-2 probe byte is ignored */
	pci_cf8_io(b, 0, d, 2, true);
	pci_cf8_io(b, 0, d, 4, false);
	assert_int_equal(d[0] | d[1] << 8 | d[2] << 16 | (uint32_t)d[3] << 24, 0x80fffffc);
	memset(d, 0, sizeof(d));
	pci_cf8_io(b, 1, d, 1, false);
	assert_int_equal(d[0], 0xff);
	pci_cf8_io(b, 0, d, 2, false);
	assert_int_equal(d[0] & d[1], 0xff);

	/* Disabled: all ones, writes dropped. */
	cf8(b, 5 << 11 | PCI_COMMAND);
	assert_int_equal(cfc_read(b, 0, 4), 0xffffffff);
	cfc_write(b, 0, 2, PCI_COMMAND_MEMORY);
	assert_int_equal(pci_cfg_read(&f->dev, PCI_COMMAND, 2), 0);

	/* Enabled: every width and byte offset within the data port. */
	for (uint32_t reg = 0; reg < 0x100; reg += 4) {
		cf8(b, cf8_addr(0, 5, 0, reg));
		uint32_t want = pci_cfg_read(&f->dev, reg, 4);
		assert_int_equal(cfc_read(b, 0, 4), want);
		for (uint32_t k = 0; k < 4; k++)
			assert_int_equal(cfc_read(b, k, 1), (want >> (8 * k)) & 0xff);
		assert_int_equal(cfc_read(b, 0, 2), want & 0xffff);
		assert_int_equal(cfc_read(b, 2, 2), want >> 16);
		/* Unaligned or crossing the dword: all ones. */
		assert_int_equal(cfc_read(b, 1, 2), 0xffff);
		assert_int_equal(cfc_read(b, 3, 2), 0xffff);
		assert_int_equal(cfc_read(b, 1, 4), 0xffffffff);
		assert_int_equal(cfc_read(b, 4, 1), 0xff);
		assert_int_equal(cfc_read(b, 0, 3), 0xffffff);
	}
	/* The latch's low two bits are not part of the register number. */
	cf8(b, cf8_addr(0, 5, 0, 0) | 3);
	assert_int_equal(cfc_read(b, 0, 4), 0x10411af4);
	cf8(b, cf8_addr(0, 5, 0, PCI_COMMAND));
	cfc_write(b, 0, 2, PCI_COMMAND_MEMORY);
	cfc_write(b, 1, 1, 0x04);
	assert_int_equal(pci_cfg_read(&f->dev, PCI_COMMAND, 2), 0x0402);
	cfc_write(b, 1, 2, 0); /* unaligned: dropped */
	assert_int_equal(pci_cfg_read(&f->dev, PCI_COMMAND, 2), 0x0402);
	cf8(b, cf8_addr(0, 5, 0, PCI_INTERRUPT_LINE));
	cfc_write(b, 0, 1, 9);
	assert_int_equal(pci_cfg_read(&f->dev, PCI_INTERRUPT_LINE, 1), 9);
	/* Other bus, function, empty slot. */
	cf8(b, cf8_addr(1, 5, 0, 0));
	assert_int_equal(cfc_read(b, 0, 4), 0xffffffff);
	cf8(b, cf8_addr(0, 5, 7, 0));
	assert_int_equal(cfc_read(b, 0, 4), 0xffffffff);
	cf8(b, cf8_addr(0, 31, 0, 0));
	assert_int_equal(cfc_read(b, 0, 2), 0xffff);
	cf8(b, cf8_addr(0, 0, 0, 0));
	assert_int_equal(cfc_read(b, 0, 2), PCI_HOST_BRIDGE_VENDOR);
	assert_ptr_equal(pci_bus_remove(b, 5), &f->dev);
	cf8(b, cf8_addr(0, 5, 0, 0));
	assert_int_equal(cfc_read(b, 0, 4), 0xffffffff);
}

static void test_add_remove(void **state)
{
	struct fixture *f = *state;
	struct pci_bus *b = &f->bus;
	static struct pci_dev many[PCI_SLOTS];
	assert_int_equal(pci_bus_add(b, &f->dev, 0), -EINVAL);
	assert_int_equal(pci_bus_add(b, &f->dev, 32), -EINVAL);
	assert_int_equal(pci_bus_add(b, &f->dev, -2), -EINVAL);
	assert_int_equal(pci_bus_add(b, NULL, 1), -EINVAL);
	struct pci_dev raw;
	memset(&raw, 0, sizeof(raw));
	assert_int_equal(pci_bus_add(b, &raw, 1), -EINVAL); /* not initialised */
	assert_int_equal(pci_bus_add(b, &f->dev, 7), 7);
	assert_int_equal(pci_bus_add(b, &f->dev, 8), -EINVAL); /* already on a bus */
	assert_int_equal(f->dev.slot, 7);
	for (int i = 1; i < PCI_SLOTS; i++)
		assert_int_equal(pci_dev_init(&many[i], &info, NULL, NULL), 0);
	assert_int_equal(pci_bus_add(b, &many[1], 7), -EBUSY);
	assert_int_equal(pci_bus_add(b, &many[1], -1), 1);
	assert_int_equal(pci_bus_add(b, &many[2], -1), 2);
	for (int i = 3; i < PCI_SLOTS - 1; i++) {
		int s = pci_bus_add(b, &many[i], -1);
		assert_true(s >= 3 && s < PCI_SLOTS && s != 7);
	}
	assert_int_equal(pci_bus_add(b, &many[PCI_SLOTS - 1], -1), -ENOSPC);
	/* Remove frees a slot for the next -1. */
	assert_ptr_equal(pci_bus_remove(b, 2), &many[2]);
	assert_null(pci_bus_get(b, 2));
	assert_int_equal(many[2].slot, -1);
	assert_null(many[2].bus);
	assert_null(pci_bus_remove(b, 2));
	assert_null(pci_bus_remove(b, -1));
	assert_null(pci_bus_remove(b, 32));
	assert_null(pci_bus_get(b, 32));
	assert_null(pci_bus_get(b, -1));
	assert_int_equal(ecam_read(b, ecam(0, 2, 0, 0), 4), 0xffffffff);
	assert_int_equal(pci_bus_add(b, &many[PCI_SLOTS - 1], -1), 2);
	assert_ptr_equal(pci_bus_get(b, 7), &f->dev);
	for (int s = 1; s < PCI_SLOTS; s++)
		assert_non_null(pci_bus_remove(b, s));
	for (int i = 1; i < PCI_SLOTS; i++)
		pci_dev_destroy(&many[i]);
}

static bool overlap(uint64_t a, uint64_t as, uint64_t b, uint64_t bs)
{
	return a < b + bs && b < a + as;
}

static void test_alloc(void **state)
{
	struct fixture *f = *state;
	struct pci_bus *b = &f->bus;
	uint64_t a1, a2, a3, a4;
	assert_int_equal(pci_alloc(b, 0, false, &a1), -EINVAL);
	assert_int_equal(pci_alloc(b, 0x3000, false, &a1), -EINVAL);
	assert_int_equal(pci_alloc(b, 0x1000, false, &a1), 0);
	assert_true(a1 == LAYOUT_MMIO32_START);
	assert_int_equal(pci_alloc(b, 0x100000, false, &a2), 0);
	assert_true(a2 == LAYOUT_MMIO32_START + 0x100000); /* aligned past the 4K */
	assert_int_equal(pci_alloc(b, 0x1000, false, &a3), 0);
	assert_true(a3 == LAYOUT_MMIO32_START + 0x1000); /* fills the gap */
	assert_int_equal(pci_alloc(b, 0x4000, true, &a4), 0);
	assert_true(a4 == MEM64_START);
	assert_int_equal(pci_free(b, a1), 0);
	assert_int_equal(pci_free(b, a1), -ENOENT);
	assert_int_equal(pci_free(b, a2 + 0x1000), -ENOENT);
	assert_int_equal(pci_free(b, 0), -ENOENT);
	assert_int_equal(pci_alloc(b, 0x1000, false, &a1), 0);
	assert_true(a1 == LAYOUT_MMIO32_START); /* reused */
	assert_int_equal(pci_free(b, a1), 0);
	assert_int_equal(pci_free(b, a2), 0);
	assert_int_equal(pci_free(b, a3), 0);
	assert_int_equal(pci_free(b, a4), 0);

	/* Exhaustion of the 640 MiB 32-bit window. */
	uint64_t big, mid, small;
	assert_int_equal(pci_alloc(b, 0x20000000, false, &big), 0);
	assert_true(big == 0xc0000000ULL);
	assert_int_equal(pci_alloc(b, 0x10000000, false, &mid), -ENOSPC);
	assert_int_equal(pci_alloc(b, 0x8000000, false, &mid), 0);
	assert_true(mid == 0xe0000000ULL);
	assert_int_equal(pci_alloc(b, 16, false, &small), -ENOSPC);
	assert_int_equal(pci_alloc(b, 1ULL << 40, false, &small), -ENOSPC);
	assert_int_equal(pci_alloc(b, 1ULL << 63, true, &small), -ENOSPC);
	/* The 64-bit window still has room; a 64-bit BAR too big for it falls
	 * back to the 32-bit window (full here). */
	assert_int_equal(pci_alloc(b, 0x1000, true, &small), 0);
	assert_true(small >= MEM64_START && small < MEM64_START + MEM64_SIZE);
	assert_int_equal(pci_alloc(b, MEM64_SIZE * 2, true, &a1), -ENOSPC);
	assert_int_equal(pci_free(b, small), 0);
	assert_int_equal(pci_free(b, mid), 0);
	assert_int_equal(pci_alloc(b, MEM64_SIZE * 2, true, &a1), -ENOSPC);
	assert_int_equal(pci_alloc(b, 0x8000000, true, &a1), 0);
	assert_true(a1 == MEM64_START);
	assert_int_equal(pci_free(b, a1), 0);
	assert_int_equal(pci_free(b, big), 0);

	/* A random mix never overlaps, stays aligned and inside a window. */
	uint64_t base[200], size[200];
	unsigned n = 0, seed = 12345;
	for (int round = 0; round < 2000; round++) {
		seed = seed * 1103515245u + 12345u;
		if (n && (seed >> 16) % 3 == 0) {
			unsigned k = (seed >> 8) % n;
			assert_int_equal(pci_free(b, base[k]), 0);
			base[k] = base[--n];
			size[k] = size[n];
			continue;
		}
		if (n == 200)
			continue;
		uint64_t sz = 1ULL << (4 + (seed >> 20) % 26);
		bool m64 = (seed >> 12) & 1;
		uint64_t a;
		int rc = pci_alloc(b, sz, m64, &a);
		if (rc == -ENOSPC)
			continue;
		assert_int_equal(rc, 0);
		assert_int_equal(a & (sz - 1), 0);
		bool in32 =
		    a >= LAYOUT_MMIO32_START && a + sz <= LAYOUT_MMIO32_START + LAYOUT_MMIO32_SIZE;
		bool in64 = m64 && a >= MEM64_START && a + sz <= MEM64_START + MEM64_SIZE;
		assert_true(in32 || in64);
		for (unsigned k = 0; k < n; k++)
			assert_false(overlap(a, sz, base[k], size[k]));
		base[n] = a;
		size[n++] = sz;
	}
	while (n)
		assert_int_equal(pci_free(b, base[--n]), 0);
}

struct moved {
	int calls;
	uint64_t where[PCI_NUM_BARS];
};

static void rec_moved(struct pci_dev *dev, unsigned bar, uint64_t old_addr, uint64_t new_addr)
{
	struct moved *m = dev->opaque;
	assert_true(m->where[bar] == old_addr);
	m->where[bar] = new_addr;
	m->calls++;
}

static void test_assign_bars(void **state)
{
	struct fixture *f = *state;
	struct pci_bus *b = &f->bus;
	static const struct pci_dev_ops ops = {.bar_moved = rec_moved};
	struct moved m = {0};
	for (int i = 0; i < PCI_NUM_BARS; i++)
		m.where[i] = PCI_BAR_UNMAPPED;
	struct pci_dev d;
	struct chv_err err = {0};
	assert_int_equal(pci_dev_init(&d, &info, &ops, &m), 0);
	assert_int_equal(pci_dev_set_bar(&d, 0, PCI_BAR_MEM32, 0x1000, false, &err), 0);
	assert_int_equal(pci_dev_set_bar(&d, 1, PCI_BAR_IO, 0x20, false, &err), 0);
	assert_int_equal(pci_dev_set_bar(&d, 2, PCI_BAR_MEM64, 0x100000, true, &err), 0);
	assert_int_equal(pci_bus_add(b, &d, -1), 1);
	assert_int_equal(pci_assign_bars(b, &d, true, &err), 0);
	assert_true(pci_bar_addr(&d, 0) == LAYOUT_MMIO32_START);
	assert_true(pci_bar_addr(&d, 1) == 0); /* I/O left to the guest */
	assert_true(pci_bar_addr(&d, 2) == MEM64_START);
	assert_int_equal(pci_cfg_read(&d, PCI_BAR0 + 8, 4), 0xc);
	assert_int_equal(pci_cfg_read(&d, PCI_BAR0 + 12, 4), MEM64_START >> 32);
	assert_true(pci_cfg_read(&d, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY);
	assert_int_equal(m.calls, 2);
	assert_true(m.where[0] == LAYOUT_MMIO32_START && m.where[2] == MEM64_START);
	/* Again: already placed, nothing changes. */
	assert_int_equal(pci_assign_bars(b, &d, true, &err), 0);
	assert_int_equal(m.calls, 2);
	/* The allocations are held: the next device goes elsewhere. */
	uint64_t a;
	assert_int_equal(pci_alloc(b, 0x1000, false, &a), 0);
	assert_true(a == LAYOUT_MMIO32_START + 0x1000);
	assert_int_equal(pci_free(b, a), 0);
	/* Removal unmaps through bar_moved and frees the ranges. */
	assert_ptr_equal(pci_bus_remove(b, 1), &d);
	assert_int_equal(m.calls, 4);
	assert_true(m.where[0] == PCI_BAR_UNMAPPED && m.where[2] == PCI_BAR_UNMAPPED);
	assert_int_equal(pci_alloc(b, 0x1000, false, &a), 0);
	assert_true(a == LAYOUT_MMIO32_START);
	assert_int_equal(pci_free(b, a), 0);
	pci_dev_destroy(&d);

	/* No room: an error naming the BAR, and nothing left allocated. */
	assert_int_equal(pci_dev_init(&d, &info, NULL, NULL), 0);
	assert_int_equal(pci_dev_set_bar(&d, 0, PCI_BAR_MEM32, 0x1000, false, &err), 0);
	assert_int_equal(pci_dev_set_bar(&d, 1, PCI_BAR_MEM32, 0x80000000ULL, false, &err), 0);
	assert_int_equal(pci_assign_bars(b, &d, false, &err), -ENOSPC);
	assert_non_null(strstr(err.msg, "BAR 1"));
	assert_true(pci_bar_addr(&d, 0) == 0);
	assert_int_equal(pci_alloc(b, 0x1000, false, &a), 0);
	assert_true(a == LAYOUT_MMIO32_START);
	assert_int_equal(pci_free(b, a), 0);
	pci_release_bars(b, &d);
	pci_dev_destroy(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_errors),
	    cmocka_unit_test_setup_teardown(test_host_bridge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ecam_decode, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cf8_cfc, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_remove, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_alloc, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_assign_bars, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
