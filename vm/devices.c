/* The legacy devices of a VM, created and registered on its port-I/O bus:
 * COM1, i8042 (reset), CMOS RTC, the ACPI PM port (power-off/reset) and the
 * debug port 0x80. Their only ways into the VM are the callbacks here. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vm/dev_cmos.h"
#include "vm/dev_debug.h"
#include "vm/dev_i8042.h"
#include "vm/dev_pm.h"
#include "vm/dev_uart.h"
#include "vm/log.h"
#include "vm/sink.h"
#include "vm/vm_internal.h"

struct vm_devices {
	struct uart *uart;
	struct i8042 *i8042;
	struct cmos *cmos;
	struct pmdev *pm;
	struct dbgport *dbg;
};

static int irq_set(void *ctx, uint32_t gsi, bool level)
{
	struct vm *vm = ctx;
	return vm->ops->irq_line(vm->hvm, gsi, level);
}

static void power_request(void *ctx, enum power_req req)
{
	struct vm *vm = ctx;
	if (req == POWER_OFF)
		vm_stop(vm, VM_OUT_POWEROFF, "guest powered off (ACPI S5)");
	else
		vm_stop(vm, VM_OUT_RESET, "guest reset");
}

static void debug_log(void *ctx, const char *line)
{
	(void)ctx;
	log_info("%s", line);
}

static int reg(struct vm *vm, uint64_t port, uint64_t len, bus_io_fn fn, void *dev,
	       const char *name, struct chv_err *err)
{
	int r = bus_register(&vm->pio, port, len, fn, dev, name);
	if (r < 0)
		return chv_err_set(err, r, "%s at port %#llx: %s", name, (unsigned long long)port,
				   strerror(-r));
	return 0;
}

int vm_devices_create(struct vm *vm, struct chv_err *err)
{
	struct vm_devices *d = calloc(1, sizeof(*d));
	if (!d)
		return chv_err_set(err, -ENOMEM, "out of memory");
	vm->dev = d;
	const struct power_ctl power = {power_request, vm};
	struct mem_layout l;
	layout_compute(vm->cfg->memory.size, &l);
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);

	if (vm->serial) {
		const struct irq_line irq = {irq_set, vm, IRQ_COM1};
		const struct out_sink out = sink_out(vm->serial);
		d->uart = uart_create(&irq, &out);
	}
	d->i8042 = i8042_create(&power);
	d->cmos = cmos_create(l.low_size, l.high_size);
	d->pm = pmdev_create(&power);
	d->dbg = dbgport_create(&start, debug_log, vm);
	if ((vm->serial && !d->uart) || !d->i8042 || !d->cmos || !d->pm || !d->dbg)
		return chv_err_set(err, -ENOMEM, "creating the legacy devices: out of memory");

	int r = 0;
	if (d->uart)
		r = reg(vm, PORT_COM1, UART_PORT_COUNT, uart_io, d->uart, "COM1", err);
	if (!r)
		r = reg(vm, PORT_I8042_DATA, 1, i8042_data_io, d->i8042, "i8042 data", err);
	if (!r)
		r = reg(vm, PORT_I8042_CMD, 1, i8042_cmd_io, d->i8042, "i8042 command", err);
	if (!r)
		r = reg(vm, PORT_CMOS, CMOS_PORT_COUNT, cmos_io, d->cmos, "CMOS RTC", err);
	if (!r)
		r = reg(vm, PORT_ACPI_PM, PMDEV_PORT_COUNT, pmdev_io, d->pm, "ACPI PM", err);
	if (!r)
		r = reg(vm, PORT_DEBUG, DBGPORT_PORT_COUNT, dbgport_io, d->dbg, "debug port", err);
	return r;
}

void vm_devices_destroy(struct vm *vm)
{
	struct vm_devices *d = vm->dev;
	if (!d)
		return;
	/* The buses go after the devices; no vCPU runs any more. */
	dbgport_destroy(d->dbg);
	pmdev_destroy(d->pm);
	cmos_destroy(d->cmos);
	i8042_destroy(d->i8042);
	uart_destroy(d->uart);
	free(d);
	vm->dev = NULL;
}

uint64_t vm_devices_debug_first_ns(struct vm *vm)
{
	return vm->dev && vm->dev->dbg ? dbgport_first_ns(vm->dev->dbg) : 0;
}

void vm_serial_input(struct vm *vm, const uint8_t *buf, size_t n)
{
	if (vm->dev && vm->dev->uart)
		uart_receive(vm->dev->uart, buf, n);
}
