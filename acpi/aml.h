/* A small AML byte-code writer (ACPI 6.5, chapter 20) for the tables chv
 * builds. It writes into a caller-owned fixed buffer: nothing is allocated,
 * and running out of room is an error (-ENOSPC), never an overflow.
 *
 * Errors are sticky: every emitter returns nothing, the first failure is
 * kept in a->err and later calls do nothing, so a table is written as
 * straight-line code and checked once with aml_finish().
 *
 * Objects whose encoded length is only known at their end (scopes,
 * devices, methods, packages, buffers) are opened with a *_begin() call
 * and closed with aml_end(); the PkgLength (and a buffer's size) is then
 * inserted in front of the body. */
#ifndef CHV_ACPI_AML_H
#define CHV_ACPI_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vm/err.h"

#define AML_MAX_DEPTH 16
/* The largest value a 4-byte PkgLength can hold (28 bits). */
#define AML_PKGLEN_MAX 0x0fffffffu

enum aml_frame_kind {
	AML_FRAME_PLAIN,   /* scope, device, method: PkgLength only */
	AML_FRAME_PACKAGE, /* PkgLength + NumElements */
	AML_FRAME_BUFFER,  /* PkgLength + BufferSize */
	AML_FRAME_RES,	   /* a buffer that ends with an EndTag descriptor */
};

struct aml_frame {
	size_t start; /* where the PkgLength goes */
	enum aml_frame_kind kind;
	unsigned count; /* elements added, for packages */
};

struct aml {
	uint8_t *buf;
	size_t cap;
	size_t len;
	int err;
	unsigned depth;
	struct aml_frame open[AML_MAX_DEPTH];
};

void aml_init(struct aml *a, uint8_t *buf, size_t cap);
/* 0 when every object was closed and everything fit; else the first error. */
chv_must_check int aml_finish(const struct aml *a);

/* Encodes the PkgLength of an object whose body (what follows the PkgLength)
 * is body bytes long: writes 1-4 bytes to out and returns how many, or
 * -E2BIG when the object would exceed AML_PKGLEN_MAX. */
chv_must_check int aml_pkglen_encode(size_t body, uint8_t out[4]);

/* Raw bytes (inside buffers and resource templates). */
void aml_bytes(struct aml *a, const void *data, size_t n);

/* Data objects. Each counts as one element when added inside a package. */
void aml_int(struct aml *a, uint64_t v);	/* Zero/One/Ones or the shortest *Const */
void aml_string(struct aml *a, const char *s);	/* printable ASCII only */
void aml_eisaid(struct aml *a, const char *id); /* "PNP0501": 3 letters, 4 hex digits */
void aml_name_ref(struct aml *a, const char *path);

/* Name(path, <next data object>). */
void aml_name_decl(struct aml *a, const char *path);

/* Openers; each is closed by aml_end(). */
void aml_scope_begin(struct aml *a, const char *path);
void aml_device_begin(struct aml *a, const char *path);
void aml_method_begin(struct aml *a, const char *path, unsigned nargs, bool serialized);
void aml_package_begin(struct aml *a);
void aml_buffer_begin(struct aml *a);
void aml_end(struct aml *a);

/* Return(<next data object>), inside a method. */
void aml_return(struct aml *a);
/* Method(path, 0, NotSerialized) { Return(v) } */
void aml_method_return_int(struct aml *a, const char *path, uint64_t v);

/* Resource templates (ACPI 6.5, 6.4): a buffer of descriptors ending with an
 * EndTag, which aml_res_end() adds before closing the buffer. */
void aml_res_begin(struct aml *a);
void aml_res_end(struct aml *a);
void aml_res_io(struct aml *a, bool decode16, uint16_t min, uint16_t max, uint8_t align,
		uint8_t len);
void aml_res_irq_noflags(struct aml *a, uint8_t irq); /* irq < 16 */
/* Extended Interrupt descriptor with one interrupt number. */
void aml_res_interrupt(struct aml *a, bool edge, bool active_low, bool shared, uint32_t gsi);
void aml_res_mem32_fixed(struct aml *a, bool writable, uint32_t base, uint32_t len);
/* Address space descriptors: fixed [min, max] windows, granularity 0, no
 * translation. Bus and I/O windows are produced (a PCI host bridge's _CRS);
 * memory ranges are produced (bridge windows) or consumed (a device's
 * own registers, a motherboard reservation). */
void aml_res_word_bus(struct aml *a, uint16_t min, uint16_t max);
void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max);
void aml_res_dword_io(struct aml *a, uint32_t min, uint32_t max);
void aml_res_dword_mem(struct aml *a, bool producer, bool cacheable, bool writable, uint32_t min,
		       uint32_t max);
void aml_res_qword_mem(struct aml *a, bool producer, bool cacheable, bool writable, uint64_t min,
		       uint64_t max);

#endif
