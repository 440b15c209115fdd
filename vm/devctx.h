/* What a device model may reach of the VM: an interrupt line and a power
 * request. Devices know nothing else of the VM or the hypervisor. */
#ifndef CHV_VM_DEVCTX_H
#define CHV_VM_DEVCTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct irq_line {
	int (*set)(void *ctx, uint32_t gsi, bool level);
	void *ctx;
	uint32_t gsi;
};

static inline void irq_line_set(const struct irq_line *l, bool level)
{
	if (l && l->set)
		(void)l->set(l->ctx, l->gsi, level);
}

enum power_req { POWER_OFF = 1, POWER_RESET = 2 };

struct power_ctl {
	void (*request)(void *ctx, enum power_req req);
	void *ctx;
};

/* Where a console device's output goes (serial sink). */
struct out_sink {
	void (*write)(void *ctx, const uint8_t *buf, size_t n);
	void *ctx;
};

#endif
