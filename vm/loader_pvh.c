/* PVH loader: an x86 ELF (64- or 32-bit) carrying XEN_ELFNOTE_PHYS32_ENTRY.
 * The whole image, the command line and the initramfs placement are checked
 * before any segment is copied, so a refused image never leaves a partly
 * loaded kernel behind. */
#include <elf.h>
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "vm/loader.h"
#include "vm/loader_priv.h"
#include "vm/pvh.h"

_Static_assert(LAYOUT_PVH_INFO + sizeof(struct hvm_start_info) <= LAYOUT_PVH_MODLIST,
	       "hvm_start_info overlaps the module list");
_Static_assert(LAYOUT_PVH_MODLIST + sizeof(struct hvm_modlist_entry) <= LAYOUT_PVH_MEMMAP,
	       "module list overlaps the memory map");
_Static_assert(LAYOUT_PVH_MEMMAP + E820_MAX * sizeof(struct hvm_memmap_table_entry) <=
		   LAYOUT_ZERO_PAGE,
	       "PVH memory map overlaps the zero page");

/* The fields of an ELF header and program header that matter here, in the
 * same form for both classes. */
struct elf_image {
	const uint8_t *b;
	size_t len;
	bool is64;
	uint64_t phoff;
	unsigned phnum;
};

struct elf_seg {
	uint32_t type;
	uint64_t offset, paddr, filesz, memsz, align;
};

static uint16_t rd16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

/* [off, off + size) lies inside a len-byte buffer, without wrapping. */
static bool in_file(uint64_t off, uint64_t size, size_t len)
{
	return off <= len && size <= len - off;
}

static int parse_ehdr(struct elf_image *e, struct chv_err *err)
{
	const uint8_t *b = e->b;
	uint16_t type, machine, ehsize, phentsize, want_machine;
	size_t ehdr_size, phdr_size;
	uint32_t version;

	if (e->len < SELFMAG || memcmp(b, ELFMAG, SELFMAG) != 0)
		return chv_err_set(err, -ENOEXEC, "--kernel: not an ELF file");
	if (e->len < EI_NIDENT)
		return chv_err_set(err, -EINVAL, "--kernel: ELF header truncated (%zu bytes)",
				   e->len);
	if (b[EI_CLASS] == ELFCLASS64) {
		e->is64 = true;
		ehdr_size = sizeof(Elf64_Ehdr);
		phdr_size = sizeof(Elf64_Phdr);
		want_machine = EM_X86_64;
	} else if (b[EI_CLASS] == ELFCLASS32) {
		e->is64 = false;
		ehdr_size = sizeof(Elf32_Ehdr);
		phdr_size = sizeof(Elf32_Phdr);
		want_machine = EM_386;
	} else {
		return chv_err_set(err, -EINVAL, "--kernel: ELF class %u is neither 32 nor 64-bit",
				   b[EI_CLASS]);
	}
	if (b[EI_DATA] != ELFDATA2LSB)
		return chv_err_set(err, -EINVAL,
				   "--kernel: ELF data encoding %u is not little-endian",
				   b[EI_DATA]);
	if (b[EI_VERSION] != EV_CURRENT)
		return chv_err_set(err, -EINVAL, "--kernel: ELF identification version %u is not 1",
				   b[EI_VERSION]);
	if (e->len < ehdr_size)
		return chv_err_set(err, -EINVAL,
				   "--kernel: ELF header truncated (%zu of %zu bytes)", e->len,
				   ehdr_size);

	/* e_type, e_machine and e_version sit at the same offsets in both classes. */
	type = rd16(b + offsetof(Elf64_Ehdr, e_type));
	machine = rd16(b + offsetof(Elf64_Ehdr, e_machine));
	version = rd32(b + offsetof(Elf64_Ehdr, e_version));
	if (e->is64) {
		e->phoff = rd64(b + offsetof(Elf64_Ehdr, e_phoff));
		ehsize = rd16(b + offsetof(Elf64_Ehdr, e_ehsize));
		phentsize = rd16(b + offsetof(Elf64_Ehdr, e_phentsize));
		e->phnum = rd16(b + offsetof(Elf64_Ehdr, e_phnum));
	} else {
		e->phoff = rd32(b + offsetof(Elf32_Ehdr, e_phoff));
		ehsize = rd16(b + offsetof(Elf32_Ehdr, e_ehsize));
		phentsize = rd16(b + offsetof(Elf32_Ehdr, e_phentsize));
		e->phnum = rd16(b + offsetof(Elf32_Ehdr, e_phnum));
	}
	if (type != ET_EXEC)
		return chv_err_set(err, -EINVAL, "--kernel: ELF type %u is not an executable (2)",
				   type);
	if (machine != want_machine)
		return chv_err_set(err, -EINVAL, "--kernel: ELF machine %u is not %s", machine,
				   e->is64 ? "x86-64 (62)" : "i386 (3)");
	if (version != EV_CURRENT)
		return chv_err_set(err, -EINVAL, "--kernel: ELF version %u is not 1", version);
	if (ehsize != ehdr_size)
		return chv_err_set(err, -EINVAL, "--kernel: ELF header size %u, expected %zu",
				   ehsize, ehdr_size);
	if (e->phnum == 0 || e->phnum == PN_XNUM)
		return chv_err_set(err, -EINVAL, "--kernel: ELF program header count %u is invalid",
				   e->phnum);
	if (phentsize != phdr_size)
		return chv_err_set(err, -EINVAL,
				   "--kernel: ELF program header entry size %u, expected %zu",
				   phentsize, phdr_size);
	if (!in_file(e->phoff, (uint64_t)e->phnum * phdr_size, e->len))
		return chv_err_set(
		    err, -EINVAL,
		    "--kernel: ELF program headers at offset 0x%llx (%u entries) lie "
		    "outside the %zu-byte image",
		    (unsigned long long)e->phoff, e->phnum, e->len);
	return 0;
}

static void read_phdr(const struct elf_image *e, unsigned i, struct elf_seg *s)
{
	const uint8_t *p;

	if (e->is64) {
		p = e->b + e->phoff + (uint64_t)i * sizeof(Elf64_Phdr);
		s->type = rd32(p + offsetof(Elf64_Phdr, p_type));
		s->offset = rd64(p + offsetof(Elf64_Phdr, p_offset));
		s->paddr = rd64(p + offsetof(Elf64_Phdr, p_paddr));
		s->filesz = rd64(p + offsetof(Elf64_Phdr, p_filesz));
		s->memsz = rd64(p + offsetof(Elf64_Phdr, p_memsz));
		s->align = rd64(p + offsetof(Elf64_Phdr, p_align));
	} else {
		p = e->b + e->phoff + (uint64_t)i * sizeof(Elf32_Phdr);
		s->type = rd32(p + offsetof(Elf32_Phdr, p_type));
		s->offset = rd32(p + offsetof(Elf32_Phdr, p_offset));
		s->paddr = rd32(p + offsetof(Elf32_Phdr, p_paddr));
		s->filesz = rd32(p + offsetof(Elf32_Phdr, p_filesz));
		s->memsz = rd32(p + offsetof(Elf32_Phdr, p_memsz));
		s->align = rd32(p + offsetof(Elf32_Phdr, p_align));
	}
}

/* Scans one PT_NOTE segment. 1 and *entry set when the PVH note is there,
 * 0 when it is not, -EINVAL when the notes are malformed. */
static int scan_notes(const struct elf_image *e, const struct elf_seg *s, uint64_t *entry,
		      struct chv_err *err)
{
	/* Notes are 4-byte aligned in practice; a segment declaring 8 uses 8. */
	uint64_t a = s->align == 8 ? 8 : 4, pos = 0;
	const uint8_t *n;

	if (!in_file(s->offset, s->filesz, e->len))
		return chv_err_set(err, -EINVAL,
				   "--kernel: ELF note segment [0x%llx, +0x%llx) lies outside the "
				   "%zu-byte image",
				   (unsigned long long)s->offset, (unsigned long long)s->filesz,
				   e->len);
	n = e->b + s->offset;
	while (s->filesz - pos >= 12) {
		uint64_t namesz = rd32(n + pos), descsz = rd32(n + pos + 4);
		uint32_t type = rd32(n + pos + 8);
		uint64_t name_at = pos + 12, desc_at, next;

		/* Padding aligns offsets from the note's start (which pos keeps
		 * aligned); the 32-bit sizes keep every sum far from wrapping. */
		desc_at = (name_at + namesz + a - 1) & ~(a - 1);
		next = (desc_at + descsz + a - 1) & ~(a - 1);
		if (desc_at > s->filesz || descsz > s->filesz - desc_at)
			return chv_err_set(err, -EINVAL,
					   "--kernel: ELF note at offset 0x%llx is truncated "
					   "(namesz %llu, descsz %llu)",
					   (unsigned long long)(s->offset + pos),
					   (unsigned long long)namesz, (unsigned long long)descsz);
		if (namesz == 4 && memcmp(n + name_at, "Xen", 4) == 0 &&
		    type == XEN_ELFNOTE_PHYS32_ENTRY) {
			if (descsz == 4)
				*entry = rd32(n + desc_at);
			else if (descsz == 8)
				*entry = rd64(n + desc_at);
			else
				return chv_err_set(
				    err, -EINVAL,
				    "--kernel: XEN_ELFNOTE_PHYS32_ENTRY has a %llu-byte "
				    "value (4 or 8 expected)",
				    (unsigned long long)descsz);
			return 1;
		}
		pos = next < s->filesz ? next : s->filesz;
	}
	return 0;
}

static int find_pvh_entry(const struct elf_image *e, uint64_t *entry, struct chv_err *err)
{
	struct elf_seg s;
	int rc;

	for (unsigned i = 0; i < e->phnum; i++) {
		read_phdr(e, i, &s);
		if (s.type != PT_NOTE)
			continue;
		rc = scan_notes(e, &s, entry, err);
		if (rc)
			return rc < 0 ? rc : 0;
	}
	return chv_err_set(err, -ENOEXEC,
			   "--kernel: not a PVH ELF (no XEN_ELFNOTE_PHYS32_ENTRY note)");
}

static int check_load(const struct elf_image *e, const struct vm_mem *m, unsigned i,
		      const struct elf_seg *s, struct chv_err *err)
{
	if (s->filesz > s->memsz)
		return chv_err_set(err, -EINVAL,
				   "--kernel: ELF segment %u has filesz 0x%llx > memsz 0x%llx", i,
				   (unsigned long long)s->filesz, (unsigned long long)s->memsz);
	if (!in_file(s->offset, s->filesz, e->len))
		return chv_err_set(err, -EINVAL,
				   "--kernel: ELF segment %u [0x%llx, +0x%llx) lies outside the "
				   "%zu-byte image",
				   i, (unsigned long long)s->offset, (unsigned long long)s->filesz,
				   e->len);
	if (s->memsz == 0)
		return 0;
	if (s->paddr < LAYOUT_HIGH_RAM_START)
		return chv_err_set(err, -EINVAL,
				   "--kernel: ELF segment %u at 0x%llx is below 1 MiB, where the "
				   "VMM keeps its boot structures",
				   i, (unsigned long long)s->paddr);
	/* PVH enters in 32-bit mode: everything must be below 4 GiB. */
	if (s->paddr >= LOADER_4G || s->memsz > LOADER_4G - s->paddr)
		return chv_err_set(err, -EINVAL,
				   "--kernel: ELF segment %u [0x%llx, +0x%llx) reaches above 4 GiB",
				   i, (unsigned long long)s->paddr, (unsigned long long)s->memsz);
	if (!vm_mem_ptr(m, s->paddr, s->memsz))
		return chv_err_set(
		    err, -EINVAL,
		    "--kernel: ELF segment %u [0x%llx, 0x%llx) lies outside guest RAM "
		    "(RAM below 4 GiB ends at 0x%llx; raise --memory)",
		    i, (unsigned long long)s->paddr, (unsigned long long)(s->paddr + s->memsz),
		    (unsigned long long)loader_low_ram_end(m));
	return 0;
}

/* Validates every PT_LOAD and returns the image's extent; copies nothing. */
static int check_loads(const struct elf_image *e, const struct vm_mem *m, uint64_t entry,
		       uint64_t *kstart, uint64_t *kend, struct chv_err *err)
{
	bool entry_ok = false;
	unsigned nload = 0;
	struct elf_seg s;
	int rc;

	*kstart = UINT64_MAX;
	*kend = 0;
	for (unsigned i = 0; i < e->phnum; i++) {
		read_phdr(e, i, &s);
		if (s.type != PT_LOAD)
			continue;
		rc = check_load(e, m, i, &s, err);
		if (rc)
			return rc;
		if (s.memsz == 0)
			continue;
		nload++;
		if (s.paddr < *kstart)
			*kstart = s.paddr;
		if (s.paddr + s.memsz > *kend)
			*kend = s.paddr + s.memsz;
		if (entry >= s.paddr && entry - s.paddr < s.filesz)
			entry_ok = true;
	}
	if (!nload)
		return chv_err_set(err, -EINVAL, "--kernel: ELF has no loadable segment");
	if (!entry_ok)
		return chv_err_set(err, -EINVAL,
				   "--kernel: PVH entry point 0x%llx lies outside the loaded code",
				   (unsigned long long)entry);
	return 0;
}

static void copy_loads(const struct elf_image *e, struct vm_mem *m)
{
	struct elf_seg s;

	for (unsigned i = 0; i < e->phnum; i++) {
		uint8_t *dst;

		read_phdr(e, i, &s);
		if (s.type != PT_LOAD || s.memsz == 0)
			continue;
		dst = vm_mem_ptr(m, s.paddr, s.memsz); /* checked by check_load() */
		memcpy(dst, e->b + s.offset, s.filesz);
		memset(dst + s.filesz, 0, s.memsz - s.filesz);
	}
}

static int write_start_info(struct vm_mem *m, const struct load_request *req, uint64_t initrd,
			    struct chv_err *err)
{
	struct hvm_memmap_table_entry map[E820_MAX];
	struct hvm_start_info si = {
	    .magic = XEN_HVM_START_MAGIC_VALUE,
	    .version = 1,
	    .flags = 0,
	    .cmdline_paddr = LAYOUT_CMDLINE,
	    .rsdp_paddr = req->rsdp_gpa,
	    .memmap_paddr = LAYOUT_PVH_MEMMAP,
	    .memmap_entries = req->e820->n,
	};
	const struct e820_table *t = req->e820;

	memset(map, 0, sizeof(map));
	for (unsigned i = 0; i < t->n; i++)
		map[i] = (struct hvm_memmap_table_entry){
		    .addr = t->e[i].addr, .size = t->e[i].size, .type = t->e[i].type};
	if (initrd) {
		struct hvm_modlist_entry mod = {.paddr = initrd, .size = req->initramfs_len};

		si.nr_modules = 1;
		si.modlist_paddr = LAYOUT_PVH_MODLIST;
		if (vm_mem_write(m, LAYOUT_PVH_MODLIST, &mod, sizeof(mod)))
			return chv_err_set(
			    err, -EFAULT,
			    "--memory: guest RAM is too small for the PVH module list");
	}
	if ((t->n && vm_mem_write(m, LAYOUT_PVH_MEMMAP, map, t->n * sizeof(map[0]))) ||
	    vm_mem_write(m, LAYOUT_PVH_INFO, &si, sizeof(si)))
		return chv_err_set(err, -EFAULT,
				   "--memory: guest RAM is too small for the PVH boot structures");
	return 0;
}

int loader_load_pvh(struct vm_mem *m, const struct load_request *req, struct load_result *res,
		    struct chv_err *err)
{
	struct elf_image e = {0};
	uint64_t entry = 0, kstart, kend, initrd;
	int rc;

	rc = loader_check_request(m, req, res, "loader_load_pvh", err);
	if (rc)
		return rc;
	e.b = req->kernel;
	e.len = req->kernel ? req->kernel_len : 0;
	rc = parse_ehdr(&e, err);
	if (rc)
		return rc;
	rc = find_pvh_entry(&e, &entry, err);
	if (rc)
		return rc;
	if (entry >= LOADER_4G)
		return chv_err_set(err, -EINVAL,
				   "--kernel: PVH entry point 0x%llx is not a 32-bit address",
				   (unsigned long long)entry);
	rc = check_loads(&e, m, entry, &kstart, &kend, err);
	if (rc)
		return rc;

	rc = loader_put_cmdline(m, req->cmdline, LAYOUT_CMDLINE_MAX, err);
	if (rc)
		return rc;
	rc = loader_put_initramfs(m, req, LOADER_4G, kstart, kend, &initrd, err);
	if (rc)
		return rc;
	copy_loads(&e, m);
	rc = write_start_info(m, req, initrd, err);
	if (rc)
		return rc;

	*res = (struct load_result){
	    .proto = BOOT_PVH,
	    .entry = entry,
	    .boot_info = LAYOUT_PVH_INFO,
	    .kernel_start = kstart,
	    .kernel_end = kend,
	    .initramfs_gpa = initrd,
	};
	return 0;
}
