/* Kernel loaders: minimal PVH ELF and bzImage images built in memory, loaded,
 * every boot structure checked, then mutated into each malformed form. Images
 * are passed in exactly-sized heap buffers so ASan catches any over-read. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vm/bootparam.h"
#include "vm/loader.h"
#include "vm/pvh.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static struct vm_mem mem;
static struct e820_table e820;

static void mem_setup(uint64_t size)
{
	struct mem_layout l;
	struct chv_err err = {0};

	vm_mem_destroy(&mem);
	layout_compute(size, &l);
	assert_int_equal(vm_mem_create(&mem, &l, false, false, &err), 0);
	e820_build(&l, &e820);
}

static int setup_128m(void **state)
{
	(void)state;
	mem.fd = -1;
	mem_setup(128 * MiB);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vm_mem_destroy(&mem);
	return 0;
}

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static uint8_t *gptr(uint64_t gpa, uint64_t len)
{
	uint8_t *p = vm_mem_ptr(&mem, gpa, len);

	assert_non_null(p);
	return p;
}

typedef int (*loader_fn)(struct vm_mem *, const struct load_request *, struct load_result *,
			 struct chv_err *);

struct payload {
	const char *cmdline;
	const uint8_t *initrd;
	size_t initrd_len;
	uint64_t rsdp;
};

/* Loads a copy of img in a buffer of exactly len bytes. */
static int load(loader_fn fn, const uint8_t *img, size_t len, const struct payload *p,
		struct load_result *res, struct chv_err *err)
{
	uint8_t *copy = len ? malloc(len) : NULL;
	struct load_request req = {
	    .kernel = copy,
	    .kernel_len = len,
	    .initramfs = p ? p->initrd : NULL,
	    .initramfs_len = p ? p->initrd_len : 0,
	    .cmdline = p && p->cmdline ? p->cmdline : "",
	    .e820 = &e820,
	    .rsdp_gpa = p ? p->rsdp : 0,
	};
	int rc;

	if (len)
		memcpy(copy, img, len);
	memset(err, 0, sizeof(*err));
	memset(res, 0, sizeof(*res));
	rc = fn(&mem, &req, res, err);
	free(copy);
	return rc;
}

static void assert_msg(const struct chv_err *err, const char *needle)
{
	if (!strstr(err->msg, needle))
		fail_msg("message \"%s\" lacks \"%s\"", err->msg, needle);
}

/* ---- PVH ELF images ---------------------------------------------------- */

#define ELF_CAP	     0x2000
#define ELF_NOTE_OFF 0x200
#define ELF_XEN_NOTE 0x214 /* after a GNU note of 20 bytes */
#define ELF_SEG0_OFF 0x1000
#define ELF_SEG1_OFF 0x1100
#define ELF_LEN	     0x1180
#define PH64(i)	     (64 + 56 * (i))
#define P_TYPE	     0
#define P_OFFSET     8
#define P_PADDR	     24
#define P_FILESZ     32
#define P_MEMSZ	     40
#define P_ALIGN	     48

struct elf_opts {
	bool is32;
	bool desc8;
	uint64_t base;	/* paddr of segment 0; segment 1 at base + 0x1000 */
	uint64_t entry; /* 0: base + 0x10 */
};

static void elf_phdr(uint8_t *img, bool is32, unsigned i, uint32_t type, uint64_t off,
		     uint64_t paddr, uint64_t filesz, uint64_t memsz, uint64_t align)
{
	uint8_t *p;

	if (is32) {
		p = img + 52 + 32 * i;
		put32(p + 0, type);
		put32(p + 4, (uint32_t)off);
		put32(p + 8, (uint32_t)(paddr + 0xc0000000)); /* vaddr: must be ignored */
		put32(p + 12, (uint32_t)paddr);
		put32(p + 16, (uint32_t)filesz);
		put32(p + 20, (uint32_t)memsz);
		put32(p + 24, 5);
		put32(p + 28, (uint32_t)align);
		return;
	}
	p = img + PH64(i);
	put32(p + P_TYPE, type);
	put32(p + 4, 5);
	put64(p + P_OFFSET, off);
	put64(p + 16, paddr + 0xffffffff80000000ULL); /* vaddr: must be ignored */
	put64(p + P_PADDR, paddr);
	put64(p + P_FILESZ, filesz);
	put64(p + P_MEMSZ, memsz);
	put64(p + P_ALIGN, align);
}

static size_t build_elf(uint8_t *img, const struct elf_opts *o)
{
	uint64_t base = o->base ? o->base : 0x200000;
	uint64_t entry = o->entry ? o->entry : base + 0x10;
	uint32_t descsz = o->desc8 ? 8 : 4;

	memset(img, 0, ELF_CAP);
	memcpy(img,
	       "\x7f"
	       "ELF",
	       4);
	img[4] = o->is32 ? 1 : 2;
	img[5] = 1;
	img[6] = 1;
	put16(img + 16, 2); /* ET_EXEC */
	put16(img + 18, o->is32 ? 3 : 62);
	put32(img + 20, 1);
	if (o->is32) {
		put32(img + 24, 0xdead); /* e_entry: PVH uses the note */
		put32(img + 28, 52);
		put16(img + 40, 52);
		put16(img + 42, 32);
		put16(img + 44, 3);
	} else {
		put64(img + 24, 0xdead);
		put64(img + 32, 64);
		put16(img + 52, 64);
		put16(img + 54, 56);
		put16(img + 56, 3);
	}
	elf_phdr(img, o->is32, 0, 1, ELF_SEG0_OFF, base, 0x100, 0x100, 0x1000);
	elf_phdr(img, o->is32, 1, 1, ELF_SEG1_OFF, base + 0x1000, 0x80, 0x2000, 0x1000);
	elf_phdr(img, o->is32, 2, 4, ELF_NOTE_OFF, 0, 20 + 16 + descsz, 0, 4);

	/* An unrelated note first, so the scan must walk past it. */
	put32(img + 0x200, 4);
	put32(img + 0x204, 4);
	put32(img + 0x208, 3);
	memcpy(img + 0x20c, "GNU", 4);
	put32(img + 0x210, 0x11223344);
	put32(img + ELF_XEN_NOTE, 4);
	put32(img + ELF_XEN_NOTE + 4, descsz);
	put32(img + ELF_XEN_NOTE + 8, XEN_ELFNOTE_PHYS32_ENTRY);
	memcpy(img + ELF_XEN_NOTE + 12, "Xen", 4);
	if (o->desc8)
		put64(img + ELF_XEN_NOTE + 16, entry);
	else
		put32(img + ELF_XEN_NOTE + 16, (uint32_t)entry);

	for (unsigned i = 0; i < 0x100; i++)
		img[ELF_SEG0_OFF + i] = (uint8_t)(i ^ 0x5a);
	for (unsigned i = 0; i < 0x80; i++)
		img[ELF_SEG1_OFF + i] = (uint8_t)(i + 1);
	return ELF_LEN;
}

static void fill_guest(uint64_t gpa, uint64_t len, uint8_t v)
{
	memset(gptr(gpa, len), v, len);
}

static void check_elf_loaded(uint64_t base)
{
	const uint8_t *p = gptr(base, 0x3000);

	for (unsigned i = 0; i < 0x100; i++)
		assert_int_equal(p[i], (uint8_t)(i ^ 0x5a));
	for (unsigned i = 0; i < 0x80; i++)
		assert_int_equal(p[0x1000 + i], (uint8_t)(i + 1));
	for (unsigned i = 0x1080; i < 0x3000; i++) /* bss zeroed */
		assert_int_equal(p[i], 0);
}

static void check_start_info(const char *cmdline, uint64_t rsdp, uint64_t initrd, size_t initrd_len)
{
	struct hvm_start_info si;
	struct hvm_memmap_table_entry me;
	struct hvm_modlist_entry mod;

	assert_int_equal(vm_mem_read(&mem, LAYOUT_PVH_INFO, &si, sizeof(si)), 0);
	assert_int_equal(si.magic, 0x336ec578);
	assert_int_equal(si.version, 1);
	assert_int_equal(si.flags, 0);
	assert_int_equal(si.cmdline_paddr, LAYOUT_CMDLINE);
	assert_string_equal((const char *)gptr(LAYOUT_CMDLINE, strlen(cmdline) + 1), cmdline);
	assert_int_equal(si.rsdp_paddr, rsdp);
	assert_int_equal(si.memmap_paddr, LAYOUT_PVH_MEMMAP);
	assert_int_equal(si.memmap_entries, e820.n);
	assert_int_equal(si.reserved, 0);
	for (unsigned i = 0; i < e820.n; i++) {
		assert_int_equal(
		    vm_mem_read(&mem, LAYOUT_PVH_MEMMAP + i * sizeof(me), &me, sizeof(me)), 0);
		assert_int_equal(me.addr, e820.e[i].addr);
		assert_int_equal(me.size, e820.e[i].size);
		assert_int_equal(me.type, e820.e[i].type);
		assert_int_equal(me.reserved, 0);
	}
	if (!initrd) {
		assert_int_equal(si.nr_modules, 0);
		assert_int_equal(si.modlist_paddr, 0);
		return;
	}
	assert_int_equal(si.nr_modules, 1);
	assert_int_equal(si.modlist_paddr, LAYOUT_PVH_MODLIST);
	assert_int_equal(vm_mem_read(&mem, LAYOUT_PVH_MODLIST, &mod, sizeof(mod)), 0);
	assert_int_equal(mod.paddr, initrd);
	assert_int_equal(mod.size, initrd_len);
	assert_int_equal(mod.cmdline_paddr, 0);
	assert_int_equal(mod.reserved, 0);
}

static uint8_t *make_initrd(size_t len)
{
	uint8_t *b = malloc(len);

	assert_non_null(b);
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(i * 7 + 3);
	return b;
}

static void check_initrd(uint64_t gpa, const uint8_t *data, size_t len)
{
	assert_true(gpa % 4096 == 0);
	assert_memory_equal(gptr(gpa, len), data, len);
}

static void test_pvh_load(void **state)
{
	uint8_t img[ELF_CAP];
	struct elf_opts o = {0};
	struct payload p = {.cmdline = "console=ttyS0 reboot=k", .rsdp = LAYOUT_ACPI_START};
	struct load_result res;
	struct chv_err err;
	size_t len = build_elf(img, &o);

	(void)state;
	fill_guest(0x200000, 0x4000, 0xcc);
	fill_guest(LAYOUT_PVH_INFO, 0x1000, 0xcc);
	assert_int_equal(load(loader_load_pvh, img, len, &p, &res, &err), 0);
	assert_int_equal(res.proto, BOOT_PVH);
	assert_int_equal(res.entry, 0x200010);
	assert_int_equal(res.boot_info, LAYOUT_PVH_INFO);
	assert_int_equal(res.kernel_start, 0x200000);
	assert_int_equal(res.kernel_end, 0x203000);
	assert_int_equal(res.initramfs_gpa, 0);
	check_elf_loaded(0x200000);
	assert_int_equal(*gptr(0x203000, 1), 0xcc); /* nothing past memsz */
	check_start_info(p.cmdline, LAYOUT_ACPI_START, 0, 0);

	/* The same through the dispatcher, no ACPI, empty command line. */
	p = (struct payload){0};
	assert_int_equal(load(loader_load, img, len, &p, &res, &err), 0);
	assert_int_equal(res.proto, BOOT_PVH);
	check_start_info("", 0, 0, 0);
}

static void test_pvh_elf32_and_desc8(void **state)
{
	uint8_t img[ELF_CAP];
	struct elf_opts o = {.is32 = true, .base = 0x400000};
	struct load_result res;
	struct chv_err err;
	size_t len = build_elf(img, &o);

	(void)state;
	assert_int_equal(load(loader_load, img, len, NULL, &res, &err), 0);
	assert_int_equal(res.proto, BOOT_PVH);
	assert_int_equal(res.entry, 0x400010);
	check_elf_loaded(0x400000);

	o = (struct elf_opts){.desc8 = true, .base = 0x300000, .entry = 0x300020};
	len = build_elf(img, &o);
	assert_int_equal(load(loader_load, img, len, NULL, &res, &err), 0);
	assert_int_equal(res.entry, 0x300020);
	check_elf_loaded(0x300000);

	/* An 8-byte value above 4 GiB cannot be a 32-bit entry. */
	o.entry = 0x100300020ULL;
	len = build_elf(img, &o);
	assert_int_equal(load(loader_load, img, len, NULL, &res, &err), -EINVAL);
	assert_msg(&err, "32-bit");

	/* Notes in a segment declaring 8-byte alignment are padded to 8. */
	o = (struct elf_opts){0};
	len = build_elf(img, &o);
	put64(img + PH64(2) + P_ALIGN, 8);
	/* The GNU note's desc starts at 16 (12 + 4, already 8-aligned) and
	 * the note ends at 24 (20 rounded up): the Xen note moves to 0x218. */
	memmove(img + 0x218, img + ELF_XEN_NOTE, 20);
	memset(img + 0x214, 0, 4);
	put64(img + PH64(2) + P_FILESZ, 0x18 + 24);
	assert_int_equal(load(loader_load_pvh, img, len, NULL, &res, &err), 0);
	assert_int_equal(res.entry, 0x200010);
}

static void test_pvh_initramfs(void **state)
{
	uint8_t img[ELF_CAP];
	struct elf_opts o = {0};
	size_t len = build_elf(img, &o), ilen = 10000;
	uint8_t *initrd = make_initrd(ilen);
	struct payload p = {.cmdline = "x", .initrd = initrd, .initrd_len = ilen};
	struct load_result res;
	struct chv_err err;

	(void)state;
	assert_int_equal(load(loader_load, img, len, &p, &res, &err), 0);
	assert_int_equal(res.initramfs_gpa, (128 * MiB - ilen) & ~0xfffULL);
	check_initrd(res.initramfs_gpa, initrd, ilen);
	check_start_info("x", 0, res.initramfs_gpa, ilen);

	/* A kernel at the top of RAM pushes the initramfs below it. */
	o.base = 128 * MiB - 0x3000;
	len = build_elf(img, &o);
	assert_int_equal(load(loader_load, img, len, &p, &res, &err), 0);
	assert_int_equal(res.initramfs_gpa, (o.base - ilen) & ~0xfffULL);
	assert_true(res.initramfs_gpa + ilen <= res.kernel_start);
	check_initrd(res.initramfs_gpa, initrd, ilen);
	check_elf_loaded(o.base);

	/* Empty initramfs. */
	p.initrd_len = 0;
	assert_int_equal(load(loader_load, img, len, &p, &res, &err), -EINVAL);
	assert_msg(&err, "--initramfs");
	free(initrd);
}

static void test_pvh_initramfs_exact_fit(void **state)
{
	uint8_t img[ELF_CAP];
	struct elf_opts o = {0};
	size_t len = build_elf(img, &o);
	/* The kernel ends at 0x203000; [1 MiB, 2 MiB) below it is too small. */
	size_t ilen = 128 * MiB - 0x203000;
	uint8_t *initrd = make_initrd(ilen + 1);
	struct payload p = {.initrd = initrd, .initrd_len = ilen};
	struct load_result res;
	struct chv_err err;
	char want[64];

	(void)state;
	assert_int_equal(load(loader_load, img, len, &p, &res, &err), 0);
	assert_int_equal(res.initramfs_gpa, 0x203000);
	check_initrd(res.initramfs_gpa, initrd, ilen);
	check_elf_loaded(0x200000);

	p.initrd_len = ilen + 1;
	assert_int_equal(load(loader_load, img, len, &p, &res, &err), -ENOSPC);
	assert_msg(&err, "--initramfs");
	snprintf(want, sizeof(want), "%zu bytes do not fit", ilen + 1);
	assert_msg(&err, want);
	snprintf(want, sizeof(want), "%zu bytes are available", ilen);
	assert_msg(&err, want);
	free(initrd);
}

static void test_pvh_cmdline_limit(void **state)
{
	uint8_t img[ELF_CAP];
	struct elf_opts o = {0};
	size_t len = build_elf(img, &o);
	char *cmd = malloc(LAYOUT_CMDLINE_MAX + 1);
	struct payload p = {.cmdline = cmd};
	struct load_result res;
	struct chv_err err;

	(void)state;
	memset(cmd, 'a', LAYOUT_CMDLINE_MAX);
	cmd[LAYOUT_CMDLINE_MAX - 1] = 0; /* the longest that fits */
	assert_int_equal(load(loader_load, img, len, &p, &res, &err), 0);
	check_start_info(cmd, 0, 0, 0);

	cmd[LAYOUT_CMDLINE_MAX - 1] = 'a';
	cmd[LAYOUT_CMDLINE_MAX] = 0;
	assert_int_equal(load(loader_load, img, len, &p, &res, &err), -EINVAL);
	assert_msg(&err, "--cmdline");
	assert_msg(&err, "65536 bytes");
	free(cmd);
}

/* Memory sizes: the kernel at 2 MiB needs more than 2 MiB of RAM. */
static void test_pvh_small_memory(void **state)
{
	uint8_t img[ELF_CAP];
	struct elf_opts o = {0};
	size_t len = build_elf(img, &o);
	struct load_result res;
	struct chv_err err;
	uint8_t *initrd = make_initrd(5000);
	struct payload p = {.initrd = initrd, .initrd_len = 5000};

	(void)state;
	mem_setup(1 * MiB);
	assert_int_equal(load(loader_load, img, len, NULL, &res, &err), -EINVAL);
	assert_msg(&err, "outside guest RAM");

	mem_setup(2 * MiB);
	assert_int_equal(load(loader_load, img, len, NULL, &res, &err), -EINVAL);
	assert_msg(&err, "outside guest RAM");

	o.base = 0x100000;
	len = build_elf(img, &o);
	assert_int_equal(load(loader_load, img, len, &p, &res, &err), 0);
	assert_int_equal(res.initramfs_gpa, (2 * MiB - 5000) & ~0xfffULL);
	check_initrd(res.initramfs_gpa, initrd, 5000);
	check_elf_loaded(0x100000);
	check_start_info("", 0, res.initramfs_gpa, 5000);

	mem_setup(5 * GiB);
	assert_int_equal(load(loader_load, img, len, &p, &res, &err), 0);
	/* The initramfs stays in low RAM, below 3 GiB. */
	assert_int_equal(res.initramfs_gpa, (3 * GiB - 5000) & ~0xfffULL);
	check_start_info("", 0, res.initramfs_gpa, 5000);
	free(initrd);
	mem_setup(128 * MiB);
}

struct patch {
	unsigned off;
	unsigned width; /* 1, 2, 4 or 8 */
	uint64_t val;
};

struct bad_case {
	const char *what;
	struct patch p[2];
	int rc;
	const char *needle;
};

static void apply(uint8_t *img, const struct patch *p)
{
	switch (p->width) {
	case 1:
		img[p->off] = (uint8_t)p->val;
		break;
	case 2:
		put16(img + p->off, (uint16_t)p->val);
		break;
	case 4:
		put32(img + p->off, (uint32_t)p->val);
		break;
	case 8:
		put64(img + p->off, p->val);
		break;
	}
}

static const struct bad_case bad_elf[] = {
    {"magic", {{0, 1, 0}}, -ENOEXEC, "not an ELF"},
    {"class", {{4, 1, 3}}, -EINVAL, "class 3"},
    {"big endian", {{5, 1, 2}}, -EINVAL, "little-endian"},
    {"ident version", {{6, 1, 0}}, -EINVAL, "identification version"},
    {"ET_REL", {{16, 2, 1}}, -EINVAL, "type 1"},
    {"ET_DYN", {{16, 2, 3}}, -EINVAL, "type 3"},
    {"machine", {{18, 2, 40}}, -EINVAL, "machine 40"},
    {"e_version", {{20, 4, 2}}, -EINVAL, "ELF version 2"},
    {"e_ehsize", {{52, 2, 63}}, -EINVAL, "header size 63"},
    {"e_phentsize", {{54, 2, 32}}, -EINVAL, "entry size 32"},
    {"e_phnum 0", {{56, 2, 0}}, -EINVAL, "count 0"},
    {"e_phnum PN_XNUM", {{56, 2, 0xffff}}, -EINVAL, "count 65535"},
    {"e_phnum too many", {{56, 2, 100}}, -EINVAL, "program headers at offset"},
    {"e_phoff past end", {{32, 8, ELF_LEN}}, -EINVAL, "program headers at offset"},
    {"e_phoff partly out", {{32, 8, ELF_LEN - 100}}, -EINVAL, "program headers at offset"},
    {"e_phoff wraps", {{32, 8, UINT64_MAX - 8}}, -EINVAL, "program headers at offset"},
    {"filesz > memsz", {{PH64(0) + P_FILESZ, 8, 0x200}}, -EINVAL, "filesz 0x200 > memsz"},
    {"file range out", {{PH64(1) + P_OFFSET, 8, ELF_LEN - 0x7f}}, -EINVAL, "segment 1"},
    {"file offset wraps", {{PH64(1) + P_OFFSET, 8, UINT64_MAX - 0x10}}, -EINVAL, "segment 1"},
    {"filesz huge",
     {{PH64(1) + P_FILESZ, 8, UINT64_MAX}, {PH64(1) + P_MEMSZ, 8, UINT64_MAX}},
     -EINVAL,
     "segment 1"},
    {"below 1 MiB", {{PH64(0) + P_PADDR, 8, 0x90000}}, -EINVAL, "below 1 MiB"},
    {"straddles 1 MiB", {{PH64(0) + P_PADDR, 8, 0xfff80}}, -EINVAL, "below 1 MiB"},
    {"at 0", {{PH64(0) + P_PADDR, 8, 0}}, -EINVAL, "below 1 MiB"},
    {"past RAM end", {{PH64(0) + P_PADDR, 8, 128 * MiB}}, -EINVAL, "outside guest RAM"},
    {"crosses RAM end", {{PH64(1) + P_MEMSZ, 8, 128 * MiB}}, -EINVAL, "outside guest RAM"},
    {"in the MMIO hole",
     {{PH64(1) + P_PADDR, 8, LAYOUT_MMIO32_START}},
     -EINVAL,
     "outside guest RAM"},
    {"above 4 GiB", {{PH64(1) + P_PADDR, 8, LAYOUT_RAM64_START}}, -EINVAL, "above 4 GiB"},
    {"paddr wraps", {{PH64(1) + P_PADDR, 8, UINT64_MAX - 0x10}}, -EINVAL, "above 4 GiB"},
    {"memsz wraps", {{PH64(1) + P_MEMSZ, 8, UINT64_MAX}}, -EINVAL, "above 4 GiB"},
    {"note out of file", {{PH64(2) + P_OFFSET, 8, ELF_LEN - 8}}, -EINVAL, "note segment"},
    {"note filesz huge", {{PH64(2) + P_FILESZ, 8, UINT64_MAX}}, -EINVAL, "note segment"},
    {"no note segment", {{PH64(2) + P_TYPE, 4, 0}}, -ENOEXEC, "not a PVH ELF"},
    {"note name", {{ELF_XEN_NOTE + 13, 1, 'm'}}, -ENOEXEC, "not a PVH ELF"},
    {"note type", {{ELF_XEN_NOTE + 8, 4, 17}}, -ENOEXEC, "not a PVH ELF"},
    {"note namesz", {{ELF_XEN_NOTE, 4, 3}}, -ENOEXEC, "not a PVH ELF"},
    {"note cut short", {{PH64(2) + P_FILESZ, 8, 20 + 16 + 2}}, -EINVAL, "truncated"},
    {"desc size 2", {{ELF_XEN_NOTE + 4, 4, 2}}, -EINVAL, "2-byte value"},
    {"desc size 16", {{ELF_XEN_NOTE + 4, 4, 16}}, -EINVAL, "truncated"},
    {"descsz huge", {{ELF_XEN_NOTE + 4, 4, 0xffffffff}}, -EINVAL, "truncated"},
    {"namesz huge", {{ELF_XEN_NOTE, 4, 0xffffffff}}, -EINVAL, "truncated"},
    {"first note namesz", {{0x200, 4, 0xfffffff0}}, -EINVAL, "truncated"},
    {"entry below kernel", {{ELF_XEN_NOTE + 16, 4, 0x100}}, -EINVAL, "outside the loaded"},
    {"entry in bss", {{ELF_XEN_NOTE + 16, 4, 0x201090}}, -EINVAL, "outside the loaded"},
    {"no PT_LOAD",
     {{PH64(0) + P_TYPE, 4, 0}, {PH64(1) + P_TYPE, 4, 6}},
     -EINVAL,
     "no loadable segment"},
    {"empty PT_LOADs",
     {{PH64(0) + P_MEMSZ, 8, 0}, {PH64(0) + P_FILESZ, 8, 0}},
     -EINVAL,
     "outside the loaded"},
};

static void test_pvh_malformed(void **state)
{
	uint8_t img[ELF_CAP];
	struct elf_opts o = {0};
	struct load_result res;
	struct chv_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_elf) / sizeof(bad_elf[0]); i++) {
		const struct bad_case *c = &bad_elf[i];
		size_t len = build_elf(img, &o);
		int rc;

		for (unsigned j = 0; j < 2 && c->p[j].width; j++)
			apply(img, &c->p[j]);
		fill_guest(0x200000, 0x3000, 0xcc);
		rc = load(loader_load_pvh, img, len, NULL, &res, &err);
		if (rc != c->rc)
			fail_msg("%s: rc %d, expected %d (%s)", c->what, rc, c->rc, err.msg);
		if (!strstr(err.msg, c->needle) || strncmp(err.msg, "--kernel: ", 10) != 0)
			fail_msg("%s: message \"%s\" lacks \"%s\"", c->what, err.msg, c->needle);
		assert_int_equal(err.code, c->rc);
		/* Refused before anything was copied. */
		assert_int_equal(*gptr(0x200000, 1), 0xcc);
		assert_int_equal(*gptr(0x201000, 1), 0xcc);
	}
}

/* Every truncation of a valid image is refused, never over-read. */
static void test_pvh_truncated(void **state)
{
	uint8_t img[ELF_CAP];
	struct elf_opts o = {0};
	struct load_result res;
	struct chv_err err;
	size_t full = build_elf(img, &o);

	(void)state;
	for (size_t len = 0; len < full; len++) {
		int rc = load(loader_load_pvh, img, len, NULL, &res, &err);

		if (rc != (len < 4 ? -ENOEXEC : -EINVAL))
			fail_msg("length %zu: rc %d (%s)", len, rc, err.msg);
		assert_true(strncmp(err.msg, "--kernel: ", 10) == 0);
	}
	o.is32 = true;
	full = build_elf(img, &o);
	for (size_t len = 0; len < full; len++) {
		int rc = load(loader_load_pvh, img, len, NULL, &res, &err);

		if (rc != (len < 4 ? -ENOEXEC : -EINVAL))
			fail_msg("ELF32 length %zu: rc %d (%s)", len, rc, err.msg);
	}
}

/* ---- bzImage ----------------------------------------------------------- */

#define BZ_LEN	  0xa00
#define BZ_PM_OFF 0x400
#define BZ_PM_LEN (BZ_LEN - BZ_PM_OFF)

struct bz_opts {
	uint16_t version;
	uint64_t pref;
	uint32_t align;
	uint32_t init_size;
	uint32_t initrd_max;
	uint16_t xload;
};

static size_t build_bz(uint8_t *img, const struct bz_opts *o)
{
	memset(img, 0, BZ_LEN);
	for (unsigned i = 0; i < 0x1f1; i++) /* boot sector junk, never copied */
		img[i] = 0xee;
	img[0x1f1] = 1; /* setup_sects: the kernel starts at 0x400 */
	put16(img + 0x1f2, 1);
	put32(img + 0x1f4, BZ_PM_LEN / 16);
	put16(img + 0x1fa, 0xffff);
	put16(img + 0x1fe, 0xaa55);
	img[0x200] = 0xeb;
	img[0x201] = 0x6a; /* header ends at 0x26c */
	memcpy(img + 0x202, "HdrS", 4);
	put16(img + 0x206, o->version ? o->version : 0x020f);
	put16(img + 0x20e, 0x1234);
	img[0x211] = LOADED_HIGH;
	put32(img + 0x214, 0x100000);
	put32(img + 0x22c, o->initrd_max ? o->initrd_max : 0x7fffffff);
	put32(img + 0x230, o->align ? o->align : 0x200000);
	img[0x234] = 1;
	img[0x235] = 21;
	put16(img + 0x236, o->xload ? o->xload : XLF_KERNEL_64);
	put32(img + 0x238, 2047);
	put64(img + 0x258, o->pref ? o->pref : 0x1000000);
	put32(img + 0x260, o->init_size ? o->init_size : 0x800000);
	put32(img + 0x268, 0x12345678);
	img[0x270] = 0x99;		     /* past the declared header: not copied */
	for (unsigned i = 0; i < 0x200; i++) /* rest of the setup code */
		img[0x26c + 0x30 + i] = 0xdd;
	for (unsigned i = 0; i < BZ_PM_LEN; i++)
		img[BZ_PM_OFF + i] = (uint8_t)(i * 13 + 1);
	return BZ_LEN;
}

static void check_bz_loaded(const uint8_t *img)
{
	assert_memory_equal(gptr(0x100000, BZ_PM_LEN), img + BZ_PM_OFF, BZ_PM_LEN);
}

static void check_zero_page(const uint8_t *img, const char *cmdline, uint64_t rsdp, uint64_t initrd,
			    uint64_t initrd_len)
{
	const uint8_t *zp = gptr(LAYOUT_ZERO_PAGE, 4096);

	for (unsigned i = 0; i < 0x70; i++)
		assert_int_equal(zp[i], 0);
	assert_int_equal(get64(zp + 0x70), rsdp);
	assert_int_equal(get32(zp + 0xc0), (uint32_t)(initrd >> 32));
	assert_int_equal(get32(zp + 0xc4), (uint32_t)(initrd_len >> 32));
	assert_int_equal(get32(zp + 0xc8), 0);
	assert_int_equal(zp[0x1e8], e820.n);
	/* The header is the image's, but for the fields the loader owns. */
	for (unsigned off = 0x1f1; off < 0x26c; off++) {
		if (off == 0x210 || (off >= 0x214 && off < 0x220) || (off >= 0x228 && off < 0x22c))
			continue;
		if (zp[off] != img[off])
			fail_msg("zero page byte 0x%x is 0x%x, image has 0x%x", off, zp[off],
				 img[off]);
	}
	assert_int_equal(zp[0x210], 0xff);
	assert_int_equal(zp[0x211], LOADED_HIGH);
	assert_int_equal(get32(zp + 0x214), 0x100000);
	assert_int_equal(get32(zp + 0x218), (uint32_t)initrd);
	assert_int_equal(get32(zp + 0x21c), (uint32_t)initrd_len);
	assert_int_equal(get32(zp + 0x228), LAYOUT_CMDLINE);
	assert_int_equal(get32(zp + 0x268), 0x12345678);
	for (unsigned i = 0x26c; i < 0x2d0; i++)
		assert_int_equal(zp[i], 0);
	for (unsigned i = 0; i < e820.n; i++) {
		const uint8_t *e = zp + 0x2d0 + 20 * i;

		assert_int_equal(get64(e), e820.e[i].addr);
		assert_int_equal(get64(e + 8), e820.e[i].size);
		assert_int_equal(get32(e + 16), e820.e[i].type);
	}
	for (unsigned i = 0x2d0 + 20 * e820.n; i < 4096; i++)
		assert_int_equal(zp[i], 0);
	assert_string_equal((const char *)gptr(LAYOUT_CMDLINE, strlen(cmdline) + 1), cmdline);
}

static void test_bz_load(void **state)
{
	uint8_t img[BZ_LEN];
	struct bz_opts o = {0};
	size_t len = build_bz(img, &o);
	struct payload p = {.cmdline = "console=ttyS0 panic=-1", .rsdp = 0xe0000};
	struct load_result res;
	struct chv_err err;

	(void)state;
	fill_guest(LAYOUT_ZERO_PAGE, 4096, 0xcc);
	assert_int_equal(load(loader_load_bzimage, img, len, &p, &res, &err), 0);
	assert_int_equal(res.proto, BOOT_LINUX64);
	assert_int_equal(res.entry, 0x100200);
	assert_int_equal(res.boot_info, LAYOUT_ZERO_PAGE);
	assert_int_equal(res.kernel_start, 0x100000);
	/* Decompressed at pref_address (16 MiB) with init_size 8 MiB. */
	assert_int_equal(res.kernel_end, 0x1800000);
	assert_int_equal(res.initramfs_gpa, 0);
	check_bz_loaded(img);
	check_zero_page(img, p.cmdline, 0xe0000, 0, 0);

	/* Through the dispatcher: an older 2.12 header works too. */
	o.version = 0x020c;
	len = build_bz(img, &o);
	fill_guest(LAYOUT_ZERO_PAGE, 4096, 0xcc);
	assert_int_equal(load(loader_load, img, len, NULL, &res, &err), 0);
	assert_int_equal(res.proto, BOOT_LINUX64);
	check_zero_page(img, "", 0, 0, 0);

	/* setup_sects 0 means 4: the kernel then starts at 0xa00. */
	o = (struct bz_opts){0};
	{
		uint8_t big[0xa00 + BZ_PM_LEN];

		build_bz(img, &o);
		memcpy(big, img, BZ_PM_OFF);
		memset(big + BZ_PM_OFF, 0, 0xa00 - BZ_PM_OFF);
		memcpy(big + 0xa00, img + BZ_PM_OFF, BZ_PM_LEN);
		big[0x1f1] = 0;
		assert_int_equal(load(loader_load, big, sizeof(big), NULL, &res, &err), 0);
		assert_memory_equal(gptr(0x100000, BZ_PM_LEN), big + 0xa00, BZ_PM_LEN);
	}

	/* A header claiming to run past its space is copied only up to 0x290. */
	build_bz(img, &o);
	img[0x201] = 0xff;
	assert_int_equal(load(loader_load, img, BZ_LEN, NULL, &res, &err), 0);
	assert_int_equal(*gptr(LAYOUT_ZERO_PAGE + 0x270, 1), 0x99);
	for (unsigned i = 0x290; i < 0x2d0; i++)
		assert_int_equal(*gptr(LAYOUT_ZERO_PAGE + i, 1), 0);

	/* A file longer than syssize (an appended signature) is accepted. */
	{
		uint8_t longer[BZ_LEN + 100];

		build_bz(img, &o);
		memcpy(longer, img, BZ_LEN);
		memset(longer + BZ_LEN, 0x42, 100);
		assert_int_equal(load(loader_load, longer, sizeof(longer), NULL, &res, &err), 0);
	}

	/* syssize rounds up: a kernel whose last paragraph is partial is accepted,
	 * one that ends a whole paragraph short is cut. */
	build_bz(img, &o);
	assert_int_equal(load(loader_load, img, BZ_LEN - 5, NULL, &res, &err), 0);
	assert_int_equal(load(loader_load, img, BZ_LEN - 16, NULL, &res, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "syssize"));
}

static void test_bz_placement(void **state)
{
	uint8_t img[BZ_LEN];
	struct bz_opts o = {0};
	size_t len = build_bz(img, &o), ilen = 5000;
	uint8_t *initrd = make_initrd(ilen);
	struct payload p = {.cmdline = "a", .initrd = initrd, .initrd_len = ilen};
	struct load_result res;
	struct chv_err err;

	(void)state;
	assert_int_equal(load(loader_load, img, len, &p, &res, &err), 0);
	assert_int_equal(res.initramfs_gpa, (128 * MiB - ilen) & ~0xfffULL);
	check_initrd(res.initramfs_gpa, initrd, ilen);
	check_zero_page(img, "a", 0, res.initramfs_gpa, ilen);

	/* initrd_addr_max caps the initramfs (the kernel ends at 2 MiB here). */
	o = (struct bz_opts){
	    .pref = 0x100000, .align = 0x1000, .init_size = 0x100000, .initrd_max = 0x3fffff};
	len = build_bz(img, &o);
	assert_int_equal(load(loader_load, img, len, &p, &res, &err), 0);
	assert_int_equal(res.kernel_end, 0x200000);
	assert_int_equal(res.initramfs_gpa, (0x400000 - ilen) & ~0xfffULL);
	check_initrd(res.initramfs_gpa, initrd, ilen);
	check_zero_page(img, "a", 0, res.initramfs_gpa, ilen);

	/* ... unless the kernel takes it anywhere. */
	o.xload = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G;
	len = build_bz(img, &o);
	assert_int_equal(load(loader_load, img, len, &p, &res, &err), 0);
	assert_int_equal(res.initramfs_gpa, (128 * MiB - ilen) & ~0xfffULL);

	/* Too large for the 2 MiB between the kernel and initrd_addr_max. */
	free(initrd);
	ilen = 2 * MiB + 1;
	initrd = make_initrd(ilen);
	p.initrd = initrd;
	p.initrd_len = ilen;
	o.xload = XLF_KERNEL_64;
	len = build_bz(img, &o);
	assert_int_equal(load(loader_load, img, len, &p, &res, &err), -ENOSPC);
	assert_msg(&err, "--initramfs: 2097153 bytes");
	assert_msg(&err, "2097152 bytes are available");
	p.initrd_len = 2 * MiB;
	assert_int_equal(load(loader_load, img, len, &p, &res, &err), 0);
	assert_int_equal(res.initramfs_gpa, 0x200000);
	free(initrd);
}

static void test_bz_memory_sizes(void **state)
{
	uint8_t img[BZ_LEN];
	struct bz_opts o = {0};
	size_t len = build_bz(img, &o);
	struct load_result res;
	struct chv_err err;

	(void)state;
	/* The default header needs RAM up to 24 MiB. */
	mem_setup(16 * MiB);
	assert_int_equal(load(loader_load, img, len, NULL, &res, &err), -ENOSPC);
	assert_msg(&err, "--kernel");
	assert_msg(&err, "init_size");
	mem_setup(24 * MiB);
	assert_int_equal(load(loader_load, img, len, NULL, &res, &err), 0);

	o = (struct bz_opts){.pref = 0x100000, .align = 0x1000, .init_size = 0x100000};
	len = build_bz(img, &o);
	mem_setup(1 * MiB);
	assert_int_equal(load(loader_load, img, len, NULL, &res, &err), -ENOSPC);
	assert_msg(&err, "does not fit");
	mem_setup(2 * MiB);
	assert_int_equal(load(loader_load, img, len, NULL, &res, &err), 0);
	check_bz_loaded(img);
	check_zero_page(img, "", 0, 0, 0);

	mem_setup(5 * GiB);
	o = (struct bz_opts){0};
	len = build_bz(img, &o);
	assert_int_equal(load(loader_load, img, len, NULL, &res, &err), 0);
	check_zero_page(img, "", 0, 0, 0);
	assert_int_equal(e820.n, 5);
	mem_setup(128 * MiB);
}

static void test_bz_cmdline_size(void **state)
{
	uint8_t img[BZ_LEN];
	struct bz_opts o = {0};
	size_t len = build_bz(img, &o);
	struct payload p = {.cmdline = "0123456789"};
	struct load_result res;
	struct chv_err err;

	(void)state;
	put32(img + 0x238, 10);
	assert_int_equal(load(loader_load, img, len, &p, &res, &err), 0);
	p.cmdline = "0123456789a";
	assert_int_equal(load(loader_load, img, len, &p, &res, &err), -EINVAL);
	assert_msg(&err, "--cmdline: 11 bytes");
	assert_msg(&err, "at most 10");
}

static const struct bad_case bad_bz[] = {
    {"no HdrS", {{0x202, 4, 0x53726447}}, -ENOEXEC, "no HdrS"},
    {"boot_flag", {{0x1fe, 2, 0x55aa}}, -EINVAL, "boot_flag is 0x55aa"},
    {"version 2.11", {{0x206, 2, 0x020b}}, -EINVAL, "2.11 is too old"},
    {"version 1.0", {{0x206, 2, 0x0100}}, -EINVAL, "1.00 is too old"},
    {"no 64-bit entry", {{0x236, 2, 0}}, -EINVAL, "XLF_KERNEL_64"},
    {"not loaded high", {{0x211, 1, 0}}, -EINVAL, "LOADED_HIGH"},
    {"setup_sects past end", {{0x1f1, 1, 5}}, -EINVAL, "setup_sects 5"},
    {"setup_sects 255", {{0x1f1, 1, 255}}, -EINVAL, "setup_sects 255"},
    {"setup_sects 0 = 4", {{0x1f1, 1, 0}}, -EINVAL, "offset 0xa00"},
    {"syssize 0", {{0x1f4, 4, 0}}, -EINVAL, "syssize 0"},
    {"syssize too big", {{0x1f4, 4, BZ_PM_LEN / 16 + 1}}, -EINVAL, "syssize"},
    {"syssize huge", {{0x1f4, 4, 0xffffffff}}, -EINVAL, "syssize 4294967295"},
    {"alignment 0", {{0x230, 4, 0}}, -EINVAL, "kernel_alignment 0x0"},
    {"alignment 3 MiB", {{0x230, 4, 0x300000}}, -EINVAL, "power of two"},
    {"init_size huge", {{0x260, 4, 0xffffffff}}, -ENOSPC, "init_size"},
    {"pref_address huge", {{0x258, 8, UINT64_MAX}}, -ENOSPC, "init_size"},
    {"pref_address past RAM", {{0x258, 8, 128 * MiB}}, -ENOSPC, "init_size"},
};

static void test_bz_malformed(void **state)
{
	uint8_t img[BZ_LEN];
	struct bz_opts o = {0};
	struct load_result res;
	struct chv_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_bz) / sizeof(bad_bz[0]); i++) {
		const struct bad_case *c = &bad_bz[i];
		size_t len = build_bz(img, &o);
		int rc;

		for (unsigned j = 0; j < 2 && c->p[j].width; j++)
			apply(img, &c->p[j]);
		fill_guest(0x100000, 16, 0xcc);
		rc = load(loader_load_bzimage, img, len, NULL, &res, &err);
		if (rc != c->rc)
			fail_msg("%s: rc %d, expected %d (%s)", c->what, rc, c->rc, err.msg);
		if (!strstr(err.msg, c->needle) || strncmp(err.msg, "--kernel: ", 10) != 0)
			fail_msg("%s: message \"%s\" lacks \"%s\"", c->what, err.msg, c->needle);
		assert_int_equal(*gptr(0x100000, 1), 0xcc);
	}

	/* A non-relocatable kernel needs no power-of-two alignment. */
	build_bz(img, &o);
	img[0x234] = 0;
	put32(img + 0x230, 0x300000);
	assert_int_equal(load(loader_load_bzimage, img, BZ_LEN, NULL, &res, &err), 0);
}

static void test_bz_truncated(void **state)
{
	uint8_t img[BZ_LEN];
	struct bz_opts o = {0};
	struct load_result res;
	struct chv_err err;
	size_t full = build_bz(img, &o);

	(void)state;
	/* Up to the start of the last 16-byte paragraph: syssize rounds up, so
	 * a cut inside the last paragraph is a valid (shorter) kernel. */
	for (size_t len = 0; len <= full - 16; len++) {
		int rc = load(loader_load_bzimage, img, len, NULL, &res, &err);
		int want = len < 0x206 ? -ENOEXEC : -EINVAL;

		if (rc != want)
			fail_msg("length %zu: rc %d (%s)", len, rc, err.msg);
		if (len >= 0x206 && len < 1024)
			assert_msg(&err, "truncated");
	}
}

/* ---- dispatch ---------------------------------------------------------- */

static void test_dispatch(void **state)
{
	static const char fallback[] = "--kernel: not a PVH ELF (no XEN_ELFNOTE_PHYS32_ENTRY note) "
				       "nor a bzImage (no HdrS header)";
	uint8_t img[ELF_CAP];
	struct elf_opts eo = {0};
	struct load_result res;
	struct chv_err err;
	size_t len;

	(void)state;
	memset(img, 'A', sizeof(img));
	assert_int_equal(load(loader_load, img, 1024, NULL, &res, &err), -ENOEXEC);
	assert_string_equal(err.msg, fallback);
	assert_int_equal(load(loader_load, img, 0, NULL, &res, &err), -ENOEXEC);
	assert_string_equal(err.msg, fallback);
	assert_int_equal(load(loader_load, img, 3, NULL, &res, &err), -ENOEXEC);

	/* An x86-64 ELF without the PVH note (a plain vmlinux). */
	len = build_elf(img, &eo);
	put32(img + ELF_XEN_NOTE + 8, 99);
	assert_int_equal(load(loader_load, img, len, NULL, &res, &err), -ENOEXEC);
	assert_string_equal(err.msg, fallback);

	/* A malformed PVH ELF reports its own error, not the fallback. */
	len = build_elf(img, &eo);
	put16(img + 56, 100);
	assert_int_equal(load(loader_load, img, len, NULL, &res, &err), -EINVAL);
	assert_msg(&err, "program headers");

	/* A malformed bzImage likewise. */
	len = build_bz(img, &(struct bz_opts){.version = 0x0209});
	assert_int_equal(load(loader_load, img, len, NULL, &res, &err), -EINVAL);
	assert_msg(&err, "2.09 is too old");
}

static void test_incomplete_request(void **state)
{
	uint8_t img[ELF_CAP];
	struct elf_opts eo = {0};
	size_t len = build_elf(img, &eo);
	struct load_request req = {.kernel = img, .kernel_len = len, .cmdline = "", .e820 = &e820};
	struct load_result res;
	struct chv_err err = {0};
	struct e820_table big;

	(void)state;
	req.cmdline = NULL;
	assert_int_equal(loader_load(&mem, &req, &res, &err), -EINVAL);
	assert_int_equal(loader_load_pvh(&mem, &req, &res, &err), -EINVAL);
	assert_int_equal(loader_load_bzimage(&mem, &req, &res, &err), -EINVAL);
	req.cmdline = "";
	req.e820 = NULL;
	assert_int_equal(loader_load(&mem, &req, &res, &err), -EINVAL);
	req.e820 = &e820;
	req.kernel = NULL;
	assert_int_equal(loader_load(&mem, &req, &res, &err), -EINVAL);
	req.kernel = img;
	assert_int_equal(loader_load(NULL, &req, &res, &err), -EINVAL);
	assert_int_equal(loader_load(&mem, NULL, &res, &err), -EINVAL);
	assert_int_equal(loader_load(&mem, &req, NULL, &err), -EINVAL);
	big = e820;
	big.n = E820_MAX + 1;
	req.e820 = &big;
	assert_int_equal(loader_load(&mem, &req, &res, &err), -EINVAL);
	assert_msg(&err, "e820");
	/* A NULL err is allowed. */
	assert_int_equal(loader_load(&mem, &req, &res, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pvh_load),
	    cmocka_unit_test(test_pvh_elf32_and_desc8),
	    cmocka_unit_test(test_pvh_initramfs),
	    cmocka_unit_test(test_pvh_initramfs_exact_fit),
	    cmocka_unit_test(test_pvh_cmdline_limit),
	    cmocka_unit_test(test_pvh_small_memory),
	    cmocka_unit_test(test_pvh_malformed),
	    cmocka_unit_test(test_pvh_truncated),
	    cmocka_unit_test(test_bz_load),
	    cmocka_unit_test(test_bz_placement),
	    cmocka_unit_test(test_bz_memory_sizes),
	    cmocka_unit_test(test_bz_cmdline_size),
	    cmocka_unit_test(test_bz_malformed),
	    cmocka_unit_test(test_bz_truncated),
	    cmocka_unit_test(test_dispatch),
	    cmocka_unit_test(test_incomplete_request),
	};

	return cmocka_run_group_tests(tests, setup_128m, teardown);
}
