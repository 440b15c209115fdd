/* Polled 16550 on COM1 and a small printf. No interrupts: the guest runs with
 * IF clear throughout. */
#include "guest.h"

#define COM1	 0x3f8
#define UART_THR 0
#define UART_DLL 0
#define UART_IER 1
#define UART_DLM 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

/* Bounds every wait, so a missing UART (LSR reads 0xff anyway) or a stuck
 * one cannot hang the guest. */
#define SPIN_MAX 100000

void console_init(void)
{
	outb(COM1 + UART_IER, 0x00);
	outb(COM1 + UART_LCR, 0x80); /* DLAB */
	outb(COM1 + UART_DLL, 0x01); /* 115200 baud */
	outb(COM1 + UART_DLM, 0x00);
	outb(COM1 + UART_LCR, 0x03); /* 8N1 */
	outb(COM1 + UART_FCR, 0xc7); /* FIFOs on, cleared, 14-byte trigger */
	outb(COM1 + UART_MCR, 0x03); /* DTR RTS */
}

void console_putc(char c)
{
	for (unsigned i = 0; i < SPIN_MAX; i++)
		if (inb(COM1 + UART_LSR) & LSR_THRE)
			break;
	outb(COM1 + UART_THR, (uint8_t)c);
}

void console_write(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			console_putc('\r');
		console_putc(s[i]);
	}
}

void console_drain(void)
{
	for (unsigned i = 0; i < SPIN_MAX; i++)
		if (inb(COM1 + UART_LSR) & LSR_TEMT)
			return;
}

struct sink {
	char *buf; /* NULL: the console */
	size_t cap, len;
};

static void sink_put(struct sink *k, char c)
{
	if (!k->buf) {
		if (c == '\n')
			console_putc('\r');
		console_putc(c);
	} else if (k->len + 1 < k->cap) {
		k->buf[k->len] = c;
	}
	k->len++;
}

static void put_num(struct sink *k, uint64_t v, unsigned base, int width, char pad, bool neg)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg)
		tmp[n++] = '-';
	while (width-- > n)
		sink_put(k, pad);
	while (n)
		sink_put(k, tmp[--n]);
}

static void format(struct sink *k, const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			sink_put(k, *fmt);
			continue;
		}
		fmt++;
		char pad = ' ';
		int width = 0, lng = 0;
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l') {
			lng++;
			fmt++;
		}
		if (*fmt == 'z') {
			lng = 1;
			fmt++;
		}
		switch (*fmt) {
		case 'd': {
			int64_t v = lng ? va_arg(ap, long) : va_arg(ap, int);
			put_num(k, v < 0 ? -(uint64_t)v : (uint64_t)v, 10, width, pad, v < 0);
			break;
		}
		case 'u':
		case 'x': {
			uint64_t v = lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
			put_num(k, v, *fmt == 'u' ? 10 : 16, width, pad, false);
			break;
		}
		case 'c':
			sink_put(k, (char)va_arg(ap, int));
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			int n = (int)strlen(s);
			while (width-- > n)
				sink_put(k, ' ');
			while (*s)
				sink_put(k, *s++);
			break;
		}
		case '%':
			sink_put(k, '%');
			break;
		default:
			sink_put(k, '?');
			if (!*fmt)
				return;
		}
	}
}

void kvprintf(const char *fmt, va_list ap)
{
	struct sink k = {0};
	format(&k, fmt, ap);
}

void kprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kvprintf(fmt, ap);
	va_end(ap);
}

int ksnprintf(char *buf, size_t cap, const char *fmt, ...)
{
	struct sink k = {.buf = buf, .cap = cap};
	va_list ap;
	va_start(ap, fmt);
	format(&k, fmt, ap);
	va_end(ap);
	if (cap)
		buf[k.len < cap ? k.len : cap - 1] = '\0';
	return (int)k.len;
}
