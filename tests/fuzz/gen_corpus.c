/* Writes the seed corpora: small valid inputs for every target, built from
 * the same definitions the targets and the VMM use.
 *   fuzz_gen_corpus DIR   (DIR/<target>/<seed> files; tests/fuzz/corpus)
 * The seeds are committed; rerun this after changing it or a target's
 * input format, and commit the result. */
#include <elf.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "acpi/acpi.h"
#include "chv/v1/vm.pb-c.h"
#include "chv/worker/v1/worker.pb-c.h"
#include "fz_common.h"
#include "pci/virtio_pci.h"
#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/net.h"
#include "vm/bootparam.h"
#include "vm/pvh.h"

/* ---- a growing byte buffer ---- */

struct buf {
	uint8_t b[8192];
	size_t n;
};

static const char *out_dir;

static void put(struct buf *b, const void *p, size_t n)
{
	if (b->n + n > sizeof(b->b)) {
		fprintf(stderr, "gen_corpus: seed too large\n");
		exit(1);
	}
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

static void u8(struct buf *b, uint8_t v)
{
	put(b, &v, 1);
}

static void u16(struct buf *b, uint16_t v)
{
	u8(b, (uint8_t)v);
	u8(b, (uint8_t)(v >> 8));
}

static void u32(struct buf *b, uint32_t v)
{
	u16(b, (uint16_t)v);
	u16(b, (uint16_t)(v >> 16));
}

static void u64(struct buf *b, uint64_t v)
{
	u32(b, (uint32_t)v);
	u32(b, (uint32_t)(v >> 32));
}

static void save(const char *target, const char *name, const void *p, size_t n)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", out_dir, target);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
		perror(path);
		exit(1);
	}
}

static void save_buf(const char *target, const char *name, const struct buf *b)
{
	save(target, name, b->b, b->n);
}

/* ---- the fake driver's ops (fz_common.h) ---- */

static void op_mem(struct buf *b, uint16_t gpa, const void *p, uint8_t n)
{
	u8(b, FZ_OP_MEM);
	u16(b, gpa);
	u8(b, n);
	put(b, p, n);
}

static void op_desc(struct buf *b, uint8_t q, uint8_t i, uint16_t addr, uint16_t len, uint8_t flags,
		    uint8_t next)
{
	u8(b, FZ_OP_DESC);
	u8(b, q);
	u8(b, i);
	u16(b, addr);
	u16(b, len);
	u8(b, flags);
	u8(b, next);
}

static void op_avail(struct buf *b, uint8_t q, uint8_t head)
{
	u8(b, FZ_OP_AVAIL);
	u8(b, q);
	u8(b, head);
}

static void op_kick(struct buf *b, uint8_t q)
{
	u8(b, FZ_OP_KICK);
	u8(b, q);
}

/* Queue size byte 2: 4 entries; 4: 16. */
static void start(struct buf *b, uint8_t fbyte, uint8_t qbyte)
{
	b->n = 0;
	u8(b, fbyte);
	u8(b, qbyte);
}

#define NEXT  VIRTQ_DESC_F_NEXT
#define WRITE VIRTQ_DESC_F_WRITE
#define INDIR VIRTQ_DESC_F_INDIRECT

/* ---- virtqueue ---- */

static void gen_virtqueue(void)
{
	struct buf b;
	const char *t = "virtqueue";

	/* A readable + writable chain, popped and pushed. */
	b.n = 0;
	u8(&b, 0);
	u8(&b, 2);
	u8(&b, 0);
	op_desc(&b, 0, 0, FZ_DATA, 16, NEXT, 1);
	op_desc(&b, 0, 1, FZ_DATA + 0x100, 512, WRITE, 0);
	op_avail(&b, 0, 0);
	u8(&b, VQ_OP_POP);
	u8(&b, VQ_OP_PUSH);
	u32(&b, 512);
	u8(&b, VQ_OP_NEED_NOTIFY);
	save_buf(t, "chain-rw", &b);

	/* EVENT_IDX and INDIRECT: an indirect table of two entries. */
	b.n = 0;
	u8(&b, 0);
	u8(&b, 2);
	u8(&b, 3);
	uint8_t table[32] = {0};
	uint64_t a0 = FZ_DATA + 0x200, a1 = FZ_DATA + 0x300;
	uint32_t l0 = 64, l1 = 64;
	uint16_t f0 = NEXT, f1 = WRITE, n0 = 1;
	memcpy(table, &a0, 8);
	memcpy(table + 8, &l0, 4);
	memcpy(table + 12, &f0, 2);
	memcpy(table + 14, &n0, 2);
	memcpy(table + 16, &a1, 8);
	memcpy(table + 24, &l1, 4);
	memcpy(table + 28, &f1, 2);
	op_mem(&b, FZ_DATA, table, sizeof(table));
	op_desc(&b, 0, 0, FZ_DATA, 32, INDIR, 0);
	op_avail(&b, 0, 0);
	u8(&b, VQ_OP_DISABLE_NOTIFY);
	u8(&b, VQ_OP_POP);
	u8(&b, VQ_OP_PUSH);
	u32(&b, 64);
	u8(&b, VQ_OP_ENABLE_NOTIFY);
	u8(&b, VQ_OP_NEED_NOTIFY);
	save_buf(t, "indirect-event-idx", &b);

	/* Indices restored near the wrap, several chains, a batch push. */
	b.n = 0;
	u8(&b, 0);
	u8(&b, 2);
	u8(&b, 1);
	u8(&b, VQ_OP_SET_INDICES);
	u16(&b, 0xfffe);
	u16(&b, 0xfffe);
	u8(&b, FZ_OP_AVAIL_IDX);
	u8(&b, 0);
	u16(&b, 0xfffe);
	for (uint8_t i = 0; i < 3; i++) {
		op_desc(&b, 0, i, (uint16_t)(FZ_DATA + 0x100 * i), 32, WRITE, 0);
		op_avail(&b, 0, i);
	}
	for (int i = 0; i < 3; i++)
		u8(&b, VQ_OP_POP);
	u8(&b, VQ_OP_PUSH_BATCH);
	u8(&b, 3);
	save_buf(t, "wrap-batch", &b);

	/* Ring addresses and limits from the input. */
	b.n = 0;
	u8(&b, 3);
	u8(&b, 4);
	u8(&b, 0);
	u64(&b, 0x2000);
	u64(&b, 0x2100);
	u64(&b, 0x2200);
	u8(&b, 4);
	u16(&b, 4096);
	u8(&b, VQ_OP_POP);
	save_buf(t, "custom-rings", &b);

	/* A loop: broken queue. */
	b.n = 0;
	u8(&b, 0);
	u8(&b, 2);
	u8(&b, 0);
	op_desc(&b, 0, 0, FZ_DATA, 16, NEXT, 1);
	op_desc(&b, 0, 1, FZ_DATA, 16, NEXT, 0);
	op_avail(&b, 0, 0);
	u8(&b, VQ_OP_POP);
	u8(&b, VQ_OP_POP);
	save_buf(t, "loop", &b);
}

/* ---- virtio-blk ---- */

static void blk_request(struct buf *b, uint8_t q, uint32_t type, uint64_t sector, uint16_t data_len,
			bool data_writable)
{
	uint8_t hdr[16] = {0};
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	op_mem(b, FZ_DATA, hdr, sizeof(hdr));
	op_desc(b, q, 0, FZ_DATA, 16, NEXT, 1);
	if (data_len) {
		op_desc(b, q, 1, FZ_DATA + 0x200, data_len, NEXT | (data_writable ? WRITE : 0), 2);
		op_desc(b, q, 2, FZ_DATA + 0x100, 1, WRITE, 0);
	} else {
		op_desc(b, q, 1, FZ_DATA + 0x100, 1, WRITE, 0);
	}
	op_avail(b, q, 0);
	op_kick(b, q);
}

static void gen_virtio_blk(void)
{
	struct buf b;
	const char *t = "virtio_blk";

	start(&b, 0xff, 4);
	blk_request(&b, 0, VIRTIO_BLK_T_IN, 0, 512, true);
	save_buf(t, "read", &b);
	start(&b, 0xff, 4);
	uint8_t pattern[64];
	memset(pattern, 0xa5, sizeof(pattern));
	op_mem(&b, FZ_DATA + 0x200, pattern, sizeof(pattern));
	blk_request(&b, 0, VIRTIO_BLK_T_OUT, 1, 1024, false);
	save_buf(t, "write", &b);
	start(&b, 0xff, 4);
	blk_request(&b, 1, VIRTIO_BLK_T_FLUSH, 0, 0, false);
	save_buf(t, "flush-queue1", &b);
	start(&b, 0xff, 4);
	blk_request(&b, 0, VIRTIO_BLK_T_GET_ID, 0, 20, true);
	save_buf(t, "get-id", &b);
	for (int dz = 0; dz < 2; dz++) {
		start(&b, 0xff, 4);
		uint8_t seg[16] = {0};
		uint64_t sector = 2;
		uint32_t num = 4, flags = dz ? VIRTIO_BLK_DWZ_FLAG_UNMAP : 0;
		memcpy(seg, &sector, 8);
		memcpy(seg + 8, &num, 4);
		memcpy(seg + 12, &flags, 4);
		op_mem(&b, FZ_DATA + 0x200, seg, sizeof(seg));
		blk_request(&b, 0, dz ? VIRTIO_BLK_T_WRITE_ZEROES : VIRTIO_BLK_T_DISCARD, 0, 16,
			    false);
		save_buf(t, dz ? "write-zeroes" : "discard", &b);
	}
	start(&b, 0xff, 4);
	blk_request(&b, 0, 0x77, 0, 0, false);
	save_buf(t, "unsupported", &b);
	/* Two requests on one kick, the second beyond the end of the disk. */
	start(&b, 0xfb, 4);
	blk_request(&b, 0, VIRTIO_BLK_T_IN, 0, 512, true);
	op_desc(&b, 0, 3, FZ_DATA + 0x400, 16, NEXT, 4);
	op_desc(&b, 0, 4, FZ_DATA + 0x500, 1, WRITE, 0);
	uint8_t hdr[16] = {0};
	uint64_t far = 1u << 20;
	memcpy(hdr + 8, &far, 8);
	op_mem(&b, FZ_DATA + 0x400, hdr, sizeof(hdr));
	op_avail(&b, 0, 3);
	op_kick(&b, 0);
	u8(&b, FZ_OP_RESET);
	u8(&b, 0xff);
	u8(&b, 4);
	save_buf(t, "two-then-reset", &b);
}

/* ---- virtio-net ---- */

static void gen_virtio_net(void)
{
	struct buf b;
	const char *t = "virtio_net";
	uint8_t frame[VIRTIO_NET_HDR_LEN + 60] = {0};
	memset(frame + VIRTIO_NET_HDR_LEN, 0xff, 6); /* broadcast */
	frame[VIRTIO_NET_HDR_LEN + 12] = 0x08;

	/* TX: one frame in two descriptors on queue 1. */
	start(&b, 0xff, 4);
	op_mem(&b, FZ_DATA, frame, sizeof(frame));
	op_desc(&b, 1, 0, FZ_DATA, VIRTIO_NET_HDR_LEN, NEXT, 1);
	op_desc(&b, 1, 1, FZ_DATA + VIRTIO_NET_HDR_LEN, 60, 0, 0);
	op_avail(&b, 1, 0);
	op_kick(&b, 1);
	save_buf(t, "tx", &b);

	/* RX: a buffer on queue 0, then a frame from the backend. */
	for (int mrg = 0; mrg < 2; mrg++) {
		start(&b, mrg ? 0xff : 0x07, 4);
		op_desc(&b, 0, 0, FZ_DATA, 2048, WRITE, 0);
		op_avail(&b, 0, 0);
		op_kick(&b, 0);
		u8(&b, NET_OP_RX);
		u8(&b, 0);
		u16(&b, sizeof(frame));
		put(&b, frame, sizeof(frame));
		save_buf(t, mrg ? "rx-mrg" : "rx", &b);
	}

	/* Control queue: two queue pairs. */
	start(&b, 0xff, 4);
	uint8_t cmd[4] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 2, 0};
	op_mem(&b, FZ_DATA, cmd, sizeof(cmd));
	op_desc(&b, 4, 0, FZ_DATA, 4, NEXT, 1);
	op_desc(&b, 4, 1, FZ_DATA + 0x100, 1, WRITE, 0);
	op_avail(&b, 4, 0);
	op_kick(&b, 4);
	op_desc(&b, 2, 0, FZ_DATA + 0x200, 2048, WRITE, 0);
	op_avail(&b, 2, 0);
	op_kick(&b, 2);
	u8(&b, NET_OP_RX);
	u8(&b, 1);
	u16(&b, sizeof(frame));
	put(&b, frame, sizeof(frame));
	save_buf(t, "ctrl-mq", &b);
}

/* ---- virtio-console ---- */

static void gen_virtio_console(void)
{
	struct buf b;
	const char *t = "virtio_console";
	const char hello[] = "hello from the guest\n";

	start(&b, 0xff, 4);
	op_mem(&b, FZ_DATA, hello, sizeof(hello) - 1);
	op_desc(&b, VIRTIO_CONSOLE_TXQ, 0, FZ_DATA, sizeof(hello) - 1, 0, 0);
	op_avail(&b, VIRTIO_CONSOLE_TXQ, 0);
	op_kick(&b, VIRTIO_CONSOLE_TXQ);
	save_buf(t, "tx", &b);

	start(&b, 0xff, 4);
	op_desc(&b, VIRTIO_CONSOLE_RXQ, 0, FZ_DATA, 8, WRITE, 0);
	op_avail(&b, VIRTIO_CONSOLE_RXQ, 0);
	op_kick(&b, VIRTIO_CONSOLE_RXQ);
	u8(&b, CON_OP_INPUT);
	u16(&b, 12);
	put(&b, "typed: ls -l", 12);
	op_desc(&b, VIRTIO_CONSOLE_RXQ, 1, FZ_DATA + 0x100, 64, WRITE, 0);
	op_avail(&b, VIRTIO_CONSOLE_RXQ, 1);
	op_kick(&b, VIRTIO_CONSOLE_RXQ);
	save_buf(t, "rx", &b);

	start(&b, 0xff, 4);
	u8(&b, FZ_OP_CONFIG);
	u8(&b, VIRTIO_CONSOLE_CFG_EMERG_WR);
	u8(&b, 3);
	u8(&b, 1);
	u64(&b, 'x');
	u8(&b, CON_OP_SIZE);
	u16(&b, 132);
	u16(&b, 43);
	u8(&b, FZ_OP_CONFIG);
	u8(&b, 0);
	u8(&b, 3);
	u8(&b, 0);
	u64(&b, 0);
	save_buf(t, "emerg-size", &b);
}

/* ---- PCI ---- */

static void ecam(struct buf *b, uint32_t slot, uint32_t reg, uint8_t len, uint32_t v, bool w)
{
	u8(b, PCI_OP_ECAM);
	u32(b, slot << 15 | reg);
	u8(b, len == 1 ? 0 : len == 2 ? 1 : 2);
	u32(b, v);
	u8(b, w);
}

static void bar(struct buf *b, uint8_t fn, uint16_t off, uint8_t len, uint64_t v, bool w)
{
	u8(b, PCI_OP_BAR);
	u8(b, fn);
	u16(b, off);
	u8(b, len == 1 ? 0 : len == 2 ? 1 : len == 4 ? 2 : 3);
	u64(b, v);
	u8(b, w);
}

static void common(struct buf *b, uint8_t fn, uint16_t reg, uint8_t len, uint64_t v)
{
	bar(b, fn, (uint16_t)(VIRTIO_PCI_COMMON_OFF + reg), len, v, true);
}

static void gen_pci(void)
{
	struct buf b;
	const char *t = "pci";
	const uint8_t s = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;

	/* Firmware then a driver: rng's queue 0 set up, a request, a kick. */
	b.n = 0;
	ecam(&b, 1, PCI_VENDOR_ID, 4, 0, false);
	ecam(&b, 1, PCI_BAR0, 4, 0, true);
	ecam(&b, 1, PCI_BAR0 + 4, 4, 1, true);
	ecam(&b, 1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, true);
	common(&b, 0, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	common(&b, 0, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
	common(&b, 0, VIRTIO_PCI_COMMON_STATUS, 1, s);
	common(&b, 0, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	bar(&b, 0, VIRTIO_PCI_COMMON_DF, 4, 0, false);
	common(&b, 0, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	common(&b, 0, VIRTIO_PCI_COMMON_GF, 4, 1);
	common(&b, 0, VIRTIO_PCI_COMMON_STATUS, 1, s | VIRTIO_STATUS_FEATURES_OK);
	common(&b, 0, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	common(&b, 0, VIRTIO_PCI_COMMON_Q_SIZE, 2, 4);
	common(&b, 0, VIRTIO_PCI_COMMON_Q_DESCLO, 4, FZ_DESC(0));
	common(&b, 0, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, FZ_AVAIL(0));
	common(&b, 0, VIRTIO_PCI_COMMON_Q_USEDLO, 4, FZ_USED(0));
	common(&b, 0, VIRTIO_PCI_COMMON_Q_MSIX, 2, 0);
	common(&b, 0, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	common(&b, 0, VIRTIO_PCI_COMMON_STATUS, 1,
	       s | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	op_desc(&b, 0, 0, FZ_DATA, 64, WRITE, 0);
	op_avail(&b, 0, 0);
	bar(&b, 0, VIRTIO_PCI_NOTIFY_OFF, 2, 0, true);
	bar(&b, 0, VIRTIO_PCI_ISR_OFF, 1, 0, false);
	save_buf(t, "rng-driver", &b);

	/* The console: device configuration, MSI-X table, unplug. */
	b.n = 0;
	bar(&b, 1, VIRTIO_PCI_DEVICE_OFF, 4, 0, false);
	bar(&b, 1, VIRTIO_PCI_DEVICE_OFF + VIRTIO_CONSOLE_CFG_EMERG_WR, 4, 'y', true);
	bar(&b, 1, VIRTIO_PCI_MSIX_TABLE_OFF, 4, 0xfee00000, true);
	bar(&b, 1, VIRTIO_PCI_MSIX_TABLE_OFF + 8, 4, 0x41, true);
	bar(&b, 1, VIRTIO_PCI_MSIX_TABLE_OFF + 12, 4, 0, true);
	bar(&b, 1, VIRTIO_PCI_MSIX_PBA_OFF, 8, 0, false);
	u8(&b, PCI_OP_KICK);
	u8(&b, 1);
	u16(&b, 1);
	u8(&b, PCI_OP_REMOVE);
	u8(&b, 2);
	save_buf(t, "console-msix-unplug", &b);

	/* The legacy mechanism: address latch, then data. */
	b.n = 0;
	u8(&b, PCI_OP_CF8);
	u8(&b, 0);
	u8(&b, 2);
	u32(&b, PCI_CF8_ENABLE | 1u << 11 | PCI_COMMAND);
	u8(&b, 1);
	u8(&b, PCI_OP_CFC);
	u8(&b, 0);
	u8(&b, 1);
	u32(&b, PCI_COMMAND_MEMORY);
	u8(&b, 1);
	u8(&b, PCI_OP_CFC);
	u8(&b, 2);
	u8(&b, 1);
	u32(&b, 0);
	u8(&b, 0);
	save_buf(t, "cf8-cfc", &b);
}

/* ---- loaders ---- */

static void gen_pvh(bool is64)
{
	struct buf b;
	const uint32_t entry = 0x100000;
	const uint8_t code[16] = {0xf4, 0xeb, 0xfd}; /* hlt; jmp */
	uint8_t note[12 + 4 + 8];
	uint32_t namesz = 4, descsz = is64 ? 8 : 4, type = XEN_ELFNOTE_PHYS32_ENTRY;
	size_t note_len = 12 + 4 + descsz;
	memcpy(note, &namesz, 4);
	memcpy(note + 4, &descsz, 4);
	memcpy(note + 8, &type, 4);
	memcpy(note + 12, "Xen", 4);
	uint64_t e64 = entry;
	memcpy(note + 16, &e64, descsz);

	b.n = 0;
	size_t ehsz = is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
	size_t phsz = is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
	size_t note_off = ehsz + 2 * phsz, code_off = note_off + note_len;
	if (is64) {
		Elf64_Ehdr e = {.e_type = ET_EXEC,
				.e_machine = EM_X86_64,
				.e_version = EV_CURRENT,
				.e_entry = entry,
				.e_phoff = ehsz,
				.e_ehsize = (uint16_t)ehsz,
				.e_phentsize = (uint16_t)phsz,
				.e_phnum = 2};
		memcpy(e.e_ident, ELFMAG, SELFMAG);
		e.e_ident[EI_CLASS] = ELFCLASS64;
		e.e_ident[EI_DATA] = ELFDATA2LSB;
		e.e_ident[EI_VERSION] = EV_CURRENT;
		Elf64_Phdr ph[2] = {
		    {.p_type = PT_NOTE, .p_offset = note_off, .p_filesz = note_len, .p_align = 4},
		    {.p_type = PT_LOAD,
		     .p_offset = code_off,
		     .p_paddr = entry,
		     .p_vaddr = entry,
		     .p_filesz = sizeof(code),
		     .p_memsz = 0x2000,
		     .p_align = 0x1000}};
		put(&b, &e, sizeof(e));
		put(&b, ph, sizeof(ph));
	} else {
		Elf32_Ehdr e = {.e_type = ET_EXEC,
				.e_machine = EM_386,
				.e_version = EV_CURRENT,
				.e_entry = entry,
				.e_phoff = (uint32_t)ehsz,
				.e_ehsize = (uint16_t)ehsz,
				.e_phentsize = (uint16_t)phsz,
				.e_phnum = 2};
		memcpy(e.e_ident, ELFMAG, SELFMAG);
		e.e_ident[EI_CLASS] = ELFCLASS32;
		e.e_ident[EI_DATA] = ELFDATA2LSB;
		e.e_ident[EI_VERSION] = EV_CURRENT;
		Elf32_Phdr ph[2] = {{.p_type = PT_NOTE,
				     .p_offset = (uint32_t)note_off,
				     .p_filesz = (uint32_t)note_len,
				     .p_align = 4},
				    {.p_type = PT_LOAD,
				     .p_offset = (uint32_t)code_off,
				     .p_paddr = entry,
				     .p_vaddr = entry,
				     .p_filesz = sizeof(code),
				     .p_memsz = 0x2000,
				     .p_align = 0x1000}};
		put(&b, &e, sizeof(e));
		put(&b, ph, sizeof(ph));
	}
	put(&b, note, note_len);
	put(&b, code, sizeof(code));
	/* The length mod 7 is the initramfs's size in pages (fz_loader.h). */
	save_buf("loader_pvh", is64 ? "elf64" : "elf32", &b);
	while (b.n % 7 != 0)
		u8(&b, 0);
	save_buf("loader_pvh", is64 ? "elf64-no-initramfs" : "elf32-no-initramfs", &b);
}

static void gen_bzimage(void)
{
	static uint8_t img[4096];
	const unsigned setup_sects = 1;
	size_t pm_off = (setup_sects + 1) * BP_SECTOR, len = 3072;
	struct setup_header h;

	memset(img, 0, sizeof(img));
	memset(&h, 0, sizeof(h));
	h.setup_sects = setup_sects;
	h.boot_flag = BP_BOOT_FLAG;
	h.header = BP_HDRS_MAGIC;
	h.version = 0x020f;
	h.loadflags = LOADED_HIGH;
	h.relocatable_kernel = 1;
	h.kernel_alignment = 0x200000;
	h.xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G;
	h.cmdline_size = 2048;
	h.init_size = 0x100000;
	h.initrd_addr_max = 0x7fffffff;
	h.syssize = (uint32_t)((len - pm_off + 15) / 16);
	memcpy(img + BP_HDR_OFFSET, &h, sizeof(h));
	/* The byte after the jump at 0x200 says how long the header is. */
	img[BP_HDR_JUMP_END - 1] = (uint8_t)(BP_HDR_SPACE_END - BP_HDR_JUMP_END);
	img[pm_off + BP_ENTRY64_OFFSET] = 0xf4;
	/* The length mod 7 is the initramfs's size in pages (fz_loader.h). */
	save("loader_bzimage", "initramfs-6-pages", img, len);
	save("loader_bzimage", "no-initramfs", img, len + 1);
	save("loader_bzimage", "initramfs-1-page", img, len + 2);
	/* Found by the fuzzer: a kernel that ends before its 64-bit entry
	 * point was loaded and "entered" past its end (now refused). */
	save("loader_bzimage", "regress-entry-past-end", img, pm_off + 0x100);
}

/* ---- option parser ---- */

static void argv_seed(const char *name, const char *const *words)
{
	struct buf b = {.n = 0};
	for (size_t i = 0; words[i]; i++)
		put(&b, words[i], strlen(words[i]) + 1);
	save_buf("config_args", name, &b);
}

static void gen_config_args(void)
{
	argv_seed("minimal", (const char *const[]){"--kernel", "/k", NULL});
	/* Found by the fuzzer: --net fd= (chv-vmm only) has no API form; the
	 * target's round-trip check now leaves such configurations out. */
	argv_seed("regress-net-fd-api", (const char *const[]){"--kernel=c", "--net", "fd=9", NULL});
	argv_seed("net-tap", (const char *const[]){"--kernel", "/k", "--net",
						   "tap=t0,mac=52:54:00:12:34:56,ip=192.0.2.1,"
						   "mask=255.255.255.0,mtu=1500,num_queues=4",
						   "--cpus", "boot=2", NULL});
	argv_seed("rate-limits",
		  (const char *const[]){"--kernel", "/k", "--disk",
					"path=/d,bw_size=1048576,bw_refill_time=100,ops_size=100,"
					"ops_refill_time=1000",
					"--rate-limit-group", "id=g,bw_size=4096,bw_refill_time=10",
					"--net", "tap=t1,rate_limit_group=g", NULL});
	argv_seed("full", (const char *const[]){"--kernel",
						"/k",
						"--initramfs",
						"/i",
						"--cmdline",
						"console=ttyS0",
						"--cpus",
						"boot=2,max=4,topology=2:2:1:1,max_phys_bits=40",
						"--memory",
						"size=64M,shared=on,hugepages=off",
						"--serial",
						"tty",
						"--console",
						"off",
						"--rng",
						"src=/dev/urandom",
						"--seccomp",
						"log",
						"--hypervisor=kvm",
						"-vv",
						"--no-reboot",
						"--log-file",
						"/l",
						NULL});
	argv_seed("disks", (const char *const[]){
			       "--kernel=/k", "--disk",
			       "path=/d0,readonly=on,direct=off,num_queues=1,queue_size=128,"
			       "serial=abc,id=d0",
			       "--disk", "path=/d1,bw_size=1000,bw_refill_time=100", NULL});
	argv_seed("net", (const char *const[]){
			     "--kernel", "/k", "--net",
			     "tap=tap0,mac=52:54:00:12:34:56,ip=192.168.1.1,mask=255.255.255.0,"
			     "mtu=1500,num_queues=2,queue_size=256,id=n0",
			     "--rate-limit-group", "id=g0,ops_size=100,ops_refill_time=10", NULL});
	argv_seed("consoles", (const char *const[]){"--kernel", "/k", "--serial", "file=/s",
						    "--console", "socket=/tmp/c.sock", NULL});
	argv_seed("help", (const char *const[]){"-h", NULL});
}

/* ---- protobuf messages ---- */

static void save_msg(const char *target, const char *name, const ProtobufCMessage *m, int prefix)
{
	struct buf b = {.n = 0};
	if (prefix >= 0)
		u8(&b, (uint8_t)prefix);
	size_t n = protobuf_c_message_get_packed_size(m);
	if (b.n + n > sizeof(b.b))
		exit(1);
	b.n += protobuf_c_message_pack(m, b.b + b.n);
	save_buf(target, name, &b);
}

static void vm_config(Chv__V1__VmConfig *c, Chv__V1__PayloadConfig *pl, Chv__V1__CpusConfig *cpus,
		      Chv__V1__MemoryConfig *mem, Chv__V1__ConsoleConfig *serial,
		      Chv__V1__DiskConfig **disks, Chv__V1__DiskConfig *d)
{
	chv__v1__vm_config__init(c);
	chv__v1__payload_config__init(pl);
	chv__v1__cpus_config__init(cpus);
	chv__v1__memory_config__init(mem);
	chv__v1__console_config__init(serial);
	chv__v1__disk_config__init(d);
	pl->kernel = "/k";
	pl->cmdline = "console=ttyS0";
	cpus->boot_vcpus = 2;
	cpus->max_vcpus = 2;
	mem->size = 64ull << 20;
	serial->mode = CHV__V1__CONSOLE_MODE__CONSOLE_MODE_TTY;
	d->path = "/d";
	d->serial = "s0";
	d->queue_size = 128;
	disks[0] = d;
	c->payload = pl;
	c->cpus = cpus;
	c->memory = mem;
	c->serial = serial;
}

static void gen_protos(void)
{
	Chv__V1__VmConfig c;
	Chv__V1__PayloadConfig pl;
	Chv__V1__CpusConfig cpus;
	Chv__V1__MemoryConfig mem;
	Chv__V1__ConsoleConfig serial;
	Chv__V1__DiskConfig d, *disks[1];
	vm_config(&c, &pl, &cpus, &mem, &serial, disks, &d);

	save_msg("config_proto", "no-disks", &c.base, -1);
	c.n_disks = 1;
	c.disks = disks;
	save_msg("config_proto", "disk", &c.base, -1);
	Chv__V1__NetConfig net, *nets[1] = {&net};
	chv__v1__net_config__init(&net);
	net.tap = "tap0";
	net.mac = "52:54:00:12:34:56";
	net.ip = "10.0.0.1";
	net.mask = "255.255.255.0";
	c.n_nets = 1;
	c.nets = nets;
	save_msg("config_proto", "disk-net", &c.base, -1);
	c.n_nets = 0;

	/* Worker requests (first byte even) and worker messages (odd). */
	Chv__Worker__V1__Request req = CHV__WORKER__V1__REQUEST__INIT;
	req.seq = 1;
	req.op_case = CHV__WORKER__V1__REQUEST__OP_CREATE;
	req.create = &c;
	req.control_path = "/run/chv/vm0.sock";
	save_msg("worker_proto", "create", &req.base, 0);
	Chv__Worker__V1__Empty empty = CHV__WORKER__V1__EMPTY__INIT;
	req.seq = 2;
	req.op_case = CHV__WORKER__V1__REQUEST__OP_BOOT;
	req.boot = &empty;
	req.control_path = NULL;
	save_msg("worker_proto", "boot", &req.base, 0);
	Chv__Worker__V1__Shutdown sd = CHV__WORKER__V1__SHUTDOWN__INIT;
	sd.force = 1;
	sd.timeout_ms = 500;
	req.op_case = CHV__WORKER__V1__REQUEST__OP_SHUTDOWN;
	req.shutdown = &sd;
	save_msg("worker_proto", "shutdown", &req.base, 0);
	req.op_case = CHV__WORKER__V1__REQUEST__OP_CONSOLE_INPUT;
	req.console_input.data = (uint8_t *)"ls\n";
	req.console_input.len = 3;
	save_msg("worker_proto", "console-input", &req.base, 0);

	Chv__Worker__V1__Reply rep = CHV__WORKER__V1__REPLY__INIT;
	Chv__Worker__V1__Reply__CountersEntry ce = CHV__WORKER__V1__REPLY__COUNTERS_ENTRY__INIT;
	Chv__Worker__V1__Reply__CountersEntry *ces[1] = {&ce};
	ce.key = "exits.io";
	ce.value = 42;
	rep.seq = 2;
	rep.status = 9;
	rep.message = "wrong state";
	rep.state = CHV__V1__VM_STATE__VM_STATE_RUNNING;
	rep.n_counters = 1;
	rep.counters = ces;
	Chv__Worker__V1__WorkerMessage wm = CHV__WORKER__V1__WORKER_MESSAGE__INIT;
	wm.msg_case = CHV__WORKER__V1__WORKER_MESSAGE__MSG_REPLY;
	wm.reply = &rep;
	save_msg("worker_proto", "reply-counters", &wm.base, 1);
	Chv__Worker__V1__Notice no = CHV__WORKER__V1__NOTICE__INIT;
	no.kind_case = CHV__WORKER__V1__NOTICE__KIND_CONSOLE_OUTPUT;
	no.console_output.data = (uint8_t *)"login: ";
	no.console_output.len = 7;
	wm.msg_case = CHV__WORKER__V1__WORKER_MESSAGE__MSG_NOTICE;
	wm.notice = &no;
	save_msg("worker_proto", "notice-console", &wm.base, 1);
	Chv__Worker__V1__StateChange st = CHV__WORKER__V1__STATE_CHANGE__INIT;
	st.state = CHV__V1__VM_STATE__VM_STATE_SHUTDOWN;
	st.event = CHV__V1__EVENT_KIND__EVENT_KIND_SHUTDOWN;
	st.reason = "guest powered off";
	no.kind_case = CHV__WORKER__V1__NOTICE__KIND_STATE;
	no.state = &st;
	save_msg("worker_proto", "notice-state", &wm.base, 1);
	/* An empty console output (byte_ring_put() with no data: a regression). */
	no.kind_case = CHV__WORKER__V1__NOTICE__KIND_CONSOLE_OUTPUT;
	no.console_output.data = NULL;
	no.console_output.len = 0;
	save_msg("worker_proto", "notice-console-empty", &wm.base, 1);

	/* API messages: type index (fuzz_api_json.c's table) in the low 6 bits,
	 * printer flags in the top 2. */
	Chv__V1__VmInfo info = CHV__V1__VM_INFO__INIT;
	info.id = "vm0";
	info.state = CHV__V1__VM_STATE__VM_STATE_RUNNING;
	info.config = &c;
	save_msg("api_json", "vminfo", &info.base, 0);
	save_msg("api_json", "vminfo-pretty-names", &info.base, 0xc0);
	Chv__V1__VmInfo *infos[1] = {&info};
	Chv__V1__ListResponse list = CHV__V1__LIST_RESPONSE__INIT;
	list.n_vms = 1;
	list.vms = infos;
	save_msg("api_json", "list", &list.base, 1);
	Chv__V1__CountersResponse cr = CHV__V1__COUNTERS_RESPONSE__INIT;
	Chv__V1__CountersResponse__CountersEntry ce2 =
	    CHV__V1__COUNTERS_RESPONSE__COUNTERS_ENTRY__INIT;
	Chv__V1__CountersResponse__CountersEntry *ces2[1] = {&ce2};
	ce2.key = "blk0.reads\n\"quoted\"";
	ce2.value = UINT64_MAX;
	cr.n_counters = 1;
	cr.counters = ces2;
	save_msg("api_json", "counters", &cr.base, 0x42);
	Chv__V1__Event ev = CHV__V1__EVENT__INIT;
	ev.vm_id = "vm0";
	ev.kind = CHV__V1__EVENT_KIND__EVENT_KIND_BOOTED;
	save_msg("api_json", "event", &ev.base, 3);
	Chv__V1__ConsoleOutput co = CHV__V1__CONSOLE_OUTPUT__INIT;
	co.data.data = (uint8_t *)"\x01\x02\xff binary";
	co.data.len = 10;
	save_msg("api_json", "console-output", &co.base, 4);
	Chv__V1__CreateRequest cq = CHV__V1__CREATE_REQUEST__INIT;
	cq.vm_id = "vm1";
	cq.config = &c;
	save_msg("api_json", "create-request", &cq.base, 8);
}

/* ---- ACPI ---- */

static void gen_acpi(void)
{
	struct buf b;
	for (int pci = 0; pci < 2; pci++) {
		b.n = 0;
		u16(&b, 0x2000); /* buffer size */
		u8(&b, 0);	 /* base 0xe0000 */
		u16(&b, 2);	 /* boot_cpus */
		u16(&b, 4);	 /* max_cpus */
		u8(&b, 0);	 /* apic ids 0, 1, 2... */
		u8(&b, 0);	 /* lapic default */
		u8(&b, 0);	 /* ioapic default */
		u8(&b, 0);
		u32(&b, 0);
		u16(&b, 0x600);
		u8(&b, 1);
		u8(&b, 5);
		u16(&b, 0x3f8);
		u8(&b, 4);
		u8(&b, 0); /* ecam default */
		u8(&b, 0);
		u8(&b, 255);
		u8(&b, (uint8_t)pci);
		u64(&b, 0xc0000000);
		u64(&b, 0x28000000);
		u64(&b, 0x140000000ull);
		u64(&b, 0x100000000ull);
		u32(&b, 16);
		u8(&b, 8);
		save_buf("acpi", pci ? "pci-root" : "basic", &b);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR (tests/fuzz/corpus)\n", argv[0]);
		return 2;
	}
	out_dir = argv[1];
	gen_virtqueue();
	gen_virtio_blk();
	gen_virtio_net();
	gen_virtio_console();
	gen_pci();
	gen_pvh(true);
	gen_pvh(false);
	gen_bzimage();
	gen_config_args();
	gen_protos();
	gen_acpi();
	return 0;
}
