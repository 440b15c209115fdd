/* mkbzimage: glues the test guest's setup sectors (setup.S) to its flat
 * binary and fills in the sizes of the boot protocol header.
 *   mkbzimage SETUP.bin KERNEL.bin KERNEL.elf OUT.bzImage
 * init_size comes from the ELF's PT_LOAD segments, so the loader reserves
 * room for .bss and the stacks that the flat binary leaves out. */
#include <elf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm/err.h"

#define LOAD_ADDR 0x100000u

struct buf {
	uint8_t *p;
	size_t n;
};

static chv_must_check int read_file(const char *path, struct buf *b)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "mkbzimage: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	b->p = NULL;
	b->n = 0;
	size_t cap = 0;
	for (;;) {
		if (b->n == cap) {
			cap = cap ? cap * 2 : 65536;
			uint8_t *np = realloc(b->p, cap);
			if (!np) {
				fclose(f);
				return -ENOMEM;
			}
			b->p = np;
		}
		size_t got = fread(b->p + b->n, 1, cap - b->n, f);
		b->n += got;
		if (got == 0)
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		fprintf(stderr, "mkbzimage: %s: read error\n", path);
		return -EIO;
	}
	return 0;
}

/* The end of the highest PT_LOAD segment (p_paddr + p_memsz). */
static chv_must_check int elf_mem_end(const char *path, const struct buf *e, uint64_t *end)
{
	Elf64_Ehdr eh;

	if (e->n < sizeof(eh) || memcmp(e->p, ELFMAG, SELFMAG) != 0) {
		fprintf(stderr, "mkbzimage: %s: not an ELF file\n", path);
		return -EINVAL;
	}
	memcpy(&eh, e->p, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr) ||
	    eh.e_phoff > e->n || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > e->n - eh.e_phoff) {
		fprintf(stderr, "mkbzimage: %s: bad ELF64 program headers\n", path);
		return -EINVAL;
	}
	*end = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, e->p + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_LOAD && ph.p_paddr + ph.p_memsz > *end)
			*end = ph.p_paddr + ph.p_memsz;
	}
	if (*end <= LOAD_ADDR) {
		fprintf(stderr, "mkbzimage: %s: nothing loaded above 0x%x\n", path, LOAD_ADDR);
		return -EINVAL;
	}
	return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

int main(int argc, char **argv)
{
	struct buf setup = {0}, kernel = {0}, elf = {0};
	uint64_t mem_end;
	int rc = 1;

	if (argc != 5) {
		fprintf(stderr, "usage: mkbzimage SETUP.bin KERNEL.bin KERNEL.elf OUT.bzImage\n");
		return 2;
	}
	if (read_file(argv[1], &setup) || read_file(argv[2], &kernel) || read_file(argv[3], &elf) ||
	    elf_mem_end(argv[3], &elf, &mem_end))
		goto out;
	if (setup.n < 1024 || setup.n % 512 || setup.n / 512 - 1 > 0xff ||
	    memcmp(setup.p + 0x202, "HdrS", 4) != 0) {
		fprintf(stderr, "mkbzimage: %s: %zu bytes, not whole setup sectors with a header\n",
			argv[1], setup.n);
		goto out;
	}
	uint64_t init = mem_end - LOAD_ADDR;
	if (init < kernel.n)
		init = kernel.n;
	init = (init + 0xfff) & ~0xfffULL;
	if (kernel.n == 0 || init > UINT32_MAX) {
		fprintf(stderr, "mkbzimage: %s: bad size %zu\n", argv[2], kernel.n);
		goto out;
	}
	setup.p[0x1f1] = (uint8_t)(setup.n / 512 - 1);
	put32(setup.p + 0x1f4, (uint32_t)((kernel.n + 15) / 16));
	put32(setup.p + 0x260, (uint32_t)init);

	FILE *f = fopen(argv[4], "wb");
	if (!f) {
		fprintf(stderr, "mkbzimage: %s: %s\n", argv[4], strerror(errno));
		goto out;
	}
	int bad = fwrite(setup.p, 1, setup.n, f) != setup.n ||
		  fwrite(kernel.p, 1, kernel.n, f) != kernel.n;
	if (fclose(f) || bad) {
		fprintf(stderr, "mkbzimage: %s: write error\n", argv[4]);
		remove(argv[4]);
		goto out;
	}
	rc = 0;
out:
	free(setup.p);
	free(kernel.p);
	free(elf.p);
	return rc;
}
