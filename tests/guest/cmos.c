/* The MC146818 RTC behind ports 0x70/0x71. */
#include "guest.h"

#define RTC_SEC	    0x00
#define RTC_MIN	    0x02
#define RTC_HOUR    0x04
#define RTC_DAY	    0x07
#define RTC_MONTH   0x08
#define RTC_YEAR    0x09
#define RTC_A	    0x0a
#define RTC_B	    0x0b
#define RTC_CENTURY 0x32
#define A_UIP	    0x80
#define B_24H	    0x02
#define B_BINARY    0x04

static uint8_t cmos_rd(uint8_t reg)
{
	outb(0x70, reg);
	return inb(0x71);
}

static unsigned from_bcd(uint8_t v, bool binary)
{
	return binary ? v : (unsigned)(v >> 4) * 10 + (v & 0xf);
}

static bool read_raw(uint8_t r[7])
{
	/* An update takes under 2 ms; 10000 port reads is far longer. */
	unsigned i;
	for (i = 0; i < 10000; i++)
		if (!(cmos_rd(RTC_A) & A_UIP))
			break;
	if (i == 10000)
		return false;
	r[0] = cmos_rd(RTC_SEC);
	r[1] = cmos_rd(RTC_MIN);
	r[2] = cmos_rd(RTC_HOUR);
	r[3] = cmos_rd(RTC_DAY);
	r[4] = cmos_rd(RTC_MONTH);
	r[5] = cmos_rd(RTC_YEAR);
	r[6] = cmos_rd(RTC_CENTURY);
	return true;
}

int cmos_read_time(struct rtc_time *t, char *why, size_t cap)
{
	uint8_t a[7], b[7];
	int tries;

	if (!read_raw(a)) {
		ksnprintf(why, cap, "update-in-progress never cleared");
		return -1;
	}
	/* Two equal reads in a row: no update slipped in between. */
	for (tries = 0; tries < 5; tries++) {
		if (!read_raw(b)) {
			ksnprintf(why, cap, "update-in-progress never cleared");
			return -1;
		}
		if (!memcmp(a, b, sizeof(a)))
			break;
		memcpy(a, b, sizeof(a));
	}
	if (tries == 5) {
		ksnprintf(why, cap, "time kept changing between reads");
		return -1;
	}
	t->reg_b = cmos_rd(RTC_B);
	if (t->reg_b == 0xff && a[0] == 0xff && a[5] == 0xff) {
		ksnprintf(why, cap, "no RTC (registers read 0xff)");
		return -1;
	}
	bool bin = t->reg_b & B_BINARY;
	t->sec = from_bcd(a[0], bin);
	t->min = from_bcd(a[1], bin);
	t->hour = from_bcd(a[2] & 0x7f, bin);
	if (!(t->reg_b & B_24H)) {
		t->hour %= 12;
		if (a[2] & 0x80)
			t->hour += 12;
	}
	t->day = from_bcd(a[3], bin);
	t->month = from_bcd(a[4], bin);
	unsigned century = from_bcd(a[6], bin);
	if (century < 20 || century > 21)
		century = 20; /* no century register */
	t->year = century * 100 + from_bcd(a[5], bin);
	if (t->sec > 59 || t->min > 59 || t->hour > 23 || t->day < 1 || t->day > 31 ||
	    t->month < 1 || t->month > 12 || t->year < 2024 || t->year > 2199) {
		ksnprintf(why, cap,
			  "implausible time %u-%02u-%02u %02u:%02u:%02u (raw %02x %02x %02x %02x "
			  "%02x %02x, B 0x%02x)",
			  t->year, t->month, t->day, t->hour, t->min, t->sec, a[5], a[4], a[3],
			  a[2], a[1], a[0], t->reg_b);
		return -1;
	}
	return 0;
}
