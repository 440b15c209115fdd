/* PCI configuration space: the header, write masks and RW1C, bad accesses,
 * device hooks, capability chains, BAR sizing, decode changes, INTx. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pci/pci.h"

static const struct pci_dev_info info = {
    .vendor = 0x1af4,
    .device = 0x1042,
    .subsys_vendor = 0x1af4,
    .subsys_id = 0x0002,
    .revision = 1,
    .class_code = 0x018000,
    .irq_pin = 1,
};

struct moved {
	int calls;
	unsigned bar[32];
	uint64_t old_addr[32], new_addr[32];
	uint64_t where[PCI_NUM_BARS]; /* what the device believes */
};

static void rec_moved(struct pci_dev *dev, unsigned bar, uint64_t old_addr, uint64_t new_addr)
{
	struct moved *m = dev->opaque;
	assert_true(bar < PCI_NUM_BARS);
	assert_int_equal(m->where[bar], old_addr); /* reports are consistent */
	m->where[bar] = new_addr;
	if (m->calls < 32) {
		m->bar[m->calls] = bar;
		m->old_addr[m->calls] = old_addr;
		m->new_addr[m->calls] = new_addr;
	}
	m->calls++;
}

static const struct pci_dev_ops moved_ops = {.bar_moved = rec_moved};

static void init_moved(struct moved *m)
{
	memset(m, 0, sizeof(*m));
	for (int i = 0; i < PCI_NUM_BARS; i++)
		m->where[i] = PCI_BAR_UNMAPPED;
}

static void test_header(void **state)
{
	(void)state;
	struct pci_dev d;
	assert_int_equal(pci_dev_init(&d, &info, NULL, NULL), 0);
	assert_int_equal(pci_cfg_read(&d, PCI_VENDOR_ID, 4), 0x10421af4);
	assert_int_equal(pci_cfg_read(&d, PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(pci_cfg_read(&d, PCI_DEVICE_ID, 2), 0x1042);
	assert_int_equal(pci_cfg_read(&d, 1, 1), 0x1a);
	assert_int_equal(pci_cfg_read(&d, PCI_REVISION_ID, 4), 0x01800001);
	assert_int_equal(pci_cfg_read(&d, PCI_CLASS_DEVICE + 1, 1), 0x01);
	assert_int_equal(pci_cfg_read(&d, PCI_HEADER_TYPE, 1), 0);
	assert_int_equal(pci_cfg_read(&d, PCI_SUBSYSTEM_VENDOR, 4), 0x00021af4);
	assert_int_equal(pci_cfg_read(&d, PCI_INTERRUPT_PIN, 1), 1);
	assert_int_equal(pci_cfg_read(&d, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
	assert_int_equal(pci_cfg_read(&d, PCI_CAPABILITY_LIST, 1), 0);
	assert_int_equal(pci_cfg_read(&d, PCI_COMMAND, 2), 0);
	pci_dev_destroy(&d);
	pci_dev_destroy(&d); /* twice is harmless */

	struct pci_dev z;
	memset(&z, 0, sizeof(z));
	pci_dev_destroy(&z);
	struct pci_dev_info bad = info;
	bad.irq_pin = 5;
	assert_int_equal(pci_dev_init(&z, &bad, NULL, NULL), -EINVAL);
	pci_dev_destroy(&z);
	assert_int_equal(pci_dev_init(&z, NULL, NULL, NULL), -EINVAL);
}

static void test_masks_and_rw1c(void **state)
{
	(void)state;
	struct pci_dev d;
	assert_int_equal(pci_dev_init(&d, &info, NULL, NULL), 0);
	uint8_t before[PCI_CFG_HEADER_SIZE];
	memcpy(before, d.cfg, sizeof(before));
	for (uint32_t off = 0; off < PCI_CFG_HEADER_SIZE; off += 4)
		pci_cfg_write(&d, off, 4, 0xffffffff);
	/* Only the writable registers changed. */
	for (uint32_t off = 0; off < PCI_CFG_HEADER_SIZE; off++) {
		if (off == PCI_COMMAND || off == PCI_COMMAND + 1 || off == PCI_CACHE_LINE_SIZE ||
		    off == PCI_INTERRUPT_LINE)
			continue;
		assert_int_equal(d.cfg[off], before[off]);
	}
	assert_int_equal(pci_cfg_read(&d, PCI_COMMAND, 2), 0x0547);
	assert_int_equal(pci_cfg_read(&d, PCI_CACHE_LINE_SIZE, 1), 0xff);
	assert_int_equal(pci_cfg_read(&d, PCI_LATENCY_TIMER, 1), 0);
	assert_int_equal(pci_cfg_read(&d, PCI_INTERRUPT_LINE, 1), 0xff);
	pci_cfg_write(&d, PCI_INTERRUPT_LINE, 1, 11);
	assert_int_equal(pci_cfg_read(&d, PCI_INTERRUPT_LINE, 4), 0x010b);

	/* RW1C: writing 1 clears just that bit, 0 leaves it; other bits stay. */
	pci_cfg_set16(&d, PCI_STATUS, PCI_STATUS_RW1C | PCI_STATUS_CAP_LIST);
	pci_cfg_write(&d, PCI_STATUS, 2, 0x0100);
	assert_int_equal(pci_cfg_read(&d, PCI_STATUS, 2), 0xf810);
	pci_cfg_write(&d, PCI_STATUS + 1, 1, 0x80);
	assert_int_equal(pci_cfg_read(&d, PCI_STATUS, 2), 0x7810);
	pci_cfg_write(&d, PCI_STATUS, 2, 0);
	assert_int_equal(pci_cfg_read(&d, PCI_STATUS, 2), 0x7810);
	/* A dword write to command also hits status: clears what is written. */
	pci_cfg_write(&d, PCI_COMMAND, 4, 0x10000000 | 0x0002);
	assert_int_equal(pci_cfg_read(&d, PCI_COMMAND, 4), 0x68100002);
	pci_cfg_write(&d, PCI_STATUS, 2, 0xffff);
	assert_int_equal(pci_cfg_read(&d, PCI_STATUS, 2), PCI_STATUS_CAP_LIST);

	/* Device-set masks: write 0x0f, W1C 0xf0 on one byte. */
	pci_cfg_set8(&d, 0x80, 0xf0);
	pci_cfg_set_masks(&d, 0x80, 1, 0x0f, 0xf0);
	pci_cfg_write(&d, 0x80, 1, 0x35);
	assert_int_equal(pci_cfg_read(&d, 0x80, 1), 0xc5);
	/* Masks with bad lengths or outside the header do nothing. */
	pci_cfg_set_masks(&d, 0x84, 3, 0xffffffff, 0);
	pci_cfg_set_masks(&d, 0xfe, 4, 0xffffffff, 0);
	pci_cfg_write(&d, 0x84, 4, 0xffffffff);
	pci_cfg_write(&d, 0xfc, 4, 0xffffffff);
	assert_int_equal(pci_cfg_read(&d, 0x84, 4), 0);
	assert_int_equal(pci_cfg_read(&d, 0xfc, 4), 0);
	pci_dev_destroy(&d);
}

static void test_bad_accesses(void **state)
{
	(void)state;
	struct pci_dev d;
	assert_int_equal(pci_dev_init(&d, &info, NULL, NULL), 0);
	static const struct {
		uint32_t off, len;
	} bad[] = {
	    {1, 2}, {3, 2},    {2, 4},	  {1, 4},	   {3, 4},	    {0, 3},    {0, 0},
	    {0, 8}, {4096, 1}, {4096, 4}, {0xffffffff, 1}, {0xfffffffc, 4}, {4095, 2},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(pci_cfg_read(&d, bad[i].off, bad[i].len), 0xffffffffu);
		pci_cfg_write(&d, bad[i].off, bad[i].len, 0xffffffff);
		pci_cfg_write_default(&d, bad[i].off, bad[i].len, 0xffffffff);
	}
	pci_cfg_write(&d, PCI_COMMAND - 1, 2, 0xffff); /* unaligned onto command */
	assert_int_equal(pci_cfg_read(&d, PCI_COMMAND, 2), 0);
	/* PCIe extended space reads zero and ignores writes. */
	for (uint32_t off = PCI_CFG_HEADER_SIZE; off < PCI_CFG_SPACE_SIZE; off += 4) {
		pci_cfg_write(&d, off, 4, 0xdeadbeef);
		assert_int_equal(pci_cfg_read(&d, off, 4), 0);
	}
	assert_int_equal(pci_cfg_read(&d, 0xfff, 1), 0);
	assert_int_equal(pci_cfg_read(&d, 0xffe, 2), 0);
	/* Raw accessors clip too. */
	pci_cfg_set32(&d, 0xfe, 0xffffffff);
	pci_cfg_set16(&d, 0xff, 0xffff);
	pci_cfg_set8(&d, 0x100, 0xff);
	assert_int_equal(pci_cfg_get32(&d, 0xfe), 0);
	assert_int_equal(pci_cfg_get16(&d, 0xff), 0);
	assert_int_equal(pci_cfg_get8(&d, 0x100), 0);
	assert_int_equal(pci_cfg_get8(&d, 0xff), 0);
	pci_dev_destroy(&d);
}

struct hooked {
	int reads, writes;
	uint32_t last_off, last_val;
};

static bool hook_read(struct pci_dev *dev, uint32_t off, uint32_t len, uint32_t *val)
{
	struct hooked *h = dev->opaque;
	h->reads++;
	if (off >= 0x100 && off < 0x108) {
		*val = 0x12345678u >> (8 * (off & 3));
		(void)len;
		return true;
	}
	return false;
}

static bool hook_write(struct pci_dev *dev, uint32_t off, uint32_t len, uint32_t val)
{
	struct hooked *h = dev->opaque;
	h->writes++;
	h->last_off = off;
	h->last_val = val;
	if (off == 0x100)
		return true;
	if (off == 0x40) {
		/* Watch and fall through to the generic write (reentrant lock). */
		pci_cfg_write_default(dev, off, len, val);
		assert_int_equal(pci_cfg_read(dev, off, len), val & 0xff);
		return true;
	}
	return false;
}

static void test_hooks(void **state)
{
	(void)state;
	static const struct pci_dev_ops ops = {.cfg_read = hook_read, .cfg_write = hook_write};
	struct hooked h = {0};
	struct pci_dev d;
	assert_int_equal(pci_dev_init(&d, &info, &ops, &h), 0);
	assert_int_equal(pci_cfg_read(&d, 0x100, 4), 0x12345678);
	assert_int_equal(pci_cfg_read(&d, 0x101, 1), 0x56); /* narrowed to the width */
	assert_int_equal(pci_cfg_read(&d, 0x102, 2), 0x1234);
	assert_int_equal(pci_cfg_read(&d, 0x108, 4), 0);
	assert_int_equal(pci_cfg_read(&d, 0, 2), 0x1af4);
	assert_int_equal(h.reads, 5);
	/* Bad accesses never reach the hooks. */
	assert_int_equal(pci_cfg_read(&d, 0x101, 2), 0xffffffffu);
	assert_int_equal(h.reads, 5);
	pci_cfg_write(&d, 0x100, 4, 0xabcd);
	assert_int_equal(h.last_val, 0xabcd);
	pci_cfg_write(&d, PCI_COMMAND, 2, PCI_COMMAND_MASTER);
	assert_int_equal(h.last_off, PCI_COMMAND);
	assert_int_equal(pci_cfg_read(&d, PCI_COMMAND, 2), PCI_COMMAND_MASTER);
	pci_cfg_set_masks(&d, 0x40, 1, 0xff, 0);
	pci_cfg_write(&d, 0x40, 1, 0x5a);
	assert_int_equal(pci_cfg_get8(&d, 0x40), 0x5a);
	pci_cfg_write(&d, 0x41, 2, 1);
	assert_int_equal(h.writes, 3);
	pci_dev_destroy(&d);
}

static void test_caps(void **state)
{
	(void)state;
	struct pci_dev d;
	assert_int_equal(pci_dev_init(&d, &info, NULL, NULL), 0);
	assert_int_equal(pci_add_cap(&d, 0x09, 1), -EINVAL);
	assert_int_equal(pci_add_cap(&d, 0x09, 0), -EINVAL);
	assert_int_equal(pci_add_cap(&d, 0x09, 193), -EINVAL);
	assert_int_equal(pci_find_cap(&d, 0x09, 0), 0);
	int a = pci_add_cap(&d, 0x09, 12);
	int b = pci_add_cap(&d, 0x05, 5);
	int c = pci_add_cap(&d, 0x09, 16);
	assert_int_equal(a, 0x40);
	assert_int_equal(b, 0x4c);
	assert_int_equal(c, 0x54); /* 0x51 rounded up to a dword */
	assert_true(pci_cfg_read(&d, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	assert_int_equal(pci_cfg_read(&d, PCI_CAPABILITY_LIST, 1), 0x40);
	assert_int_equal(pci_cfg_read(&d, 0x40, 2), 0x4c09);
	assert_int_equal(pci_cfg_read(&d, 0x4c, 2), 0x5405);
	assert_int_equal(pci_cfg_read(&d, 0x54, 2), 0x0009);
	assert_int_equal(pci_find_cap(&d, 0x05, 0), 0x4c);
	assert_int_equal(pci_find_cap(&d, 0x09, 0), 0x40);
	assert_int_equal(pci_find_cap(&d, 0x09, 0x40), 0x54);
	assert_int_equal(pci_find_cap(&d, 0x09, 0x54), 0);
	assert_int_equal(pci_find_cap(&d, 0x11, 0), 0);
	/* Capability bodies are read-only to the guest until the device says. */
	pci_cfg_write(&d, 0x40, 4, 0xffffffff);
	pci_cfg_write(&d, 0x44, 4, 0xffffffff);
	assert_int_equal(pci_cfg_read(&d, 0x40, 4), 0x4c09);
	assert_int_equal(pci_cfg_read(&d, 0x44, 4), 0);
	/* Fill to the end; none may pass 256 bytes. */
	int last = c, r;
	while ((r = pci_add_cap(&d, 0x0a, 12)) > 0) {
		assert_int_equal(r % 4, 0);
		assert_true(r + 12 <= PCI_CFG_HEADER_SIZE);
		assert_int_equal(pci_cfg_get8(&d, (uint32_t)last + 1), r);
		last = r;
	}
	assert_int_equal(r, -ENOSPC);
	assert_int_equal(last, 0xf4);
	assert_int_equal(pci_add_cap(&d, 0x0a, 8), -ENOSPC);
	assert_int_equal(pci_add_cap(&d, 0x0a, 2), -ENOSPC);
	assert_int_equal(pci_cfg_get8(&d, 0xf5), 0);
	/* An exactly fitting capability, then no room at all. */
	struct pci_dev e;
	assert_int_equal(pci_dev_init(&e, &info, NULL, NULL), 0);
	assert_int_equal(pci_add_cap(&e, 0x09, 192), 0x40);
	assert_int_equal(pci_add_cap(&e, 0x09, 2), -ENOSPC);
	/* A looping chain (a device bug) does not hang the walk. */
	pci_cfg_set8(&e, 0x41, 0x40);
	assert_int_equal(pci_find_cap(&e, 0x11, 0), 0);
	pci_dev_destroy(&e);
	pci_dev_destroy(&d);
}

static void sized(struct pci_dev *d, unsigned bar, uint32_t expect)
{
	uint32_t off = PCI_BAR0 + 4 * bar;
	uint32_t keep = pci_cfg_read(d, off, 4);
	pci_cfg_write(d, off, 4, 0xffffffff);
	assert_int_equal(pci_cfg_read(d, off, 4), expect);
	pci_cfg_write(d, off, 4, keep);
	assert_int_equal(pci_cfg_read(d, off, 4), keep);
}

static void test_bar_sizing(void **state)
{
	(void)state;
	struct pci_dev d;
	struct chv_err err = {0};
	assert_int_equal(pci_dev_init(&d, &info, NULL, NULL), 0);
	assert_int_equal(pci_dev_set_bar(&d, 0, PCI_BAR_MEM32, 0x1000, false, &err), 0);
	assert_int_equal(pci_dev_set_bar(&d, 1, PCI_BAR_IO, 32, false, &err), 0);
	assert_int_equal(pci_dev_set_bar(&d, 2, PCI_BAR_MEM32, 0x100000, true, &err), 0);
	assert_int_equal(pci_dev_set_bar(&d, 3, PCI_BAR_MEM64, 0x4000, true, &err), 0);
	assert_int_equal(pci_cfg_read(&d, PCI_BAR0, 4), 0);
	assert_int_equal(pci_cfg_read(&d, PCI_BAR0 + 4, 4), 1);
	assert_int_equal(pci_cfg_read(&d, PCI_BAR0 + 8, 4), 8);
	assert_int_equal(pci_cfg_read(&d, PCI_BAR0 + 12, 4), 0xc);
	sized(&d, 0, 0xfffff000);
	sized(&d, 1, 0xffffffe1);
	sized(&d, 2, 0xfff00008);
	sized(&d, 3, 0xffffc00c);
	sized(&d, 4, 0xffffffff); /* the high dword of a small 64-bit BAR */
	sized(&d, 5, 0);	  /* not implemented */
	/* The ROM BAR is not implemented either. */
	pci_cfg_write(&d, PCI_ROM_ADDRESS, 4, 0xffffffff);
	assert_int_equal(pci_cfg_read(&d, PCI_ROM_ADDRESS, 4), 0);
	/* Sizing by byte writes works the same way. */
	for (uint32_t i = 0; i < 4; i++)
		pci_cfg_write(&d, PCI_BAR0 + i, 1, 0xff);
	assert_int_equal(pci_cfg_read(&d, PCI_BAR0, 4), 0xfffff000);
	/* Address bits below the size are dropped; flags stay. */
	pci_cfg_write(&d, PCI_BAR0 + 8, 4, 0xc0123456);
	assert_int_equal(pci_cfg_read(&d, PCI_BAR0 + 8, 4), 0xc0100008);
	pci_cfg_write(&d, PCI_BAR0 + 12, 4, 0x12345ff0);
	pci_cfg_write(&d, PCI_BAR0 + 16, 4, 0x9);
	assert_int_equal(pci_cfg_read(&d, PCI_BAR0 + 12, 4), 0x1234400c);
	assert_true(pci_bar_addr(&d, 3) == 0x912344000ULL);
	assert_true(pci_bar_addr(&d, 2) == 0xc0100000ULL);
	pci_cfg_write(&d, PCI_BAR0 + 4, 4, 0x1234);
	assert_true(pci_bar_addr(&d, 1) == 0x1220);
	assert_true(pci_bar_addr(&d, 4) == 0); /* the high half is no BAR */
	assert_true(pci_bar_addr(&d, 6) == 0);
	pci_dev_destroy(&d);

	/* A 64-bit BAR of 8 GiB: the low dword has no address bits. */
	assert_int_equal(pci_dev_init(&d, &info, NULL, NULL), 0);
	assert_int_equal(pci_dev_set_bar(&d, 4, PCI_BAR_MEM64, 0x200000000ULL, true, &err), 0);
	assert_int_equal(pci_dev_set_bar(&d, 0, PCI_BAR_MEM64, 16, false, &err), 0);
	assert_int_equal(pci_dev_set_bar(&d, 2, PCI_BAR_MEM32, 0x80000000ULL, false, &err), 0);
	sized(&d, 4, 0x0000000c);
	sized(&d, 5, 0xfffffffe);
	sized(&d, 0, 0xfffffff4);
	sized(&d, 1, 0xffffffff);
	sized(&d, 2, 0x80000000);
	pci_dev_destroy(&d);
}

static void test_bar_invalid(void **state)
{
	(void)state;
	struct pci_dev d;
	struct chv_err err = {0};
	assert_int_equal(pci_dev_init(&d, &info, NULL, NULL), 0);
	assert_int_equal(pci_dev_set_bar(&d, 6, PCI_BAR_MEM32, 0x1000, false, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "BAR 6"));
	assert_int_equal(pci_dev_set_bar(&d, 0, PCI_BAR_MEM32, 0x1800, false, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "0x1800"));
	assert_int_equal(pci_dev_set_bar(&d, 0, PCI_BAR_MEM32, 0, false, &err), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&d, 0, PCI_BAR_MEM32, 8, false, &err), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&d, 0, PCI_BAR_MEM32, 1ULL << 32, false, &err), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&d, 0, PCI_BAR_IO, 512, false, &err), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&d, 0, PCI_BAR_IO, 2, false, &err), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&d, 0, PCI_BAR_IO, 16, true, &err), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&d, 5, PCI_BAR_MEM64, 0x1000, false, &err), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&d, 0, PCI_BAR_MEM64, 1ULL << 63, false, NULL), 0);
	assert_int_equal(pci_dev_set_bar(&d, 1, PCI_BAR_MEM32, 0x1000, false, &err), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&d, 3, PCI_BAR_MEM32, 0x1000, false, &err), 0);
	assert_int_equal(pci_dev_set_bar(&d, 2, PCI_BAR_MEM64, 0x1000, false, &err), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&d, 3, PCI_BAR_MEM32, 0x1000, false, &err), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&d, 4, PCI_BAR_NONE, 0x1000, false, &err), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&d, 4, PCI_BAR_MEM64_HI, 0x1000, false, &err), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&d, 4, (enum pci_bar_kind)77, 0x1000, false, &err),
			 -EINVAL);
	sized(&d, 0, 0x4);
	sized(&d, 1, 0x80000000);
	pci_dev_destroy(&d);
}

static void test_bar_moved(void **state)
{
	(void)state;
	struct moved m;
	init_moved(&m);
	struct pci_dev d;
	struct chv_err err = {0};
	assert_int_equal(pci_dev_init(&d, &info, &moved_ops, &m), 0);
	assert_int_equal(pci_dev_set_bar(&d, 0, PCI_BAR_MEM32, 0x1000, false, &err), 0);
	assert_int_equal(pci_dev_set_bar(&d, 2, PCI_BAR_MEM64, 0x10000, true, &err), 0);
	assert_int_equal(pci_dev_set_bar(&d, 4, PCI_BAR_IO, 16, false, &err), 0);

	/* Programming with decoding off moves nothing. */
	pci_cfg_write(&d, PCI_BAR0, 4, 0xc0001000);
	pci_cfg_write(&d, PCI_BAR0 + 16, 4, 0x1000);
	assert_int_equal(m.calls, 0);
	/* Memory decode on: BAR0 appears; BAR2 at 0 stays unmapped, I/O is off. */
	pci_cfg_write(&d, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_int_equal(m.calls, 1);
	assert_int_equal(m.bar[0], 0);
	assert_true(m.old_addr[0] == PCI_BAR_UNMAPPED && m.new_addr[0] == 0xc0001000);
	/* Writing the same command again changes nothing. */
	pci_cfg_write(&d, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_int_equal(m.calls, 1);
	/* A 64-bit BAR reprogrammed while decoding: each dword moves it. */
	pci_cfg_write(&d, PCI_BAR0 + 12, 4, 1);
	assert_int_equal(m.calls, 2);
	assert_true(m.where[2] == 0x100000000ULL);
	pci_cfg_write(&d, PCI_BAR0 + 8, 4, 0x20000);
	assert_int_equal(m.calls, 3);
	assert_true(m.where[2] == 0x100020000ULL);
	/* Sizing while decoding: unmapped while it reads the mask, back after. */
	pci_cfg_write(&d, PCI_BAR0, 4, 0xffffffff);
	assert_int_equal(m.calls, 4);
	assert_true(m.where[0] == PCI_BAR_UNMAPPED);
	pci_cfg_write(&d, PCI_BAR0, 4, 0xc0001000);
	assert_int_equal(m.calls, 5);
	assert_true(m.where[0] == 0xc0001000);
	/* 64-bit sizing: both halves all ones. */
	pci_cfg_write(&d, PCI_BAR0 + 8, 4, 0xffffffff);
	pci_cfg_write(&d, PCI_BAR0 + 12, 4, 0xffffffff);
	assert_true(m.where[2] == PCI_BAR_UNMAPPED);
	pci_cfg_write(&d, PCI_BAR0 + 8, 4, 0x20000);
	pci_cfg_write(&d, PCI_BAR0 + 12, 4, 1);
	assert_true(m.where[2] == 0x100020000ULL);
	int calls = m.calls;
	/* A BAR whose last byte would be 0xffffffff counts as unmapped. */
	pci_cfg_write(&d, PCI_BAR0, 4, 0xfffff000);
	assert_true(m.where[0] == PCI_BAR_UNMAPPED);
	pci_cfg_write(&d, PCI_BAR0, 4, 0xffffe000);
	assert_true(m.where[0] == 0xffffe000);
	assert_int_equal(m.calls, calls + 2);
	/* I/O decode on. */
	pci_cfg_write(&d, PCI_COMMAND, 1, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
	assert_true(m.where[4] == 0x1000);
	assert_int_equal(m.calls, calls + 3);
	/* An I/O BAR that would reach 0xffff is unmapped. */
	pci_cfg_write(&d, PCI_BAR0 + 16, 4, 0xfff0);
	assert_true(m.where[4] == PCI_BAR_UNMAPPED);
	pci_cfg_write(&d, PCI_BAR0 + 16, 4, 0x10000);
	assert_true(m.where[4] == PCI_BAR_UNMAPPED);
	pci_cfg_write(&d, PCI_BAR0 + 16, 4, 0xffe0);
	assert_true(m.where[4] == 0xffe0);
	/* Both off with one write: everything disappears. */
	pci_cfg_write(&d, PCI_COMMAND, 2, 0);
	assert_true(m.where[0] == PCI_BAR_UNMAPPED);
	assert_true(m.where[2] == PCI_BAR_UNMAPPED);
	assert_true(m.where[4] == PCI_BAR_UNMAPPED);
	/* Address zero is never mapped. */
	pci_cfg_write(&d, PCI_BAR0, 4, 0);
	calls = m.calls;
	pci_cfg_write(&d, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_true(m.where[0] == PCI_BAR_UNMAPPED);
	assert_true(m.where[2] == 0x100020000ULL);
	assert_int_equal(m.calls, calls + 1);
	/* A byte write to the high byte of command toggles nothing. */
	pci_cfg_write(&d, PCI_COMMAND + 1, 1, 0x04);
	assert_int_equal(m.calls, calls + 1);
	assert_int_equal(pci_cfg_read(&d, PCI_COMMAND, 2), 0x0402);
	pci_dev_destroy(&d);
}

struct line_rec {
	int calls;
	bool level;
	uint32_t gsi;
};

static int line_set(void *ctx, uint32_t gsi, bool level)
{
	struct line_rec *r = ctx;
	r->calls++;
	r->level = level;
	r->gsi = gsi;
	return 0;
}

static void test_intx(void **state)
{
	(void)state;
	struct line_rec r = {0};
	struct irq_line line = {.set = line_set, .ctx = &r, .gsi = 10};
	struct pci_dev d;
	assert_int_equal(pci_dev_init(&d, &info, NULL, NULL), 0);
	pci_intx_set(&d, true); /* no line yet: only the status bit */
	assert_true(pci_cfg_read(&d, PCI_STATUS, 2) & PCI_STATUS_INTX);
	pci_dev_set_intx_line(&d, &line);
	assert_int_equal(r.calls, 1);
	assert_true(r.level);
	assert_int_equal(r.gsi, 10);
	pci_intx_set(&d, true);
	assert_int_equal(r.calls, 1); /* no repeated edges */
	pci_cfg_write(&d, PCI_COMMAND, 2, PCI_COMMAND_INTX_OFF);
	assert_int_equal(r.calls, 2);
	assert_false(r.level);
	assert_true(pci_cfg_read(&d, PCI_STATUS, 2) & PCI_STATUS_INTX);
	/* The interrupt status bit is read-only. */
	pci_cfg_write(&d, PCI_STATUS, 2, 0xffff);
	assert_true(pci_cfg_read(&d, PCI_STATUS, 2) & PCI_STATUS_INTX);
	pci_cfg_write(&d, PCI_COMMAND, 2, 0);
	assert_int_equal(r.calls, 3);
	assert_true(r.level);
	pci_intx_set(&d, false);
	assert_int_equal(r.calls, 4);
	assert_false(r.level);
	assert_false(pci_cfg_read(&d, PCI_STATUS, 2) & PCI_STATUS_INTX);
	pci_intx_set(&d, true);
	pci_dev_set_intx_line(&d, NULL); /* lowers the old line first */
	assert_false(r.level);
	pci_intx_set(&d, false);
	pci_dev_destroy(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header),	 cmocka_unit_test(test_masks_and_rw1c),
	    cmocka_unit_test(test_bad_accesses), cmocka_unit_test(test_hooks),
	    cmocka_unit_test(test_caps),	 cmocka_unit_test(test_bar_sizing),
	    cmocka_unit_test(test_bar_invalid),	 cmocka_unit_test(test_bar_moved),
	    cmocka_unit_test(test_intx),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
