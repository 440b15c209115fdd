/* Reads what the loader handed over (PVH hvm_start_info or the Linux zero
 * page) into one protocol-neutral struct. */
#include "guest.h"

#define PVH_MAGIC 0x336ec578u

struct boot_info g_boot;

const char *proto_name(enum boot_proto p)
{
	switch (p) {
	case PROTO_PVH:
		return "pvh";
	case PROTO_LINUX32:
		return "linux-32bit";
	case PROTO_LINUX64:
		return "linux-64bit";
	}
	return "unknown";
}

static void copy_cmdline(struct boot_info *b, uint64_t pa)
{
	size_t n = 0;

	if (!pa || !pa_ok(pa, 1))
		return;
	b->have_cmdline = true;
	while (pa_ok(pa + n, 1) && rd8(pa + n) && n < GUEST_CMDLINE_MAX - 1) {
		b->cmdline[n] = (char)rd8(pa + n);
		n++;
	}
	b->cmdline[n] = '\0';
	b->cmdline_truncated = pa_ok(pa + n, 1) && rd8(pa + n) != 0;
}

static void parse_pvh(struct boot_info *b, uint64_t si)
{
	b->pvh_version = rd32(si + 4);
	copy_cmdline(b, rd64(si + 0x18));
	b->rsdp_pa = rd64(si + 0x20);
	if (rd32(si + 0xc) > 0) {
		uint64_t mod = rd64(si + 0x10);
		if (pa_ok(mod, 32)) {
			b->initrd_pa = rd64(mod);
			b->initrd_size = rd64(mod + 8);
		}
	}
	if (b->pvh_version >= 1) {
		uint64_t mm = rd64(si + 0x28);
		uint32_t n = rd32(si + 0x30);
		if (n > GUEST_E820_MAX)
			n = GUEST_E820_MAX;
		if (!pa_ok(mm, (uint64_t)n * 24))
			n = 0;
		for (uint32_t i = 0; i < n; i++) {
			b->e820[i].addr = rd64(mm + i * 24);
			b->e820[i].size = rd64(mm + i * 24 + 8);
			b->e820[i].type = rd32(mm + i * 24 + 16);
		}
		b->n_e820 = n;
	}
}

static void parse_linux(struct boot_info *b, uint64_t bp)
{
	b->linux_version = rd16(bp + 0x206);
	b->loader_type = rd8(bp + 0x210);
	copy_cmdline(b, rd32(bp + 0x228) | (uint64_t)rd32(bp + 0xc8) << 32);
	b->initrd_pa = rd32(bp + 0x218) | (uint64_t)rd32(bp + 0xc0) << 32;
	b->initrd_size = rd32(bp + 0x21c) | (uint64_t)rd32(bp + 0xc4) << 32;
	b->rsdp_pa = rd64(bp + 0x70);
	unsigned n = rd8(bp + 0x1e8);
	if (n > GUEST_E820_MAX)
		n = GUEST_E820_MAX;
	for (unsigned i = 0; i < n; i++) {
		uint64_t e = bp + 0x2d0 + i * 20;
		b->e820[i].addr = rd64(e);
		b->e820[i].size = rd64(e + 8);
		b->e820[i].type = rd32(e + 16);
	}
	b->n_e820 = n;
}

void bootinfo_parse(struct boot_info *b)
{
	uint64_t pa = boot_info_raw;

	b->proto = (enum boot_proto)boot_proto_raw;
	b->info_pa = pa;
	if (!pa || !pa_ok(pa, 4096)) {
		ksnprintf(b->why, sizeof(b->why), "boot info pointer 0x%lx unusable", pa);
		return;
	}
	if (b->proto == PROTO_PVH) {
		/* entry.S only picks PVH when the magic is there. */
		b->valid = rd32(pa) == PVH_MAGIC;
		parse_pvh(b, pa);
		return;
	}
	/* The fields are read even without the header so the other checks can
	 * still say what arrived. */
	parse_linux(b, pa);
	b->valid = rd32(pa + 0x202) == 0x53726448;
	if (!b->valid)
		ksnprintf(b->why, sizeof(b->why), "no \"HdrS\" in the zero page at 0x%lx", pa);
}
