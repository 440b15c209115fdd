#include "vm/dev_cmos.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#define A_UIP	      0x80
#define A_DIVIDER     0x70
#define A_DIVIDER_RUN 0x20 /* 32.768 kHz time base, counting */
#define A_DEFAULT     0x26 /* time base running, 1024 Hz periodic rate */

#define B_SET	  0x80
#define B_UIE	  0x10
#define B_DM	  0x04 /* binary, not BCD */
#define B_24H	  0x02
#define B_DEFAULT B_24H

#define C_UF  0x10
#define D_VRT 0x80

#define HOUR_PM 0x80

/* The update cycle takes the last 244 us of each second (datasheet). */
#define UIP_NS 244000L

struct cmos {
	pthread_mutex_t lock;
	cmos_clock_fn clock;
	uint8_t index;
	uint8_t ram[128];
	int64_t offset; /* guest RTC seconds minus host UTC seconds */
	bool held;	/* SET bit in B: the clock is stopped at held_tm */
	struct tm held_tm;
	int64_t uf_time; /* RTC second at the last read of C */
};

static void cmos_realtime(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

static void cmos_now(const struct cmos *c, int64_t *secs, long *nsec)
{
	struct timespec ts;
	c->clock(&ts);
	*secs = (int64_t)ts.tv_sec + c->offset;
	if (nsec)
		*nsec = ts.tv_nsec;
}

void cmos_set_clock(struct cmos *c, cmos_clock_fn clock)
{
	pthread_mutex_lock(&c->lock);
	c->clock = clock ? clock : cmos_realtime;
	cmos_now(c, &c->uf_time, NULL);
	pthread_mutex_unlock(&c->lock);
}

static void cmos_tm(const struct cmos *c, struct tm *tm)
{
	if (c->held) {
		*tm = c->held_tm;
		/* The weekday follows the date the guest has written so far. */
		struct tm norm = *tm;
		if (timegm(&norm) != (time_t)-1)
			tm->tm_wday = norm.tm_wday;
		return;
	}
	int64_t secs;
	cmos_now(c, &secs, NULL);
	time_t t = (time_t)secs;
	gmtime_r(&t, tm);
}

static bool cmos_binary(const struct cmos *c)
{
	return c->ram[CMOS_STATUS_B] & B_DM;
}

static uint8_t cmos_enc(const struct cmos *c, int v)
{
	if (v < 0)
		v = 0;
	v %= 100;
	if (cmos_binary(c))
		return (uint8_t)v;
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

static int cmos_dec(const struct cmos *c, uint8_t v)
{
	if (cmos_binary(c))
		return v;
	return (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t cmos_enc_hour(const struct cmos *c, int h)
{
	if (c->ram[CMOS_STATUS_B] & B_24H)
		return cmos_enc(c, h);
	int h12 = h % 12 ? h % 12 : 12;
	return (uint8_t)(cmos_enc(c, h12) | (h >= 12 ? HOUR_PM : 0));
}

static int cmos_dec_hour(const struct cmos *c, uint8_t v)
{
	if (c->ram[CMOS_STATUS_B] & B_24H)
		return cmos_dec(c, v);
	int h = cmos_dec(c, v & (uint8_t)~HOUR_PM) % 12;
	return (v & HOUR_PM) ? h + 12 : h;
}

static int tm_full_year(const struct tm *tm)
{
	return tm->tm_year + 1900;
}

static uint8_t cmos_read_time(const struct cmos *c, uint8_t idx)
{
	struct tm tm;
	cmos_tm(c, &tm);
	int year = tm_full_year(&tm);
	switch (idx) {
	case CMOS_SECONDS:
		return cmos_enc(c, tm.tm_sec);
	case CMOS_MINUTES:
		return cmos_enc(c, tm.tm_min);
	case CMOS_HOURS:
		return cmos_enc_hour(c, tm.tm_hour);
	case CMOS_WEEKDAY:
		return cmos_enc(c, tm.tm_wday + 1); /* Sunday is 1 */
	case CMOS_DAY:
		return cmos_enc(c, tm.tm_mday);
	case CMOS_MONTH:
		return cmos_enc(c, tm.tm_mon + 1);
	case CMOS_YEAR:
		return cmos_enc(c, ((year % 100) + 100) % 100);
	default: /* CMOS_CENTURY */
		return cmos_enc(c, year / 100);
	}
}

static void cmos_set_field(const struct cmos *c, struct tm *tm, uint8_t idx, uint8_t v)
{
	int year = tm_full_year(tm);
	switch (idx) {
	case CMOS_SECONDS:
		tm->tm_sec = cmos_dec(c, v);
		break;
	case CMOS_MINUTES:
		tm->tm_min = cmos_dec(c, v);
		break;
	case CMOS_HOURS:
		tm->tm_hour = cmos_dec_hour(c, v);
		break;
	case CMOS_DAY:
		tm->tm_mday = cmos_dec(c, v);
		break;
	case CMOS_MONTH:
		tm->tm_mon = cmos_dec(c, v) - 1;
		break;
	case CMOS_YEAR:
		tm->tm_year = (year - ((year % 100) + 100) % 100) + cmos_dec(c, v) - 1900;
		break;
	case CMOS_CENTURY:
		tm->tm_year = cmos_dec(c, v) * 100 + ((year % 100) + 100) % 100 - 1900;
		break;
	default: /* the weekday follows from the date */
		break;
	}
}

static void cmos_write_time(struct cmos *c, uint8_t idx, uint8_t v)
{
	if (c->held) {
		/* Held until SET clears, so a date written field by field is
		 * not normalised halfway (31 written into a 30-day month). */
		cmos_set_field(c, &c->held_tm, idx, v);
		return;
	}
	struct tm tm;
	int64_t now;
	cmos_now(c, &now, NULL);
	time_t t = (time_t)now;
	gmtime_r(&t, &tm);
	cmos_set_field(c, &tm, idx, v);
	time_t nt = timegm(&tm);
	if (nt != (time_t)-1)
		c->offset += (int64_t)nt - now;
}

static void cmos_write_b(struct cmos *c, uint8_t v)
{
	bool was_held = c->held;

	if (v & B_SET)
		v &= (uint8_t)~B_UIE;
	if ((v & B_SET) && !was_held) {
		cmos_tm(c, &c->held_tm);
		c->held = true;
	} else if (!(v & B_SET) && was_held) {
		struct tm tm = c->held_tm;
		time_t nt = timegm(&tm);
		int64_t now;
		c->held = false;
		cmos_now(c, &now, NULL);
		if (nt != (time_t)-1)
			c->offset += (int64_t)nt - now;
	}
	c->ram[CMOS_STATUS_B] = v;
}

static uint8_t cmos_read_a(const struct cmos *c)
{
	uint8_t a = c->ram[CMOS_STATUS_A] & (uint8_t)~A_UIP;
	if ((a & A_DIVIDER) != A_DIVIDER_RUN || c->held)
		return a;
	int64_t secs;
	long nsec;
	cmos_now(c, &secs, &nsec);
	/* Real timing, so guests that wait for the end of an update see it
	 * end within a millisecond, and never see UIP stuck. */
	if (nsec >= 1000000000L - UIP_NS)
		a |= A_UIP;
	return a;
}

static uint8_t cmos_read_c(struct cmos *c)
{
	int64_t secs;
	uint8_t v = 0;

	if (c->held)
		return 0;
	cmos_now(c, &secs, NULL);
	if (secs != c->uf_time)
		v |= C_UF;
	c->uf_time = secs;
	return v;
}

static bool cmos_is_time(uint8_t idx)
{
	return idx == CMOS_SECONDS || idx == CMOS_MINUTES || idx == CMOS_HOURS ||
	       idx == CMOS_WEEKDAY || idx == CMOS_DAY || idx == CMOS_MONTH || idx == CMOS_YEAR ||
	       idx == CMOS_CENTURY;
}

static uint8_t cmos_read_data(struct cmos *c)
{
	uint8_t idx = c->index;

	if (cmos_is_time(idx))
		return cmos_read_time(c, idx);
	switch (idx) {
	case CMOS_STATUS_A:
		return cmos_read_a(c);
	case CMOS_STATUS_C:
		return cmos_read_c(c);
	case CMOS_STATUS_D:
		return D_VRT;
	default:
		return c->ram[idx];
	}
}

static void cmos_write_data(struct cmos *c, uint8_t v)
{
	uint8_t idx = c->index;

	if (cmos_is_time(idx)) {
		cmos_write_time(c, idx, v);
		return;
	}
	switch (idx) {
	case CMOS_STATUS_A:
		c->ram[idx] = v & (uint8_t)~A_UIP;
		break;
	case CMOS_STATUS_B:
		cmos_write_b(c, v);
		break;
	case CMOS_STATUS_C:
	case CMOS_STATUS_D:
		break; /* read-only */
	default:
		c->ram[idx] = v;
		break;
	}
}

void cmos_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct cmos *c = opaque;

	pthread_mutex_lock(&c->lock);
	for (uint32_t i = 0; i < len; i++) {
		bool inside = offset < CMOS_PORT_COUNT && offset + i < CMOS_PORT_COUNT;
		uint64_t port = offset + i;
		if (!is_write) {
			data[i] = (inside && port == 1) ? cmos_read_data(c) : 0xff;
		} else if (inside && port == 0) {
			c->index = data[i] & 0x7f;
		} else if (inside) {
			cmos_write_data(c, data[i]);
		}
	}
	pthread_mutex_unlock(&c->lock);
}

static void put16(uint8_t *ram, unsigned idx, uint64_t v)
{
	if (v > 0xffff)
		v = 0xffff;
	ram[idx] = (uint8_t)v;
	ram[idx + 1] = (uint8_t)(v >> 8);
}

static void cmos_set_memory(struct cmos *c, uint64_t below, uint64_t above)
{
	const uint64_t k = 1024, m = 1024 * 1024;

	put16(c->ram, CMOS_BASE_MEM_LO, below < 640 * k ? below / k : 640);
	uint64_t ext = below > m ? (below - m) / k : 0;
	put16(c->ram, CMOS_EXT_MEM_LO, ext);
	put16(c->ram, 0x30, ext);
	put16(c->ram, CMOS_MEM_16M_LO, below > 16 * m ? (below - 16 * m) / (64 * k) : 0);
	uint64_t hi = above / (64 * k);
	if (hi > 0xffffff)
		hi = 0xffffff;
	c->ram[CMOS_MEM_4G_LO] = (uint8_t)hi;
	c->ram[CMOS_MEM_4G_LO + 1] = (uint8_t)(hi >> 8);
	c->ram[CMOS_MEM_4G_LO + 2] = (uint8_t)(hi >> 16);
}

struct cmos *cmos_create(uint64_t mem_below_4g, uint64_t mem_above_4g)
{
	struct cmos *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	int rc = pthread_mutex_init(&c->lock, NULL);
	if (rc) {
		free(c);
		errno = rc;
		return NULL;
	}
	c->ram[CMOS_STATUS_A] = A_DEFAULT;
	c->ram[CMOS_STATUS_B] = B_DEFAULT;
	cmos_set_memory(c, mem_below_4g, mem_above_4g);
	c->clock = cmos_realtime;
	cmos_now(c, &c->uf_time, NULL);
	return c;
}

void cmos_destroy(struct cmos *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->lock);
	free(c);
}
