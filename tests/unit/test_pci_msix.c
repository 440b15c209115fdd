/* MSI-X: set-up checks, the capability, table and PBA accesses at every
 * width, masking, pending and delivery, and a hostile guest poking every
 * config offset and MMIO offset. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pci/pci.h"

static const struct pci_dev_info info = {.vendor = 0x1af4, .device = 0x1043, .irq_pin = 1};

struct rec {
	int changed, delivered;
	uint16_t vec;
	struct pci_msi_msg msg;
	bool masked;
};

static void rec_changed(void *opaque, uint16_t vector, const struct pci_msi_msg *msg, bool masked)
{
	struct rec *r = opaque;
	r->changed++;
	r->vec = vector;
	r->msg = *msg;
	r->masked = masked;
}

static void rec_deliver(void *opaque, uint16_t vector, const struct pci_msi_msg *msg)
{
	struct rec *r = opaque;
	r->delivered++;
	r->vec = vector;
	r->msg = *msg;
}

static const struct pci_msix_ops rec_ops = {.vector_changed = rec_changed, .deliver = rec_deliver};

struct fixture {
	struct pci_dev dev;
	struct pci_msix *m;
	struct rec r;
	int cap;
};

/* 8 vectors: table at BAR 1 + 0x1000, PBA at BAR 1 + 0x1800. */
static int setup(void **state)
{
	static struct fixture f;
	struct chv_err err = {0};
	memset(&f, 0, sizeof(f));
	assert_int_equal(pci_dev_init(&f.dev, &info, NULL, NULL), 0);
	assert_int_equal(pci_dev_set_bar(&f.dev, 0, PCI_BAR_MEM32, 0x1000, false, &err), 0);
	assert_int_equal(pci_dev_set_bar(&f.dev, 1, PCI_BAR_MEM64, 0x4000, false, &err), 0);
	const struct pci_msix_cfg cfg = {
	    .nvec = 8, .table_bar = 1, .table_off = 0x1000, .pba_bar = 1, .pba_off = 0x1800};
	assert_int_equal(pci_msix_init(&f.dev, &cfg, &rec_ops, &f.r, &f.m, &err), 0);
	f.cap = pci_find_cap(&f.dev, PCI_CAP_ID_MSIX, 0);
	assert_true(f.cap >= PCI_CAP_START);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	pci_dev_destroy(&f->dev);
	return 0;
}

static void tw(struct pci_msix *m, uint64_t off, uint32_t len, uint64_t v)
{
	uint8_t d[16];
	for (uint32_t i = 0; i < len && i < 16; i++)
		d[i] = (uint8_t)(v >> (8 * (i % 8)));
	pci_msix_table_io(m, off, d, len, true);
}

static uint64_t tr(struct pci_msix *m, uint64_t off, uint32_t len)
{
	uint8_t d[8];
	memset(d, 0xee, sizeof(d));
	pci_msix_table_io(m, off, d, len, false);
	uint64_t v = 0;
	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)d[i] << (8 * i);
	for (uint32_t i = len; i < 8; i++)
		assert_int_equal(d[i], 0xee);
	return v;
}

static uint64_t pba(struct pci_msix *m, uint64_t off, uint32_t len)
{
	uint8_t d[8];
	memset(d, 0xee, sizeof(d));
	pci_msix_pba_io(m, off, d, len, false);
	uint64_t v = 0;
	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)d[i] << (8 * i);
	return v;
}

static void ctrl(struct fixture *f, uint16_t v)
{
	pci_cfg_write(&f->dev, (uint32_t)f->cap + 2, 2, v);
}

static void test_init_errors(void **state)
{
	(void)state;
	struct pci_dev d;
	struct chv_err err = {0};
	struct pci_msix *m = NULL;
	assert_int_equal(pci_dev_init(&d, &info, NULL, NULL), 0);
	assert_int_equal(pci_dev_set_bar(&d, 0, PCI_BAR_MEM32, 0x1000, false, &err), 0);
	assert_int_equal(pci_dev_set_bar(&d, 1, PCI_BAR_IO, 0x100, false, &err), 0);
	assert_int_equal(pci_dev_set_bar(&d, 2, PCI_BAR_MEM64, 0x100000, false, &err), 0);
	static const struct {
		struct pci_msix_cfg cfg;
		const char *msg;
	} bad[] = {
	    {{0, 0, 0, 0, 0x800}, "nvec=0"},
	    {{2049, 2, 0, 2, 0x10000}, "nvec=2049"},
	    {{4, 1, 0, 0, 0x800}, "table_bar=1"},
	    {{4, 6, 0, 0, 0x800}, "table_bar=6"},
	    {{4, 3, 0, 0, 0x800}, "table_bar=3"}, /* high half of a 64-bit BAR */
	    {{4, 5, 0, 0, 0x800}, "table_bar=5"}, /* no BAR */
	    {{4, 0, 0, 1, 0}, "pba_bar=1"},
	    {{4, 0, 4, 0, 0x800}, "table_off=0x4"},
	    {{4, 0, 0, 0, 0x804}, "pba_off=0x804"},
	    {{4, 0, 0xfc8, 0, 0x800}, "table_off=0xfc8"}, /* 64 bytes past 4 KiB */
	    {{257, 0, 0, 0, 0xff8}, "table_off=0x0"},
	    {{4, 0, 0, 0, 0xffc}, "pba_off=0xffc"},
	    {{4, 0, 0, 0, 0x1000}, "pba_off=0x1000"},
	    {{4, 0, 0, 0, 0x38}, "overlaps"},
	    {{4, 0, 0x100, 0, 0x138}, "overlaps"},
	    {{4, 0, 0xfffffff8, 0, 0}, "outside"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		assert_int_equal(pci_msix_init(&d, &bad[i].cfg, &rec_ops, NULL, &m, &err), -EINVAL);
		if (!strstr(err.msg, bad[i].msg))
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].msg);
	}
	assert_int_equal(pci_find_cap(&d, PCI_CAP_ID_MSIX, 0), 0);
	/* Table and PBA back to back, and in different BARs, are fine. */
	const struct pci_msix_cfg ok = {4, 0, 0, 0, 0x40};
	assert_int_equal(pci_msix_init(&d, &ok, &rec_ops, NULL, &m, &err), 0);
	assert_int_equal(pci_msix_init(&d, &ok, &rec_ops, NULL, &m, &err), -EEXIST);
	pci_dev_destroy(&d);

	assert_int_equal(pci_dev_init(&d, &info, NULL, NULL), 0);
	assert_int_equal(pci_dev_set_bar(&d, 0, PCI_BAR_MEM32, 0x1000, false, &err), 0);
	assert_int_equal(pci_dev_set_bar(&d, 2, PCI_BAR_MEM64, 0x100000, false, &err), 0);
	const struct pci_msix_cfg max = {2048, 2, 0, 0, 0};
	assert_int_equal(pci_msix_init(&d, &max, NULL, NULL, &m, &err), 0);
	assert_int_equal(pci_msix_nvec(m), 2048);
	assert_int_equal(pci_msix_table_size(m), 32768);
	assert_int_equal(pci_msix_pba_size(m), 256);
	pci_dev_destroy(&d);

	/* No room left in config space for the capability. */
	assert_int_equal(pci_dev_init(&d, &info, NULL, NULL), 0);
	assert_int_equal(pci_dev_set_bar(&d, 0, PCI_BAR_MEM32, 0x1000, false, &err), 0);
	assert_int_equal(pci_add_cap(&d, PCI_CAP_ID_VNDR, 188), 0x40);
	assert_int_equal(pci_msix_init(&d, &ok, &rec_ops, NULL, &m, &err), -ENOSPC);
	assert_null(d.msix);
	pci_dev_destroy(&d);
}

static void test_capability(void **state)
{
	struct fixture *f = *state;
	uint32_t cap = (uint32_t)f->cap;
	assert_int_equal(pci_cfg_read(&f->dev, cap, 2) & 0xff, PCI_CAP_ID_MSIX);
	assert_int_equal(pci_cfg_read(&f->dev, cap + 2, 2), 7);
	assert_int_equal(pci_cfg_read(&f->dev, cap + 4, 4), 0x1001);
	assert_int_equal(pci_cfg_read(&f->dev, cap + 8, 4), 0x1801);
	/* Only enable and function mask are writable. */
	pci_cfg_write(&f->dev, cap, 4, 0xffffffff);
	pci_cfg_write(&f->dev, cap + 4, 4, 0xffffffff);
	pci_cfg_write(&f->dev, cap + 8, 4, 0);
	assert_int_equal(pci_cfg_read(&f->dev, cap, 4), 0xc0070000 | PCI_CAP_ID_MSIX);
	assert_int_equal(pci_cfg_read(&f->dev, cap + 4, 4), 0x1001);
	assert_int_equal(pci_cfg_read(&f->dev, cap + 8, 4), 0x1801);
	assert_true(pci_msix_enabled(f->m));
	pci_cfg_write(&f->dev, cap + 3, 1, 0x80); /* byte write: enable, unmask all */
	assert_int_equal(pci_cfg_read(&f->dev, cap + 2, 2), 0x8007);
	assert_int_equal(f->r.changed, 0);	  /* every vector still masked by its own bit */
	pci_cfg_write(&f->dev, cap + 2, 1, 0xff); /* table size byte: read-only */
	assert_int_equal(pci_cfg_read(&f->dev, cap + 2, 2), 0x8007);
	ctrl(f, 0);
	assert_false(pci_msix_enabled(f->m));
}

static void test_table_widths(void **state)
{
	struct fixture *f = *state;
	struct pci_msix *m = f->m;
	/* Reset state: all vectors masked, zero message. */
	for (uint32_t v = 0; v < 8; v++) {
		assert_int_equal(tr(m, v * 16, 8), 0);
		assert_int_equal(tr(m, v * 16 + 8, 8), 1ULL << 32);
	}
	/* Dword writes, read back at every width and offset. */
	tw(m, 16, 4, 0xfee01004);
	tw(m, 20, 4, 0x00000001);
	tw(m, 24, 4, 0x00004041);
	assert_true(tr(m, 16, 8) == 0x00000001fee01004ULL);
	assert_int_equal(tr(m, 16, 4), 0xfee01004);
	assert_int_equal(tr(m, 18, 2), 0xfee0);
	assert_int_equal(tr(m, 17, 1), 0x10);
	assert_int_equal(tr(m, 19, 2), 0x01fe); /* unaligned, inside the entry */
	assert_int_equal(tr(m, 23, 2), 0x4100); /* across fields */
	assert_int_equal(tr(m, 24, 4), 0x4041);
	assert_int_equal(tr(m, 28, 4), 1);
	/* A qword write of address lo/hi, then of data + control. */
	tw(m, 32, 8, 0x12345678fee00000ULL);
	assert_true(tr(m, 32, 8) == 0x12345678fee00000ULL);
	tw(m, 40, 8, 0xfffffffe00000033ULL);
	assert_true(tr(m, 40, 8) == 0x33); /* reserved control bits read 0, unmasked */
	struct pci_msi_msg msg;
	bool masked;
	assert_int_equal(pci_msix_get(m, 2, &msg, &masked), 0);
	assert_true(msg.address == 0x12345678fee00000ULL && msg.data == 0x33);
	assert_true(masked); /* MSI-X is off */
	/* Byte and word writes. */
	tw(m, 48, 1, 0xaa);
	tw(m, 49, 1, 0xbb);
	tw(m, 50, 2, 0xeeff);
	tw(m, 60, 2, 0xffff);
	tw(m, 63, 1, 0xff);
	assert_int_equal(tr(m, 48, 4), 0xeeffbbaa);
	assert_int_equal(tr(m, 60, 4), 1);
	tw(m, 60, 1, 0);
	assert_int_equal(tr(m, 60, 4), 0);
	/* A qword straddling two entries updates both. */
	tw(m, 12, 8, 0x0000000500000000ULL);
	assert_int_equal(tr(m, 12, 4), 0);
	assert_int_equal(tr(m, 16, 4), 5);
	assert_int_equal(pci_msix_get(m, 8, &msg, &masked), -EINVAL);
	assert_int_equal(pci_msix_get(m, 0, NULL, NULL), 0);
}

static void test_out_of_range(void **state)
{
	struct fixture *f = *state;
	struct pci_msix *m = f->m;
	uint8_t before[8 * 16], after[8 * 16];
	for (uint32_t i = 0; i < sizeof(before); i++)
		pci_msix_table_io(m, i, &before[i], 1, false);
	static const uint64_t offs[] = {128,  129,	  130,	      132,	     136,
					4096, 0x7fffffff, UINT64_MAX, UINT64_MAX - 7};
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		for (uint32_t len = 1; len <= 8; len++) {
			tw(m, offs[i], len, ~0ULL);
			assert_true(tr(m, offs[i], len) == 0);
		}
	}
	/* Widths the bus never sends: reads zero, writes dropped. */
	uint8_t big[16];
	memset(big, 0xff, sizeof(big));
	pci_msix_table_io(m, 0, big, 16, true);
	pci_msix_table_io(m, 0, big, 0, true);
	pci_msix_table_io(m, 0, big, 16, false);
	for (int i = 0; i < 16; i++)
		assert_int_equal(big[i], 0);
	for (uint32_t i = 0; i < sizeof(after); i++)
		pci_msix_table_io(m, i, &after[i], 1, false);
	assert_memory_equal(before, after, sizeof(before));
	/* Partly inside: the inside bytes count, the rest is dropped/zero. */
	tw(m, 124, 8, 0xffffffff00000000ULL);
	assert_int_equal(tr(m, 124, 4), 0);
	tw(m, 120, 8, 0x1122334555667788ULL);
	assert_true(tr(m, 120, 8) == 0x0000000155667788ULL);
	assert_true(tr(m, 124, 8) == 1);
	assert_int_equal(f->r.delivered, 0);
	/* The PBA: read-only, zero outside. */
	uint8_t d[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	pci_msix_pba_io(m, 0, d, 8, true);
	assert_true(pba(m, 0, 8) == 0);
	assert_true(pba(m, 8, 8) == 0);
	assert_true(pba(m, UINT64_MAX, 1) == 0);
	pci_msix_pba_io(m, 0, big, 16, false);
	assert_false(pci_msix_pending(m, 8));
	assert_false(pci_msix_pending(m, 0xffff));
	assert_int_equal(pci_msix_notify(m, 8), -EINVAL);
	assert_int_equal(pci_msix_notify(m, 0xffff), -EINVAL);
}

static void test_mask_pending_delivery(void **state)
{
	struct fixture *f = *state;
	struct pci_msix *m = f->m;
	struct rec *r = &f->r;
	tw(m, 3 * 16, 8, 0xfee00000);
	tw(m, 3 * 16 + 8, 4, 0x45);
	/* Disabled: nothing pending, the caller falls back to INTx. */
	assert_int_equal(pci_msix_notify(m, 3), PCI_MSIX_DISABLED);
	assert_false(pci_msix_pending(m, 3));
	/* Message changes of a masked vector are reported (address, data). */
	assert_int_equal(r->changed, 2);
	assert_true(r->masked);
	r->changed = 0;
	ctrl(f, PCI_MSIX_CTRL_ENABLE);
	assert_int_equal(r->changed, 0); /* still masked by its own bit */
	/* Vector masked: pending, visible in the PBA. */
	assert_int_equal(pci_msix_notify(m, 3), PCI_MSIX_PENDING);
	assert_int_equal(pci_msix_notify(m, 3), PCI_MSIX_PENDING);
	assert_true(pci_msix_pending(m, 3));
	assert_true(pba(m, 0, 8) == 8);
	assert_true(pba(m, 0, 1) == 8);
	assert_int_equal(r->delivered, 0);
	/* Unmask: the route is updated first, then one delivery. */
	tw(m, 3 * 16 + 12, 4, 0);
	assert_int_equal(r->changed, 1);
	assert_false(r->masked);
	assert_int_equal(r->delivered, 1);
	assert_int_equal(r->vec, 3);
	assert_true(r->msg.address == 0xfee00000 && r->msg.data == 0x45);
	assert_false(pci_msix_pending(m, 3));
	assert_true(pba(m, 0, 8) == 0);
	/* Unmasked: sent at once. */
	assert_int_equal(pci_msix_notify(m, 3), PCI_MSIX_SENT);
	assert_int_equal(r->delivered, 2);
	/* Changing the message of an unmasked vector is reported. */
	tw(m, 3 * 16 + 8, 4, 0x46);
	assert_int_equal(r->changed, 2);
	assert_int_equal(r->msg.data, 0x46);
	tw(m, 3 * 16 + 8, 4, 0x46); /* same value: no report */
	assert_int_equal(r->changed, 2);
	/* Function mask: everything held back, reported masked. */
	ctrl(f, PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL);
	assert_int_equal(r->changed, 3);
	assert_true(r->masked);
	assert_int_equal(pci_msix_notify(m, 3), PCI_MSIX_PENDING);
	assert_int_equal(pci_msix_notify(m, 5), PCI_MSIX_PENDING); /* masked itself too */
	/* Unmasking vector 3 alone does not send under the function mask. */
	tw(m, 3 * 16 + 12, 4, 1);
	tw(m, 3 * 16 + 12, 4, 0);
	assert_int_equal(r->delivered, 2);
	ctrl(f, PCI_MSIX_CTRL_ENABLE);
	assert_int_equal(r->delivered, 3);
	assert_int_equal(r->vec, 3);
	assert_false(pci_msix_pending(m, 3));
	assert_true(pci_msix_pending(m, 5));
	/* Disabling keeps pending bits; re-enabling with 5 unmasked sends it. */
	ctrl(f, 0);
	tw(m, 5 * 16 + 12, 1, 0);
	assert_int_equal(r->delivered, 3);
	ctrl(f, PCI_MSIX_CTRL_ENABLE);
	assert_int_equal(r->delivered, 4);
	assert_int_equal(r->vec, 5);
	assert_int_equal(pci_msix_notify(m, 5), PCI_MSIX_SENT);
	/* Enable and disable report every unmasked vector's new state. */
	ctrl(f, 0);
	tw(m, 6 * 16 + 12, 4, 0);
	r->changed = 0;
	ctrl(f, PCI_MSIX_CTRL_ENABLE);
	assert_int_equal(r->changed, 3); /* vectors 3, 5, 6 */
	assert_int_equal(r->vec, 6);
	assert_false(r->masked);
	ctrl(f, 0);
	assert_int_equal(r->changed, 6);
	assert_true(r->masked);
}

static void test_bar_io_and_intx(void **state)
{
	struct fixture *f = *state;
	struct pci_msix *m = f->m;
	uint8_t d[8] = {0x78, 0x56, 0x34, 0x12};
	assert_true(pci_msix_bar_io(m, 1, 0x1000 + 16, d, 4, true));
	assert_int_equal(tr(m, 16, 4), 0x12345678);
	memset(d, 0, sizeof(d));
	assert_true(pci_msix_bar_io(m, 1, 0x1000 + 16, d, 4, false));
	assert_int_equal(d[3], 0x12);
	assert_false(pci_msix_bar_io(m, 0, 0x1000, d, 4, false));
	assert_false(pci_msix_bar_io(m, 1, 0xff8, d, 8, false));
	assert_false(pci_msix_bar_io(m, 1, 0x1000 + 128, d, 4, false));
	assert_true(pci_msix_bar_io(m, 1, 0x1800, d, 8, false));
	assert_true(pci_msix_bar_io(m, 1, 0x1807, d, 1, true));
	assert_false(pci_msix_bar_io(m, 1, 0x1808, d, 8, false));
	assert_false(pci_msix_bar_io(m, 7, 0x1000, d, 4, false));

	/* INTx is silent while MSI-X is enabled. */
	pci_intx_set(&f->dev, true);
	assert_true(pci_cfg_read(&f->dev, PCI_STATUS, 2) & PCI_STATUS_INTX);
	ctrl(f, PCI_MSIX_CTRL_ENABLE);
	assert_false(f->dev.intx_out);
	ctrl(f, 0);
	assert_true(f->dev.intx_out);
	pci_intx_set(&f->dev, false);
	assert_false(f->dev.intx_out);
}

/* Deterministic xorshift so a failure can be replayed. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void hostile_moved(struct pci_dev *dev, unsigned bar, uint64_t old_addr, uint64_t new_addr)
{
	uint64_t *where = dev->opaque;
	assert_true(bar < PCI_NUM_BARS);
	assert_true(where[bar] == old_addr);
	assert_true(new_addr != 0);
	where[bar] = new_addr;
}

static void test_hostile_guest(void **state)
{
	(void)state;
	static const struct pci_dev_ops ops = {.bar_moved = hostile_moved};
	uint64_t where[PCI_NUM_BARS];
	for (int i = 0; i < PCI_NUM_BARS; i++)
		where[i] = PCI_BAR_UNMAPPED;
	struct pci_bus bus;
	struct pci_dev d;
	struct pci_msix *m;
	struct rec r = {0};
	struct chv_err err = {0};
	assert_int_equal(pci_bus_init(&bus, 1ULL << 40, 1ULL << 36, &err), 0);
	assert_int_equal(pci_dev_init(&d, &info, &ops, where), 0);
	assert_int_equal(pci_dev_set_bar(&d, 0, PCI_BAR_MEM32, 0x1000, false, &err), 0);
	assert_int_equal(pci_dev_set_bar(&d, 1, PCI_BAR_IO, 0x40, false, &err), 0);
	assert_int_equal(pci_dev_set_bar(&d, 2, PCI_BAR_MEM64, 0x10000, true, &err), 0);
	assert_int_equal(pci_dev_set_bar(&d, 5, PCI_BAR_MEM32, 0x100000, true, &err), 0);
	int vcap = pci_add_cap(&d, PCI_CAP_ID_VNDR, 16);
	assert_true(vcap > 0);
	pci_cfg_set_masks(&d, (uint32_t)vcap + 4, 4, 0xffffffff, 0);
	const struct pci_msix_cfg cfg = {33, 2, 0x8000, 2, 0x9000};
	assert_int_equal(pci_msix_init(&d, &cfg, &rec_ops, &r, &m, &err), 0);
	assert_int_equal(pci_bus_add(&bus, &d, -1), 1);
	assert_int_equal(pci_assign_bars(&bus, &d, true, &err), 0);

	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	uint8_t data[16];
	for (int round = 0; round < 4; round++) {
		/* Every config offset at every width, aligned or not, via both
		 * mechanisms, with random values; reads of everything too. */
		for (uint32_t off = 0; off < PCI_CFG_SPACE_SIZE + 8; off++) {
			for (uint32_t len = 1; len <= 8; len++) {
				uint64_t v = rnd(&seed);
				memcpy(data, &v, 8);
				pci_ecam_io(&bus, 1u << 15 | off, data, len, true);
				pci_ecam_io(&bus, 1u << 15 | off, data, len, false);
				pci_cfg_write(&d, off, len, (uint32_t)v);
				(void)pci_cfg_read(&d, off, len);
				uint8_t a[4] = {(uint8_t)(v >> 32), (uint8_t)(v >> 40),
						(uint8_t)(v >> 48), 0x80};
				a[1] = (uint8_t)((a[1] & 0x07) | 1 << 3); /* slot 1 */
				pci_cf8_io(&bus, 0, a, 4, true);
				pci_cfc_io(&bus, off & 7, data, len, true);
				pci_cfc_io(&bus, off & 7, data, len, false);
			}
		}
		/* Random hits anywhere in the ECAM window and the ports. */
		for (int i = 0; i < 20000; i++) {
			uint64_t v = rnd(&seed);
			memcpy(data, &v, 8);
			uint32_t len = 1 + (uint32_t)(v >> 60) % 8;
			uint64_t off = rnd(&seed) % (1ULL << 28);
			pci_ecam_io(&bus, off, data, len, v & 1);
			pci_cf8_io(&bus, off & 3, data, len, v & 2);
			pci_cfc_io(&bus, off & 7, data, len, v & 4);
		}
		/* The MSI-X table and PBA at every offset and width. */
		for (uint64_t off = 0; off < 33 * 16 + 16; off++) {
			for (uint32_t len = 0; len <= 16; len++) {
				uint64_t v = rnd(&seed);
				memcpy(data, &v, 8);
				memcpy(data + 8, &v, 8);
				pci_msix_table_io(m, off, data, len, true);
				pci_msix_table_io(m, off, data, len, false);
				pci_msix_pba_io(m, off, data, len, v & 1);
				(void)pci_msix_bar_io(m, 2, 0x8000 + off, data, len, v & 2);
				(void)pci_msix_bar_io(m, 2, 0x9000 + off, data, len, v & 4);
				(void)pci_msix_notify(m, (uint16_t)(v >> 48));
				(void)pci_msix_notify(m, (uint16_t)(v >> 48) % 40);
			}
		}
		for (int i = 0; i < 20000; i++) {
			uint64_t v = rnd(&seed);
			memcpy(data, &v, 8);
			uint64_t off = rnd(&seed);
			pci_msix_table_io(m, off, data, 1 + (uint32_t)(v >> 61), v & 1);
			pci_msix_pba_io(m, off, data, 1 + (uint32_t)(v >> 61), false);
		}
	}
	/* The read-only identity and structure survived. */
	assert_int_equal(pci_cfg_read(&d, 0, 4), 0x10431af4);
	assert_int_equal(pci_cfg_read(&d, PCI_HEADER_TYPE, 1), 0);
	assert_int_equal(pci_cfg_read(&d, PCI_CAPABILITY_LIST, 1), vcap);
	assert_true(pci_cfg_read(&d, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	int mcap = pci_find_cap(&d, PCI_CAP_ID_MSIX, 0);
	assert_true(mcap > vcap);
	assert_int_equal(pci_cfg_read(&d, (uint32_t)mcap + 2, 2) & 0x7ff, 32);
	assert_int_equal(pci_cfg_read(&d, (uint32_t)mcap + 4, 4), 0x8002);
	assert_int_equal(pci_cfg_read(&d, PCI_BAR0 + 4, 4) & 3, 1);
	assert_int_equal(pci_cfg_read(&d, PCI_BAR0 + 8, 4) & 0xf, 0xc);
	assert_int_equal(pci_cfg_read(&d, PCI_BAR0 + 20, 4) & 0xf, 0x8);
	for (uint32_t off = 0; off < 33 * 16; off += 16)
		assert_int_equal(tr(m, off + 12, 4) & ~1u, 0);
	assert_true(pba(m, 0, 8) >> 33 == 0);
	assert_true(pba(m, 8, 8) == 0);
	assert_ptr_equal(pci_bus_remove(&bus, 1), &d);
	for (int i = 0; i < PCI_NUM_BARS; i++)
		assert_true(where[i] == PCI_BAR_UNMAPPED);
	pci_dev_destroy(&d);
	pci_bus_destroy(&bus);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_errors),
	    cmocka_unit_test_setup_teardown(test_capability, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_table_widths, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mask_pending_delivery, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bar_io_and_intx, setup, teardown),
	    cmocka_unit_test(test_hostile_guest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
