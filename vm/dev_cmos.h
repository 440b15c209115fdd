/* The MC146818 real-time clock and its CMOS RAM, at PORT_CMOS: offset 0 is
 * the index port (bit 7, the NMI mask, is ignored), offset 1 the data port.
 * The clock follows the host's CLOCK_REALTIME (UTC) plus an offset that
 * guest writes to the time registers move; the registers read in BCD or
 * binary, 12 or 24 hour mode as status register B says. The memory size
 * registers are filled the way firmware (SeaBIOS, OVMF) reads them.
 * Thread-safe. */
#ifndef CHV_VM_DEV_CMOS_H
#define CHV_VM_DEV_CMOS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define CMOS_PORT_COUNT 2

/* Register indexes (the usual PC assignments). */
#define CMOS_SECONDS	 0x00
#define CMOS_MINUTES	 0x02
#define CMOS_HOURS	 0x04
#define CMOS_WEEKDAY	 0x06
#define CMOS_DAY	 0x07
#define CMOS_MONTH	 0x08
#define CMOS_YEAR	 0x09
#define CMOS_STATUS_A	 0x0a
#define CMOS_STATUS_B	 0x0b
#define CMOS_STATUS_C	 0x0c
#define CMOS_STATUS_D	 0x0d
#define CMOS_BASE_MEM_LO 0x15 /* KiB below 1 MiB */
#define CMOS_EXT_MEM_LO	 0x17 /* KiB above 1 MiB, up to 64 MiB (also 0x30) */
#define CMOS_CENTURY	 0x32
#define CMOS_MEM_16M_LO	 0x34 /* 64 KiB units between 16 MiB and 4 GiB */
#define CMOS_MEM_4G_LO	 0x5b /* 64 KiB units above 4 GiB, 3 bytes */

struct cmos;

/* mem_below_4g: guest RAM bytes under the 32-bit hole (from 0);
 * mem_above_4g: bytes from 4 GiB. NULL + errno on failure. */
struct cmos *cmos_create(uint64_t mem_below_4g, uint64_t mem_above_4g);
void cmos_destroy(struct cmos *c);

/* The clock the RTC reads (default: CLOCK_REALTIME); NULL restores it. For
 * tests that need exact instants, such as the update-in-progress window. */
typedef void (*cmos_clock_fn)(struct timespec *ts);
void cmos_set_clock(struct cmos *c, cmos_clock_fn clock);

/* bus_io_fn for CMOS_PORT_COUNT ports. Wider accesses act as consecutive
 * byte accesses (outw 0x70 writes index then data, as on the ISA bus);
 * reads of the index port and past the two ports return 0xff. */
void cmos_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

#endif
