/* The checks, one TAP line each, in a fixed order. */
#include "guest.h"

static void check_boot(void)
{
	const struct boot_info *b = &g_boot;

	if (b->proto == PROTO_PVH)
		tap_diag("boot: pvh, hvm_start_info at 0x%lx, version %u", b->info_pa,
			 b->pvh_version);
	else
		tap_diag("boot: %s, boot_params at 0x%lx, protocol %u.%02u, loader type 0x%02x",
			 proto_name(b->proto), b->info_pa, b->linux_version >> 8,
			 b->linux_version & 0xff, b->loader_type);
	if (b->valid)
		tap_ok("boot protocol");
	else
		tap_fail("boot protocol", "%s", b->why);
}

static void check_cmdline(const struct options *o)
{
	const struct boot_info *b = &g_boot;

	if (!b->have_cmdline) {
		tap_fail("command line", "no command line (pointer is 0)");
		return;
	}
	tap_diag("cmdline: %s", b->cmdline);
	if (b->cmdline_truncated) {
		tap_fail("command line", "longer than %u bytes", GUEST_CMDLINE_MAX - 1);
		return;
	}
	if (o->n_errors) {
		for (unsigned i = 0; i < o->n_errors && i < 4; i++)
			tap_diag("cmdline error: %s", o->errors[i]);
		tap_fail("command line", "%u malformed chv.* option(s), first: %s", o->n_errors,
			 o->errors[0]);
		return;
	}
	tap_ok("command line");
}

static void check_mem(const struct options *o)
{
	const struct boot_info *b = &g_boot;
	uint64_t ram = 0;

	if (!o->have_mem) {
		tap_fail("memory map", "chv.mem not given");
		return;
	}
	if (!b->n_e820) {
		tap_fail("memory map", "the loader passed no memory map");
		return;
	}
	for (unsigned i = 0; i < b->n_e820; i++) {
		const struct e820e *e = &b->e820[i];
		tap_diag("e820: 0x%09lx size 0x%09lx type %u", e->addr, e->size, e->type);
		if (e->type == 1)
			ram += e->size;
	}
	tap_diag("ram: %lu bytes in type 1 entries, expected %lu", ram, o->mem);
	if (ram > o->mem || ram + 0x100000 < o->mem)
		tap_fail("memory map", "RAM %lu bytes is not within [%lu, %lu]", ram,
			 o->mem > 0x100000 ? o->mem - 0x100000 : 0, o->mem);
	else
		tap_ok("memory map");
}

struct crc_req {
	uint64_t pa, len;
};

static uint64_t crc_user(void *arg)
{
	const struct crc_req *r = arg;
	return crc32_ieee((const uint8_t *)(uintptr_t)r->pa, r->len);
}

static void check_initrd(const struct options *o)
{
	const struct boot_info *b = &g_boot;

	if (!o->have_initrd) {
		tap_fail("initramfs", "chv.initrd not given");
		return;
	}
	tap_diag("initramfs: %lu bytes at 0x%lx", b->initrd_size, b->initrd_pa);
	if (!b->initrd_size) {
		tap_fail("initramfs", "the loader passed none");
		return;
	}
	if (!pa_ok(b->initrd_pa, b->initrd_size)) {
		tap_fail("initramfs", "0x%lx+%lu is not below 4 GiB", b->initrd_pa, b->initrd_size);
		return;
	}
	if (b->initrd_size != o->initrd_size) {
		tap_fail("initramfs", "size %lu, expected %lu", b->initrd_size, o->initrd_size);
		return;
	}
	struct crc_req r = {b->initrd_pa, b->initrd_size};
	uint32_t crc = (uint32_t)user_call(crc_user, &r);
	tap_diag("initramfs crc32: %08x", crc);
	if (crc != o->initrd_crc)
		tap_fail("initramfs", "crc32 %08x, expected %08x", crc, o->initrd_crc);
	else
		tap_ok("initramfs");
}

static const char *space_name(uint8_t s)
{
	return s == 0 ? "mem" : s == 1 ? "io" : "other";
}

static void check_acpi(void)
{
	const struct acpi_info *a = &g_acpi;

	if (!a->rsdp_found) {
		tap_fail("acpi tables", "%s", a->why);
		return;
	}
	tap_diag("acpi: RSDP at 0x%lx (%s), revision %u, %s at 0x%lx", a->rsdp_pa, a->rsdp_source,
		 a->rsdp_rev, a->root_is_xsdt ? "XSDT" : "RSDT", a->root_pa);
	for (unsigned i = 0; i < a->n_tables; i++)
		tap_diag("acpi: %s at 0x%lx, %u bytes, revision %u, checksum %s", a->t[i].sig,
			 a->t[i].pa, a->t[i].len, a->t[i].rev, a->t[i].sum_ok ? "ok" : "BAD");
	if (a->fadt_pa) {
		if (a->hw_reduced && a->have_sleep_ctl)
			tap_diag("acpi: FADT rev %u hardware-reduced, sleep control %s 0x%lx",
				 a->fadt_rev, space_name(a->sleep_ctl.space), a->sleep_ctl.addr);
		else
			tap_diag("acpi: FADT rev %u, PM1a_CNT 0x%x", a->fadt_rev,
				 a->x_pm1a_cnt.addr ? (uint32_t)a->x_pm1a_cnt.addr
						    : a->pm1a_cnt_port);
		tap_diag("acpi: \\_S5 SLP_TYP %u%s; reset register %s %s 0x%lx value 0x%x",
			 a->s5_found ? a->s5_slp_typ : 5, a->s5_found ? "" : " (default, no \\_S5)",
			 a->reset_sup ? "supported" : "not supported",
			 space_name(a->reset_reg.space), a->reset_reg.addr, a->reset_value);
	}
	if (a->ok)
		tap_ok("acpi tables");
	else
		tap_fail("acpi tables", "%s", a->why);
}

static void check_madt(const struct options *o)
{
	const struct acpi_info *a = &g_acpi;

	if (!a->madt_pa || !a->madt_ok) {
		tap_fail("madt", "%s",
			 a->madt_pa || a->madt_why[0] ? a->madt_why : "no ACPI tables");
		return;
	}
	tap_diag("madt: local APIC at 0x%lx, %u enabled of %u entries", a->lapic_pa, a->n_enabled,
		 a->n_lapic_entries);
	if (o->have_cpus && a->n_enabled != o->cpus)
		tap_fail("madt", "%u enabled local APICs, expected %u", a->n_enabled, o->cpus);
	else
		tap_ok("madt");
}

static bool id_enabled(uint32_t id)
{
	for (unsigned i = 0; i < g_acpi.n_enabled; i++)
		if (g_acpi.enabled_ids[i] == id)
			return true;
	return false;
}

static void check_smp(const struct options *o)
{
	static struct smp_result r;
	const struct acpi_info *a = &g_acpi;

	if (!a->madt_pa || !a->madt_ok || !pa_ok(a->lapic_pa, 0x1000)) {
		tap_fail("smp", "no usable MADT");
		return;
	}
	smp_start(a, &r);
	unsigned want = o->have_cpus ? o->cpus : a->n_enabled, up = 1 + r.started;
	tap_diag("smp: BSP APIC id %u, sent INIT-SIPI-SIPI to %u, %u checked in", r.bsp_id, r.sent,
		 r.started);
	for (unsigned i = 0; i < r.started && i < GUEST_MAX_CPUS; i++) {
		tap_diag("smp: AP %u has APIC id %u", i, r.ap_ids[i]);
		bool dup = r.ap_ids[i] == r.bsp_id;
		for (unsigned j = 0; j < i; j++)
			dup |= r.ap_ids[j] == r.ap_ids[i];
		if (dup || !id_enabled(r.ap_ids[i])) {
			tap_fail("smp", "AP APIC id %u is %s", r.ap_ids[i],
				 dup ? "a duplicate" : "not in the MADT");
			return;
		}
	}
	if (up != want)
		tap_fail("smp", "%u CPUs running, expected %u", up, want);
	else
		tap_ok("smp");
}

static void check_cmos(void)
{
	struct rtc_time t;
	char why[128];

	if (cmos_read_time(&t, why, sizeof(why))) {
		tap_fail("cmos rtc", "%s", why);
		return;
	}
	tap_diag("rtc: %u-%02u-%02u %02u:%02u:%02u (%s, %s)", t.year, t.month, t.day, t.hour, t.min,
		 t.sec, t.reg_b & 0x04 ? "binary" : "BCD", t.reg_b & 0x02 ? "24h" : "12h");
	tap_ok("cmos rtc");
}

struct cpl3_run {
	uint64_t iters, cs, rflags, cycles;
	uint8_t lsr;
};

#define CPL3_MAGIC 0x43504c33ULL

static uint64_t cpl3_user(void *arg)
{
	struct cpl3_run *r = arg;
	uint64_t n = r->iters, t0;

	__asm__ volatile("mov %%cs, %0" : "=r"(r->cs));
	__asm__ volatile("pushfq; popq %0" : "=r"(r->rflags));
	r->lsr = inb(0x3fd); /* port I/O under IOPL 3 */
	t0 = rdtsc();
	__asm__ volatile("1: dec %0\n\tjnz 1b" : "+r"(n));
	r->cycles = rdtsc() - t0;
	return CPL3_MAGIC ^ n;
}

static void check_cpl3(const struct options *o)
{
	struct cpl3_run r = {.iters = o->loops};
	const char *src;
	uint64_t khz = tsc_khz(&src);

	uint64_t ret = user_call(cpl3_user, &r);
	uint64_t ns = r.cycles * 1000000 / khz, ps = ns * 1000 / r.iters;
	tap_diag("cpl3: %lu iterations, %lu TSC cycles, %lu.%03lu ns/iteration (TSC %lu kHz, %s)",
		 r.iters, r.cycles, ps / 1000, ps % 1000, khz, src);
	tap_diag("cpl3: rflags 0x%lx (IOPL %lu, IF %lu), LSR 0x%02x", r.rflags, r.rflags >> 12 & 3,
		 r.rflags >> 9 & 1, r.lsr);
	if (ret != CPL3_MAGIC)
		tap_fail("cpl3", "the loop returned 0x%lx", ret);
	else if ((r.cs & 3) != 3)
		tap_fail("cpl3", "ran with cs 0x%lx, not at CPL3", r.cs);
	else
		tap_ok("cpl3");
}

/* TAP lines a check prints: one, except for the checks that report several
 * results (each prints all of its lines whatever happens, so the plan holds). */
static unsigned check_lines(const struct options *o, enum check_id c)
{
	return c == CHECK_NET ? NET_CHECK_LINES : c == CHECK_HOSTILE ? hostile_lines(o) : 1;
}

void checks_run(const struct options *o)
{
	unsigned n = 0;

	for (int i = 0; i < CHECK_COUNT; i++)
		n += o->want[i] ? check_lines(o, (enum check_id)i) : 0;
	tap_begin(n);
	if (o->tag)
		tap_diag("tag: %s", o->tag);
	progress(PROGRESS_CHECKS);
	for (int i = 0; i < CHECK_COUNT; i++) {
		if (!o->want[i])
			continue;
		switch ((enum check_id)i) {
		case CHECK_BOOT:
			check_boot();
			break;
		case CHECK_CMDLINE:
			check_cmdline(o);
			break;
		case CHECK_MEM:
			check_mem(o);
			break;
		case CHECK_INITRD:
			check_initrd(o);
			break;
		case CHECK_ACPI:
			check_acpi();
			break;
		case CHECK_MADT:
			check_madt(o);
			break;
		case CHECK_SMP:
			check_smp(o);
			break;
		case CHECK_CMOS:
			check_cmos();
			break;
		case CHECK_CPL3:
			check_cpl3(o);
			break;
		case CHECK_PCI:
			check_pci(o);
			break;
		case CHECK_RNG:
			check_rng();
			break;
		case CHECK_BLK:
			check_blk(o);
			break;
		case CHECK_CONSOLE:
			check_vcon();
			break;
		case CHECK_NET:
			check_net(o);
			break;
		case CHECK_HOSTILE:
			check_hostile(o);
			break;
		case CHECK_BENCH:
			check_bench(o);
			break;
		case CHECK_COUNT:
			break;
		}
	}
	tap_summary();
}
