/* The AML byte-code writer; see aml.h. Opcode values and encodings are
 * from ACPI 6.5 sections 20.2 (AML grammar) and 6.4 (resource data types). */
#include "acpi/aml.h"

#include <errno.h>
#include <string.h>

enum {
	AML_ZERO = 0x00,
	AML_ONE = 0x01,
	AML_NAME = 0x08,
	AML_BYTE_PREFIX = 0x0a,
	AML_WORD_PREFIX = 0x0b,
	AML_DWORD_PREFIX = 0x0c,
	AML_STRING_PREFIX = 0x0d,
	AML_QWORD_PREFIX = 0x0e,
	AML_SCOPE = 0x10,
	AML_BUFFER = 0x11,
	AML_PACKAGE = 0x12,
	AML_METHOD = 0x14,
	AML_DUAL_NAME_PREFIX = 0x2e,
	AML_MULTI_NAME_PREFIX = 0x2f,
	AML_EXT_PREFIX = 0x5b,
	AML_ROOT_CHAR = 0x5c,
	AML_PARENT_PREFIX = 0x5e,
	AML_DEVICE = 0x82, /* after AML_EXT_PREFIX */
	AML_RETURN = 0xa4,
	AML_ONES = 0xff,
};

/* Resource descriptor tags (ACPI 6.5 6.4.2, 6.4.3). */
enum {
	RES_IRQ_NOFLAGS = 0x22, /* small, IRQ, 2 bytes */
	RES_IO = 0x47,		/* small, I/O port, 7 bytes */
	RES_END_TAG = 0x79,	/* small, end tag, 1 byte */
	RES_MEM32_FIXED = 0x86,
	RES_DWORD_ADDR = 0x87,
	RES_WORD_ADDR = 0x88,
	RES_EXT_IRQ = 0x89,
	RES_QWORD_ADDR = 0x8a,
};

enum { ADDR_MEM = 0, ADDR_IO = 1, ADDR_BUS = 2 };

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
	memset(a, 0, sizeof(*a));
	a->buf = buf;
	a->cap = cap;
}

int aml_finish(const struct aml *a)
{
	if (a->err)
		return a->err;
	return a->depth ? -EINVAL : 0;
}

static void aml_fail(struct aml *a, int err)
{
	if (!a->err)
		a->err = err;
}

int aml_pkglen_encode(size_t body, uint8_t out[4])
{
	/* The PkgLength counts its own bytes, so the size class depends on
	 * the total: 6 bits in one byte, else 4 + 8 * (n - 1) bits. */
	size_t total;
	int n;

	if (body > AML_PKGLEN_MAX)
		return -E2BIG;
	if (body + 1 <= 0x3f) {
		out[0] = (uint8_t)(body + 1);
		return 1;
	}
	if (body + 2 <= 0xfff)
		n = 2;
	else if (body + 3 <= 0xfffff)
		n = 3;
	else if (body <= AML_PKGLEN_MAX - 4)
		n = 4;
	else
		return -E2BIG;
	total = body + (size_t)n;
	out[0] = (uint8_t)(((unsigned)(n - 1) << 6) | (total & 0x0f));
	for (int i = 1; i < n; i++)
		out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	return n;
}

void aml_bytes(struct aml *a, const void *data, size_t n)
{
	if (a->err)
		return;
	if (n > a->cap - a->len) {
		aml_fail(a, -ENOSPC);
		return;
	}
	memcpy(a->buf + a->len, data, n);
	a->len += n;
}

static void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

static void aml_le(struct aml *a, uint64_t v, unsigned n)
{
	uint8_t b[8];

	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	aml_bytes(a, b, n);
}

/* Makes room for n bytes at pos by moving what follows. */
static void aml_insert(struct aml *a, size_t pos, const uint8_t *data, size_t n)
{
	if (a->err)
		return;
	if (n > a->cap - a->len) {
		aml_fail(a, -ENOSPC);
		return;
	}
	memmove(a->buf + pos + n, a->buf + pos, a->len - pos);
	memcpy(a->buf + pos, data, n);
	a->len += n;
}

/* A data object added inside a package is one of its elements. */
static void aml_note_element(struct aml *a)
{
	struct aml_frame *f;

	if (a->err || !a->depth)
		return;
	f = &a->open[a->depth - 1];
	if (f->kind != AML_FRAME_PACKAGE)
		return;
	/* NumElements is one byte; bigger packages need VarPackageOp. */
	if (f->count == 0xff) {
		aml_fail(a, -E2BIG);
		return;
	}
	f->count++;
}

static void aml_push(struct aml *a, enum aml_frame_kind kind)
{
	if (a->err)
		return;
	if (a->depth == AML_MAX_DEPTH) {
		aml_fail(a, -E2BIG);
		return;
	}
	a->open[a->depth++] = (struct aml_frame){.start = a->len, .kind = kind};
}

static bool name_lead_char(char c)
{
	return (c >= 'A' && c <= 'Z') || c == '_';
}

static bool name_char(char c)
{
	return name_lead_char(c) || (c >= '0' && c <= '9');
}

/* Checks one segment of 1-4 characters, as written in ASL. */
static bool name_seg_valid(const char *s, size_t n)
{
	if (n < 1 || n > 4 || !name_lead_char(s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!name_char(s[i]))
			return false;
	return true;
}

/* NameString (20.2.2): an optional root or parent prefix, then one
 * segment, a DualNamePath or a MultiNamePath; short segments are padded
 * with '_' the way iasl does. */
static void aml_name_string(struct aml *a, const char *path)
{
	const char *p = path;
	const char *seg;
	size_t nseg = 0;

	if (a->err)
		return;
	if (!path) {
		aml_fail(a, -EINVAL);
		return;
	}
	if (*p == AML_ROOT_CHAR) {
		aml_byte(a, AML_ROOT_CHAR);
		p++;
	} else {
		while (*p == AML_PARENT_PREFIX) {
			aml_byte(a, AML_PARENT_PREFIX);
			p++;
		}
	}
	seg = p;
	for (const char *q = p;; q++) {
		if (*q == '.' || *q == '\0') {
			if (!name_seg_valid(seg, (size_t)(q - seg))) {
				aml_fail(a, -EINVAL);
				return;
			}
			nseg++;
			if (*q == '\0')
				break;
			seg = q + 1;
		}
	}
	if (nseg > 255) {
		aml_fail(a, -EINVAL);
		return;
	}
	if (nseg == 2) {
		aml_byte(a, AML_DUAL_NAME_PREFIX);
	} else if (nseg > 2) {
		aml_byte(a, AML_MULTI_NAME_PREFIX);
		aml_byte(a, (uint8_t)nseg);
	}
	seg = p;
	for (const char *q = p;; q++) {
		if (*q == '.' || *q == '\0') {
			char padded[4] = {'_', '_', '_', '_'};

			memcpy(padded, seg, (size_t)(q - seg));
			aml_bytes(a, padded, sizeof(padded));
			if (*q == '\0')
				break;
			seg = q + 1;
		}
	}
}

void aml_int(struct aml *a, uint64_t v)
{
	aml_note_element(a);
	if (v == 0) {
		aml_byte(a, AML_ZERO);
	} else if (v == 1) {
		aml_byte(a, AML_ONE);
	} else if (v == UINT64_MAX) {
		/* Ones: valid because the DSDT revision is 2 (64-bit integers). */
		aml_byte(a, AML_ONES);
	} else if (v <= UINT8_MAX) {
		aml_byte(a, AML_BYTE_PREFIX);
		aml_le(a, v, 1);
	} else if (v <= UINT16_MAX) {
		aml_byte(a, AML_WORD_PREFIX);
		aml_le(a, v, 2);
	} else if (v <= UINT32_MAX) {
		aml_byte(a, AML_DWORD_PREFIX);
		aml_le(a, v, 4);
	} else {
		aml_byte(a, AML_QWORD_PREFIX);
		aml_le(a, v, 8);
	}
}

void aml_string(struct aml *a, const char *s)
{
	if (!s) {
		aml_fail(a, -EINVAL);
		return;
	}
	/* AsciiCharList is 0x01-0x7f; keep to printable characters. */
	for (const char *c = s; *c; c++) {
		if (*c < 0x20 || *c > 0x7e) {
			aml_fail(a, -EINVAL);
			return;
		}
	}
	aml_note_element(a);
	aml_byte(a, AML_STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void aml_eisaid(struct aml *a, const char *id)
{
	/* Three letters of 5 bits ('A' = 1) and four hex digits packed in a
	 * 32-bit value stored big-endian, as ASL's EISAID() does. */
	uint32_t v = 0;

	if (!id || strlen(id) != 7) {
		aml_fail(a, -EINVAL);
		return;
	}
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z') {
			aml_fail(a, -EINVAL);
			return;
		}
		v |= (uint32_t)(id[i] - 'A' + 1) << (26 - 5 * i);
	}
	for (int i = 3; i < 7; i++) {
		int d = hex_digit(id[i]);

		if (d < 0) {
			aml_fail(a, -EINVAL);
			return;
		}
		v |= (uint32_t)d << (4 * (6 - i));
	}
	aml_int(a, __builtin_bswap32(v));
}

void aml_name_ref(struct aml *a, const char *path)
{
	aml_note_element(a);
	aml_name_string(a, path);
}

void aml_name_decl(struct aml *a, const char *path)
{
	aml_byte(a, AML_NAME);
	aml_name_string(a, path);
}

void aml_scope_begin(struct aml *a, const char *path)
{
	aml_byte(a, AML_SCOPE);
	aml_push(a, AML_FRAME_PLAIN);
	aml_name_string(a, path);
}

void aml_device_begin(struct aml *a, const char *path)
{
	aml_byte(a, AML_EXT_PREFIX);
	aml_byte(a, AML_DEVICE);
	aml_push(a, AML_FRAME_PLAIN);
	aml_name_string(a, path);
}

void aml_method_begin(struct aml *a, const char *path, unsigned nargs, bool serialized)
{
	if (nargs > 7) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_byte(a, AML_METHOD);
	aml_push(a, AML_FRAME_PLAIN);
	aml_name_string(a, path);
	/* MethodFlags: ArgCount in bits 0-2, SerializeFlag in bit 3, SyncLevel 0. */
	aml_byte(a, (uint8_t)(nargs | (serialized ? 0x08 : 0)));
}

void aml_package_begin(struct aml *a)
{
	aml_note_element(a);
	aml_byte(a, AML_PACKAGE);
	aml_push(a, AML_FRAME_PACKAGE);
	aml_byte(a, 0); /* NumElements, filled in by aml_end() */
}

void aml_buffer_begin(struct aml *a)
{
	aml_note_element(a);
	aml_byte(a, AML_BUFFER);
	aml_push(a, AML_FRAME_BUFFER);
}

void aml_end(struct aml *a)
{
	struct aml_frame *f;
	uint8_t enc[9];
	int n;

	if (a->err)
		return;
	if (!a->depth) {
		aml_fail(a, -EINVAL);
		return;
	}
	f = &a->open[a->depth - 1];
	switch (f->kind) {
	case AML_FRAME_PACKAGE:
		a->buf[f->start] = (uint8_t)f->count;
		break;
	case AML_FRAME_RES:
	case AML_FRAME_BUFFER: {
		/* BufferSize is a TermArg: the shortest integer encoding of
		 * the byte count; it goes between PkgLength and the bytes. */
		struct aml sub;

		aml_init(&sub, enc, sizeof(enc));
		aml_int(&sub, a->len - f->start);
		aml_insert(a, f->start, enc, sub.len);
		break;
	}
	case AML_FRAME_PLAIN:
		break;
	}
	n = aml_pkglen_encode(a->len - f->start, enc);
	if (n < 0) {
		aml_fail(a, n);
		return;
	}
	aml_insert(a, f->start, enc, (size_t)n);
	if (!a->err)
		a->depth--;
}

void aml_return(struct aml *a)
{
	aml_byte(a, AML_RETURN);
}

void aml_method_return_int(struct aml *a, const char *path, uint64_t v)
{
	aml_method_begin(a, path, 0, false);
	aml_return(a);
	aml_int(a, v);
	aml_end(a);
}

void aml_res_begin(struct aml *a)
{
	aml_note_element(a);
	aml_byte(a, AML_BUFFER);
	aml_push(a, AML_FRAME_RES);
}

void aml_res_end(struct aml *a)
{
	if (a->err)
		return;
	if (!a->depth || a->open[a->depth - 1].kind != AML_FRAME_RES) {
		aml_fail(a, -EINVAL);
		return;
	}
	/* Checksum 0: "treated as if the checksum operation yielded zero". */
	aml_byte(a, RES_END_TAG);
	aml_byte(a, 0);
	aml_end(a);
}

void aml_res_io(struct aml *a, bool decode16, uint16_t min, uint16_t max, uint8_t align,
		uint8_t len)
{
	if (min > max) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_byte(a, RES_IO);
	aml_byte(a, decode16 ? 1 : 0);
	aml_le(a, min, 2);
	aml_le(a, max, 2);
	aml_byte(a, align);
	aml_byte(a, len);
}

void aml_res_irq_noflags(struct aml *a, uint8_t irq)
{
	if (irq > 15) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_byte(a, RES_IRQ_NOFLAGS);
	aml_le(a, 1u << irq, 2);
}

void aml_res_interrupt(struct aml *a, bool edge, bool active_low, bool shared, uint32_t gsi)
{
	/* Flags: bit 0 consumer, bit 1 edge, bit 2 active low, bit 3 shared. */
	uint8_t flags = 0x01;

	if (edge)
		flags |= 0x02;
	if (active_low)
		flags |= 0x04;
	if (shared)
		flags |= 0x08;
	aml_byte(a, RES_EXT_IRQ);
	aml_le(a, 2 + 4, 2);
	aml_byte(a, flags);
	aml_byte(a, 1);
	aml_le(a, gsi, 4);
}

void aml_res_mem32_fixed(struct aml *a, bool writable, uint32_t base, uint32_t len)
{
	if (len && base + (uint64_t)len - 1 > UINT32_MAX) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_byte(a, RES_MEM32_FIXED);
	aml_le(a, 9, 2);
	aml_byte(a, writable ? 1 : 0);
	aml_le(a, base, 4);
	aml_le(a, len, 4);
}

/* Word, DWord and QWord address space descriptors share one layout with
 * fields of size bytes: granularity, min, max, translation, length. */
static void aml_res_addr(struct aml *a, unsigned size, bool producer, uint8_t type,
			 uint8_t type_flags, uint64_t min, uint64_t max)
{
	static const uint8_t tag[9] = {
	    [2] = RES_WORD_ADDR, [4] = RES_DWORD_ADDR, [8] = RES_QWORD_ADDR};
	uint64_t len = max - min + 1;

	/* A fixed window's length must fit its field: [0, ~0] does not. */
	if (min > max || len == 0 || (size < 8 && len >> (8 * size))) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_byte(a, tag[size]);
	aml_le(a, 3 + 5 * size, 2);
	aml_byte(a, type);
	/* General flags: positive decode, min and max fixed, bit 0 consumer. */
	aml_byte(a, producer ? 0x0c : 0x0d);
	aml_byte(a, type_flags);
	aml_le(a, 0, size);
	aml_le(a, min, size);
	aml_le(a, max, size);
	aml_le(a, 0, size);
	aml_le(a, len, size);
}

/* Memory type flags: bit 0 read-write, bits 1-2 cacheable (1) or not (0). */
static uint8_t mem_flags(bool cacheable, bool writable)
{
	return (uint8_t)((cacheable ? 0x02 : 0) | (writable ? 0x01 : 0));
}

void aml_res_word_bus(struct aml *a, uint16_t min, uint16_t max)
{
	aml_res_addr(a, 2, true, ADDR_BUS, 0, min, max);
}

/* I/O type flags: _RNG = 3, ISA and non-ISA ranges. */
void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max)
{
	aml_res_addr(a, 2, true, ADDR_IO, 0x03, min, max);
}

void aml_res_dword_io(struct aml *a, uint32_t min, uint32_t max)
{
	aml_res_addr(a, 4, true, ADDR_IO, 0x03, min, max);
}

void aml_res_dword_mem(struct aml *a, bool producer, bool cacheable, bool writable, uint32_t min,
		       uint32_t max)
{
	aml_res_addr(a, 4, producer, ADDR_MEM, mem_flags(cacheable, writable), min, max);
}

void aml_res_qword_mem(struct aml *a, bool producer, bool cacheable, bool writable, uint64_t min,
		       uint64_t max)
{
	aml_res_addr(a, 8, producer, ADDR_MEM, mem_flags(cacheable, writable), min, max);
}
