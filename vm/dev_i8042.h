/* The i8042 keyboard controller, only as far as guests use it without a
 * keyboard: the reset line (command 0xFE), the self tests and the command
 * byte. No keyboard or mouse is attached, so nothing raises IRQ 1.
 *
 * Registration: one object, two io functions with the same opaque:
 * i8042_data_io at PORT_I8042_DATA (1 byte) and i8042_cmd_io at
 * PORT_I8042_CMD (1 byte). Thread-safe. */
#ifndef CHV_VM_DEV_I8042_H
#define CHV_VM_DEV_I8042_H

#include <stdbool.h>
#include <stdint.h>

#include "vm/devctx.h"

struct i8042;

/* power is copied; NULL means resets are ignored. NULL + errno on failure. */
struct i8042 *i8042_create(const struct power_ctl *power);
void i8042_destroy(struct i8042 *k);

/* bus_io_fn for port 0x60: reads the output buffer (0 when empty), writes
 * the parameter of the last command. Only the byte at offset 0 is a
 * register: others read 0xff and ignore writes. */
void i8042_data_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/* bus_io_fn for port 0x64: reads the status register, writes a command. */
void i8042_cmd_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

#endif
