/* The POST/debug port 0x80. Firmware, boot loaders, kernels and user space
 * write progress codes there; each write becomes one log line with the time
 * since the VMM started, as Cloud Hypervisor prints them, which is how boot
 * time is measured from the guest's side:
 *   "debug port: kernel code 0x41 at 12.345 ms"
 * Classes by code: 0x00-0x1f firmware, 0x20-0x3f bootloader, 0x40-0x5f
 * kernel, 0x60-0x7f userspace, others custom. Thread-safe. */
#ifndef CHV_VM_DEV_DEBUG_H
#define CHV_VM_DEV_DEBUG_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define DBGPORT_PORT_COUNT 1

/* Gets one line, without a newline; called on the writing vCPU thread. */
typedef void (*dbgport_log_fn)(void *ctx, const char *line);

struct dbgport;

/* start: the VMM's start, CLOCK_MONOTONIC. log NULL: codes are only
 * counted. NULL + errno on failure. */
struct dbgport *dbgport_create(const struct timespec *start, dbgport_log_fn log, void *ctx);
void dbgport_destroy(struct dbgport *d);

/* bus_io_fn. A write of any width is one code, its low byte; reads return
 * the last code in every byte (some chipsets latch it). */
void dbgport_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* "firmware", "bootloader", "kernel", "userspace" or "custom". */
const char *dbgport_class(uint8_t code);
uint8_t dbgport_last_code(struct dbgport *d);
uint64_t dbgport_count(struct dbgport *d);
/* CLOCK_MONOTONIC nanoseconds of the first code written, 0 before any: the
 * guest's "first instruction" as seen from outside (the test guest writes
 * 0x40 at entry), which start-up latency is measured against. */
uint64_t dbgport_first_ns(struct dbgport *d);

#endif
