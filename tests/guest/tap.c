/* TAP version 13 output: plan, one line per check, diagnostics, and the one
 * summary line the host looks for. */
#include "guest.h"

static unsigned next = 1, passed, failed;
static bool summary_done;

void tap_begin(unsigned nchecks)
{
	kprintf("TAP version 13\n1..%u\n", nchecks);
}

unsigned tap_current(void)
{
	return next;
}

void tap_ok(const char *name)
{
	kprintf("ok %u - %s\n", next++, name);
	passed++;
}

void tap_fail(const char *name, const char *why, ...)
{
	va_list ap;

	kprintf("not ok %u - %s # ", next++, name);
	va_start(ap, why);
	kvprintf(why, ap);
	va_end(ap);
	kprintf("\n");
	failed++;
}

void tap_diag(const char *fmt, ...)
{
	va_list ap;

	kprintf("# ");
	va_start(ap, fmt);
	kvprintf(fmt, ap);
	va_end(ap);
	kprintf("\n");
}

unsigned tap_summary(void)
{
	summary_done = true;
	kprintf("# chv-testguest: %u passed, %u failed\n", passed, failed);
	return failed;
}

bool tap_summary_done(void)
{
	return summary_done;
}
