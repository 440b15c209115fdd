/* Shared pieces of the libFuzzer targets: a reader over the fuzz input,
 * one small guest RAM, quiet logging, a fake virtio driver that turns input
 * bytes into ring writes and kicks, and path sanitising for the config
 * validators (which open the paths they are given). */
#ifndef CHV_FZ_COMMON_H
#define CHV_FZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio/virtio.h"
#include "vm/config.h"
#include "vm/mem.h"

/* libFuzzer's entry points. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Stops the target with a message: an invariant the code under test broke. */
__attribute__((noreturn, format(printf, 1, 2))) void fz_fail(const char *fmt, ...);

/* With CHV_FUZZ_DEBUG set in the environment: prints why an input was
 * refused (to check that seeds get where they should). */
__attribute__((format(printf, 1, 2))) void fz_debug(const char *fmt, ...);

/* ---- reading the input ---- */

struct fz {
	const uint8_t *p;
	size_t len, pos;
};

static inline void fz_init(struct fz *f, const uint8_t *data, size_t size)
{
	f->p = data;
	f->len = size;
	f->pos = 0;
}

static inline size_t fz_left(const struct fz *f)
{
	return f->len - f->pos;
}

/* Little-endian integers; past the end they read 0. */
uint8_t fz_u8(struct fz *f);
uint16_t fz_u16(struct fz *f);
uint32_t fz_u32(struct fz *f);
uint64_t fz_u64(struct fz *f);
/* Up to n bytes: *out points into the input, the count is returned. */
size_t fz_bytes(struct fz *f, size_t n, const uint8_t **out);

/* ---- logging ---- */

/* Sends the VMM's log to /dev/null (warnings are still formatted). */
void fz_quiet_log(void);

/* ---- guest memory ---- */

/* 64 KiB of guest RAM at guest-physical 0, created once. */
#define FZ_RAM_SIZE 0x10000u
struct vm_mem *fz_mem(void);
/* Checks that [p, p + len) lies inside the guest RAM mapping. */
void fz_check_in_ram(const void *p, size_t len, const char *what);

/* ---- a fake virtio driver ---- */

/* Queue q's rings (queues 0..FZ_MAX_QUEUES-1, at most FZ_QSIZE_MAX entries). */
#define FZ_MAX_QUEUES  8u
#define FZ_QSIZE_MAX   16u
#define FZ_QUEUE_BYTES 0x200u
#define FZ_DESC(q)     ((uint64_t)FZ_QUEUE_BYTES * (q))
#define FZ_AVAIL(q)    (FZ_DESC(q) + 0x100)
#define FZ_USED(q)     (FZ_DESC(q) + 0x140)
#define FZ_DATA	       0x1000u /* buffers are usually placed from here */

struct fz_driver {
	struct virtio_dev *d;
	uint32_t qsize;
	uint16_t avail_idx[FZ_MAX_QUEUES];
};

/* The common ops a driver input is made of (device targets add their own
 * from FZ_OP_DEVICE on). */
enum fz_op {
	FZ_OP_MEM = 0,	 /* u16 gpa, u8 n, n bytes: raw guest memory */
	FZ_OP_DESC,	 /* u8 q, u8 i, u16 addr, u16 len, u8 flags, u8 next */
	FZ_OP_AVAIL,	 /* u8 q, u8 head: publish a head */
	FZ_OP_AVAIL_IDX, /* u8 q, u16 idx: raw avail->idx */
	FZ_OP_KICK,	 /* u8 q */
	FZ_OP_RESET,	 /* u8 features byte: reset and bring the device up again */
	FZ_OP_CONFIG,	 /* u8 off, u8 len (1..8), u8 write, u64 value */
	FZ_OP_DEVICE,	 /* first device-specific op */
};

/* Each device target's own ops, after the common ones (shared with the
 * seed generator, gen_corpus.c). */
enum fz_vq_op { /* fuzz_virtqueue.c */
		VQ_OP_POP = FZ_OP_DEVICE,
		VQ_OP_PUSH,	  /* u32 len: push the last popped head */
		VQ_OP_PUSH_BATCH, /* u8 n: push n heads popped so far */
		VQ_OP_NEED_NOTIFY,
		VQ_OP_DISABLE_NOTIFY,
		VQ_OP_ENABLE_NOTIFY,
		VQ_OP_UNPOP,	   /* right after a successful pop */
		VQ_OP_SET_INDICES, /* u16 last_avail, u16 used */
		VQ_OP_PUSH_RAW,	   /* u8 head, u32 len */
		VQ_OP_COUNT
};
enum fz_net_op { NET_OP_RX = FZ_OP_DEVICE, NET_OP_COUNT };		   /* fuzz_virtio_net.c */
enum fz_con_op { CON_OP_INPUT = FZ_OP_DEVICE, CON_OP_SIZE, CON_OP_COUNT }; /* console */
enum fz_pci_op {							   /* fuzz_pci.c */
		 PCI_OP_ECAM = FZ_OP_DEVICE,
		 PCI_OP_CF8,
		 PCI_OP_CFC,
		 PCI_OP_BAR,
		 PCI_OP_KICK,
		 PCI_OP_REMOVE,
		 PCI_OP_COUNT
};

/* Zeroes the RAM, resets the device and brings it up like a driver would:
 * features = offered & fbits (see fz_features()), every queue of qsize
 * entries at FZ_DESC/AVAIL/USED(q), DRIVER_OK. */
void fz_driver_up(struct fz_driver *drv, struct virtio_dev *d, uint8_t fbyte, uint8_t qbyte);
/* Runs one common op (op < FZ_OP_DEVICE) read from f. kick is called for
 * FZ_OP_KICK (the device's kick plus whatever waits for completion). */
void fz_driver_op(struct fz_driver *drv, struct fz *f, uint8_t op,
		  void (*kick)(void *ctx, uint16_t q), void *ctx);
/* The features a features byte selects from what the device offers: bit 0
 * EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 VERSION_1, the rest of the byte
 * picks device bits 0..23 in groups of 5 (bits 3..7 -> mask). */
uint64_t fz_features(const struct virtio_dev *d, uint8_t fbyte);

/* ---- protobuf ---- */

struct ProtobufCMessage;
/* Whether m or a message inside it kept unknown fields. protobuf-c accepts
 * a field numbered 0 (a non-minimal tag varint) as unknown on unpack, packs
 * it back, and then refuses its own output: round-trip checks skip such
 * messages (see README.md, findings). */
bool fz_pb_has_unknown(const struct ProtobufCMessage *m);

/* ---- configuration paths ---- */

/* vm_config_validate() opens the kernel, the initramfs, the rng source and
 * stats every disk: paths the fuzzer wrote are swapped for a harmless
 * temporary file (or /dev/zero for the rng) so nothing else on the host is
 * opened; empty strings stay empty (they are errors to be reported). */
void fz_config_safe_paths(struct vm_config *c);

#endif
