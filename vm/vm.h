/* One VM: guest memory, the hypervisor VM, buses, legacy devices, ACPI,
 * the loaded kernel and one thread per vCPU. vm_create() builds everything
 * from a validated config; vm_run() runs it until an outcome; a reboot is a
 * vm_destroy() and a new vm_create() from the same config. */
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
	VM_OUT_RESET,    /* the guest reset (ACPI reset, i8042, triple fault) */
	VM_OUT_FAILED,   /* internal error, failed entry, host error */
	VM_OUT_STOPPED,  /* stopped from outside (signal, API) */
};

/* serial may be NULL (--serial off). The sink outlives reboots. */
chv_must_check int vm_create(struct vm **out, const struct vm_config *cfg, struct sink *serial,
			     struct chv_err *err);
/* Starts the vCPUs and waits for an outcome; reason (may be NULL) gets a
 * one-line description of it. */
enum vm_outcome vm_run(struct vm *vm, char *reason, size_t reason_len);
/* Asks a running VM to stop with the given outcome (first request wins).
 * Async-signal-unsafe; any thread. */
void vm_stop(struct vm *vm, enum vm_outcome outcome, const char *reason);
/* Safe on a half-built VM and on NULL. */
void vm_destroy(struct vm *vm);

/* Bytes typed at the serial console, for the guest's UART. */
void vm_serial_input(struct vm *vm, const uint8_t *buf, size_t n);

const char *vm_outcome_name(enum vm_outcome o);

#endif
