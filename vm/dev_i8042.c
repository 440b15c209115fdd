#include "vm/dev_i8042.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STS_OBF	   0x01 /* output buffer full */
#define STS_SYS	   0x04 /* system flag: self test passed */
#define STS_CMDDAT 0x08 /* last write was a command */

#define CMD_READ_CTR	0x20
#define CMD_WRITE_CTR	0x60
#define CMD_AUX_DISABLE 0xa7
#define CMD_AUX_ENABLE	0xa8
#define CMD_AUX_TEST	0xa9
#define CMD_SELF_TEST	0xaa
#define CMD_KBD_TEST	0xab
#define CMD_KBD_DISABLE 0xad
#define CMD_KBD_ENABLE	0xae
#define CMD_READ_OUTP	0xd0
#define CMD_WRITE_OUTP	0xd1

#define CTR_KBDINT 0x01
#define CTR_SYS	   0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20
#define CTR_XLATE  0x40

#define OUTP_RESET 0x01 /* active low: clearing it resets the CPU */
#define OUTP_A20   0x02

struct i8042 {
	pthread_mutex_t lock;
	struct power_ctl power;
	uint8_t status;
	uint8_t outbuf;
	uint8_t ctr;	 /* the command byte */
	uint8_t outp;	 /* the output port */
	uint8_t pending; /* command waiting for its parameter on port 0x60 */
};

static void i8042_put(struct i8042 *k, uint8_t v)
{
	k->outbuf = v;
	k->status |= STS_OBF;
}

/* Called with the lock held; returns true when a reset must be requested. */
static bool i8042_command(struct i8042 *k, uint8_t cmd)
{
	k->status |= STS_CMDDAT;
	k->pending = 0;
	switch (cmd) {
	case CMD_READ_CTR:
		i8042_put(k, k->ctr);
		break;
	case CMD_WRITE_CTR:
	case CMD_WRITE_OUTP:
		k->pending = cmd;
		break;
	case CMD_READ_OUTP:
		i8042_put(k, k->outp);
		break;
	case CMD_SELF_TEST:
		i8042_put(k, 0x55);
		break;
	case CMD_KBD_TEST:
		i8042_put(k, 0x00); /* the clock and data lines test fine */
		break;
	case CMD_AUX_TEST:
		i8042_put(k, 0x00);
		break;
	case CMD_KBD_DISABLE:
		k->ctr |= CTR_KBDDIS;
		break;
	case CMD_KBD_ENABLE:
		k->ctr &= (uint8_t)~CTR_KBDDIS;
		break;
	case CMD_AUX_DISABLE:
		k->ctr |= CTR_AUXDIS;
		break;
	case CMD_AUX_ENABLE:
		k->ctr &= (uint8_t)~CTR_AUXDIS;
		break;
	default:
		/* 0xF0-0xFF pulse output port lines for bits clear in the low
		 * nibble; bit 0 is the CPU reset line (0xFE is the usual one). */
		if ((cmd & 0xf0) == 0xf0 && !(cmd & OUTP_RESET))
			return true;
		break;
	}
	return false;
}

static bool i8042_data_write(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending;

	k->status &= (uint8_t)~STS_CMDDAT;
	k->pending = 0;
	switch (cmd) {
	case CMD_WRITE_CTR:
		k->ctr = v;
		k->status = (uint8_t)((k->status & ~STS_SYS) | (v & CTR_SYS));
		break;
	case CMD_WRITE_OUTP:
		k->outp = v;
		return !(v & OUTP_RESET);
	default:
		/* A byte for the keyboard: there is none, so no answer. */
		break;
	}
	return false;
}

static void i8042_reset_request(struct i8042 *k)
{
	if (k->power.request)
		k->power.request(k->power.ctx, POWER_RESET);
}

void i8042_data_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct i8042 *k = opaque;
	bool reset = false;

	if (!len)
		return;
	if (!is_write)
		memset(data, 0xff, len);
	if (offset != 0)
		return;
	pthread_mutex_lock(&k->lock);
	if (is_write) {
		reset = i8042_data_write(k, data[0]);
	} else if (k->status & STS_OBF) {
		data[0] = k->outbuf;
		k->status &= (uint8_t)~STS_OBF;
	} else {
		data[0] = 0;
	}
	pthread_mutex_unlock(&k->lock);
	/* Outside the lock: the request may stop vCPUs that are in here. */
	if (reset)
		i8042_reset_request(k);
}

void i8042_cmd_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct i8042 *k = opaque;
	bool reset = false;

	if (!len)
		return;
	if (!is_write)
		memset(data, 0xff, len);
	if (offset != 0)
		return;
	pthread_mutex_lock(&k->lock);
	if (is_write)
		reset = i8042_command(k, data[0]);
	else
		data[0] = k->status;
	pthread_mutex_unlock(&k->lock);
	if (reset)
		i8042_reset_request(k);
}

struct i8042 *i8042_create(const struct power_ctl *power)
{
	struct i8042 *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	int rc = pthread_mutex_init(&k->lock, NULL);
	if (rc) {
		free(k);
		errno = rc;
		return NULL;
	}
	if (power)
		k->power = *power;
	/* As firmware leaves it: POST passed, translation on, A20 enabled. */
	k->status = STS_SYS;
	k->ctr = CTR_SYS | CTR_XLATE | CTR_KBDINT;
	k->outp = OUTP_RESET | OUTP_A20;
	return k;
}

void i8042_destroy(struct i8042 *k)
{
	if (!k)
		return;
	pthread_mutex_destroy(&k->lock);
	free(k);
}
