/* Hostile mode against the platform (chv.hostile=ports,mmio,msix,queues,storm):
 * garbage to every I/O port and every emulated MMIO region, MSI-X abuse,
 * impossible queue layouts and interrupt storms. Each kind prints two TAP
 * lines: what the VMM did with the abuse, and that the VM still works after.
 *
 * The guest must survive its own abuse to report, so a few things are kept
 * sane, each for a stated reason (see the tables below): the registers that
 * end the VM on purpose are skipped, the LAPIC's task priority is raised to
 * 0xf0 and LINT0 masked for the whole mode (so no interrupt that a device or
 * the garbage raises is ever delivered: the IDT has only the exceptions, and
 * on the development hosts CPL3 code runs with IF set), the 8259s are set up
 * and masked again after the port sweep, and the console is set up again. */
#include "guest.h"

#define VIRTIO_ID_RNG	 4
#define NO_VECTOR	 0xffff
#define C_MSIX		 0x10
#define C_STATUS	 0x14
#define C_Q_SELECT	 0x16
#define C_Q_SIZE	 0x18
#define C_Q_MSIX	 0x1a
#define C_Q_ENABLE	 0x1c
#define C_Q_DESC	 0x20
#define C_Q_AVAIL	 0x28
#define C_Q_USED	 0x30
#define PCI_COMMAND	 0x04
#define PCI_CMD_INTX_OFF 0x400
#define PCI_CAP_MSIX	 0x11
#define MSIX_ENABLE	 0x8000
#define MSIX_FMASK	 0x4000
#define LAPIC_ID	 0x20
#define LAPIC_VER	 0x30
#define LAPIC_TPR	 0x80
#define LAPIC_IRR	 0x200
#define LAPIC_LINT0	 0x350
#define LVT_MASKED	 0x10000
#define VEC_MSI		 0x40 /* vectors the storms aim at (never delivered) */
#define VEC_INTX	 0x41
#define STORM_REQS	 4000
#define STORM_LIMIT_MS	 60000

typedef uint16_t u16u __attribute__((aligned(1)));
typedef uint32_t u32u __attribute__((aligned(1)));
typedef uint64_t u64u __attribute__((aligned(1)));

static void mw(uint64_t pa, unsigned w, uint64_t v)
{
	if (w == 1)
		*(volatile uint8_t *)(uintptr_t)pa = (uint8_t)v;
	else if (w == 2)
		*(volatile u16u *)(uintptr_t)pa = (uint16_t)v;
	else if (w == 4)
		*(volatile u32u *)(uintptr_t)pa = (uint32_t)v;
	else
		*(volatile u64u *)(uintptr_t)pa = v;
}

static uint64_t mr(uint64_t pa, unsigned w)
{
	if (w == 1)
		return *(volatile uint8_t *)(uintptr_t)pa;
	if (w == 2)
		return *(volatile u16u *)(uintptr_t)pa;
	if (w == 4)
		return *(volatile u32u *)(uintptr_t)pa;
	return *(volatile u64u *)(uintptr_t)pa;
}

static uint32_t inl_(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* The garbage: all ones, an alternating pattern, zero (zero last, so a
 * register that latches the last write, such as 0xCF8, ends disabled). */
static uint64_t garbage(unsigned i, uint64_t salt)
{
	static const uint64_t pat[2] = {0xa5a5a5a5a5a5a5a5ULL, 0x5a5a5a5a5a5a5a5aULL};
	return i == 0 ? ~0ULL : i == 1 ? pat[salt & 1] : 0;
}
#define NGARBAGE 3

struct hw {
	uint64_t tsc_per_ms, lapic, ioapic, ecam, ram_top;
	unsigned bus0, bus1;
	bool qemu; /* QEMU's q35 host bridge (8086:29c0) at 00:00.0 */
	uint32_t tpr, lint0;
};
static struct hw g_hw;

static uint32_t lapic_rd(unsigned off)
{
	return (uint32_t)mr(g_hw.lapic + off, 4);
}
static void lapic_wr(unsigned off, uint32_t v)
{
	mw(g_hw.lapic + off, 4, v);
}

static bool lapic_irr(unsigned vec)
{
	return lapic_rd(LAPIC_IRR + 0x10 * (vec / 32)) >> (vec % 32) & 1;
}

static uint32_t ioapic_rd(unsigned reg)
{
	mw(g_hw.ioapic, 4, reg);
	return (uint32_t)mr(g_hw.ioapic + 0x10, 4);
}
static void ioapic_wr(unsigned reg, uint32_t v)
{
	mw(g_hw.ioapic, 4, reg);
	mw(g_hw.ioapic + 0x10, 4, v);
}
static unsigned ioapic_pins(void)
{
	return ((ioapic_rd(1) >> 16) & 0xff) + 1;
}
/* Every redirection entry masked, vector 0: how the mode leaves the IOAPIC. */
static void ioapic_mask_all(void)
{
	for (unsigned i = 0, n = ioapic_pins(); i < n && i < 120; i++) {
		ioapic_wr(0x10 + 2 * i, LVT_MASKED);
		ioapic_wr(0x11 + 2 * i, 0);
	}
}

/* The first IOAPIC of the MADT (type 1), else the usual address. */
static uint64_t find_ioapic(void)
{
	uint64_t m = g_acpi.madt_pa;
	if (!m || !g_acpi.madt_ok)
		return 0xfec00000;
	uint32_t len = rd32(m + 4);
	for (uint32_t off = 44; off + 2 <= len;) {
		uint8_t type = rd8(m + off), l = rd8(m + off + 1);
		if (l < 2)
			break;
		if (type == 1 && l >= 12)
			return rd32(m + off + 4);
		off += l;
	}
	return 0xfec00000;
}

static bool find_ecam(void)
{
	for (unsigned i = 0; i < g_acpi.n_tables; i++)
		if (!memcmp(g_acpi.t[i].sig, "MCFG", 4) && g_acpi.t[i].len >= 60) {
			uint64_t t = g_acpi.t[i].pa;
			g_hw.ecam = rd64(t + 44);
			g_hw.bus0 = rd8(t + 54);
			g_hw.bus1 = rd8(t + 55);
			uint64_t end = g_hw.ecam + ((uint64_t)(g_hw.bus1 + 1) << 20);
			return g_hw.bus1 >= g_hw.bus0 && end <= 0x100000000ULL;
		}
	return false;
}

static uint64_t ecam_pa(unsigned b, unsigned d, unsigned f, unsigned off)
{
	return g_hw.ecam + ((uint64_t)b << 20) + (d << 15) + (f << 12) + off;
}

/* The end of the highest RAM entry (as hostile.c computes it). */
static uint64_t ram_end(void)
{
	uint64_t top = 0;
	for (unsigned i = 0; i < g_boot.n_e820; i++)
		if (g_boot.e820[i].type == 1 && g_boot.e820[i].addr + g_boot.e820[i].size > top)
			top = g_boot.e820[i].addr + g_boot.e820[i].size;
	return top;
}

void hostile_hw_init(void)
{
	memset(&g_hw, 0, sizeof(g_hw));
	g_hw.tsc_per_ms = tsc_khz(NULL);
	g_hw.lapic =
	    g_acpi.lapic_pa && pa_ok(g_acpi.lapic_pa, 0x1000) ? g_acpi.lapic_pa : 0xfee00000;
	g_hw.ioapic = find_ioapic();
	g_hw.ram_top = ram_end();
	char why[96];
	if (find_ecam() && pci_init(why, sizeof(why)))
		g_hw.qemu = rd32(ecam_pa(g_hw.bus0, 0, 0, 0)) == 0x29c08086;
	/* Nothing raised from here on is delivered: TPR 0xf0 holds back every
	 * fixed interrupt, and LINT0 (virtual-wire ExtINT, which TPR does not
	 * hold back) is masked. */
	g_hw.tpr = lapic_rd(LAPIC_TPR);
	g_hw.lint0 = lapic_rd(LAPIC_LINT0);
	lapic_wr(LAPIC_TPR, 0xf0);
	lapic_wr(LAPIC_LINT0, g_hw.lint0 | LVT_MASKED);
}

static uint64_t ms_since(uint64_t t0)
{
	return (rdtsc() - t0) / g_hw.tsc_per_ms;
}

/* ------------------------------------------------------------------ ports */

struct port_skip {
	uint32_t lo, hi; /* inclusive */
	bool qemu_only;
	uint8_t min_w; /* skipped for accesses this wide or wider (0: all) */
	const char *why;
};

/* Ports no access may touch, and why. The ACPI registers come from the FADT
 * at run time (chv: 0x600, sleep control and reset in one; QEMU q35: PM1a_CNT
 * 0x604). chv has no other port that ends the VM (no debug-exit device: 0x80
 * only logs), and QEMU gets none with -nodefaults (no isa-debug-exit). */
static const struct port_skip fixed_skips[] = {
    /* The CMOS data port: a write to the clock registers sets the clock,
     * and the check afterwards needs a sane time; wider accesses at 0x70
     * reach it too (chv: index then data). NVRAM gets its garbage below. */
    {0x71, 0x71, false, 0, "CMOS data (the clock; NVRAM done separately)"},
    /* q35's reset control register (ICH9 RST_CNT): bit 2 resets. Only a dword at
     * 0xCF8 (the PCI address latch) may cover it. */
    {0xcf9, 0xcf9, false, 0, "reset control 0xcf9"},
    /* Port 92 (QEMU): bit 0 is a fast reset, bit 1 the A20 gate. */
    {0x92, 0x92, true, 0, "port 92 (fast reset, A20)"},
    /* QEMU's fw_cfg: its DMA address register makes QEMU read a command from
     * and write data to guest RAM at the address written: garbage there
     * corrupts this guest's memory (its own doing, not a VMM failure). */
    {0x510, 0x51b, true, 0, "fw_cfg (DMA into guest RAM)"},
    /* QEMU 7.2 aborts on a 16- or 32-bit access to its 16550
     * (serial_ioport_write: assertion `size == 1 && addr < 8' failed). */
    {0x3f8, 0x3ff, true, 2, "COM1 wider than a byte: QEMU 7.2 aborts"},
};
/* The i8042 command port 0x64 needs no skip: only 0xD1 (write the output
 * port: reset, A20), 0xDD/0xDF (A20) and 0xF0-0xFE with bit 0 clear (pulse
 * reset) act on the machine, and the garbage bytes are 0xff, 0xa5, 0x5a, 0. */

#define MAX_SKIPS 12
struct port_run {
	struct port_skip s[MAX_SKIPS];
	unsigned n;
	uint64_t accesses, skipped;
};

static void add_skip(struct port_run *r, uint32_t lo, uint32_t len, const char *why)
{
	if (len && lo < 0x10000 && r->n < MAX_SKIPS)
		r->s[r->n++] = (struct port_skip){lo, lo + len - 1, false, 0, why};
}

static void acpi_skips(struct port_run *r)
{
	const struct acpi_info *a = &g_acpi;
	if (a->pm1a_cnt_port)
		add_skip(r, a->pm1a_cnt_port, 2, "PM1a control (sleep)");
	if (a->pm1b_cnt_port)
		add_skip(r, a->pm1b_cnt_port, 2, "PM1b control (sleep)");
	if (a->x_pm1a_cnt.addr && a->x_pm1a_cnt.space == 1)
		add_skip(r, (uint32_t)a->x_pm1a_cnt.addr, 2, "X_PM1a control (sleep)");
	if (a->have_sleep_ctl && a->sleep_ctl.space == 1)
		add_skip(r, (uint32_t)a->sleep_ctl.addr, 1, "sleep control");
	if (a->reset_sup && a->reset_reg.space == 1)
		add_skip(r, (uint32_t)a->reset_reg.addr, 1, "ACPI reset register");
}

static bool skipped(const struct port_run *r, uint32_t p, unsigned w)
{
	uint32_t last = p + w - 1;
	if (p == 0xcf8 && w == 4)
		return false;
	for (unsigned i = 0; i < r->n; i++)
		if (p <= r->s[i].hi && last >= r->s[i].lo)
			return true;
	for (unsigned i = 0; i < sizeof(fixed_skips) / sizeof(fixed_skips[0]); i++) {
		const struct port_skip *s = &fixed_skips[i];
		if ((!s->qemu_only || g_hw.qemu) && w >= s->min_w && p <= s->hi && last >= s->lo)
			return true;
	}
	return false;
}

/* Both 8259s initialised and masked again, as cpu_init leaves them. */
static void pic_reinit(void)
{
	static const uint8_t seq[2][5] = {{0x11, 0x20, 0x04, 0x01, 0xff},
					  {0x11, 0x28, 0x02, 0x01, 0xff}};
	for (unsigned c = 0; c < 2; c++) {
		uint16_t cmd = c ? 0xa0 : 0x20;
		outb(cmd, seq[c][0]);
		for (unsigned i = 1; i < 5; i++)
			outb((uint16_t)(cmd + 1), seq[c][i]);
	}
}

/* At CPL0 with IF clear: the garbage may unmask the 8259s. */
static void port_sweep(struct port_run *r)
{
	for (uint32_t p = 0; p < 0x10000; p++)
		for (unsigned w = 1; w <= 4; w *= 2) {
			if (p + w > 0x10000)
				continue;
			if (skipped(r, p, w)) {
				r->skipped++;
				continue;
			}
			uint16_t port = (uint16_t)p;
			for (unsigned i = 0; i < NGARBAGE; i++) {
				uint32_t v = (uint32_t)garbage(i, p);
				if (w == 1)
					outb(port, (uint8_t)v);
				else if (w == 2)
					outw(port, (uint16_t)v);
				else
					outl(port, v);
			}
			if (w == 1)
				(void)inb(port);
			else if (w == 2)
				(void)inw(port);
			else
				(void)inl_(port);
			r->accesses += NGARBAGE + 1;
		}
}

static void hostile_ports(void)
{
	static struct port_run r;
	memset(&r, 0, sizeof(r));
	acpi_skips(&r);
	for (unsigned i = 0; i < r.n; i++)
		tap_diag("hostile: ports: skipping 0x%x-0x%x (%s, from the FADT)", r.s[i].lo,
			 r.s[i].hi, r.s[i].why);
	for (unsigned i = 0; i < sizeof(fixed_skips) / sizeof(fixed_skips[0]); i++)
		if (!fixed_skips[i].qemu_only || g_hw.qemu)
			tap_diag("hostile: ports: skipping 0x%x-0x%x%s (%s)", fixed_skips[i].lo,
				 fixed_skips[i].hi,
				 fixed_skips[i].min_w ? " for 2 and 4 bytes" : "",
				 fixed_skips[i].why);
	tap_diag("hostile: ports: every port 0-0xffff, widths 1/2/4, values ~0, 0xa5../0x5a.., 0, "
		 "then a read; COM1 in loopback while its transmit register gets garbage");
	console_drain();
	/* Loopback: garbage written to THR stays inside the UART (both QEMU's
	 * and chv's 16550 loop it back), not in the log. */
	outb(0x3fc, 0x13);
	uint64_t t0 = rdtsc();
	port_sweep(&r);
	uint64_t ms = ms_since(t0);
	console_init();
	pic_reinit();
	/* Whatever the garbage left on the current line ends here. */
	kprintf("\n");
	/* CMOS NVRAM: every byte past the clock (0x0e-0x7f, not the century at
	 * 0x32 nor 0x37, QEMU's IBM PS/2 alias of it, where a write sets the
	 * clock) gets garbage and must keep it; the index port gets the NMI-mask
	 * bit too. */
	unsigned nv_bad = 0, nv_first = 0;
	for (unsigned idx = 0x0e; idx < 0x80; idx++) {
		if (idx == 0x32 || idx == 0x37)
			continue;
		uint8_t v = (uint8_t)(idx * 37 + 0x5a);
		outb(0x70, (uint8_t)(idx | 0x80));
		outb(0x71, v);
		outb(0x70, (uint8_t)idx);
		if (inb(0x71) != v && !nv_bad++)
			nv_first = idx;
	}
	tap_diag("hostile: ports: %lu accesses, %lu spans skipped, %lu ms; CMOS NVRAM: %u of 112 "
		 "bytes did not keep their value%s",
		 r.accesses, r.skipped, ms, nv_bad, nv_bad ? " (first below)" : "");
	if (nv_bad)
		tap_diag("hostile: ports: CMOS byte 0x%x did not keep its value", nv_first);
	tap_ok("hostile: ports: garbage to every I/O port");

	struct rtc_time t;
	char why[128];
	if (cmos_read_time(&t, why, sizeof(why)))
		tap_fail("hostile: ports: serial and cmos work after", "cmos: %s", why);
	else {
		tap_diag("hostile: ports: rtc %u-%02u-%02u %02u:%02u:%02u after", t.year, t.month,
			 t.day, t.hour, t.min, t.sec);
		tap_ok("hostile: ports: serial and cmos work after");
	}
}

/* ------------------------------------------------------------------- mmio */

/* A virtio function's structures, as its capabilities give them. */
struct vstruct {
	uint64_t pa;
	uint32_t len;
	uint8_t type;
};
struct vfn {
	struct pci_fn f;
	struct vstruct s[5];
	unsigned ns;
	uint64_t bar_pa[6], bar_len[6];
	int msix_cap; /* config offset, -1 when none */
	unsigned msix_n, table_bar, pba_bar;
	uint64_t table, pba; /* guest-physical */
};

static bool vfn_probe(struct vfn *v, char *why, size_t cap)
{
	v->ns = 0;
	v->msix_cap = -1;
	memset(v->bar_pa, 0, sizeof(v->bar_pa));
	unsigned at = pci_cfg_read8(&v->f, 0x34) & ~3u;
	for (int n = 0; at >= 0x40 && n < 48; n++) {
		uint8_t id = pci_cfg_read8(&v->f, at), next = pci_cfg_read8(&v->f, at + 1);
		unsigned bar = 6;
		uint32_t off = 0, len = 0;
		if (id == 0x09 && pci_cfg_read8(&v->f, at + 3) >= 1 &&
		    pci_cfg_read8(&v->f, at + 3) <= 4 && v->ns < 5) {
			bar = pci_cfg_read8(&v->f, at + 4);
			off = pci_cfg_read32(&v->f, at + 8);
			len = pci_cfg_read32(&v->f, at + 12);
		} else if (id == PCI_CAP_MSIX) {
			v->msix_cap = (int)at;
			v->msix_n = (pci_cfg_read16(&v->f, at + 2) & 0x7ff) + 1;
			v->table_bar = pci_cfg_read32(&v->f, at + 4) & 7;
			v->pba_bar = pci_cfg_read32(&v->f, at + 8) & 7;
		}
		if (bar < 6) {
			if (!v->bar_pa[bar] &&
			    !pci_bar_map(&v->f, bar, &v->bar_pa[bar], &v->bar_len[bar], why, cap))
				return false;
			if ((uint64_t)off + len > v->bar_len[bar]) {
				ksnprintf(why, cap, "a structure lies outside BAR%u", bar);
				return false;
			}
			v->s[v->ns++] = (struct vstruct){v->bar_pa[bar] + off, len,
							 pci_cfg_read8(&v->f, at + 3)};
		}
		at = next & ~3u;
	}
	if (v->msix_cap >= 0) {
		for (unsigned b = 0; b < 2; b++) {
			unsigned bar = b ? v->pba_bar : v->table_bar;
			if (bar > 5)
				return false;
			if (!v->bar_pa[bar] &&
			    !pci_bar_map(&v->f, bar, &v->bar_pa[bar], &v->bar_len[bar], why, cap))
				return false;
		}
		v->table = v->bar_pa[v->table_bar] + (pci_cfg_read32(&v->f, v->msix_cap + 4) & ~7u);
		v->pba = v->bar_pa[v->pba_bar] + (pci_cfg_read32(&v->f, v->msix_cap + 8) & ~7u);
	}
	return true;
}

struct mmio_run {
	uint64_t accesses;
	unsigned fns_absent, fns_present, fns_changed, virtio_fns, ioapic_unmasked;
	unsigned id_changed, lapic_bad;
	char why[128];
};

static void ioapic_abuse(struct mmio_run *r)
{
	unsigned n = ioapic_pins();
	uint32_t id = ioapic_rd(0);
	/* Every entry: each delivery mode (fixed … ExtINT, the reserved 011) with
	 * an illegal or garbage vector, level/active-low/remote-IRR bits set, a
	 * broadcast destination; always with the mask bit, so none of them can
	 * fire (an unmasked INIT or SMI would stop this guest, not the VMM). */
	for (unsigned i = 0; i < n && i < 120; i++)
		for (unsigned dm = 0; dm < 8; dm++) {
			static const uint8_t vec[4] = {0x00, 0x0f, 0xa5, 0xff};
			ioapic_wr(0x10 + 2 * i,
				  LVT_MASKED | 0xe000 | dm << 8 | vec[dm & 3] | (dm & 1) << 11);
			ioapic_wr(0x11 + 2 * i, 0xffffffff);
			r->accesses += 4;
			if (!(ioapic_rd(0x10 + 2 * i) & LVT_MASKED))
				r->ioapic_unmasked++;
		}
	/* Registers that do not exist, the ID and version (read-only) registers,
	 * IOREGSEL itself at every width; then the rest of the page at every
	 * offset and width except IOWIN (a write there would reach whatever
	 * IOREGSEL was left at). */
	for (unsigned reg = 0x10 + 2 * n; reg < 0x100; reg++) {
		ioapic_wr(reg, 0xa5a5a5a5);
		(void)ioapic_rd(reg);
		r->accesses += 4;
	}
	ioapic_wr(1, 0xffffffff);
	ioapic_wr(2, 0xffffffff);
	for (unsigned off = 0; off < 0x100; off++)
		for (unsigned w = 1; w <= 8; w *= 2) {
			if (off < 0x14 && off + w > 0x10)
				continue;
			mw(g_hw.ioapic + off, w, garbage(off & 1, off));
			(void)mr(g_hw.ioapic + off, w);
			r->accesses += 2;
		}
	ioapic_wr(0, id);
	ioapic_mask_all();
}

/* Read-only and reserved LAPIC registers get garbage, TPR and ESR too (then
 * TPR goes back to 0xf0); ID, LVTs, ICR, SVR and the timer are left alone:
 * those would send IPIs to this CPU, disable it or start interrupts. So is
 * offset 0: QEMU takes a write there as an MSI (its LAPIC page doubles as the
 * MSI window), and garbage data means an INIT to this CPU. */
static void lapic_abuse(struct mmio_run *r)
{
	static const uint16_t ro[] = {0x010, 0x030, 0x040, 0x050, 0x060, 0x070, 0x090, 0x0a0,
				      0x0c0, 0x100, 0x170, 0x180, 0x1f0, 0x200, 0x270, 0x280,
				      0x290, 0x2a0, 0x2b0, 0x390, 0x3a0, 0x3f0};
	uint32_t id = lapic_rd(LAPIC_ID), ver = lapic_rd(LAPIC_VER);
	for (unsigned off = 0; off < 0x400; off += 0x10) {
		(void)lapic_rd(off);
		r->accesses++;
	}
	for (unsigned i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
		for (unsigned g = 0; g < NGARBAGE; g++) {
			lapic_wr(ro[i], (uint32_t)garbage(g, i));
			r->accesses++;
		}
	for (unsigned g = 0; g < NGARBAGE; g++)
		lapic_wr(LAPIC_TPR, (uint32_t)garbage(g, 0));
	lapic_wr(LAPIC_TPR, 0xf0);
	if (lapic_rd(LAPIC_ID) != id || lapic_rd(LAPIC_VER) != ver ||
	    (lapic_rd(LAPIC_TPR) & 0xff) != 0xf0)
		r->lapic_bad++;
}

/* Every bus, device and function of the ECAM window. Absent functions get
 * garbage at a handful of offsets and widths (8-byte and unaligned included)
 * and must stay absent; present ones only in their read-only ID and class
 * registers, the write-one-to-clear status and an empty extended space, and
 * must keep IDs, BARs and command (garbage elsewhere would move BARs or,
 * on q35, the ECAM window and the chipset's own ports). */
static void ecam_abuse(struct mmio_run *r)
{
	static const struct {
		uint16_t off;
		uint8_t w;
	} absent[] = {{0x00, 4}, {0x04, 2}, {0x10, 4}, {0x18, 8}, {0x3c, 1}, {0xff, 2}, {0xffc, 4}};
	for (unsigned b = g_hw.bus0; b <= g_hw.bus1; b++)
		for (unsigned d = 0; d < 32; d++)
			for (unsigned f = 0; f < 8; f++) {
				uint64_t base = ecam_pa(b, d, f, 0);
				uint32_t id = (uint32_t)mr(base, 4);
				r->accesses++;
				if ((id & 0xffff) == 0xffff) {
					r->fns_absent++;
					for (unsigned i = 0; i < sizeof(absent) / sizeof(absent[0]);
					     i++) {
						mw(base + absent[i].off, absent[i].w,
						   garbage((d + f) % 2, b));
						(void)mr(base + absent[i].off, absent[i].w);
					}
					r->accesses += 2 * sizeof(absent) / sizeof(absent[0]);
					if ((mr(base, 4) & 0xffff) != 0xffff)
						r->fns_changed++;
					continue;
				}
				r->fns_present++;
				uint32_t keep[10];
				for (unsigned i = 0; i < 10; i++)
					keep[i] = (uint32_t)mr(base + 4 * i, 4);
				for (unsigned g = 0; g < NGARBAGE; g++) {
					mw(base + 0x00, 4, garbage(g, d));
					mw(base + 0x08, 4, garbage(g, d));
					mw(base + 0x0a, 2, garbage(g, d));
					mw(base + 0x06, 2, garbage(g, d));
				}
				r->accesses += 4 * NGARBAGE;
				uint32_t ext = (uint32_t)mr(base + 0x100, 4);
				if (!ext || ext == 0xffffffff)
					for (unsigned off = 0x100; off < 0x1000; off += 4) {
						mw(base + off, 4, garbage(off / 4 % NGARBAGE, off));
						r->accesses++;
					}
				/* status (0x06) may lose error bits: compare without it */
				keep[1] &= 0xffff;
				uint32_t now1 = (uint32_t)mr(base + 4, 4) & 0xffff;
				bool same = now1 == keep[1];
				for (unsigned i = 0; i < 10; i++)
					if (i != 1 && (uint32_t)mr(base + 4 * i, 4) != keep[i])
						same = false;
				if (!same && !r->id_changed++)
					ksnprintf(r->why, sizeof(r->why),
						  "%02x:%02x.%x changed its IDs, command or BARs",
						  b, d, f);
			}
}

static uint16_t virtio_ids[] = {0x1041, 0x1042, 0x1043, 0x1044, 0x1000, 0x1001, 0x1003, 0x1005};

/* Every offset of every structure at widths 1, 2, 4 and 8 (unaligned
 * included), three values each and a read; then the rest of the BAR outside
 * the structures and the MSI-X table, as dwords. The device is reset first
 * and after. */
static void virtio_abuse(struct mmio_run *r, struct vfn *v)
{
	uint64_t common = 0;
	for (unsigned i = 0; i < v->ns; i++)
		if (v->s[i].type == 1)
			common = v->s[i].pa;
	if (common)
		mw(common + C_STATUS, 1, 0);
	for (unsigned i = 0; i < v->ns; i++) {
		uint32_t len = v->s[i].len < 0x1000 ? v->s[i].len : 0x1000;
		for (uint32_t off = 0; off < len; off++)
			for (unsigned w = 1; w <= 8 && off + w <= len; w *= 2) {
				for (unsigned g = 0; g < NGARBAGE; g++)
					mw(v->s[i].pa + off, w, garbage(g, off));
				(void)mr(v->s[i].pa + off, w);
				r->accesses += NGARBAGE + 1;
			}
	}
	for (unsigned bar = 0; bar < 6; bar++) {
		if (!v->bar_pa[bar])
			continue;
		for (uint64_t off = 0; off < v->bar_len[bar] && off < 0x10000; off += 4) {
			uint64_t a = v->bar_pa[bar] + off;
			bool inside = false;
			for (unsigned i = 0; i < v->ns; i++)
				inside |= a >= v->s[i].pa && a < v->s[i].pa + v->s[i].len;
			if (v->msix_cap >= 0)
				inside |= (a >= v->table && a < v->table + 16 * v->msix_n) ||
					  (a >= v->pba && a < v->pba + 8 * ((v->msix_n + 63) / 64));
			if (inside)
				continue;
			mw(a, 4, garbage(off / 4 % 2, off));
			(void)mr(a, 4);
			r->accesses += 2;
		}
	}
	if (common) {
		mw(common + C_STATUS, 1, 0);
		for (int i = 0; i < 1000 && mr(common + C_STATUS, 1); i++)
			;
	}
}

/* Holes in the 32-bit MMIO window and the addresses just above RAM: every
 * 16 MiB from the end of RAM to the IOAPIC, not in the ECAM window or any BAR
 * of the first bus; and accesses that straddle the end of RAM. */
static bool in_bar(uint64_t a)
{
	for (unsigned d = 0; d < 32; d++)
		for (unsigned f = 0; f < 8; f++) {
			uint64_t base = ecam_pa(g_hw.bus0, d, f, 0);
			if ((mr(base, 4) & 0xffff) == 0xffff)
				continue;
			for (unsigned b = 0; b < 6; b++) {
				uint32_t v = (uint32_t)mr(base + 0x10 + 4 * b, 4);
				if (v & 1 || !(v & ~0xfu))
					continue;
				uint64_t s = v & ~0xfu;
				/* sizes are not known here: take a generous 16 MiB */
				if (a >= s && a < s + 0x1000000)
					return true;
			}
		}
	return false;
}

static void hole_abuse(struct mmio_run *r)
{
	uint64_t top = g_hw.ram_top;
	if (!top) {
		tap_diag("hostile: mmio: no memory map: the holes above RAM are not probed");
		return;
	}
	if (top >= 0x10 && top < 0xc0000000) {
		/* qword and dword half in RAM: the part in RAM may take it;
		 * what matters is that nothing breaks. Then just above RAM. */
		(void)mr(top - 4, 8);
		(void)mr(top - 2, 4);
		for (unsigned w = 1; w <= 8; w *= 2) {
			mw(top + 0x10, w, garbage(0, 0));
			(void)mr(top + 0x10, w);
			mw(top + 0x1001 - w / 2, w, garbage(1, 0));
			(void)mr(top + 0x1001 - w / 2, w);
		}
		r->accesses += 18;
	}
	uint64_t start = (top + 0xffffff) & ~0xffffffULL;
	for (uint64_t a = start; a < g_hw.ioapic && a < 0xfe000000; a += 0x1000000) {
		if (a >= g_hw.ecam && a < g_hw.ecam + ((uint64_t)(g_hw.bus1 + 1) << 20))
			continue;
		if (in_bar(a))
			continue;
		for (unsigned w = 1; w <= 8; w *= 2) {
			mw(a + 0x800 + w - 1, w, garbage(w & 1, a));
			(void)mr(a + 0x800 + w - 1, w);
		}
		r->accesses += 8;
	}
}

static bool rng_works(char *why, size_t cap);

static void hostile_mmio(void)
{
	static struct mmio_run r;
	static struct vfn v;
	memset(&r, 0, sizeof(r));
	char why[128];
	if (!g_hw.ecam) {
		tap_fail("hostile: mmio: garbage to every emulated region", "no MCFG table");
		tap_fail("hostile: mmio: the VM works after", "not run");
		return;
	}
	uint64_t t0 = rdtsc();
	ioapic_abuse(&r);
	uint64_t t_ioapic = ms_since(t0);
	lapic_abuse(&r);
	ecam_abuse(&r);
	uint64_t t_ecam = ms_since(t0);
	bool probe_ok = true;
	for (unsigned d = 0; d < 32; d++) {
		v.f = (struct pci_fn){(uint8_t)g_hw.bus0, (uint8_t)d, 0, 0, 0};
		uint32_t id = pci_cfg_read32(&v.f, 0);
		bool virtio = (id & 0xffff) == VIRTIO_VENDOR;
		bool known = false;
		for (unsigned i = 0; i < sizeof(virtio_ids) / sizeof(virtio_ids[0]); i++)
			known |= id >> 16 == virtio_ids[i];
		if (!virtio || !known)
			continue;
		v.f.vendor = (uint16_t)id;
		v.f.device = (uint16_t)(id >> 16);
		if (!vfn_probe(&v, why, sizeof(why))) {
			tap_diag("hostile: mmio: %02x:%02x.0: %s", v.f.bus, d, why);
			probe_ok = false;
			continue;
		}
		r.virtio_fns++;
		virtio_abuse(&r, &v);
	}
	uint64_t t_virtio = ms_since(t0);
	hole_abuse(&r);
	tap_diag("hostile: mmio: IOAPIC at 0x%lx (%u pins), LAPIC at 0x%lx, ECAM at 0x%lx buses "
		 "%u-%u: %u functions absent, %u present; %u virtio function(s)",
		 g_hw.ioapic, ioapic_pins(), g_hw.lapic, g_hw.ecam, g_hw.bus0, g_hw.bus1,
		 r.fns_absent, r.fns_present, r.virtio_fns);
	tap_diag("hostile: mmio: %lu accesses in %lu ms (IOAPIC %lu, ECAM %lu, virtio %lu)",
		 r.accesses, ms_since(t0), t_ioapic, t_ecam - t_ioapic, t_virtio - t_ecam);
	if (r.ioapic_unmasked)
		tap_fail("hostile: mmio: garbage to every emulated region",
			 "%u IOAPIC entries lost their mask bit", r.ioapic_unmasked);
	else if (r.fns_changed)
		tap_fail("hostile: mmio: garbage to every emulated region",
			 "%u absent function(s) appeared after garbage", r.fns_changed);
	else if (r.id_changed)
		tap_fail("hostile: mmio: garbage to every emulated region", "%s", r.why);
	else if (r.lapic_bad)
		tap_fail("hostile: mmio: garbage to every emulated region",
			 "the LAPIC's ID, version or TPR changed");
	else if (!probe_ok)
		tap_fail("hostile: mmio: garbage to every emulated region",
			 "a virtio function could not be mapped");
	else
		tap_ok("hostile: mmio: garbage to every emulated region");

	struct rtc_time t;
	bool have_rng = false;
	for (unsigned i = 0; i < 2; i++) {
		const uint16_t ids[2] = {0x1044, 0x1005};
		struct pci_fn f;
		have_rng |= pci_find(VIRTIO_VENDOR, &ids[i], 1, &f);
	}
	if (cmos_read_time(&t, why, sizeof(why)))
		tap_fail("hostile: mmio: the VM works after", "cmos: %s", why);
	else if (have_rng && !rng_works(why, sizeof(why)))
		tap_fail("hostile: mmio: the VM works after", "virtio-rng: %s", why);
	else
		tap_ok(have_rng ? "hostile: mmio: the VM works after (cmos, virtio-rng)"
				: "hostile: mmio: the VM works after (cmos)");
}

/* ---------------------------------------------------------------- rng use */

static uint8_t rng_ring[4096] __attribute__((aligned(4096)));
static uint8_t rng_data[16][4096] __attribute__((aligned(4096)));

struct rng {
	struct virtio_dev v;
	struct virtq vq;
	struct vfn f;
};
static struct rng g_rng;

static bool rng_up(char *why, size_t cap)
{
	memset(rng_ring, 0, sizeof(rng_ring));
	if (!virtio_open(VIRTIO_ID_RNG, &g_rng.v, why, cap) ||
	    !virtio_negotiate(&g_rng.v, 0, why, cap) ||
	    !virtio_queue_setup(&g_rng.v, 0, &g_rng.vq, (uint64_t)(uintptr_t)rng_ring, why, cap))
		return false;
	virtio_driver_ok(&g_rng.v);
	return true;
}

struct rng_req {
	struct virtq *vq;
	uint64_t tsc_per_ms;
	unsigned n, len, depth; /* requests, bytes each, kept in flight */
	unsigned done;
	bool timeout, bad_len, all_same;
};

/* n requests of len bytes, up to depth in flight (descriptor i, buffer i),
 * each kicked on its own. At CPL3. */
static uint64_t rng_user(void *arg)
{
	struct rng_req *q = arg;
	struct virtq *vq = q->vq;
	unsigned sent = 0, inflight = 0;
	uint64_t end = rdtsc() + STORM_LIMIT_MS * q->tsc_per_ms;
	if (q->depth > vq->size)
		q->depth = vq->size;
	while (q->done < q->n) {
		while (sent < q->n && inflight < q->depth) {
			uint16_t d = (uint16_t)(sent % q->depth);
			vq->desc[d].addr = (uint64_t)(uintptr_t)rng_data[d];
			vq->desc[d].len = q->len;
			vq->desc[d].flags = VIRTQ_DESC_F_WRITE;
			vq->desc[d].next = 0;
			virtq_publish(vq, d);
			virtq_kick(vq);
			sent++;
			inflight++;
		}
		uint32_t id, len;
		if (virtq_used_pop(vq, &id, &len)) {
			if (len != q->len || id >= q->depth)
				q->bad_len = true;
			inflight--;
			q->done++;
			continue;
		}
		if ((int64_t)(rdtsc() - end) > 0) {
			q->timeout = true;
			return 1;
		}
		__asm__ volatile("pause");
	}
	if (q->len >= 64) {
		q->all_same = true;
		for (unsigned i = 1; i < q->len; i++)
			if (rng_data[0][i] != rng_data[0][0])
				q->all_same = false;
	}
	return 0;
}

static bool rng_run(unsigned n, unsigned len, unsigned depth, struct rng_req *q)
{
	memset(q, 0, sizeof(*q));
	*q = (struct rng_req){&g_rng.vq, g_hw.tsc_per_ms, n, len, depth, 0, false, false, false};
	user_call(rng_user, q);
	return !q->timeout && !q->bad_len && !q->all_same &&
	       !(virtio_status(&g_rng.v) & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED));
}

/* A fresh device and one 4 KiB request that comes back full and not flat. */
static bool rng_works(char *why, size_t cap)
{
	struct rng_req q;
	if (!rng_up(why, cap))
		return false;
	bool ok = rng_run(1, 4096, 1, &q);
	if (!ok)
		ksnprintf(why, cap, "a 4 KiB request: %s (device status 0x%x)",
			  q.timeout    ? "no answer"
			  : q.bad_len  ? "wrong length or id"
			  : q.all_same ? "all bytes equal"
				       : "device broken",
			  virtio_status(&g_rng.v));
	virtio_reset(&g_rng.v);
	return ok;
}

static void msix_ctl(uint16_t set, uint16_t clear)
{
	unsigned at = (unsigned)g_rng.f.msix_cap;
	uint32_t d = pci_cfg_read32(&g_rng.f.f, at);
	uint32_t ctl = ((d >> 16) | set) & ~(uint32_t)clear;
	pci_cfg_write32(&g_rng.f.f, at, (d & 0xffff) | ctl << 16);
}

static void msix_entry(unsigned i, uint64_t addr, uint32_t data, bool masked)
{
	uint64_t e = g_rng.f.table + 16 * i;
	mw(e + 12, 4, 1); /* masked while it changes */
	mw(e, 4, (uint32_t)addr);
	mw(e + 4, 4, (uint32_t)(addr >> 32));
	mw(e + 8, 4, data);
	mw(e + 12, 4, masked);
}

/* The rng function with its MSI-X capability and table mapped. */
static bool rng_msix_open(char *why, size_t cap)
{
	if (!rng_up(why, cap))
		return false;
	g_rng.f.f = g_rng.v.pci;
	if (!vfn_probe(&g_rng.f, why, cap))
		return false;
	if (g_rng.f.msix_cap < 0) {
		ksnprintf(why, cap, "the virtio-rng function has no MSI-X capability");
		return false;
	}
	return true;
}

static uint16_t common16(unsigned off)
{
	return (uint16_t)mr(g_rng.v.common + off, 2);
}

/* ------------------------------------------------------------------- msix */

static void hostile_msix(void)
{
	char why[160];
	const char *l1 = "hostile: msix: garbage refused where it must be";
	const char *l2 = "hostile: msix: device works after";
	if (!rng_msix_open(why, sizeof(why))) {
		tap_fail(l1, "%s", why);
		tap_fail(l2, "not run");
		return;
	}
	struct vfn *f = &g_rng.f;
	unsigned n = f->msix_n, bad = 0;
	char first[120] = "";
	tap_diag("hostile: msix: virtio-rng %02x:%02x.%x, %u vectors, table BAR%u at 0x%lx, PBA "
		 "BAR%u at 0x%lx",
		 f->f.bus, f->f.dev, f->f.fn, n, f->table_bar, f->table, f->pba_bar, f->pba);
	/* 1. Out-of-range vectors must read back NO_VECTOR. */
	static const uint16_t wild[] = {0, 0x7ff, 0x1234, 0xfffe};
	for (unsigned i = 0; i < sizeof(wild) / sizeof(wild[0]); i++) {
		uint16_t vec = i ? wild[i] : (uint16_t)n;
		mw(g_rng.v.common + C_Q_SELECT, 2, 0);
		mw(g_rng.v.common + C_Q_MSIX, 2, vec);
		mw(g_rng.v.common + C_MSIX, 2, vec);
		uint16_t q = common16(C_Q_MSIX), c = common16(C_MSIX);
		tap_diag("hostile: msix: vector %u (of %u): queue reads 0x%x, config reads 0x%x",
			 vec, n, q, c);
		if ((q != NO_VECTOR || c != NO_VECTOR) && !bad++)
			ksnprintf(first, sizeof(first),
				  "vector %u of %u: reads back 0x%x/0x%x, not 0xffff", vec, n, q,
				  c);
	}
	/* 2. The PBA is read-only: all ones written, bits past the table stay 0. */
	uint64_t pba0 = mr(f->pba, 8);
	mw(f->pba, 8, ~0ULL);
	mw(f->pba + 3, 1, 0xff);
	uint64_t pba1 = mr(f->pba, 8);
	uint64_t beyond = n >= 64 ? 0 : ~0ULL << n;
	tap_diag("hostile: msix: PBA 0x%lx before, 0x%lx after writing all ones", pba0, pba1);
	if ((pba1 & beyond) && !bad++)
		ksnprintf(first, sizeof(first), "the PBA took a write: 0x%lx", pba1);
	/* 3. Garbage entries: outside 0xFEExxxxx (QEMU turns those into memory
	 * writes, so they point at no RAM), reserved bits, above the physical
	 * address bits, and at the function's own common configuration (the
	 * device DMAing into itself). The data keeps delivery mode fixed (000):
	 * an INIT, SMI or NMI the VMM forwarded would stop this guest. */
	const uint64_t addrs[] = {0xfef00000,
				  0xfee00ff8 | 0xff000, /* reserved bits, RH, DM, broadcast */
				  0xa5a5a5a5a5a5a000ULL,
				  g_rng.v.common + 0x00,
				  0xd0000000,
				  0};
	const uint32_t datas[] = {0xa5a500a5, 0xffff80ff, 0x0000c00f, 0x00000000, 0x12340031, 0};
	unsigned na = sizeof(addrs) / sizeof(addrs[0]);
	for (unsigned i = 0; i < n; i++) {
		msix_entry(i, addrs[i % na], datas[i % na], false);
		uint64_t e = f->table + 16 * i;
		if ((mr(e, 4) != (uint32_t)addrs[i % na] || mr(e + 8, 4) != datas[i % na]) &&
		    !bad++)
			ksnprintf(first, sizeof(first),
				  "table entry %u does not keep what was written", i);
	}
	/* 4. Mask and unmask rapidly, entry and function mask. */
	uint64_t t0 = rdtsc();
	for (unsigned k = 0; k < 2000; k++) {
		uint64_t e = f->table + 16 * (k % n);
		mw(e + 12, 4, k & 1);
		if (k % 100 == 0)
			msix_ctl(k & 100 ? MSIX_FMASK : 0, k & 100 ? 0 : MSIX_FMASK);
	}
	tap_diag("hostile: msix: 2000 mask toggles in %lu ms", ms_since(t0));
	/* 5. MSI-X on with the table never programmed (all zero: pointing
	 * nowhere) and a request; then with the garbage entries. */
	struct rng_req q;
	unsigned answered = 0;
	for (unsigned i = 0; i < n; i++)
		msix_entry(i, 0, 0, false);
	msix_ctl(MSIX_ENABLE, MSIX_FMASK);
	mw(g_rng.v.common + C_Q_SELECT, 2, 0);
	mw(g_rng.v.common + C_Q_MSIX, 2, 0);
	mw(g_rng.v.common + C_MSIX, 2, n > 1 ? 1 : 0);
	bool ok_zero = rng_run(8, 256, 4, &q);
	answered += q.done;
	/* the table's BAR moved away (where it is not also the notify BAR) */
	if (f->table_bar != g_rng.v.bar) {
		unsigned off = 0x10 + 4 * f->table_bar;
		uint32_t keep = pci_cfg_read32(&f->f, off);
		pci_cfg_write32(&f->f, off, 0);
		ok_zero &= rng_run(8, 256, 4, &q);
		answered += q.done;
		pci_cfg_write32(&f->f, off, keep);
		tap_diag("hostile: msix: table BAR%u cleared to 0 for 8 requests", f->table_bar);
	}
	for (unsigned i = 0; i < n; i++)
		msix_entry(i, addrs[i % na], datas[i % na], false);
	bool ok_garbage = rng_run(64, 256, 8, &q);
	answered += q.done;
	tap_diag("hostile: msix: %u requests answered with MSI-X on (zero table %s, garbage table "
		 "%s), device status 0x%x",
		 answered, ok_zero ? "ok" : "FAILED", ok_garbage ? "ok" : "FAILED",
		 virtio_status(&g_rng.v));
	for (unsigned i = 0; i < n; i++)
		msix_entry(i, 0, 0, true);
	msix_ctl(0, MSIX_ENABLE | MSIX_FMASK);
	virtio_reset(&g_rng.v);
	if (bad)
		tap_fail(l1, "%u problem(s), first: %s", bad, first);
	else
		tap_ok(l1);
	if (!ok_zero || !ok_garbage)
		tap_fail(l2, "requests with MSI-X on: %s",
			 ok_zero ? "garbage table" : "zero table");
	else if (!rng_works(why, sizeof(why)))
		tap_fail(l2, "%s", why);
	else
		tap_ok(l2);
}

/* ----------------------------------------------------------------- queues */

struct qcase {
	const char *what;
	uint16_t size; /* 0xffff: the device's maximum; 0xfffe: twice it */
	uint64_t desc, avail, used;
};

static void hostile_queues(void)
{
	char why[160];
	const char *l1 = "hostile: queues: bad layouts";
	if (!rng_up(why, sizeof(why))) {
		tap_fail(l1, "%s", why);
		tap_fail("hostile: queues: device works after", "not run");
		return;
	}
	uint64_t ring = (uint64_t)(uintptr_t)rng_ring, top = g_hw.ram_top;
	if (!top) {
		/* No memory map (a bzImage under QEMU): RAM surely ends below the
		 * 32-bit hole. */
		top = 0xc0000000;
		tap_diag("hostile: queues: no memory map, taking 0x%lx as the end of RAM", top);
	}
	const uint64_t hole = 0xd0000000, high = 0x0000800000000000ULL;
	const uint64_t beyond = 0xfff0000000000000ULL;
	const struct qcase cases[] = {
	    {"size 0", 0, ring, ring + 0x100, ring + 0x200},
	    {"size 3 (not a power of two)", 3, ring, ring + 0x100, ring + 0x200},
	    {"size above the maximum", 0xfffe, ring, ring + 0x100, ring + 0x200},
	    {"size 0xffff", 0xfffd, ring, ring + 0x100, ring + 0x200},
	    {"descriptors beyond RAM", 16, top, ring + 0x100, ring + 0x200},
	    {"used ring straddling the end of RAM", 16, ring, ring + 0x100, top - 0x40},
	    {"descriptors unaligned (8)", 16, ring + 8, ring + 0x100, ring + 0x200},
	    {"available ring unaligned (odd)", 16, ring, ring + 0x101, ring + 0x200},
	    {"used ring unaligned (2)", 16, ring, ring + 0x100, ring + 0x202},
	    {"rings in the MMIO hole", 16, hole, hole + 0x100, hole + 0x200},
	    {"used ring on the IOAPIC", 16, ring, ring + 0x100, 0xfec00000},
	    {"rings above the physical address bits", 16, high, high + 0x100, high + 0x200},
	    {"rings at 0xfff0000000000000", 16, beyond, beyond + 0x100, beyond + 0x200},
	};
	unsigned ncases = sizeof(cases) / sizeof(cases[0]), refused = 0, dead = 0;
	uint16_t max = 0;
	for (unsigned i = 0; i < ncases; i++) {
		const struct qcase *c = &cases[i];
		/* fresh device, features accepted, queue 0 laid out badly */
		if (!virtio_open(VIRTIO_ID_RNG, &g_rng.v, why, sizeof(why)) ||
		    !virtio_negotiate(&g_rng.v, 0, why, sizeof(why))) {
			dead++;
			tap_diag("hostile: queues: %2u %s: set-up failed: %s", i + 1, c->what, why);
			continue;
		}
		uint64_t cm = g_rng.v.common;
		mw(cm + C_Q_SELECT, 2, 0);
		if (!max)
			max = common16(C_Q_SIZE);
		uint16_t size = c->size == 0xfffe   ? (uint16_t)(2 * max)
				: c->size == 0xfffd ? 0xffff
						    : c->size;
		memset(rng_ring, 0, sizeof(rng_ring));
		mw(cm + C_Q_SIZE, 2, size);
		mw(cm + C_Q_MSIX, 2, NO_VECTOR);
		mw(cm + C_Q_DESC, 4, (uint32_t)c->desc);
		mw(cm + C_Q_DESC + 4, 4, (uint32_t)(c->desc >> 32));
		mw(cm + C_Q_AVAIL, 4, (uint32_t)c->avail);
		mw(cm + C_Q_AVAIL + 4, 4, (uint32_t)(c->avail >> 32));
		mw(cm + C_Q_USED, 4, (uint32_t)c->used);
		mw(cm + C_Q_USED + 4, 4, (uint32_t)(c->used >> 32));
		mw(cm + C_Q_ENABLE, 2, 1);
		uint16_t en = common16(C_Q_ENABLE), sz = common16(C_Q_SIZE);
		uint8_t st1 = virtio_status(&g_rng.v);
		virtio_driver_ok(&g_rng.v);
		/* a kick on the queue as laid out (and an entry in our page, for
		 * the cases whose available ring is there) */
		uint16_t noff = common16(0x1e);
		((volatile uint16_t *)(uintptr_t)(ring + 0x100))[1] = 1;
		mw(g_rng.v.notify_base + (uint64_t)noff * g_rng.v.notify_mul, 2, 0);
		uint64_t t0 = rdtsc();
		while (ms_since(t0) < 50 && !(virtio_status(&g_rng.v) & VIRTIO_STATUS_NEEDS_RESET))
			;
		uint8_t st2 = virtio_status(&g_rng.v);
		bool ref = !en || (st1 | st2) & VIRTIO_STATUS_NEEDS_RESET;
		refused += ref;
		tap_diag("hostile: queues: %2u %s: size %u reads %u, enable reads %u, status 0x%x, "
			 "after the kick 0x%x: %s",
			 i + 1, c->what, size, sz, en, st1, st2,
			 !en	      ? "enable refused"
			 : st1 & 0x40 ? "needs reset at enable"
			 : st2 & 0x40 ? "needs reset at the kick"
				      : "ACCEPTED");
		virtio_reset(&g_rng.v);
		if (virtio_status(&g_rng.v))
			dead++;
	}
	char name[96];
	ksnprintf(name, sizeof(name), "hostile: queues: %u of %u bad layouts refused", refused,
		  ncases);
	if (dead)
		tap_fail(name, "%u case(s) left the device without a working reset", dead);
	else
		tap_ok(name);
	if (!rng_works(why, sizeof(why)))
		tap_fail("hostile: queues: device works after", "%s", why);
	else
		tap_ok("hostile: queues: device works after");
}

/* ------------------------------------------------------------------ storm */

static void hostile_storm(void)
{
	char why[160];
	const char *l1 = "hostile: storm: interrupts nobody takes";
	const char *l2 = "hostile: storm: VM responsive after";
	if (!rng_msix_open(why, sizeof(why))) {
		tap_fail(l1, "%s", why);
		tap_fail(l2, "not run");
		return;
	}
	struct rng_req q;
	uint32_t apic_id = lapic_rd(LAPIC_ID) >> 24;
	/* 1. MSI-X: every vector valid (fixed, edge, this CPU), never taken
	 * (TPR 0xf0); many small requests, each kicked. */
	for (unsigned i = 0; i < g_rng.f.msix_n; i++)
		msix_entry(i, 0xfee00000 | apic_id << 12, VEC_MSI, false);
	msix_ctl(MSIX_ENABLE, MSIX_FMASK);
	mw(g_rng.v.common + C_Q_SELECT, 2, 0);
	mw(g_rng.v.common + C_Q_MSIX, 2, 0);
	uint64_t t0 = rdtsc();
	bool ok_msi = rng_run(STORM_REQS, 16, 16, &q);
	unsigned msi_done = q.done;
	uint64_t ms_msi = ms_since(t0);
	bool irr_msi = lapic_irr(VEC_MSI);
	msix_ctl(0, MSIX_ENABLE);
	virtio_reset(&g_rng.v);

	/* 2. INTx: MSI-X off, INTx on, every IOAPIC pin unmasked level-triggered
	 * to this CPU (whichever the device's line reaches), first active high,
	 * then active low; the ISR is never read and no EOI is ever sent, so the
	 * line stays asserted. */
	bool ok_intx = true;
	unsigned intx_done = 0;
	uint64_t ms_intx = 0;
	bool irr_intx = false;
	for (unsigned pol = 0; pol < 2; pol++) {
		if (!rng_up(why, sizeof(why))) {
			ok_intx = false;
			break;
		}
		uint32_t cmd = pci_cfg_read32(&g_rng.f.f, PCI_COMMAND);
		pci_cfg_write32(&g_rng.f.f, PCI_COMMAND, (cmd & 0xffff) & ~PCI_CMD_INTX_OFF);
		for (unsigned i = 0, n = ioapic_pins(); i < n && i < 120; i++) {
			ioapic_wr(0x11 + 2 * i, apic_id << 24);
			ioapic_wr(0x10 + 2 * i, VEC_INTX | 1u << 15 | pol << 13);
		}
		t0 = rdtsc();
		ok_intx &= rng_run(STORM_REQS / 2, 16, 16, &q);
		ms_intx += ms_since(t0);
		intx_done += q.done;
		irr_intx |= lapic_irr(VEC_INTX);
		ioapic_mask_all();
		(void)mr(g_rng.v.isr, 1); /* lowers the line */
		virtio_reset(&g_rng.v);
	}
	tap_diag("hostile: storm: MSI-X: %u of %u requests in %lu ms (vector 0x%x %s pending in "
		 "the LAPIC)",
		 msi_done, STORM_REQS, ms_msi, VEC_MSI, irr_msi ? "is" : "NOT");
	tap_diag("hostile: storm: INTx: %u of %u requests in %lu ms (vector 0x%x %s pending in "
		 "the LAPIC)",
		 intx_done, STORM_REQS, ms_intx, VEC_INTX, irr_intx ? "is" : "NOT");
	if (!ok_msi || !ok_intx)
		tap_fail(l1, "%s storm: requests did not complete within %u ms each phase",
			 ok_msi ? "INTx" : "MSI-X", STORM_LIMIT_MS);
	else
		tap_ok(l1);
	struct rtc_time t;
	t0 = rdtsc();
	bool cmos_ok = !cmos_read_time(&t, why, sizeof(why));
	bool rng_ok = cmos_ok && rng_works(why, sizeof(why));
	tap_diag("hostile: storm: cmos and a 4 KiB rng request after the storm: %lu ms",
		 ms_since(t0));
	if (!rng_ok)
		tap_fail(l2, "%s", why);
	else
		tap_ok(l2);
}

void hostile_hw_run(unsigned kind)
{
	switch (kind) {
	case HOSTILE_PORTS:
		hostile_ports();
		break;
	case HOSTILE_MMIO:
		hostile_mmio();
		break;
	case HOSTILE_MSIX:
		hostile_msix();
		break;
	case HOSTILE_QUEUES:
		hostile_queues();
		break;
	case HOSTILE_STORM:
		hostile_storm();
		break;
	}
}
