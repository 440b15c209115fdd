/* The ACPI power-management port of a hardware-reduced platform (as Cloud
 * Hypervisor lays it out): the FADT's sleep control, sleep status and reset
 * registers all live at PORT_ACPI_PM. Writing ACPI_RESET_VALUE resets;
 * SLP_EN with SLP_TYP ACPI_S5_SLP_TYP powers off; other sleep states are
 * not supported and ignored (logged once). Reads return 0: no wake status. */
#ifndef CHV_VM_DEV_PM_H
#define CHV_VM_DEV_PM_H

#include <stdbool.h>
#include <stdint.h>

#include "vm/devctx.h"

#define PMDEV_PORT_COUNT 1

struct pmdev;

/* power is copied; NULL means requests go nowhere. NULL + errno on failure. */
struct pmdev *pmdev_create(const struct power_ctl *power);
void pmdev_destroy(struct pmdev *p);

/* bus_io_fn. The register is the byte at offset 0: a wider write acts on
 * its low byte (an outw of 0x0034 is an S5 request), other bytes of a write
 * are ignored and every byte read is 0. */
void pmdev_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

#endif
