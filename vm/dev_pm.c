#include "vm/dev_pm.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "vm/layout.h"
#include "vm/log.h"

#define SLP_EN	      0x20
#define SLP_TYP_SHIFT 2
#define SLP_TYP_MASK  0x7

struct pmdev {
	struct power_ctl power;
	atomic_bool warned;
};

static void pmdev_request(struct pmdev *p, enum power_req req)
{
	if (p->power.request)
		p->power.request(p->power.ctx, req);
}

static void pmdev_write(struct pmdev *p, uint8_t v)
{
	if (v == ACPI_RESET_VALUE) {
		pmdev_request(p, POWER_RESET);
		return;
	}
	if (!(v & SLP_EN))
		return;
	unsigned typ = (v >> SLP_TYP_SHIFT) & SLP_TYP_MASK;
	if (typ == ACPI_S5_SLP_TYP) {
		pmdev_request(p, POWER_OFF);
		return;
	}
	/* A guest retrying a sleep state would flood the log. */
	if (!atomic_exchange(&p->warned, true))
		log_warn("acpi pm: sleep type %u requested (value 0x%02x): only S5 is supported, "
			 "ignored",
			 typ, v);
}

void pmdev_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct pmdev *p = opaque;

	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	if (offset == 0 && len > 0)
		pmdev_write(p, data[0]);
}

struct pmdev *pmdev_create(const struct power_ctl *power)
{
	struct pmdev *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	if (power)
		p->power = *power;
	atomic_init(&p->warned, false);
	return p;
}

void pmdev_destroy(struct pmdev *p)
{
	free(p);
}
