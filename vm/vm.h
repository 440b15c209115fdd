/* One VM: guest memory, the hypervisor VM, buses, legacy devices, ACPI,
 * the loaded kernel and one thread per vCPU. vm_create() builds everything
 * from a validated config; vm_run() (or vm_start() + vm_wait()) runs it
 * until an outcome; a reboot is a vm_destroy() and a new vm_create() from
 * the same config. */
#ifndef CHV_VM_VM_H
#define CHV_VM_VM_H

#include <stddef.h>
#include <stdint.h>

#include "vm/config.h"
#include "vm/err.h"

struct vm;
struct sink;

enum vm_outcome {
	VM_OUT_NONE = 0,
	VM_OUT_POWEROFF, /* the guest powered off (ACPI S5) */
	VM_OUT_RESET,	 /* the guest reset (ACPI reset, i8042, triple fault) */
	VM_OUT_FAILED,	 /* internal error, failed entry, host error */
	VM_OUT_STOPPED,	 /* stopped from outside (signal, API) */
};

/* serial may be NULL (--serial off). The sink outlives reboots. */
chv_must_check int vm_create(struct vm **out, const struct vm_config *cfg, struct sink *serial,
			     struct chv_err *err);
/* Starts the vCPUs and waits for an outcome; reason (may be NULL) gets a
 * one-line description of it. vm_start() + vm_wait(). */
enum vm_outcome vm_run(struct vm *vm, char *reason, size_t reason_len);
/* Starts the vCPU threads and returns. Once only; a vCPU thread that cannot
 * start stops the VM with VM_OUT_FAILED (and the error is returned). */
chv_must_check int vm_start(struct vm *vm);
/* Waits for the outcome of a started VM and joins its vCPU threads. */
enum vm_outcome vm_wait(struct vm *vm, char *reason, size_t reason_len);
/* An eventfd that becomes readable (and stays so) once the outcome is set,
 * for an event loop; the VM owns it. */
int vm_outcome_fd(const struct vm *vm);
/* The outcome so far (VM_OUT_NONE while running); never blocks. */
enum vm_outcome vm_outcome(struct vm *vm, char *reason, size_t reason_len);

/* Pause: every vCPU is taken out of the guest and parked; returns once all
 * are parked. Resume lets them run again. Both are idempotent and
 * thread-safe. -ESRCH: the VM has already ended (its outcome is set). */
chv_must_check int vm_pause(struct vm *vm);
chv_must_check int vm_resume(struct vm *vm);

/* Calls fn for each counter of this VM instance: "exits.<kind>" (summed over
 * the vCPUs), "serial.tx_bytes" (of the serial sink, which outlives
 * reboots) and "debug.first_io_monotonic_ns" (CLOCK_MONOTONIC of the guest's
 * first debug-port write, 0 before it). Any thread; values are read without
 * stopping the vCPUs. */
typedef void (*vm_counter_fn)(void *ctx, const char *name, uint64_t value);
void vm_counters(struct vm *vm, vm_counter_fn fn, void *ctx);
/* Asks a running VM to stop with the given outcome (first request wins).
 * Async-signal-unsafe; any thread. */
void vm_stop(struct vm *vm, enum vm_outcome outcome, const char *reason);
/* Safe on a half-built VM and on NULL. */
void vm_destroy(struct vm *vm);

/* Bytes typed at the serial console, for the guest's UART. */
void vm_serial_input(struct vm *vm, const uint8_t *buf, size_t n);

const char *vm_outcome_name(enum vm_outcome o);

#endif
