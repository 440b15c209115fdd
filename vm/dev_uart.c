#include "vm/dev_uart.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

enum {
	REG_RBR_THR_DLL = 0,
	REG_IER_DLM = 1,
	REG_IIR_FCR = 2,
	REG_LCR = 3,
	REG_MCR = 4,
	REG_LSR = 5,
	REG_MSR = 6,
	REG_SCR = 7,
};

#define IER_RDI	 0x01
#define IER_THRI 0x02
#define IER_RLSI 0x04
#define IER_MSI	 0x08

#define IIR_NO_INT 0x01
#define IIR_MSI	   0x00
#define IIR_THRI   0x02
#define IIR_RDI	   0x04
#define IIR_RLSI   0x06
#define IIR_FIFO   0xc0

#define FCR_ENABLE   0x01
#define FCR_CLEAR_RX 0x02

#define LCR_DLAB 0x80

#define MCR_DTR	 0x01
#define MCR_RTS	 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR	 0x01
#define LSR_OE	 0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS   0x01
#define MSR_DDSR   0x02
#define MSR_TERI   0x04
#define MSR_DDCD   0x08
#define MSR_CTS	   0x10
#define MSR_DSR	   0x20
#define MSR_RI	   0x40
#define MSR_DCD	   0x80
#define MSR_DELTAS 0x0f

/* Without loopback the far end looks connected and ready. */
#define MSR_LINES_IDLE (MSR_DCD | MSR_DSR | MSR_CTS)

struct uart {
	pthread_mutex_t lock;
	struct irq_line irq;
	struct out_sink out;
	bool irq_level;

	uint8_t ier, fcr, lcr, mcr, lsr, msr, scr, dll, dlm;
	/* The THR-empty interrupt is an event, not a level of LSR: it is
	 * consumed by reading IIR or writing THR (see the 16550 datasheet). */
	bool thr_ipending;

	uint8_t rx[UART_RX_FIFO_SIZE];
	size_t rx_head, rx_count;
};

static uint8_t uart_iir(const struct uart *u)
{
	uint8_t fifo = (u->fcr & FCR_ENABLE) ? IIR_FIFO : 0;

	if ((u->ier & IER_RLSI) && (u->lsr & LSR_OE))
		return fifo | IIR_RLSI;
	if ((u->ier & IER_RDI) && u->rx_count)
		return fifo | IIR_RDI;
	if ((u->ier & IER_THRI) && u->thr_ipending)
		return fifo | IIR_THRI;
	if ((u->ier & IER_MSI) && (u->msr & MSR_DELTAS))
		return fifo | IIR_MSI;
	return fifo | IIR_NO_INT;
}

/* The IOAPIC pin is edge-triggered for ISA: every change of the pending
 * state goes out, so lowering then raising gives the guest a fresh edge. */
static void uart_update_irq(struct uart *u)
{
	bool pending = !(uart_iir(u) & IIR_NO_INT);

	if (pending != u->irq_level) {
		u->irq_level = pending;
		irq_line_set(&u->irq, pending);
	}
}

static void uart_rx_clear(struct uart *u)
{
	u->rx_head = 0;
	u->rx_count = 0;
}

static bool uart_rx_push(struct uart *u, uint8_t b)
{
	if (u->rx_count == UART_RX_FIFO_SIZE)
		return false;
	u->rx[(u->rx_head + u->rx_count) % UART_RX_FIFO_SIZE] = b;
	u->rx_count++;
	return true;
}

static uint8_t uart_rx_pop(struct uart *u)
{
	if (!u->rx_count)
		return 0;
	uint8_t b = u->rx[u->rx_head];
	u->rx_head = (u->rx_head + 1) % UART_RX_FIFO_SIZE;
	u->rx_count--;
	return b;
}

static void uart_sync_lsr_dr(struct uart *u)
{
	if (u->rx_count)
		u->lsr |= LSR_DR;
	else
		u->lsr &= (uint8_t)~LSR_DR;
}

/* The modem status inputs: looped back from MCR in loopback mode. */
static uint8_t uart_msr_lines(uint8_t mcr)
{
	if (!(mcr & MCR_LOOP))
		return MSR_LINES_IDLE;
	uint8_t l = 0;
	if (mcr & MCR_RTS)
		l |= MSR_CTS;
	if (mcr & MCR_DTR)
		l |= MSR_DSR;
	if (mcr & MCR_OUT1)
		l |= MSR_RI;
	if (mcr & MCR_OUT2)
		l |= MSR_DCD;
	return l;
}

static void uart_set_msr_lines(struct uart *u, uint8_t lines)
{
	uint8_t old = u->msr & 0xf0;
	uint8_t changed = old ^ lines;
	uint8_t delta = u->msr & MSR_DELTAS;

	if (changed & MSR_CTS)
		delta |= MSR_DCTS;
	if (changed & MSR_DSR)
		delta |= MSR_DDSR;
	if (changed & MSR_DCD)
		delta |= MSR_DDCD;
	/* TERI reports only the trailing edge of RI. */
	if ((old & MSR_RI) && !(lines & MSR_RI))
		delta |= MSR_TERI;
	u->msr = lines | delta;
}

static void uart_write_thr(struct uart *u, uint8_t b)
{
	u->thr_ipending = false;
	u->lsr &= (uint8_t) ~(LSR_THRE | LSR_TEMT);
	uart_update_irq(u);

	if (u->mcr & MCR_LOOP) {
		if (!uart_rx_push(u, b))
			u->lsr |= LSR_OE;
		uart_sync_lsr_dr(u);
	} else if (u->out.write) {
		u->out.write(u->out.ctx, &b, 1);
	}

	/* Transmission is instantaneous: the holding register is empty
	 * again, which re-arms the THR-empty interrupt. */
	u->lsr |= LSR_THRE | LSR_TEMT;
	u->thr_ipending = true;
}

static void uart_write_ier(struct uart *u, uint8_t v)
{
	uint8_t old = u->ier;

	u->ier = v & 0x0f;
	/* Linux (serial8250_start_tx, the UART_BUG_THRE probe) relies on an
	 * interrupt when THRI is enabled while the transmitter is idle. */
	if ((u->ier & IER_THRI) && !(old & IER_THRI) && (u->lsr & LSR_THRE))
		u->thr_ipending = true;
}

static void uart_write_fcr(struct uart *u, uint8_t v)
{
	/* Toggling the FIFO enable resets both FIFOs (16550A datasheet). */
	if ((v ^ u->fcr) & FCR_ENABLE)
		v |= FCR_CLEAR_RX;
	if (v & FCR_CLEAR_RX) {
		uart_rx_clear(u);
		uart_sync_lsr_dr(u);
	}
	/* The clear bits are self-clearing; keep enable and trigger level. */
	u->fcr = v & 0xc1;
}

static void uart_write_byte(struct uart *u, uint64_t reg, uint8_t v)
{
	switch (reg) {
	case REG_RBR_THR_DLL:
		if (u->lcr & LCR_DLAB)
			u->dll = v;
		else
			uart_write_thr(u, v);
		break;
	case REG_IER_DLM:
		if (u->lcr & LCR_DLAB)
			u->dlm = v;
		else
			uart_write_ier(u, v);
		break;
	case REG_IIR_FCR:
		uart_write_fcr(u, v);
		break;
	case REG_LCR:
		u->lcr = v;
		break;
	case REG_MCR:
		u->mcr = v & MCR_MASK;
		uart_set_msr_lines(u, uart_msr_lines(u->mcr));
		break;
	case REG_SCR:
		u->scr = v;
		break;
	default: /* LSR and MSR: factory test writes, ignored */
		break;
	}
	uart_update_irq(u);
}

static uint8_t uart_read_byte(struct uart *u, uint64_t reg)
{
	uint8_t v = 0xff;

	switch (reg) {
	case REG_RBR_THR_DLL:
		if (u->lcr & LCR_DLAB) {
			v = u->dll;
		} else {
			v = uart_rx_pop(u);
			uart_sync_lsr_dr(u);
		}
		break;
	case REG_IER_DLM:
		v = (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
		break;
	case REG_IIR_FCR:
		v = uart_iir(u);
		if ((v & 0x0f) == IIR_THRI)
			u->thr_ipending = false;
		break;
	case REG_LCR:
		v = u->lcr;
		break;
	case REG_MCR:
		v = u->mcr;
		break;
	case REG_LSR:
		v = u->lsr;
		u->lsr &= (uint8_t)~LSR_OE;
		break;
	case REG_MSR:
		v = u->msr;
		u->msr &= (uint8_t)~MSR_DELTAS;
		break;
	case REG_SCR:
		v = u->scr;
		break;
	}
	uart_update_irq(u);
	return v;
}

void uart_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct uart *u = opaque;

	pthread_mutex_lock(&u->lock);
	for (uint32_t i = 0; i < len; i++) {
		uint64_t reg = offset + i;
		bool inside = offset < UART_PORT_COUNT && reg < UART_PORT_COUNT;
		if (is_write) {
			if (inside)
				uart_write_byte(u, reg, data[i]);
		} else {
			data[i] = inside ? uart_read_byte(u, reg) : 0xff;
		}
	}
	pthread_mutex_unlock(&u->lock);
}

size_t uart_receive(struct uart *u, const uint8_t *buf, size_t n)
{
	size_t taken = 0;

	if (!u || !buf)
		return 0;
	pthread_mutex_lock(&u->lock);
	/* In loopback mode the receiver is disconnected from the line. */
	if (!(u->mcr & MCR_LOOP)) {
		while (taken < n && uart_rx_push(u, buf[taken]))
			taken++;
		uart_sync_lsr_dr(u);
		uart_update_irq(u);
	}
	pthread_mutex_unlock(&u->lock);
	return taken;
}

struct uart *uart_create(const struct irq_line *irq, const struct out_sink *out)
{
	struct uart *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	int rc = pthread_mutex_init(&u->lock, NULL);
	if (rc) {
		free(u);
		errno = rc;
		return NULL;
	}
	if (irq)
		u->irq = *irq;
	if (out)
		u->out = *out;
	/* Reset state: transmitter idle, the far end looks connected. */
	u->lsr = LSR_THRE | LSR_TEMT;
	u->msr = MSR_LINES_IDLE;
	u->dll = 0x0c; /* 9600 baud, the BIOS default */
	return u;
}

void uart_destroy(struct uart *u)
{
	if (!u)
		return;
	pthread_mutex_destroy(&u->lock);
	free(u);
}
