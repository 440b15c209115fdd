/* PCI for the checks and the drivers: ECAM from the MCFG table, the root
 * bridge's 32-bit window from the DSDT, one allocator for BARs placed as
 * firmware would (memory in that window, I/O from 0xc000); and the pci
 * check, a walk of the first bus with BAR sizing and placement. A walk is
 * 256 config reads at most: cheap enough at CPL0. */
#include "guest.h"

#define MCFG_MIN_LEN	   60
#define PCI_VENDOR	   0x00
#define PCI_COMMAND	   0x04
#define PCI_CLASS_REV	   0x08
#define PCI_HEADER	   0x0e
#define PCI_BAR0	   0x10
#define PCI_CMD_IO	   0x1
#define PCI_CMD_MEM	   0x2
#define PCI_CMD_MASTER	   0x4
#define IO_WINDOW_START	   0xc000
#define IO_WINDOW_END	   0x10000
#define ADDR_DESC_DWORD	   0x87
#define ADDR_DESC_DWORD_SZ 0x17

static uint64_t ecam;
static unsigned ecam_bus, ecam_seg, ecam_bus_end;
static bool bus_ready;
static char bus_why[96];

static volatile uint32_t *cfg_ptr(unsigned bus, unsigned dev, unsigned fn, unsigned off)
{
	return (volatile uint32_t *)(uintptr_t)(ecam + ((uint64_t)bus << 20) + (dev << 15) +
						(fn << 12) + (off & ~3u));
}

static uint32_t cfg_rd(unsigned b, unsigned d, unsigned f, unsigned off)
{
	return *cfg_ptr(b, d, f, off);
}

static void cfg_wr(unsigned b, unsigned d, unsigned f, unsigned off, uint32_t v)
{
	*cfg_ptr(b, d, f, off) = v;
}

struct mem_window {
	uint64_t base, size;
};

struct dsdt_scan {
	uint64_t pa;
	uint32_t len;
	struct mem_window best;
};

/* The largest producer DWordMemory descriptor in the DSDT whose fields
 * agree with each other: the root bridge's 32-bit window (QEMU's q35 also
 * has the small VGA one, and the motherboard's are fixed descriptors). */
static uint64_t dsdt_scan_user(void *arg)
{
	struct dsdt_scan *s = arg;
	const uint8_t *p = (const uint8_t *)(uintptr_t)s->pa;

	for (uint32_t i = 36; i + 3 + ADDR_DESC_DWORD_SZ <= s->len; i++) {
		if (p[i] != ADDR_DESC_DWORD || p[i + 1] != ADDR_DESC_DWORD_SZ || p[i + 2] ||
		    p[i + 3] != 0 /* memory */ || (p[i + 4] & 1) /* consumer */)
			continue;
		uint32_t min, max, len;
		__builtin_memcpy(&min, p + i + 10, 4);
		__builtin_memcpy(&max, p + i + 14, 4);
		__builtin_memcpy(&len, p + i + 22, 4);
		if (max < min || len != max - min + 1 || min < 0x100000)
			continue;
		if (len > s->best.size)
			s->best = (struct mem_window){min, len};
	}
	return 0;
}

static struct mem_window find_window(void)
{
	struct dsdt_scan s = {0};
	const struct acpi_info *a = &g_acpi;

	for (unsigned i = 0; i < a->n_tables; i++)
		if (a->t[i].pa == a->dsdt_pa && pa_ok(a->dsdt_pa, a->t[i].len))
			s.len = a->t[i].len;
	if (!s.len && a->dsdt_pa && pa_ok(a->dsdt_pa, 8))
		s.len = rd32(a->dsdt_pa + 4);
	s.pa = a->dsdt_pa;
	if (s.len && pa_ok(s.pa, s.len))
		user_call(dsdt_scan_user, &s);
	return s.best;
}

struct alloc {
	struct mem_window mem;
	uint64_t mem_next;
	uint32_t io_next;
	bool have_window;
};

static struct alloc g_alloc;

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Sizes (and places when unassigned) the BARs of one type-0 function.
 * Returns false with why set when a BAR cannot be placed or reads back wrong. */
static bool do_bars(unsigned b, unsigned d, unsigned f, struct alloc *al, char *why, size_t cap)
{
	uint32_t cmd = cfg_rd(b, d, f, PCI_COMMAND) & 0xffff;
	uint32_t want_cmd = cmd;

	/* Decoding off while the BARs hold the sizing pattern. */
	cfg_wr(b, d, f, PCI_COMMAND, cmd & ~(uint32_t)(PCI_CMD_IO | PCI_CMD_MEM));
	for (unsigned i = 0; i < 6; i++) {
		unsigned off = PCI_BAR0 + 4 * i;
		uint32_t orig = cfg_rd(b, d, f, off);
		cfg_wr(b, d, f, off, 0xffffffff);
		uint32_t v = cfg_rd(b, d, f, off);
		cfg_wr(b, d, f, off, orig);
		if (!v)
			continue;
		bool io = orig & 1, is64 = !io && ((orig >> 1) & 3) == 2;
		uint64_t addr, size;
		if (io) {
			addr = orig & ~3u;
			size = (uint32_t)(~(v & ~3u) + 1) & 0xffff;
		} else if (is64 && i < 5) {
			uint32_t ohi = cfg_rd(b, d, f, off + 4);
			cfg_wr(b, d, f, off + 4, 0xffffffff);
			uint32_t vhi = cfg_rd(b, d, f, off + 4);
			cfg_wr(b, d, f, off + 4, ohi);
			addr = (uint64_t)ohi << 32 | (orig & ~0xfu);
			size = ~((uint64_t)vhi << 32 | (v & ~0xfu)) + 1;
		} else {
			addr = orig & ~0xfu;
			size = (uint32_t)(~(v & ~0xfu) + 1);
		}
		if (!size || (size & (size - 1))) {
			ksnprintf(why, cap, "%02x:%02x.%x BAR%u: size 0x%lx is not a power of two",
				  b, d, f, i, size);
			return false;
		}
		bool placed = false;
		if (!addr && io) {
			uint64_t a = align_up(al->io_next, size);
			if (a + size > IO_WINDOW_END) {
				ksnprintf(why, cap, "%02x:%02x.%x BAR%u: no I/O space for 0x%lx", b,
					  d, f, i, size);
				return false;
			}
			addr = a;
			al->io_next = (uint32_t)(a + size);
			cfg_wr(b, d, f, off, (uint32_t)addr | 1);
			placed = true;
		} else if (!addr) {
			uint64_t a = align_up(al->mem_next, size);
			if (!al->have_window || a + size > al->mem.base + al->mem.size) {
				ksnprintf(why, cap, "%02x:%02x.%x BAR%u: no room for 0x%lx in %s",
					  b, d, f, i, size,
					  al->have_window ? "the window" : "(no window found)");
				return false;
			}
			addr = a;
			al->mem_next = a + size;
			cfg_wr(b, d, f, off, (uint32_t)addr | (orig & 0xf));
			if (is64)
				cfg_wr(b, d, f, off + 4, 0);
			placed = true;
		}
		tap_diag("pci: %02x:%02x.%x BAR%u %s size 0x%lx at 0x%lx%s", b, d, f, i,
			 io	? "io"
			 : is64 ? "mem64"
				: "mem32",
			 size, addr, placed ? " (assigned)" : "");
		/* The BAR must hold what was written (or what it had). */
		uint64_t back = cfg_rd(b, d, f, off) & (io ? ~3u : ~0xfu);
		if (is64 && i < 5)
			back |= (uint64_t)cfg_rd(b, d, f, off + 4) << 32;
		if (back != addr) {
			ksnprintf(why, cap, "%02x:%02x.%x BAR%u reads 0x%lx, expected 0x%lx", b, d,
				  f, i, back, addr);
			return false;
		}
		want_cmd |= io ? PCI_CMD_IO : PCI_CMD_MEM;
		if (is64)
			i++;
	}
	cfg_wr(b, d, f, PCI_COMMAND, want_cmd);
	return true;
}

/* Moves the allocator past BARs firmware (or the VMM) already placed in the window. */
static void note_assigned(unsigned b, unsigned d, unsigned f, struct alloc *al)
{
	for (unsigned i = 0; i < 6; i++) {
		uint32_t v = cfg_rd(b, d, f, PCI_BAR0 + 4 * i);
		if (v & 1)
			continue;
		uint64_t a = v & ~0xfu;
		if (((v >> 1) & 3) == 2 && i < 5)
			a |= (uint64_t)cfg_rd(b, d, f, PCI_BAR0 + 4 * ++i) << 32;
		/* The end is not known without sizing: leave a generous gap. */
		if (a >= al->mem.base && a < al->mem.base + al->mem.size &&
		    a + 0x100000 > al->mem_next)
			al->mem_next = align_up(a + 1, 0x100000);
	}
}

/* Every function on the bus, f == 0 first; calls fn until it returns false. */
static void for_each_fn(bool (*fn)(unsigned d, unsigned f, void *arg), void *arg)
{
	for (unsigned d = 0; d < 32; d++)
		for (unsigned f = 0; f < 8; f++) {
			uint32_t id = cfg_rd(ecam_bus, d, f, PCI_VENDOR);
			if ((id & 0xffff) == 0xffff) {
				if (f == 0)
					break;
				continue;
			}
			if (!fn(d, f, arg))
				return;
			uint8_t hdr = (uint8_t)(cfg_rd(ecam_bus, d, f, PCI_HEADER & ~3u) >> 16);
			if (f == 0 && !(hdr & 0x80))
				break;
		}
}

static bool note_fn(unsigned d, unsigned f, void *arg)
{
	(void)arg;
	uint8_t hdr = (uint8_t)(cfg_rd(ecam_bus, d, f, PCI_HEADER & ~3u) >> 16);
	if ((hdr & 0x7f) == 0 && g_alloc.have_window)
		note_assigned(ecam_bus, d, f, &g_alloc);
	return true;
}

bool pci_init(char *why, size_t cap)
{
	static bool tried;
	if (tried) {
		if (!bus_ready)
			ksnprintf(why, cap, "%s", bus_why);
		return bus_ready;
	}
	tried = true;
	const struct acpi_info *a = &g_acpi;
	uint64_t mcfg = 0;
	uint32_t mcfg_len = 0;

	for (unsigned i = 0; i < a->n_tables; i++)
		if (!memcmp(a->t[i].sig, "MCFG", 4)) {
			mcfg = a->t[i].pa;
			mcfg_len = a->t[i].len;
		}
	if (!mcfg || mcfg_len < MCFG_MIN_LEN || !pa_ok(mcfg, mcfg_len)) {
		ksnprintf(bus_why, sizeof(bus_why), "%s",
			  mcfg ? "MCFG is too short" : "no MCFG table");
		ksnprintf(why, cap, "%s", bus_why);
		return false;
	}
	ecam = rd64(mcfg + 44);
	ecam_seg = rd16(mcfg + 52);
	ecam_bus = rd8(mcfg + 54);
	ecam_bus_end = rd8(mcfg + 55);
	if (ecam_bus_end < ecam_bus || !pa_ok(ecam + ((uint64_t)ecam_bus << 20), 1 << 20)) {
		ksnprintf(bus_why, sizeof(bus_why),
			  "ECAM for bus %u is not below 4 GiB or the bus range is empty", ecam_bus);
		ksnprintf(why, cap, "%s", bus_why);
		return false;
	}
	g_alloc = (struct alloc){.io_next = IO_WINDOW_START};
	g_alloc.mem = find_window();
	g_alloc.have_window = g_alloc.mem.size != 0;
	g_alloc.mem_next = g_alloc.mem.base;
	/* What is placed already (by the VMM or firmware) stays where it is. */
	for_each_fn(note_fn, NULL);
	bus_ready = true;
	return true;
}

uint32_t pci_cfg_read32(const struct pci_fn *f, unsigned off)
{
	return cfg_rd(f->bus, f->dev, f->fn, off);
}

void pci_cfg_write32(const struct pci_fn *f, unsigned off, uint32_t v)
{
	cfg_wr(f->bus, f->dev, f->fn, off, v);
}

uint8_t pci_cfg_read8(const struct pci_fn *f, unsigned off)
{
	return (uint8_t)(pci_cfg_read32(f, off) >> (8 * (off & 3)));
}

uint16_t pci_cfg_read16(const struct pci_fn *f, unsigned off)
{
	return (uint16_t)(pci_cfg_read32(f, off) >> (8 * (off & 2)));
}

struct find_req {
	uint16_t vendor;
	const uint16_t *devices;
	unsigned ndevices;
	struct pci_fn *out;
	bool found;
};

static bool find_fn(unsigned d, unsigned f, void *arg)
{
	struct find_req *r = arg;
	uint32_t id = cfg_rd(ecam_bus, d, f, PCI_VENDOR);
	if ((id & 0xffff) != r->vendor)
		return true;
	for (unsigned i = 0; i < r->ndevices; i++)
		if (id >> 16 == r->devices[i]) {
			*r->out = (struct pci_fn){(uint8_t)ecam_bus, (uint8_t)d, (uint8_t)f,
						  (uint16_t)id, (uint16_t)(id >> 16)};
			r->found = true;
			return false;
		}
	return true;
}

bool pci_find(uint16_t vendor, const uint16_t *devices, unsigned ndevices, struct pci_fn *out)
{
	if (!bus_ready)
		return false;
	struct find_req r = {vendor, devices, ndevices, out, false};
	for_each_fn(find_fn, &r);
	return r.found;
}

bool pci_bar_map(const struct pci_fn *fn, unsigned i, uint64_t *pa, uint64_t *len, char *why,
		 size_t cap)
{
	unsigned b = fn->bus, d = fn->dev, f = fn->fn, off = PCI_BAR0 + 4 * i;
	if (i >= 6) {
		ksnprintf(why, cap, "BAR%u does not exist", i);
		return false;
	}
	uint32_t cmd = cfg_rd(b, d, f, PCI_COMMAND) & 0xffff;
	cfg_wr(b, d, f, PCI_COMMAND, cmd & ~(uint32_t)(PCI_CMD_IO | PCI_CMD_MEM));
	uint32_t orig = cfg_rd(b, d, f, off);
	cfg_wr(b, d, f, off, 0xffffffff);
	uint32_t v = cfg_rd(b, d, f, off);
	cfg_wr(b, d, f, off, orig);
	bool is64 = ((orig >> 1) & 3) == 2 && i < 5;
	uint64_t addr = orig & ~0xfu, size = 0;
	if (is64) {
		uint32_t ohi = cfg_rd(b, d, f, off + 4);
		cfg_wr(b, d, f, off + 4, 0xffffffff);
		uint32_t vhi = cfg_rd(b, d, f, off + 4);
		cfg_wr(b, d, f, off + 4, ohi);
		addr |= (uint64_t)ohi << 32;
		size = ~((uint64_t)vhi << 32 | (v & ~0xfu)) + 1;
	} else {
		size = (uint32_t)(~(v & ~0xfu) + 1);
	}
	bool ok = false;
	if (!v || (orig & 1))
		ksnprintf(why, cap, "BAR%u is %s", i, v ? "an I/O BAR" : "not implemented");
	else if (!size || (size & (size - 1)))
		ksnprintf(why, cap, "BAR%u: size 0x%lx is not a power of two", i, size);
	else
		ok = true;
	/* Only the low 4 GiB are mapped: a BAR above (a VMM's 64-bit window)
	 * moves into the 32-bit window, as firmware without 64-bit support would. */
	if (ok && (!addr || !pa_ok(addr, size))) {
		struct alloc *al = &g_alloc;
		uint64_t a = align_up(al->mem_next, size);
		if (!al->have_window || a + size > al->mem.base + al->mem.size) {
			ksnprintf(why, cap, "BAR%u: no room for 0x%lx below 4 GiB", i, size);
			ok = false;
		} else {
			al->mem_next = a + size;
			cfg_wr(b, d, f, off, (uint32_t)a | (orig & 0xf));
			if (is64)
				cfg_wr(b, d, f, off + 4, 0);
			addr = a;
		}
	}
	cfg_wr(b, d, f, PCI_COMMAND, ok ? cmd | PCI_CMD_MEM | PCI_CMD_MASTER : cmd);
	if (ok) {
		*pa = addr;
		*len = size;
	}
	return ok;
}

void check_pci(const struct options *o)
{
	char why[128] = "";
	if (!pci_init(why, sizeof(why))) {
		tap_fail("pci", "%s", why);
		return;
	}
	unsigned bus = ecam_bus;
	tap_diag("pci: ECAM at 0x%lx, segment %u, buses %u-%u", ecam, ecam_seg, ecam_bus,
		 ecam_bus_end);
	struct alloc al = g_alloc;
	if (al.have_window)
		tap_diag("pci: 32-bit window 0x%lx-0x%lx (DSDT)", al.mem.base,
			 al.mem.base + al.mem.size - 1);

	unsigned found = 0;
	bool host_bridge = false;
	/* First pass: what is there. */
	for (unsigned d = 0; d < 32; d++)
		for (unsigned f = 0; f < 8; f++) {
			uint32_t id = cfg_rd(bus, d, f, PCI_VENDOR);
			if ((id & 0xffff) == 0xffff) {
				if (f == 0)
					break;
				continue;
			}
			uint32_t cls = cfg_rd(bus, d, f, PCI_CLASS_REV) >> 8;
			uint8_t hdr = (uint8_t)(cfg_rd(bus, d, f, PCI_HEADER & ~3u) >> 16);
			tap_diag("pci: %02x:%02x.%x %04x:%04x class %06x", bus, d, f, id & 0xffff,
				 id >> 16, cls);
			found++;
			if (d == 0 && f == 0 && cls >> 8 == 0x0600)
				host_bridge = true;
			if (f == 0 && !(hdr & 0x80))
				break;
		}
	/* Second pass: size, and place what is not. */
	bool bars_ok = true;
	for (unsigned d = 0; d < 32 && bars_ok; d++)
		for (unsigned f = 0; f < 8 && bars_ok; f++) {
			uint32_t id = cfg_rd(bus, d, f, PCI_VENDOR);
			if ((id & 0xffff) == 0xffff) {
				if (f == 0)
					break;
				continue;
			}
			uint8_t hdr = (uint8_t)(cfg_rd(bus, d, f, PCI_HEADER & ~3u) >> 16);
			if ((hdr & 0x7f) == 0)
				bars_ok = do_bars(bus, d, f, &g_alloc, why, sizeof(why));
			if (f == 0 && !(hdr & 0x80))
				break;
		}
	tap_diag("pci: %u function(s) on bus %u%s", found, bus,
		 o->have_pci ? "" : " (no chv.pci= expectation)");
	if (!host_bridge)
		tap_fail("pci", "no host bridge (class 0600) at %02x:00.0", bus);
	else if (!bars_ok)
		tap_fail("pci", "%s", why);
	else if (o->have_pci && found != o->pci_functions)
		tap_fail("pci", "%u functions, expected %u", found, o->pci_functions);
	else
		tap_ok("pci");
}
