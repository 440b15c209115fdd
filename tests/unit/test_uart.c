#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vm/dev_uart.h"

#define THR 0
#define RBR 0
#define DLL 0
#define IER 1
#define DLM 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

struct fake {
	/* irq line transitions, in order */
	bool levels[4096];
	unsigned nlevels;
	bool level; /* the current level, however many transitions */
	uint32_t last_gsi;
	/* sink */
	uint8_t out[8192];
	size_t nout;
};

static int fake_irq(void *ctx, uint32_t gsi, bool level)
{
	struct fake *f = ctx;
	f->last_gsi = gsi;
	assert_true(level != f->level); /* only changes are signalled */
	f->level = level;
	if (f->nlevels < 4096)
		f->levels[f->nlevels++] = level;
	return 0;
}

static void fake_write(void *ctx, const uint8_t *buf, size_t n)
{
	struct fake *f = ctx;
	for (size_t i = 0; i < n && f->nout < sizeof(f->out); i++)
		f->out[f->nout++] = buf[i];
}

struct fixture {
	struct fake f;
	struct uart *u;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	struct irq_line irq = {.set = fake_irq, .ctx = &fx->f, .gsi = 4};
	struct out_sink out = {.write = fake_write, .ctx = &fx->f};
	fx->u = uart_create(&irq, &out);
	assert_non_null(fx->u);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	uart_destroy(fx->u);
	free(fx);
	return 0;
}

static uint8_t rd(struct uart *u, uint64_t reg)
{
	uint8_t v = 0x5a;
	uart_io(u, reg, &v, 1, false);
	return v;
}

static void wr(struct uart *u, uint64_t reg, uint8_t v)
{
	uart_io(u, reg, &v, 1, true);
}

static void test_reset_state(void **state)
{
	struct fixture *fx = *state;
	assert_int_equal(rd(fx->u, LSR), 0x60);
	assert_int_equal(rd(fx->u, IIR), 0x01);
	assert_int_equal(rd(fx->u, IER), 0);
	assert_int_equal(rd(fx->u, MSR), 0xb0);
	assert_int_equal(rd(fx->u, RBR), 0); /* empty FIFO */
	assert_int_equal(fx->f.nlevels, 0);
}

static void test_dlab(void **state)
{
	struct fixture *fx = *state;
	struct uart *u = fx->u;
	wr(u, LCR, 0x83);
	wr(u, DLL, 0x01);
	wr(u, DLM, 0x02);
	assert_int_equal(rd(u, DLL), 0x01);
	assert_int_equal(rd(u, DLM), 0x02);
	assert_int_equal(fx->f.nout, 0); /* DLL write is not output */
	wr(u, LCR, 0x03);
	assert_int_equal(rd(u, LCR), 0x03);
	assert_int_equal(rd(u, IER), 0); /* DLM write did not touch IER */
	wr(u, IER, 0xff);
	assert_int_equal(rd(u, IER), 0x0f);
	wr(u, LCR, 0x80);
	assert_int_equal(rd(u, DLM), 0x02);
	assert_int_equal(rd(u, DLL), 0x01);
}

static void test_output(void **state)
{
	struct fixture *fx = *state;
	const char *s = "hello\r\n";
	for (size_t i = 0; i < strlen(s); i++) {
		wr(fx->u, THR, (uint8_t)s[i]);
		assert_int_equal(fx->f.nout, i + 1); /* reached the sink already */
	}
	assert_memory_equal(fx->f.out, s, strlen(s));
	assert_int_equal(rd(fx->u, LSR) & 0x60, 0x60);
}

static void test_scr_lcr_mcr(void **state)
{
	struct fixture *fx = *state;
	wr(fx->u, SCR, 0xa5);
	assert_int_equal(rd(fx->u, SCR), 0xa5);
	wr(fx->u, MCR, 0xff);
	assert_int_equal(rd(fx->u, MCR), 0x1f);
	wr(fx->u, MCR, 0x0b);
	assert_int_equal(rd(fx->u, MCR), 0x0b);
	wr(fx->u, LSR, 0x00); /* ignored */
	assert_int_equal(rd(fx->u, LSR), 0x60);
	wr(fx->u, MSR, 0x00); /* ignored */
	assert_int_equal(rd(fx->u, MSR) & 0xf0, 0xb0);
}

static void test_fifo_iir_bits(void **state)
{
	struct fixture *fx = *state;
	assert_int_equal(rd(fx->u, IIR) & 0xc0, 0);
	wr(fx->u, FCR, 0x01);
	assert_int_equal(rd(fx->u, IIR), 0xc1);
	/* Linux's 16750 probe: 64-byte bit must not show up in IIR. */
	wr(fx->u, FCR, 0x21);
	assert_int_equal(rd(fx->u, IIR) >> 5, 6);
	wr(fx->u, FCR, 0x00);
	assert_int_equal(rd(fx->u, IIR), 0x01);
}

static void test_receive(void **state)
{
	struct fixture *fx = *state;
	struct uart *u = fx->u;
	const uint8_t in[] = "abc";
	assert_int_equal(uart_receive(u, in, 3), 3);
	assert_int_equal(rd(u, LSR) & 0x01, 0x01);
	assert_int_equal(fx->f.nlevels, 0); /* RDI disabled */
	assert_int_equal(rd(u, RBR), 'a');
	assert_int_equal(rd(u, RBR), 'b');
	assert_int_equal(rd(u, LSR) & 0x01, 0x01);
	assert_int_equal(rd(u, RBR), 'c');
	assert_int_equal(rd(u, LSR) & 0x01, 0);
	assert_int_equal(uart_receive(u, in, 0), 0);
	assert_int_equal(uart_receive(u, NULL, 3), 0);
	assert_int_equal(uart_receive(NULL, in, 3), 0);
}

static void test_receive_overflow(void **state)
{
	struct fixture *fx = *state;
	struct uart *u = fx->u;
	static uint8_t big[UART_RX_FIFO_SIZE + 100];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	assert_int_equal(uart_receive(u, big, sizeof(big)), UART_RX_FIFO_SIZE);
	assert_int_equal(uart_receive(u, big, 1), 0);
	/* refused bytes are flow control, not an overrun */
	assert_int_equal(rd(u, LSR) & 0x03, 0x01);
	for (size_t i = 0; i < UART_RX_FIFO_SIZE; i++)
		assert_int_equal(rd(u, RBR), (uint8_t)i);
	assert_int_equal(rd(u, LSR) & 0x01, 0);
	/* room again */
	assert_int_equal(uart_receive(u, big + 5, 2), 2);
	assert_int_equal(rd(u, RBR), 5);
}

static void test_fcr_clears_rx(void **state)
{
	struct fixture *fx = *state;
	struct uart *u = fx->u;
	wr(u, FCR, 0x01);
	assert_int_equal(uart_receive(u, (const uint8_t *)"xy", 2), 2);
	wr(u, FCR, 0x03); /* clear RX, keep enabled */
	assert_int_equal(rd(u, LSR) & 0x01, 0);
	assert_int_equal(uart_receive(u, (const uint8_t *)"xy", 2), 2);
	wr(u, FCR, 0x00); /* disabling resets FIFOs */
	assert_int_equal(rd(u, LSR) & 0x01, 0);
	assert_int_equal(rd(u, IIR) & 0xc0, 0);
}

static void test_loopback(void **state)
{
	struct fixture *fx = *state;
	struct uart *u = fx->u;
	/* Linux's autoconfig loop test: RTS|OUT2 in loopback reads CTS|DCD. */
	wr(u, MCR, 0x10 | 0x0a);
	assert_int_equal(rd(u, MSR) & 0xf0, 0x90);
	wr(u, MCR, 0x10 | 0x05); /* DTR|OUT1 -> DSR|RI */
	uint8_t msr = rd(u, MSR);
	assert_int_equal(msr & 0xf0, 0x60);
	assert_int_equal(msr & 0x0f, 0x0b);	/* DCTS|DDSR|DDCD, RI rose: no TERI */
	assert_int_equal(rd(u, MSR) & 0x0f, 0); /* deltas cleared by read */
	wr(u, MCR, 0x10 | 0x01);		/* RI falls */
	assert_int_equal(rd(u, MSR) & 0x0f, 0x04);

	wr(u, THR, 'Q');
	wr(u, THR, 'R');
	assert_int_equal(fx->f.nout, 0); /* nothing left the UART */
	assert_int_equal(rd(u, LSR) & 0x61, 0x61);
	assert_int_equal(rd(u, RBR), 'Q');
	assert_int_equal(rd(u, RBR), 'R');
	/* the line is cut off in loopback */
	assert_int_equal(uart_receive(u, (const uint8_t *)"z", 1), 0);

	/* loopback overflow is an overrun, reported once by LSR */
	for (int i = 0; i < UART_RX_FIFO_SIZE + 1; i++)
		wr(u, THR, 'x');
	assert_int_equal(rd(u, LSR) & 0x03, 0x03);
	assert_int_equal(rd(u, LSR) & 0x03, 0x01);

	wr(u, MCR, 0x00);
	assert_int_equal(rd(u, MSR) & 0xf0, 0xb0);
	wr(u, THR, 'o');
	assert_int_equal(fx->f.nout, 1);
	assert_int_equal(fx->f.out[0], 'o');
}

static void test_thre_rules(void **state)
{
	struct fixture *fx = *state;
	struct uart *u = fx->u;
	/* Enabling THRI with THR empty: an interrupt, the line rises. */
	wr(u, IER, 0x02);
	assert_int_equal(fx->f.nlevels, 1);
	assert_true(fx->f.levels[0]);
	assert_int_equal(fx->f.last_gsi, 4);
	/* Reading IIR while THRE is the source clears it. */
	assert_int_equal(rd(u, IIR), 0x02);
	assert_int_equal(fx->f.nlevels, 2);
	assert_false(fx->f.levels[1]);
	assert_int_equal(rd(u, IIR), 0x01);
	/* Linux's UART_BUG_THRE probe: IER 0 then THRI again re-arms it. */
	wr(u, IER, 0x00);
	wr(u, IER, 0x02);
	assert_int_equal(rd(u, IIR), 0x02);
	assert_int_equal(rd(u, IIR), 0x01);
	/* Rewriting IER with THRI still set does not re-arm. */
	wr(u, IER, 0x03);
	assert_int_equal(rd(u, IIR), 0x01);
	/* A THR write: low then high again, a fresh edge. */
	unsigned n = fx->f.nlevels;
	wr(u, THR, 'a');
	assert_int_equal(fx->f.nlevels, n + 1);
	assert_true(fx->f.levels[n]);
	wr(u, THR, 'b'); /* still pending: low, then high again */
	assert_int_equal(fx->f.nlevels, n + 3);
	assert_false(fx->f.levels[n + 1]);
	assert_true(fx->f.levels[n + 2]);
	assert_int_equal(rd(u, IIR), 0x02);
	assert_int_equal(fx->f.nlevels, n + 4);
	assert_false(fx->f.levels[n + 3]);
	wr(u, THR, 'c');
	assert_int_equal(fx->f.nlevels, n + 5);
	assert_true(fx->f.levels[n + 4]);
	/* Disabling THRI lowers the line. */
	wr(u, IER, 0x00);
	assert_false(fx->f.levels[fx->f.nlevels - 1]);
	assert_int_equal(rd(u, IIR), 0x01);
}

static void test_iir_priorities(void **state)
{
	struct fixture *fx = *state;
	struct uart *u = fx->u;
	wr(u, FCR, 0x01);
	wr(u, MCR, 0x10); /* loopback, all lines low */
	(void)rd(u, MSR);
	wr(u, IER, 0x0f);
	assert_int_equal(rd(u, IIR), 0xc2); /* THRE only */
	/* modem status change: below THRE */
	wr(u, MCR, 0x12);
	/* receive data via loopback overflow: OE (line status) above all */
	for (int i = 0; i < UART_RX_FIFO_SIZE + 1; i++)
		wr(u, THR, 'x');
	assert_int_equal(rd(u, IIR), 0xc6);
	assert_int_equal(rd(u, LSR) & 0x03, 0x03); /* clears OE */
	assert_int_equal(rd(u, IIR), 0xc4);	   /* received data */
	for (int i = 0; i < UART_RX_FIFO_SIZE; i++)
		(void)rd(u, RBR);
	assert_int_equal(rd(u, IIR), 0xc2); /* THRE (re-armed by the writes) */
	assert_int_equal(rd(u, IIR), 0xc0); /* modem status */
	(void)rd(u, MSR);
	assert_int_equal(rd(u, IIR), 0xc1);
	assert_false(fx->f.levels[fx->f.nlevels - 1]);
}

static void test_rx_irq_edges(void **state)
{
	struct fixture *fx = *state;
	struct uart *u = fx->u;
	wr(u, IER, 0x01);
	assert_int_equal(fx->f.nlevels, 0);
	assert_int_equal(uart_receive(u, (const uint8_t *)"ab", 2), 2);
	assert_int_equal(fx->f.nlevels, 1);
	assert_true(fx->f.levels[0]);
	assert_int_equal(uart_receive(u, (const uint8_t *)"c", 1), 1);
	assert_int_equal(fx->f.nlevels, 1); /* no change, no call */
	assert_int_equal(rd(u, IIR), 0x04);
	(void)rd(u, RBR);
	(void)rd(u, RBR);
	assert_int_equal(fx->f.nlevels, 1);
	(void)rd(u, RBR);
	assert_int_equal(fx->f.nlevels, 2);
	assert_false(fx->f.levels[1]);
	/* MSI: a loopback line change raises, an MSR read lowers */
	wr(u, IER, 0x08);
	wr(u, MCR, 0x10);
	assert_true(fx->f.levels[fx->f.nlevels - 1]);
	(void)rd(u, MSR);
	assert_false(fx->f.levels[fx->f.nlevels - 1]);
}

static void test_every_width(void **state)
{
	struct fixture *fx = *state;
	struct uart *u = fx->u;
	uint8_t buf[8];
	for (uint64_t off = 0; off < 12; off++) {
		for (uint32_t len = 1; len <= 8; len *= 2) {
			memset(buf, 0x42, sizeof(buf));
			uart_io(u, off, buf, len, false);
			if (off >= UART_PORT_COUNT)
				assert_int_equal(buf[0], 0xff);
			memset(buf, 0x00, sizeof(buf));
			uart_io(u, off, buf, len, true);
		}
	}
	uart_io(u, UINT64_MAX, buf, 4, false);
	assert_int_equal(buf[0], 0xff);
	uart_io(u, UINT64_MAX - 1, buf, 4, true);
	/* a 16-bit read at LCR returns LCR then MCR */
	wr(u, LCR, 0x03);
	wr(u, MCR, 0x08);
	uint8_t two[2];
	uart_io(u, LCR, two, 2, false);
	assert_int_equal(two[0], 0x03);
	assert_int_equal(two[1], 0x08);
	/* a 16-bit write at 6 hits SCR but not beyond */
	uint8_t w[4] = {0x11, 0x22, 0x33, 0x44};
	uart_io(u, MSR, w, 2, true);
	assert_int_equal(rd(u, SCR), 0x22);
	uart_io(u, SCR, w, 4, false);
	assert_int_equal(w[0], 0x22);
	assert_int_equal(w[1], 0xff);
}

static void test_null_sinks(void **state)
{
	(void)state;
	struct uart *u = uart_create(NULL, NULL);
	assert_non_null(u);
	wr(u, IER, 0x02);
	wr(u, THR, 'x');
	assert_int_equal(rd(u, IIR), 0x02);
	uart_destroy(u);
	uart_destroy(NULL);
}

/* Input from another thread while a vCPU drains RBR: nothing lost or
 * reordered. */
static void *feeder(void *arg)
{
	struct uart *u = arg;
	for (unsigned i = 0; i < 100000;) {
		uint8_t b = (uint8_t)i;
		i += (unsigned)uart_receive(u, &b, 1);
	}
	return NULL;
}

static void test_threaded_input(void **state)
{
	struct fixture *fx = *state;
	struct uart *u = fx->u;
	pthread_t t;
	wr(u, IER, 0x01);
	assert_int_equal(pthread_create(&t, NULL, feeder, u), 0);
	for (unsigned i = 0; i < 100000;) {
		if (!(rd(u, LSR) & 0x01))
			continue;
		assert_int_equal(rd(u, RBR), (uint8_t)i);
		i++;
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(rd(u, LSR) & 0x01, 0);
	assert_false(fx->f.level);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_reset_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dlab, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_output, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scr_lcr_mcr, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fifo_iir_bits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_receive, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_receive_overflow, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fcr_clears_rx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_loopback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_thre_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_iir_priorities, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_irq_edges, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_width, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_threaded_input, setup, teardown),
	    cmocka_unit_test(test_null_sinks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
