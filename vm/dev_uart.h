/* A 16550A UART (COM1): enough of the register model for Linux's 8250
 * driver and for a polled guest. Output goes byte by byte to an out_sink;
 * input comes from another thread through uart_receive(). All entry points
 * are thread-safe. */
#ifndef CHV_VM_DEV_UART_H
#define CHV_VM_DEV_UART_H

#include <stddef.h>
#include <stdint.h>

#include "vm/devctx.h"

/* Registers span 8 ports from the base (PORT_COM1). */
#define UART_PORT_COUNT 8
/* The receive buffer. Larger than a real 16550's 16 bytes so a paste into
 * the console is not cut short; the guest cannot tell the difference. */
#define UART_RX_FIFO_SIZE 1024

struct uart;

/* irq and out are copied; either may be NULL (no interrupt / output dropped).
 * NULL + errno on failure. */
struct uart *uart_create(const struct irq_line *irq, const struct out_sink *out);
void uart_destroy(struct uart *u);

/* bus_io_fn. Wider accesses act as consecutive byte accesses, as on the ISA
 * bus; bytes past the 8 registers read 0xff and ignore writes. */
void uart_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* Queues received bytes; returns how many were taken (fewer than n when the
 * FIFO is full, none in loopback mode, where the receiver is cut off from the
 * line). Refused bytes are not an overrun: the caller keeps them (flow
 * control) or drops them. */
size_t uart_receive(struct uart *u, const uint8_t *buf, size_t n);

#endif
