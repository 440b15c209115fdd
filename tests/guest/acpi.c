/* ACPI discovery: RSDP, XSDT/RSDT, every listed table's checksum, the FADT's
 * power controls, \_S5 from the DSDT and the MADT's local APICs. All of it
 * runs at CPL3 (one user_call): the scans and checksums are byte loops. */
#include "guest.h"

struct acpi_info g_acpi;

#define FADT_F_RESET_REG_SUP (1u << 10)
#define FADT_F_HW_REDUCED    (1u << 20)

static void fail(struct acpi_info *a, const char *msg)
{
	if (!a->ok)
		return; /* keep the first problem */
	a->ok = false;
	ksnprintf(a->why, sizeof(a->why), "%s", msg);
}

static uint8_t sum8(uint64_t pa, uint64_t len)
{
	uint8_t s = 0;
	for (uint64_t i = 0; i < len; i++)
		s += rd8(pa + i);
	return s;
}

static bool rsdp_at(uint64_t pa)
{
	return pa_ok(pa, 20) && memcmp((const void *)(uintptr_t)pa, "RSD PTR ", 8) == 0 &&
	       sum8(pa, 20) == 0;
}

static uint64_t scan_rsdp(uint64_t start, uint64_t len)
{
	for (uint64_t pa = start; pa + 20 <= start + len; pa += 16)
		if (rsdp_at(pa))
			return pa;
	return 0;
}

static void find_rsdp(struct acpi_info *a, uint64_t hint)
{
	if (hint && rsdp_at(hint)) {
		a->rsdp_pa = hint;
		a->rsdp_source = "boot info";
		return;
	}
	uint64_t ebda = (uint64_t)rd16(0x40e) << 4;
	uint64_t pa = ebda >= 0x80000 && ebda < 0xa0000 ? scan_rsdp(ebda, 1024) : 0;
	if (pa) {
		a->rsdp_source = "EBDA scan";
	} else {
		pa = scan_rsdp(0xe0000, 0x20000);
		a->rsdp_source = "0xE0000-0xFFFFF scan";
	}
	a->rsdp_pa = pa;
}

/* Checks a table header at pa and records it; returns its length, 0 if bad. */
static uint32_t take_table(struct acpi_info *a, uint64_t pa, const char *want_sig)
{
	char sig[5] = {0};
	static char msg[96];

	if (!pa || !pa_ok(pa, 36)) {
		ksnprintf(msg, sizeof(msg), "table at 0x%lx is outside the identity map", pa);
		fail(a, msg);
		return 0;
	}
	memcpy(sig, (const void *)(uintptr_t)pa, 4);
	uint32_t len = rd32(pa + 4);
	if (want_sig && memcmp(sig, want_sig, 4) != 0) {
		ksnprintf(msg, sizeof(msg), "table at 0x%lx has signature \"%s\", expected %s", pa,
			  sig, want_sig);
		fail(a, msg);
		return 0;
	}
	if (len < 36 || !pa_ok(pa, len) || len > 0x1000000) {
		ksnprintf(msg, sizeof(msg), "%s at 0x%lx has bad length %u", sig, pa, len);
		fail(a, msg);
		return 0;
	}
	bool ok = sum8(pa, len) == 0;
	if (!ok) {
		ksnprintf(msg, sizeof(msg), "%s at 0x%lx: bad checksum", sig, pa);
		fail(a, msg);
	}
	if (a->n_tables < ACPI_MAX_TABLES) {
		unsigned i = a->n_tables++;
		memcpy(a->t[i].sig, sig, 5);
		a->t[i].pa = pa;
		a->t[i].len = len;
		a->t[i].rev = rd8(pa + 8);
		a->t[i].sum_ok = ok;
	}
	return ok ? len : 0;
}

static struct gas read_gas(uint64_t pa)
{
	return (struct gas){rd8(pa), rd8(pa + 1), rd8(pa + 2), rd8(pa + 3), rd64(pa + 4)};
}

/* Finds Name(_S5_, Package() {typ, ...}) in the AML and decodes typ. */
static void find_s5(struct acpi_info *a, uint64_t dsdt, uint32_t len)
{
	for (uint64_t p = dsdt + 36; p + 4 + 3 < dsdt + len; p++) {
		if (memcmp((const void *)(uintptr_t)p, "_S5_", 4) != 0)
			continue;
		uint8_t before = rd8(p - 1);
		if (before != 0x08 && !(before == '\\' && rd8(p - 2) == 0x08))
			continue;
		uint64_t q = p + 4;
		if (rd8(q++) != 0x12) /* PackageOp */
			continue;
		q += 1 + (rd8(q) >> 6); /* PkgLength: lead byte + 0..3 more */
		q++;			/* NumElements */
		if (q + 2 > dsdt + len)
			return;
		uint8_t op = rd8(q);
		if (op == 0x00 || op == 0x01) {
			a->s5_slp_typ = op;
		} else if (op == 0x0a || op == 0x0b || op == 0x0c) {
			a->s5_slp_typ = rd8(q + 1);
		} else {
			continue;
		}
		a->s5_found = true;
		return;
	}
}

static void parse_fadt(struct acpi_info *a, uint64_t f, uint32_t len)
{
	a->fadt_pa = f;
	a->fadt_rev = rd8(f + 8);
	uint32_t flags = len >= 116 ? rd32(f + 112) : 0;
	a->hw_reduced = flags & FADT_F_HW_REDUCED;
	if (len >= 72) {
		a->pm1a_cnt_port = rd32(f + 64);
		a->pm1b_cnt_port = rd32(f + 68);
	}
	if (len >= 129) {
		a->reset_sup = flags & FADT_F_RESET_REG_SUP;
		a->reset_reg = read_gas(f + 116);
		a->reset_value = rd8(f + 128);
	}
	if (len >= 184)
		a->x_pm1a_cnt = read_gas(f + 172);
	if (len >= 256 && a->fadt_rev >= 5) {
		a->sleep_ctl = read_gas(f + 244);
		a->have_sleep_ctl = a->sleep_ctl.addr != 0;
	}
	uint64_t dsdt = len >= 148 ? rd64(f + 140) : 0;
	if (!dsdt && len >= 44)
		dsdt = rd32(f + 40);
	if (!dsdt)
		return;
	uint32_t dlen = take_table(a, dsdt, "DSDT");
	if (dlen) {
		a->dsdt_pa = dsdt;
		find_s5(a, dsdt, dlen);
	}
}

static void madt_fail(struct acpi_info *a, const char *why, uint64_t off)
{
	a->madt_ok = false;
	ksnprintf(a->madt_why, sizeof(a->madt_why), "%s at MADT offset %lu", why, off);
}

static void add_cpu(struct acpi_info *a, uint32_t id, uint32_t flags, uint64_t off)
{
	a->n_lapic_entries++;
	if (!(flags & 1))
		return;
	for (unsigned i = 0; i < a->n_enabled; i++)
		if (a->enabled_ids[i] == id) {
			madt_fail(a, "duplicate APIC id", off);
			return;
		}
	if (a->n_enabled < GUEST_MAX_CPUS)
		a->enabled_ids[a->n_enabled++] = id;
}

static void parse_madt(struct acpi_info *a, uint64_t m, uint32_t len)
{
	a->madt_pa = m;
	a->madt_ok = true;
	if (len < 44) {
		madt_fail(a, "too short", len);
		return;
	}
	a->lapic_pa = rd32(m + 36);
	for (uint64_t off = 44; off < len;) {
		if (off + 2 > len) {
			madt_fail(a, "truncated entry", off);
			return;
		}
		uint8_t type = rd8(m + off), elen = rd8(m + off + 1);
		if (elen < 2 || off + elen > len) {
			madt_fail(a, "bad entry length", off);
			return;
		}
		if (type == 0 && elen >= 8)
			add_cpu(a, rd8(m + off + 3), rd32(m + off + 4), off);
		else if (type == 9 && elen >= 16)
			add_cpu(a, rd32(m + off + 4), rd32(m + off + 8), off);
		else if (type == 5 && elen >= 12)
			a->lapic_pa = rd64(m + off + 4);
		else if (type == 0 || type == 9 || type == 5) {
			madt_fail(a, "short entry", off);
			return;
		}
		off += elen;
	}
	if (!a->n_enabled)
		madt_fail(a, "no enabled local APIC", len);
}

struct discover_req {
	uint64_t hint;
	struct acpi_info *a;
};

static uint64_t discover_user(void *arg)
{
	struct discover_req *r = arg;
	struct acpi_info *a = r->a;
	static char msg[96];

	memset(a, 0, sizeof(*a));
	find_rsdp(a, r->hint);
	if (!a->rsdp_pa) {
		ksnprintf(a->why, sizeof(a->why),
			  "no RSDP (boot info gave 0x%lx; scans found none)", r->hint);
		return 0;
	}
	a->rsdp_found = true;
	a->ok = true;
	uint64_t rsdp = a->rsdp_pa;
	a->rsdp_rev = rd8(rsdp + 15);
	uint64_t root = rd32(rsdp + 16);
	if (a->rsdp_rev >= 2) {
		uint32_t xlen = rd32(rsdp + 20);
		if (xlen < 36 || xlen > 4096 || !pa_ok(rsdp, xlen) || sum8(rsdp, xlen) != 0) {
			ksnprintf(msg, sizeof(msg),
				  "RSDP at 0x%lx: bad extended checksum (length %u)", rsdp, xlen);
			fail(a, msg);
		} else if (rd64(rsdp + 24)) {
			root = rd64(rsdp + 24);
			a->root_is_xsdt = true;
		}
	}
	a->root_pa = root;
	uint32_t rlen = take_table(a, root, a->root_is_xsdt ? "XSDT" : "RSDT");
	if (!rlen)
		return 0;
	unsigned esz = a->root_is_xsdt ? 8 : 4;
	for (uint32_t off = 36; off + esz <= rlen; off += esz) {
		uint64_t pa = esz == 8 ? rd64(root + off) : rd32(root + off);
		uint32_t len = take_table(a, pa, NULL);
		if (!len)
			continue;
		if (!memcmp((const void *)(uintptr_t)pa, "FACP", 4))
			parse_fadt(a, pa, len);
		else if (!memcmp((const void *)(uintptr_t)pa, "APIC", 4))
			parse_madt(a, pa, len);
	}
	if (!a->fadt_pa)
		fail(a, "no FADT (FACP) in the root table");
	if (!a->madt_pa) {
		a->madt_ok = false;
		ksnprintf(a->madt_why, sizeof(a->madt_why), "no MADT (APIC) in the root table");
	}
	return 0;
}

void acpi_discover(uint64_t hint_rsdp, struct acpi_info *a)
{
	struct discover_req r = {hint_rsdp, a};
	user_call(discover_user, &r);
}

void gas_write(const struct gas *g, uint64_t v)
{
	unsigned bits =
	    g->bit_width ? g->bit_width : 8u << (g->access_size ? g->access_size - 1 : 0);

	v <<= g->bit_offset;
	if (g->space == 1) {
		uint16_t port = (uint16_t)g->addr;
		if (bits <= 8)
			outb(port, (uint8_t)v);
		else if (bits <= 16)
			outw(port, (uint16_t)v);
		else
			outl(port, (uint32_t)v);
	} else if (g->space == 0 && pa_ok(g->addr, 8)) {
		volatile void *p = (volatile void *)(uintptr_t)g->addr;
		if (bits <= 8)
			*(volatile uint8_t *)p = (uint8_t)v;
		else if (bits <= 16)
			*(volatile uint16_t *)p = (uint16_t)v;
		else if (bits <= 32)
			*(volatile uint32_t *)p = (uint32_t)v;
		else
			*(volatile uint64_t *)p = v;
	}
}
