/* The virtio-pci transport driven the way a guest driver drives it: config
 * space through pci_cfg_read/write, the BAR through its bus_io_fn, rings in a
 * real struct vm_mem, and virtio-rng behind it. Covers the capability walk,
 * the initialisation sequence, feature negotiation, queue set-up checks,
 * requests, MSI-X delivery and masking, INTx with ISR, reset mid-operation,
 * the config-space access window, and hostile register accesses. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pci/virtio_pci.h"
#include "virtio/rng.h"

#define RAM	 (4ull << 20)
#define DESC	 0x10000ull
#define AVAIL	 0x11000ull
#define USED	 0x12000ull
#define BUF	 0x100000ull
#define QSIZE	 8u
#define BAR_ADDR 0x100000000ull
#define F_V1	 (1ull << VIRTIO_F_VERSION_1)
#define F_IND	 (1ull << VIRTIO_RING_F_INDIRECT_DESC)
#define F_EVT	 (1ull << VIRTIO_RING_F_EVENT_IDX)
#define MAXLOG	 64

struct t {
	struct vm_mem m;
	struct virtio_rng r;
	struct virtio_pci vp;
	uint16_t avail_idx;
	/* What the VM sees. */
	uint16_t delivered[MAXLOG];
	unsigned ndelivered;
	bool intx;
	unsigned intx_edges;
	uint64_t bar_at;
	/* Structure offsets found by the capability walk. */
	uint32_t common, notify, isr, notify_mul;
	uint8_t msix_cap, pcicfg_cap;
};

static void deliver(void *opaque, uint16_t vector, const struct pci_msi_msg *msg)
{
	struct t *t = opaque;
	(void)msg;
	if (t->ndelivered < MAXLOG)
		t->delivered[t->ndelivered++] = vector;
}

static int set_irq(void *ctx, uint32_t gsi, bool level)
{
	struct t *t = ctx;
	assert_int_equal(gsi, 11);
	if (level && !t->intx)
		t->intx_edges++;
	t->intx = level;
	return 0;
}

static void bar_moved(void *ctx, uint64_t old_addr, uint64_t new_addr)
{
	struct t *t = ctx;
	(void)old_addr;
	t->bar_at = new_addr;
}

static const struct pci_msix_ops msix_ops = {.deliver = deliver};

/* ---- the guest's accessors ---- */

static uint64_t rd(struct t *t, uint64_t off, uint32_t len)
{
	uint8_t b[8] = {0};
	uint64_t v = 0;
	virtio_pci_bar_io(&t->vp, off, b, len, false);
	memcpy(&v, b, len);
	return v;
}

static void wr(struct t *t, uint64_t off, uint32_t len, uint64_t v)
{
	uint8_t b[8];
	memcpy(b, &v, 8);
	virtio_pci_bar_io(&t->vp, off, b, len, true);
}

static uint32_t cfg(struct t *t, uint32_t off, uint32_t len)
{
	return pci_cfg_read(&t->vp.pci, off, len);
}

static void cfg_w(struct t *t, uint32_t off, uint32_t len, uint32_t v)
{
	pci_cfg_write(&t->vp.pci, off, len, v);
}

static uint8_t status(struct t *t)
{
	return (uint8_t)rd(t, t->common + VIRTIO_PCI_COMMON_STATUS, 1);
}

static void set_status(struct t *t, uint8_t s)
{
	wr(t, t->common + VIRTIO_PCI_COMMON_STATUS, 1, s);
}

static uint8_t *host(struct t *t, uint64_t gpa)
{
	return vm_mem_ptr(&t->m, gpa, 1);
}

static void desc(struct t *t, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	uint8_t *p = host(t, DESC + 16ull * i);
	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

static void publish(struct t *t, uint16_t head)
{
	uint8_t *a = host(t, AVAIL);
	memcpy(a + 4 + 2 * (t->avail_idx % QSIZE), &head, 2);
	t->avail_idx++;
	memcpy(a + 2, &t->avail_idx, 2);
}

static uint16_t used_idx(struct t *t)
{
	uint16_t v;
	memcpy(&v, host(t, USED + 2), 2);
	return v;
}

static uint32_t used_len(struct t *t, uint16_t n)
{
	uint32_t v;
	memcpy(&v, host(t, USED + 4 + 8ull * (n % QSIZE) + 4), 4);
	return v;
}

static void notify(struct t *t, uint16_t q)
{
	wr(t, t->notify + (uint64_t)q * t->notify_mul, 2, q);
}

/* Walks the capability list like a driver: every structure must be found. */
static void walk_caps(struct t *t)
{
	assert_true(cfg(t, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	uint8_t at = (uint8_t)cfg(t, PCI_CAPABILITY_LIST, 1);
	unsigned seen = 0, steps = 0;
	t->common = t->notify = t->isr = UINT32_MAX;
	while (at) {
		assert_true(at >= PCI_CAP_START && steps++ < 48);
		uint8_t id = (uint8_t)cfg(t, at, 1);
		if (id == PCI_CAP_ID_MSIX) {
			t->msix_cap = at;
			seen |= 1u << 6;
		} else {
			assert_int_equal(id, PCI_CAP_ID_VNDR);
			uint8_t type = (uint8_t)cfg(t, at + 3u, 1);
			uint8_t bar = (uint8_t)cfg(t, at + 4u, 1);
			uint32_t off = cfg(t, at + 8u, 4), len = cfg(t, at + 12u, 4);
			assert_true(type >= 1 && type <= 5);
			seen |= 1u << type;
			if (type != VIRTIO_PCI_CAP_PCI_CFG) {
				assert_int_equal(bar, VIRTIO_PCI_BAR);
				assert_true(off + len <= VIRTIO_PCI_BAR_SIZE);
			}
			switch (type) {
			case VIRTIO_PCI_CAP_COMMON_CFG:
				assert_int_equal(cfg(t, at + 2u, 1), 16);
				assert_true(len >= 0x38);
				t->common = off;
				break;
			case VIRTIO_PCI_CAP_NOTIFY_CFG:
				assert_int_equal(cfg(t, at + 2u, 1), 20);
				t->notify = off;
				t->notify_mul = cfg(t, at + 16u, 4);
				assert_true(len >= 2); /* queue_notify_off 0 * multiplier + 2 */
				break;
			case VIRTIO_PCI_CAP_ISR_CFG:
				assert_true(len >= 1);
				t->isr = off;
				break;
			case VIRTIO_PCI_CAP_PCI_CFG:
				assert_int_equal(cfg(t, at + 2u, 1), 20);
				t->pcicfg_cap = at;
				break;
			}
		}
		at = (uint8_t)cfg(t, at + 1u, 1);
	}
	/* Common, notify, ISR, the access window, MSI-X; rng has no device cap. */
	assert_int_equal(seen, 1u << 1 | 1u << 2 | 1u << 3 | 1u << 5 | 1u << 6);
	assert_int_equal(t->notify_mul, VIRTIO_PCI_NOTIFY_MUL);
}

/* Firmware's part: BAR placed, memory decoding and bus mastering on. */
static void firmware(struct t *t)
{
	cfg_w(t, PCI_BAR0, 4, (uint32_t)BAR_ADDR);
	cfg_w(t, PCI_BAR0 + 4, 4, (uint32_t)(BAR_ADDR >> 32));
	cfg_w(t, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

/* The MSI-X table entry for vector v, and the function enabled. */
static void msix_vector(struct t *t, uint16_t v, bool masked)
{
	uint64_t e = VIRTIO_PCI_MSIX_TABLE_OFF + 16ull * v;
	wr(t, e, 4, 0xfee00000u);
	wr(t, e + 4, 4, 0);
	wr(t, e + 8, 4, 0x40u + v);
	wr(t, e + 12, 4, masked);
}

static void msix_enable(struct t *t, bool on)
{
	cfg_w(t, t->msix_cap + 2u, 2, on ? PCI_MSIX_CTRL_ENABLE : 0);
}

/* The driver's initialisation (3.1.1) up to DRIVER_OK, queue 0 of size
 * QSIZE with the given MSI-X vectors. */
static void driver_init(struct t *t, uint64_t features, uint16_t cfg_vec, uint16_t q_vec)
{
	set_status(t, 0);
	assert_int_equal(status(t), 0);
	set_status(t, VIRTIO_STATUS_ACKNOWLEDGE);
	set_status(t, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(t, t->common + VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	uint64_t offered = rd(t, t->common + VIRTIO_PCI_COMMON_DF, 4);
	wr(t, t->common + VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	offered |= rd(t, t->common + VIRTIO_PCI_COMMON_DF, 4) << 32;
	assert_int_equal(offered, F_V1 | F_IND | F_EVT);
	wr(t, t->common + VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	wr(t, t->common + VIRTIO_PCI_COMMON_GF, 4, (uint32_t)features);
	wr(t, t->common + VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	wr(t, t->common + VIRTIO_PCI_COMMON_GF, 4, (uint32_t)(features >> 32));
	set_status(t, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	assert_true(status(t) & VIRTIO_STATUS_FEATURES_OK);

	wr(t, t->common + VIRTIO_PCI_COMMON_MSIX, 2, cfg_vec);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_MSIX, 2), cfg_vec);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_NUMQ, 2), 1);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_SIZE, 2), VIRTIO_RNG_QUEUE_SIZE);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_SIZE, 2, QSIZE);
	memset(host(t, DESC), 0, 0x3000);
	t->avail_idx = 0;
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_DESCLO, 8, DESC);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)AVAIL);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)USED);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_DESCLO, 8), DESC);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_MSIX, 2, q_vec);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_MSIX, 2), q_vec);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_NOFF, 2), 0);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
	set_status(t, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
			  VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(status(t), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
					VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	struct mem_layout l;
	struct chv_err err = {0};
	if (!t)
		return -1;
	layout_compute(RAM, &l);
	if (vm_mem_create(&t->m, &l, false, false, &err))
		goto fail;
	if (virtio_rng_init(&t->r, &t->m, NULL, &err))
		goto fail;
	const struct virtio_pci_host h = {
	    .msix_ops = &msix_ops,
	    .msix_opaque = t,
	    .bar_moved = bar_moved,
	    .ctx = t,
	};
	t->bar_at = PCI_BAR_UNMAPPED;
	if (virtio_pci_init(&t->vp, &t->r.vdev, &h, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		goto fail;
	}
	const struct irq_line line = {.set = set_irq, .ctx = t, .gsi = 11};
	pci_dev_set_intx_line(&t->vp.pci, &line);
	firmware(t);
	walk_caps(t);
	*state = t;
	return 0;
fail:
	virtio_pci_destroy(&t->vp);
	virtio_rng_destroy(&t->r);
	vm_mem_destroy(&t->m);
	free(t);
	return -1;
}

static int teardown(void **state)
{
	struct t *t = *state;
	virtio_pci_destroy(&t->vp);
	virtio_rng_destroy(&t->r);
	vm_mem_destroy(&t->m);
	free(t);
	return 0;
}

static bool all_equal(const uint8_t *p, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (p[i] != p[0])
			return false;
	return true;
}

/* ---- tests ---- */

static void test_identity_and_bar(void **state)
{
	struct t *t = *state;
	assert_int_equal(cfg(t, PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(cfg(t, PCI_DEVICE_ID, 2), 0x1040 + VIRTIO_ID_RNG);
	assert_int_equal(cfg(t, PCI_REVISION_ID, 1), 1);
	assert_int_equal(cfg(t, PCI_SUBSYSTEM_VENDOR, 2), 0x1af4);
	assert_int_equal(cfg(t, PCI_SUBSYSTEM_ID, 2), VIRTIO_PCI_SUBSYS_ID_BASE + VIRTIO_ID_RNG);
	assert_int_equal(cfg(t, PCI_INTERRUPT_PIN, 1), 1);
	/* A 64-bit memory BAR of VIRTIO_PCI_BAR_SIZE bytes. */
	assert_int_equal(cfg(t, PCI_BAR0, 4) & 0xf, PCI_BAR_MEM_TYPE_64);
	assert_int_equal(t->bar_at, BAR_ADDR);
	cfg_w(t, PCI_BAR0, 4, 0xffffffff);
	assert_int_equal(cfg(t, PCI_BAR0, 4) & ~0xfu, (uint32_t)-VIRTIO_PCI_BAR_SIZE);
	cfg_w(t, PCI_BAR0, 4, (uint32_t)BAR_ADDR);
	assert_int_equal(t->bar_at, BAR_ADDR);
	/* MSI-X: one vector per queue plus configuration, table and PBA in the BAR. */
	assert_int_equal((cfg(t, t->msix_cap + 2u, 2) & 0x7ff) + 1, 2);
	assert_int_equal(cfg(t, t->msix_cap + 4u, 4), VIRTIO_PCI_MSIX_TABLE_OFF | VIRTIO_PCI_BAR);
	assert_int_equal(cfg(t, t->msix_cap + 8u, 4), VIRTIO_PCI_MSIX_PBA_OFF | VIRTIO_PCI_BAR);

	struct virtio_pci_notify n;
	assert_int_equal(virtio_pci_notify_info(&t->vp, 0, &n), 0);
	assert_int_equal(n.offset, t->notify);
	assert_int_equal(n.addr, BAR_ADDR + t->notify);
	assert_int_equal(n.len, 2);
	assert_int_equal(n.datamatch, 0);
	assert_int_equal(virtio_pci_notify_info(&t->vp, 1, &n), -EINVAL);
	cfg_w(t, PCI_COMMAND, 2, 0);
	assert_int_equal(t->bar_at, PCI_BAR_UNMAPPED);
	assert_int_equal(virtio_pci_notify_info(&t->vp, 0, &n), 0);
	assert_int_equal(n.addr, PCI_BAR_UNMAPPED);
}

static void test_rng_round_trip_msix(void **state)
{
	struct t *t = *state;
	msix_vector(t, 0, false);
	msix_vector(t, 1, false);
	msix_enable(t, true);
	driver_init(t, F_V1, 0, 1);
	memset(host(t, BUF), 0, 256);
	desc(t, 0, BUF, 128, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 0);
	notify(t, 0);
	assert_int_equal(used_idx(t), 1);
	assert_int_equal(used_len(t, 0), 128);
	assert_false(all_equal(host(t, BUF), 128));
	assert_int_equal(host(t, BUF + 128)[0], 0);
	assert_int_equal(t->ndelivered, 1);
	assert_int_equal(t->delivered[0], 1);
	assert_false(t->intx);
	/* The ioeventfd path does the same. */
	publish(t, 0);
	virtio_pci_kick(&t->vp, 0);
	virtio_pci_kick(&t->vp, 5); /* no such queue */
	assert_int_equal(used_idx(t), 2);
	assert_int_equal(t->ndelivered, 2);
	/* Negotiated features reach the device. */
	assert_int_equal(t->r.vdev.driver_features, F_V1);
}

static void test_msix_masking(void **state)
{
	struct t *t = *state;
	msix_vector(t, 0, false);
	msix_vector(t, 1, true);
	msix_enable(t, true);
	driver_init(t, F_V1 | F_EVT | F_IND, 0, 1);
	desc(t, 0, BUF, 16, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 0);
	notify(t, 0);
	assert_int_equal(used_idx(t), 1);
	assert_int_equal(t->ndelivered, 0);
	assert_true(pci_msix_pending(t->vp.msix, 1));
	assert_int_equal(rd(t, VIRTIO_PCI_MSIX_PBA_OFF, 8), 2);
	/* Unmasking sends what was held back. */
	wr(t, VIRTIO_PCI_MSIX_TABLE_OFF + 16 + 12, 4, 0);
	assert_int_equal(t->ndelivered, 1);
	assert_int_equal(t->delivered[0], 1);
	assert_false(pci_msix_pending(t->vp.msix, 1));
	/* The function mask holds everything back too. */
	cfg_w(t, t->msix_cap + 2u, 2, PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL);
	virtio_signal_config(&t->r.vdev);
	assert_int_equal(t->ndelivered, 1);
	cfg_w(t, t->msix_cap + 2u, 2, PCI_MSIX_CTRL_ENABLE);
	assert_int_equal(t->ndelivered, 2);
	assert_int_equal(t->delivered[1], 0);
	/* NO_VECTOR: the queue raises nothing at all, neither MSI-X nor INTx. */
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_MSIX, 2, VIRTIO_MSI_NO_VECTOR);
	publish(t, 0);
	notify(t, 0);
	assert_int_equal(used_idx(t), 2);
	assert_int_equal(t->ndelivered, 2);
	assert_false(t->intx);
}

static void test_intx_and_isr(void **state)
{
	struct t *t = *state;
	driver_init(t, F_V1, VIRTIO_MSI_NO_VECTOR, VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(rd(t, t->isr, 1), 0);
	desc(t, 0, BUF, 16, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 0);
	notify(t, 0);
	assert_int_equal(used_idx(t), 1);
	assert_true(t->intx);
	assert_true(cfg(t, PCI_STATUS, 2) & PCI_STATUS_INTX);
	assert_int_equal(rd(t, t->isr, 1), VIRTIO_PCI_ISR_QUEUE);
	assert_false(t->intx);
	assert_int_equal(rd(t, t->isr, 1), 0);
	/* A configuration change: bit 1, and the generation moves. */
	uint8_t gen = (uint8_t)rd(t, t->common + VIRTIO_PCI_COMMON_CFGGEN, 1);
	virtio_signal_config(&t->r.vdev);
	assert_true(t->intx);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_CFGGEN, 1), (uint8_t)(gen + 1));
	assert_int_equal(rd(t, t->isr, 1), VIRTIO_PCI_ISR_CONFIG);
	assert_false(t->intx);
	/* INTx disabled in the command register: ISR still set, line quiet. */
	cfg_w(t, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_OFF);
	publish(t, 0);
	notify(t, 0);
	assert_false(t->intx);
	assert_int_equal(rd(t, t->isr, 1), VIRTIO_PCI_ISR_QUEUE);
	/* ISR writes are ignored; other ISR-area offsets do not clear it. */
	cfg_w(t, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	publish(t, 0);
	notify(t, 0);
	wr(t, t->isr, 1, 0);
	assert_int_equal(rd(t, t->isr + 1, 1), 0);
	assert_true(t->intx);
	assert_int_equal(rd(t, t->isr, 1), VIRTIO_PCI_ISR_QUEUE);
}

static void test_feature_negotiation(void **state)
{
	struct t *t = *state;
	const uint8_t ad = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
	struct {
		uint64_t lo, hi, beyond;
	} bad[] = {
	    {0, 0, 0},		       /* no VERSION_1 */
	    {1u << 5, 1, 0},	       /* a bit not offered */
	    {0, 1 | 1u << 31, 0},      /* bit 63 */
	    {0, 1, 1},		       /* past 63 */
	    {F_EVT | F_IND | 1, 1, 0}, /* bit 0 */
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		set_status(t, 0);
		set_status(t, ad);
		wr(t, t->common + VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
		wr(t, t->common + VIRTIO_PCI_COMMON_GF, 4, bad[i].lo);
		wr(t, t->common + VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
		wr(t, t->common + VIRTIO_PCI_COMMON_GF, 4, bad[i].hi);
		wr(t, t->common + VIRTIO_PCI_COMMON_GFSELECT, 4, 2);
		wr(t, t->common + VIRTIO_PCI_COMMON_GF, 4, bad[i].beyond);
		assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_GF, 4), 0);
		set_status(t, ad | VIRTIO_STATUS_FEATURES_OK);
		assert_int_equal(status(t), ad);
		/* Nor can DRIVER_OK go through without it. */
		set_status(t, ad | VIRTIO_STATUS_DRIVER_OK);
		assert_int_equal(status(t), ad);
	}
	/* Selector 2 of the offered features reads 0. */
	wr(t, t->common + VIRTIO_PCI_COMMON_DFSELECT, 4, 2);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_DF, 4), 0);
	wr(t, t->common + VIRTIO_PCI_COMMON_DFSELECT, 4, 0xffffffff);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_DF, 4), 0);

	/* Accepted: a subset; afterwards features are frozen. */
	driver_init(t, F_V1 | F_EVT, 0, 0);
	assert_int_equal(t->r.vdev.driver_features, F_V1 | F_EVT);
	assert_true(t->r.vdev.vqs[0].event_idx);
	wr(t, t->common + VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	wr(t, t->common + VIRTIO_PCI_COMMON_GF, 4, F_IND);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_GF, 4), (uint32_t)F_EVT);
	assert_int_equal(t->r.vdev.driver_features, F_V1 | F_EVT);
	/* The driver cannot clear status bits nor set DEVICE_NEEDS_RESET. */
	set_status(t, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(status(t), ad | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	set_status(t, VIRTIO_STATUS_FAILED);
	assert_true(status(t) & VIRTIO_STATUS_FAILED);
}

/* Sets queue 0 up with these values and tries to enable it. */
static bool try_queue(struct t *t, uint32_t size, uint64_t d, uint64_t a, uint64_t u)
{
	const uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
	set_status(t, 0);
	set_status(t, st);
	wr(t, t->common + VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	wr(t, t->common + VIRTIO_PCI_COMMON_GF, 4, 1);
	set_status(t, st | VIRTIO_STATUS_FEATURES_OK);
	assert_true(status(t) & VIRTIO_STATUS_FEATURES_OK);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_DESCLO, 8, d);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_AVAILLO, 8, a);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_USEDLO, 8, u);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	bool on = rd(t, t->common + VIRTIO_PCI_COMMON_Q_ENABLE, 2) == 1;
	/* A refused queue puts the device in DEVICE_NEEDS_RESET. */
	assert_int_equal(!on, !!(status(t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET));
	return on;
}

static void test_queue_setup_checks(void **state)
{
	struct t *t = *state;
	assert_true(try_queue(t, QSIZE, DESC, AVAIL, USED));
	assert_true(try_queue(t, 1, DESC, AVAIL, USED));
	assert_true(try_queue(t, VIRTIO_RNG_QUEUE_SIZE, DESC, AVAIL, USED + 0x1000));
	assert_false(try_queue(t, 0, DESC, AVAIL, USED));
	assert_false(try_queue(t, 3, DESC, AVAIL, USED));
	assert_false(try_queue(t, 2 * VIRTIO_RNG_QUEUE_SIZE, DESC, AVAIL, USED));
	assert_false(try_queue(t, 0xffff, DESC, AVAIL, USED));
	assert_false(try_queue(t, QSIZE, RAM - 16, AVAIL, USED));
	assert_false(try_queue(t, QSIZE, DESC, RAM, USED));
	assert_false(try_queue(t, QSIZE, DESC, AVAIL, 0xffffffffffff0000ull));
	assert_false(try_queue(t, QSIZE, DESC + 8, AVAIL, USED)); /* misaligned */
	assert_false(try_queue(t, QSIZE, DESC, AVAIL + 1, USED));
	assert_false(try_queue(t, QSIZE, DESC, AVAIL, USED + 2));
	assert_false(try_queue(t, QSIZE, 0xc0000000ull, AVAIL, USED)); /* the MMIO hole */
	assert_non_null(strstr(t->vp.last_err.msg, "virtqueue 0"));

	/* Enabling before FEATURES_OK is refused too. */
	set_status(t, 0);
	set_status(t, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_DESCLO, 8, DESC);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_AVAILLO, 8, AVAIL);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_USEDLO, 8, USED);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	assert_true(status(t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);

	/* An enabled queue's layout is frozen; writing 0 to enable is ignored. */
	assert_true(try_queue(t, QSIZE, DESC, AVAIL, USED));
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_SIZE, 2, 4);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_DESCLO, 8, 0x200000);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_ENABLE, 2, 0);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_SIZE, 2), QSIZE);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_DESCLO, 8), DESC);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
	assert_int_equal(t->r.vdev.vqs[0].desc_gpa, DESC);
}

static void test_selectors_and_vectors(void **state)
{
	struct t *t = *state;
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_SIZE, 2, QSIZE);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_SELECT, 2), 1);
	static const uint32_t qregs[] = {
	    VIRTIO_PCI_COMMON_Q_SIZE,	 VIRTIO_PCI_COMMON_Q_MSIX,    VIRTIO_PCI_COMMON_Q_ENABLE,
	    VIRTIO_PCI_COMMON_Q_NOFF,	 VIRTIO_PCI_COMMON_Q_DESCLO,  VIRTIO_PCI_COMMON_Q_DESCHI,
	    VIRTIO_PCI_COMMON_Q_AVAILLO, VIRTIO_PCI_COMMON_Q_AVAILHI, VIRTIO_PCI_COMMON_Q_USEDLO,
	    VIRTIO_PCI_COMMON_Q_USEDHI,
	};
	for (uint32_t sel = 1; sel <= 0x10000; sel = sel * 3 + 1) {
		wr(t, t->common + VIRTIO_PCI_COMMON_Q_SELECT, 2, sel);
		for (unsigned i = 0; i < sizeof(qregs) / sizeof(qregs[0]); i++) {
			uint32_t w = qregs[i] >= VIRTIO_PCI_COMMON_Q_DESCLO ? 4 : 2;
			wr(t, t->common + qregs[i], w, 1);
			assert_int_equal(rd(t, t->common + qregs[i], w), 0);
		}
	}
	/* Queue 0 was not touched by any of that. */
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_SIZE, 2), QSIZE);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	/* Vectors past the table read back as NO_VECTOR. */
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_MSIX, 2, 2);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_MSIX, 2), 1);
	wr(t, t->common + VIRTIO_PCI_COMMON_MSIX, 2, 0x7fff);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	/* Read-only registers stay so. */
	wr(t, t->common + VIRTIO_PCI_COMMON_NUMQ, 2, 9);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_NUMQ, 2), 1);
	wr(t, t->common + VIRTIO_PCI_COMMON_DF, 4, 0);
	wr(t, t->common + VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_DF, 4), 1);
	/* Wrong widths: nothing read, nothing written. */
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_SELECT, 4, 0x10001);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_SELECT, 2), 0);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_NUMQ, 4), 0);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_NUMQ + 1, 1), 0);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_DESCHI, 8), 0);
}

static void test_reset_mid_operation(void **state)
{
	struct t *t = *state;
	msix_vector(t, 0, false);
	msix_vector(t, 1, false);
	msix_enable(t, true);
	driver_init(t, F_V1 | F_EVT, 0, 1);
	desc(t, 0, BUF, 16, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 0);
	notify(t, 0);
	publish(t, 0); /* made available, not yet kicked */
	assert_int_equal(used_idx(t), 1);

	set_status(t, 0);
	assert_int_equal(status(t), 0);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_SIZE, 2), VIRTIO_RNG_QUEUE_SIZE);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_DESCLO, 8), 0);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	wr(t, t->common + VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	assert_int_equal(rd(t, t->common + VIRTIO_PCI_COMMON_GF, 4), 0);
	assert_int_equal(t->r.vdev.driver_features, 0);
	assert_false(t->r.vdev.activated);
	/* A kick after the reset touches nothing. */
	notify(t, 0);
	virtio_pci_kick(&t->vp, 0);
	assert_int_equal(used_idx(t), 1);
	assert_int_equal(t->ndelivered, 1);

	/* And the device comes back to life from scratch. */
	driver_init(t, F_V1, 0, 1);
	desc(t, 0, BUF, 32, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 0);
	notify(t, 0);
	assert_int_equal(used_idx(t), 1);
	assert_int_equal(used_len(t, 0), 32);
	assert_int_equal(t->ndelivered, 2);
}

static void test_buffers_before_driver_ok_are_served(void **state)
{
	struct t *t = *state;
	driver_init(t, F_V1, VIRTIO_MSI_NO_VECTOR, VIRTIO_MSI_NO_VECTOR);
	set_status(t, 0);
	/* Same set-up, but the buffer is posted and kicked before DRIVER_OK. */
	const uint8_t st =
	    VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
	set_status(t, st & ~VIRTIO_STATUS_FEATURES_OK);
	wr(t, t->common + VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	wr(t, t->common + VIRTIO_PCI_COMMON_GF, 4, 1);
	set_status(t, st);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_SIZE, 2, QSIZE);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_DESCLO, 8, DESC);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_AVAILLO, 8, AVAIL);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_USEDLO, 8, USED);
	wr(t, t->common + VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	memset(host(t, DESC), 0, 0x3000);
	t->avail_idx = 0;
	desc(t, 0, BUF, 16, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 0);
	notify(t, 0);
	assert_int_equal(used_idx(t), 0);
	set_status(t, st | VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(used_idx(t), 1);
	assert_true(t->intx);
}

static void test_broken_chain(void **state)
{
	struct t *t = *state;
	msix_vector(t, 0, false);
	msix_vector(t, 1, false);
	msix_enable(t, true);
	driver_init(t, F_V1 | F_IND, 0, 1);
	/* An indirect table that points outside guest RAM. */
	desc(t, 0, RAM - 16, 64, VIRTQ_DESC_F_INDIRECT, 0);
	publish(t, 0);
	notify(t, 0);
	assert_true(status(t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(t->ndelivered, 1);
	assert_int_equal(t->delivered[0], 0); /* the configuration vector */
	assert_int_equal(used_idx(t), 0);
	/* Further kicks do nothing; the VMM is unaffected and a reset recovers. */
	notify(t, 0);
	assert_int_equal(t->ndelivered, 1);
	driver_init(t, F_V1, 0, 1);
	desc(t, 0, BUF, 16, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 0);
	notify(t, 0);
	assert_int_equal(used_idx(t), 1);
	assert_int_equal(status(t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);

	/* Without MSI-X: the ISR configuration bit and INTx. */
	msix_enable(t, false);
	driver_init(t, F_V1, VIRTIO_MSI_NO_VECTOR, VIRTIO_MSI_NO_VECTOR);
	desc(t, 0, BUF, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0); /* loop onto itself */
	publish(t, 0);
	notify(t, 0);
	assert_true(status(t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_true(t->intx);
	assert_int_equal(rd(t, t->isr, 1), VIRTIO_PCI_ISR_CONFIG);
}

static void test_pci_cfg_window(void **state)
{
	struct t *t = *state;
	uint32_t c = t->pcicfg_cap;
	cfg_w(t, c + 4, 1, VIRTIO_PCI_BAR);
	cfg_w(t, c + 8, 4, t->common + VIRTIO_PCI_COMMON_NUMQ);
	cfg_w(t, c + 12, 4, 2);
	assert_int_equal(cfg(t, c + 4, 1), VIRTIO_PCI_BAR);
	assert_int_equal(cfg(t, c + 16, 4), 1);
	assert_int_equal(cfg(t, c + 16, 2), 1);
	/* Writing status through the window. */
	cfg_w(t, c + 8, 4, t->common + VIRTIO_PCI_COMMON_STATUS);
	cfg_w(t, c + 12, 4, 1);
	cfg_w(t, c + 16, 1, VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(status(t), VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(cfg(t, c + 16, 1), VIRTIO_STATUS_ACKNOWLEDGE);
	/* Bad windows: another BAR, odd lengths, misaligned, past the BAR. */
	const struct {
		uint8_t bar;
		uint32_t off, len;
	} bad[] = {{1, 0x14, 1},
		   {0, 0x14, 3},
		   {0, 0x14, 8},
		   {0, 0x15, 2},
		   {0, VIRTIO_PCI_BAR_SIZE, 1},
		   {0, 0xfffffffc, 4},
		   {5, 0x12, 2}};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg_w(t, c + 4, 1, bad[i].bar);
		cfg_w(t, c + 8, 4, bad[i].off);
		cfg_w(t, c + 12, 4, bad[i].len);
		assert_int_equal(cfg(t, c + 16, 4), 0);
		cfg_w(t, c + 16, 4, 0);
	}
	assert_int_equal(status(t), VIRTIO_STATUS_ACKNOWLEDGE);
}

/* Every offset and width, reads then writes of junk: the VMM survives and
 * a reset brings the device back. */
static void test_hostile_registers(void **state)
{
	struct t *t = *state;
	msix_vector(t, 0, false);
	msix_vector(t, 1, false);
	msix_enable(t, true);
	driver_init(t, F_V1, 0, 1);
	static const uint32_t widths[] = {1, 2, 3, 4, 8};
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	for (uint64_t off = 0; off < VIRTIO_PCI_BAR_SIZE + 16; off++)
		for (unsigned w = 0; w < 5; w++)
			(void)rd(t, off, widths[w]);
	for (uint64_t off = 0; off < VIRTIO_PCI_BAR_SIZE + 16; off++) {
		for (unsigned w = 0; w < 5; w++) {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			/* Keep the ring addresses in RAM half the time so
			 * enables get past the first checks now and then. */
			uint64_t v = (seed & 1) ? seed % RAM : seed;
			wr(t, off, widths[w], v);
		}
	}
	/* Far outside the BAR and oversized accesses are dropped. */
	uint8_t big[16];
	memset(big, 0xff, sizeof(big));
	virtio_pci_bar_io(&t->vp, UINT64_MAX - 2, big, 4, true);
	virtio_pci_bar_io(&t->vp, 0, big, 16, false);
	assert_true(all_equal(big, 16) && big[0] == 0);
	/* Notify slots of queues that do not exist. */
	for (uint16_t q = 1; q < 300; q++)
		wr(t, t->notify + 4ull * q, 2, q);
	/* Config space too (PCI core plus the window hook). */
	for (uint32_t off = 0; off < PCI_CFG_SPACE_SIZE; off++)
		for (uint32_t len = 1; len <= 4; len <<= 1)
			(void)cfg(t, off, len);
	for (uint32_t off = PCI_CAP_START; off < PCI_CFG_HEADER_SIZE; off++)
		cfg_w(t, off, 1, 0xa5);

	/* Recovery: firmware and driver start over. */
	t->ndelivered = 0;
	firmware(t);
	msix_vector(t, 0, false);
	msix_vector(t, 1, false);
	msix_enable(t, true);
	driver_init(t, F_V1, 0, 1);
	desc(t, 0, BUF, 64, VIRTQ_DESC_F_WRITE, 0);
	publish(t, 0);
	notify(t, 0);
	assert_int_equal(used_idx(t), 1);
	assert_int_equal(used_len(t, 0), 64);
	assert_true(t->ndelivered >= 1);
}

static void test_init_errors(void **state)
{
	struct t *t = *state;
	struct virtio_pci vp;
	struct chv_err err = {0};
	assert_int_equal(virtio_pci_init(&vp, NULL, NULL, &err), -EINVAL);
	virtio_pci_destroy(&vp);
	struct virtio_pci_host h = {.nvec = 600};
	assert_int_equal(virtio_pci_init(&vp, &t->r.vdev, &h, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "nvec=600"));
	virtio_pci_destroy(&vp);
	memset(&vp, 0, sizeof(vp));
	virtio_pci_destroy(&vp);
	/* A second transport over another device, with a device config cap. */
	h.nvec = 0;
	struct virtio_rng r2;
	assert_int_equal(virtio_rng_init(&r2, &t->m, NULL, &err), 0);
	r2.vdev.config_size = 8;
	assert_int_equal(virtio_pci_init(&vp, &r2.vdev, &h, &err), 0);
	bool device_cap = false;
	for (uint8_t at = pci_find_cap(&vp.pci, PCI_CAP_ID_VNDR, 0); at;
	     at = pci_find_cap(&vp.pci, PCI_CAP_ID_VNDR, at))
		if (pci_cfg_read(&vp.pci, at + 3u, 1) == VIRTIO_PCI_CAP_DEVICE_CFG) {
			device_cap = true;
			assert_int_equal(pci_cfg_read(&vp.pci, at + 8u, 4), VIRTIO_PCI_DEVICE_OFF);
			assert_int_equal(pci_cfg_read(&vp.pci, at + 12u, 4), 8);
		}
	assert_true(device_cap);
	/* The device has no config ops: reads are 0, writes harmless. */
	uint8_t b[8];
	memset(b, 0xff, 8);
	virtio_pci_bar_io(&vp, VIRTIO_PCI_DEVICE_OFF, b, 8, false);
	assert_true(all_equal(b, 8) && b[0] == 0);
	virtio_pci_bar_io(&vp, VIRTIO_PCI_DEVICE_OFF + 4, b, 8, true);
	virtio_pci_destroy(&vp);
	assert_null(r2.vdev.transport.signal);
	virtio_rng_destroy(&r2);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_identity_and_bar),
	    T(test_rng_round_trip_msix),
	    T(test_msix_masking),
	    T(test_intx_and_isr),
	    T(test_feature_negotiation),
	    T(test_queue_setup_checks),
	    T(test_selectors_and_vectors),
	    T(test_reset_mid_operation),
	    T(test_buffers_before_driver_ok_are_served),
	    T(test_broken_chain),
	    T(test_pci_cfg_window),
	    T(test_hostile_registers),
	    T(test_init_errors),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
