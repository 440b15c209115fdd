/* The test guest's internal interfaces. Freestanding: no libc, no host headers
 * except the compiler's own (stdint, stddef, stdarg, stdbool). */
#ifndef CHV_TESTGUEST_H
#define CHV_TESTGUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_MAX_CPUS	  256
#define GUEST_CMDLINE_MAX 4096
#define GUEST_E820_MAX	  128

/* Progress codes written to the debug port 0x80. */
#define PROGRESS_ENTRY	   0x40
#define PROGRESS_CHECKS	   0x41
#define PROGRESS_EXCEPTION 0x4e
#define PROGRESS_DONE	   0x4f

/* GDT selectors (entry.S lays the table out in this order). */
#define SEL_KCODE64 0x08
#define SEL_KDATA   0x10
#define SEL_KCODE32 0x18
#define SEL_UDATA   0x20
#define SEL_UCODE64 0x28
#define SEL_TSS	    0x30

#define VEC_SPURIOUS 0xff

/* ---- port I/O and CPU helpers ---- */
static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}
static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid"
			 : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(sub));
}
static inline void progress(uint8_t code)
{
	outb(0x80, code);
}
static inline uint8_t rd8(uint64_t pa)
{
	return *(volatile uint8_t *)(uintptr_t)pa;
}
static inline uint16_t rd16(uint64_t pa)
{
	uint16_t v;
	__builtin_memcpy(&v, (const void *)(uintptr_t)pa, 2);
	return v;
}
static inline uint32_t rd32(uint64_t pa)
{
	uint32_t v;
	__builtin_memcpy(&v, (const void *)(uintptr_t)pa, 4);
	return v;
}
static inline uint64_t rd64(uint64_t pa)
{
	uint64_t v;
	__builtin_memcpy(&v, (const void *)(uintptr_t)pa, 8);
	return v;
}
/* Everything below 4 GiB is identity-mapped; nothing above is. */
static inline bool pa_ok(uint64_t pa, uint64_t len)
{
	return pa < 0x100000000ULL && len <= 0x100000000ULL - pa;
}
__attribute__((noreturn)) void halt_forever(void);

/* ---- lib.c ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
bool str_eq(const char *a, const char *b);
/* Parses a number (decimal, or hex with 0x) with an optional K/M/G suffix
 * (binary units) that must fill [s, s+len). */
bool parse_size(const char *s, size_t len, uint64_t *out);
bool parse_hex32(const char *s, size_t len, uint32_t *out);

/* ---- console.c: polled 16550 at 0x3f8 ---- */
void console_init(void);
void console_putc(char c);
void console_write(const char *s, size_t n);
void console_drain(void);
__attribute__((format(printf, 1, 2))) void kprintf(const char *fmt, ...);
void kvprintf(const char *fmt, va_list ap);
__attribute__((format(printf, 3, 4))) int ksnprintf(char *buf, size_t cap, const char *fmt, ...);

/* ---- tap.c ---- */
void tap_begin(unsigned nchecks);
/* The number the next result line will carry. */
unsigned tap_current(void);
void tap_ok(const char *name);
__attribute__((format(printf, 2, 3))) void tap_fail(const char *name, const char *why, ...);
__attribute__((format(printf, 1, 2))) void tap_diag(const char *fmt, ...);
/* Prints the one summary line; returns the number of failures. */
unsigned tap_summary(void);
bool tap_summary_done(void);

/* ---- bootinfo.c ---- */
enum boot_proto { PROTO_PVH = 1, PROTO_LINUX32 = 2, PROTO_LINUX64 = 3 };

struct e820e {
	uint64_t addr, size;
	uint32_t type;
};

struct boot_info {
	enum boot_proto proto;
	uint64_t info_pa; /* start_info or boot_params */
	bool valid;	  /* magic / header found */
	char why[96];	  /* when !valid */
	uint32_t pvh_version;
	uint16_t linux_version; /* boot protocol version in the zero page */
	uint8_t loader_type;
	bool have_cmdline;
	char cmdline[GUEST_CMDLINE_MAX];
	bool cmdline_truncated;
	unsigned n_e820;
	struct e820e e820[GUEST_E820_MAX];
	uint64_t initrd_pa, initrd_size; /* size 0: none */
	uint64_t rsdp_pa;		 /* 0: not given */
};

extern struct boot_info g_boot;
/* Set by entry.S: which entry ran and the register that carried the info. */
extern uint32_t boot_proto_raw;
extern uint64_t boot_info_raw;
void bootinfo_parse(struct boot_info *b);
const char *proto_name(enum boot_proto p);

/* ---- cmdline.c ---- */
enum check_id {
	CHECK_BOOT,
	CHECK_CMDLINE,
	CHECK_MEM,
	CHECK_INITRD,
	CHECK_ACPI,
	CHECK_MADT,
	CHECK_SMP,
	CHECK_CMOS,
	CHECK_CPL3,
	CHECK_PCI,
	CHECK_RNG,
	CHECK_BLK,
	CHECK_CONSOLE,
	CHECK_NET,
	CHECK_HOSTILE,
	CHECK_BENCH,
	CHECK_COUNT
};
enum action { ACTION_POWEROFF, ACTION_RESET, ACTION_TRIPLEFAULT, ACTION_HANG, ACTION_MMIOEXEC };

struct options {
	bool explicit_checks; /* chv.checks was given */
	bool want[CHECK_COUNT];
	bool have_mem, have_cpus, have_initrd, have_pci, have_rng, have_console;
	/* virtio-blk: chv.blk=SECTORS:CRC, chv.blkw=SECTOR:COUNT:SEED,
	 * chv.blkid=SERIAL, chv.blkro=1; any of them enables the check. */
	bool have_blk, have_blkw, have_blkid, blk_ro;
	uint32_t blk_sectors, blk_crc;
	uint64_t blkw_sector;
	uint32_t blkw_count, blkw_seed;
	char blkid[24];
	/* virtio-net: chv.net=GUEST_IP,PEER_IP,PORT (addresses in host order). */
	bool have_net;
	uint32_t net_ip, net_peer;
	uint16_t net_port;
	/* chv.hostile=KIND[,KIND]: 1 << enum hostile_kind for each kind given. */
	bool have_hostile;
	uint32_t hostile;
	/* chv.bench=KIND[:SECONDS] (enum bench_kind). */
	bool have_bench;
	uint8_t bench_kind;
	uint32_t bench_seconds;
	uint32_t pci_functions; /* chv.pci: functions expected on the first bus */
	uint64_t mem;
	uint32_t cpus;
	uint64_t initrd_size;
	uint32_t initrd_crc;
	enum action action;
	const char *tag; /* points into tag_buf; NULL when none */
	char tag_buf[64];
	uint64_t loops; /* CPL3 loop iterations */
	unsigned n_errors;
	char errors[4][96]; /* first few malformed keys, for the cmdline check */
};

extern const char *const check_names[CHECK_COUNT];
void options_parse(const char *cmdline, struct options *o);

/* ---- cpu.c ---- */
void cpu_init(void);	  /* GDT TSS, IDT; BSP only */
void cpu_load_idt(void);  /* on an AP */
void cpu_break_idt(void); /* zero-limit IDT, for the triple fault */
__attribute__((noreturn)) void triple_fault(void);
/* Runs fn(arg) at CPL3 with IOPL 3 on the user stack and returns its result. */
uint64_t user_call(uint64_t (*fn)(void *), void *arg);
/* TSC frequency in kHz and where it came from (never 0: a guess as the last resort). */
uint64_t tsc_khz(const char **source);
void delay_us(uint64_t us);

/* ---- crc32.c (runs at CPL3) ---- */
uint32_t crc32_ieee(const uint8_t *p, uint64_t n);

/* ---- acpi.c ---- */
struct gas {
	uint8_t space, bit_width, bit_offset, access_size;
	uint64_t addr;
};

#define ACPI_MAX_TABLES 32

struct acpi_info {
	bool rsdp_found;
	const char *rsdp_source;
	uint64_t rsdp_pa;
	uint8_t rsdp_rev;
	bool root_is_xsdt;
	uint64_t root_pa;
	unsigned n_tables;
	struct {
		char sig[5];
		uint64_t pa;
		uint32_t len;
		uint8_t rev;
		bool sum_ok;
	} t[ACPI_MAX_TABLES];
	bool ok;       /* every checksum and pointer was fine */
	char why[128]; /* the first problem */
	/* FADT-derived power control */
	uint64_t fadt_pa, dsdt_pa, madt_pa;
	uint8_t fadt_rev;
	bool hw_reduced;
	bool have_sleep_ctl;
	struct gas sleep_ctl;
	uint32_t pm1a_cnt_port, pm1b_cnt_port;
	struct gas x_pm1a_cnt;
	bool s5_found;
	uint8_t s5_slp_typ;
	bool reset_sup;
	struct gas reset_reg;
	uint8_t reset_value;
	/* MADT */
	bool madt_ok;
	char madt_why[96];
	uint64_t lapic_pa;
	unsigned n_lapic_entries; /* type 0 and type 9, enabled or not */
	unsigned n_enabled;
	uint32_t enabled_ids[GUEST_MAX_CPUS];
};

extern struct acpi_info g_acpi;
/* Finds and validates everything; the heavy loops run at CPL3 inside. */
void acpi_discover(uint64_t hint_rsdp, struct acpi_info *a);
void gas_write(const struct gas *g, uint64_t v);

/* ---- smp.c ---- */
struct smp_result {
	unsigned started; /* APs that checked in */
	unsigned sent;	  /* APs we sent INIT-SIPI-SIPI to */
	uint32_t bsp_id;
	uint32_t ap_ids[GUEST_MAX_CPUS];
};
void smp_start(const struct acpi_info *a, struct smp_result *r);

/* ---- cmos.c ---- */
struct rtc_time {
	unsigned year, month, day, hour, min, sec;
	uint8_t reg_b;
};
/* 0, or a short reason in why. */
int cmos_read_time(struct rtc_time *t, char *why, size_t cap);

/* ---- power.c ---- */
__attribute__((noreturn)) void do_action(enum action a);
__attribute__((noreturn)) void power_off(void);

/* ---- checks.c ---- */
void checks_run(const struct options *o);

/* ---- pci.c ---- */
struct pci_fn {
	uint8_t bus, dev, fn;
	uint16_t vendor, device;
};
/* ECAM (MCFG), the 32-bit window (DSDT) and the BAR allocator, once; false
 * with why set when there is no usable ECAM. */
bool pci_init(char *why, size_t cap);
/* The first function on the bus with this vendor and one of these ids. */
bool pci_find(uint16_t vendor, const uint16_t *devices, unsigned ndevices, struct pci_fn *out);
uint32_t pci_cfg_read32(const struct pci_fn *f, unsigned off);
void pci_cfg_write32(const struct pci_fn *f, unsigned off, uint32_t v);
uint16_t pci_cfg_read16(const struct pci_fn *f, unsigned off);
uint8_t pci_cfg_read8(const struct pci_fn *f, unsigned off);
/* Sizes memory BAR i, places it below 4 GiB when it is unassigned or above
 * (only the low 4 GiB are mapped), and turns on memory decoding and bus
 * mastering. */
bool pci_bar_map(const struct pci_fn *f, unsigned i, uint64_t *pa, uint64_t *len, char *why,
		 size_t cap);
void check_pci(const struct options *o);

/* ---- virtio.c: virtio-pci modern driver core (virtio 1.x, 4.1) ---- */
#define VIRTIO_VENDOR		  0x1af4
#define VIRTIO_F_VERSION_1	  32
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER	  0x02
#define VIRTIO_STATUS_DRIVER_OK	  0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED	  0x80
#define VIRTQ_DESC_F_NEXT	  1
#define VIRTQ_DESC_F_WRITE	  2
#define VIRTQ_DESC_F_INDIRECT	  4
#define VIRTIO_F_INDIRECT_DESC	  28
#define VIRTQ_MAX		  16 /* entries the driver uses per queue */

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

/* One split queue in one 4 KiB page: descriptors, then the available
 * ring at +0x100, the used ring at +0x200. */
struct virtq {
	uint16_t index, size;
	volatile struct virtq_desc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[size], used_event */
	volatile uint8_t *used;	  /* flags, idx, {id, len}[size], avail_event */
	uint16_t avail_idx, last_used;
	uint64_t notify; /* where the queue index is written */
};

struct virtio_dev {
	struct pci_fn pci;
	uint64_t common, isr, device, notify_base; /* guest-physical */
	uint32_t notify_mul, device_len;
	uint64_t features; /* negotiated */
	unsigned bar;	   /* of the common configuration */
	uint64_t bar_pa;
};

/* Finds the device (modern id 0x1040 + id, or transitional), maps its
 * structures, resets it and sets ACKNOWLEDGE | DRIVER. */
bool virtio_open(uint16_t device_id, struct virtio_dev *v, char *why, size_t cap);
/* Accepts VERSION_1 and the wanted features the device offers; FEATURES_OK. */
bool virtio_negotiate(struct virtio_dev *v, uint64_t want, char *why, size_t cap);
/* Queue q (at most VIRTQ_MAX entries) on the 4 KiB page at ring_pa,
 * polled (no MSI-X vector), enabled. */
bool virtio_queue_setup(struct virtio_dev *v, uint16_t q, struct virtq *vq, uint64_t ring_pa,
			char *why, size_t cap);
void virtio_driver_ok(struct virtio_dev *v);
uint8_t virtio_status(const struct virtio_dev *v);
void virtio_reset(struct virtio_dev *v);

struct virtq_buf {
	uint64_t pa;
	uint32_t len;
	bool device_writes;
};
/* Makes the chain at head available (ring entry, then the index); no notify. */
void virtq_publish(struct virtq *vq, uint16_t head);
/* Notifies the device of new buffers on the queue. */
void virtq_kick(const struct virtq *vq);
/* Takes the next used entry when the device has returned one. */
bool virtq_used_pop(struct virtq *vq, uint32_t *id, uint32_t *len);
/* Puts one chain on the queue, notifies, and polls the used ring until the
 * device returns it or the TSC passes deadline. Returns the length the
 * device wrote, or -1 on timeout. Fit for CPL3 (no privileged instruction). */
int64_t virtq_transact(struct virtq *vq, const struct virtq_buf *bufs, unsigned n,
		       uint64_t deadline_tsc);

/* ---- rng.c ---- */
void check_rng(void);

/* ---- vcon.c (virtio-console) ---- */
void check_vcon(void);

/* ---- blk.c ---- */
#define BLK_MAX_SECTORS 128 /* per chv.blk / chv.blkw region */
void check_blk(const struct options *o);

/* ---- net.c (virtio-net, a minimal IPv4 host: ARP, ICMP echo, UDP) ---- */
#define NET_CHECK_LINES 4 /* TAP lines the net check prints */
void check_net(const struct options *o);

/* ---- hostile.c (malformed descriptor chains), hostile_hw.c (the platform) ---- */
enum hostile_kind {
	HOSTILE_BLK,
	HOSTILE_PORTS,
	HOSTILE_MMIO,
	HOSTILE_MSIX,
	HOSTILE_QUEUES,
	HOSTILE_STORM,
	HOSTILE_KINDS
};
extern const char *const hostile_kind_names[HOSTILE_KINDS];
#define HOSTILE_CHECK_LINES 2 /* per kind */
/* TAP lines the hostile check prints for these options. */
unsigned hostile_lines(const struct options *o);
void check_hostile(const struct options *o);
/* TPR 0xf0 and LINT0 masked (nothing is delivered from then on); finds the
 * IOAPIC, ECAM and the end of RAM. */
void hostile_hw_init(void);
/* One of the kinds after blk; prints HOSTILE_CHECK_LINES lines. */
void hostile_hw_run(unsigned kind);

/* ---- bench.c, bench_net.c (chv.bench=KIND[:SECONDS]) ---- */
enum bench_kind {
	BENCH_BLK_RANDREAD = 1,
	BENCH_BLK_SEQREAD,
	BENCH_BLK_SEQWRITE,
	BENCH_NET_TX,
	BENCH_NET_RX
};
#define BENCH_DEFAULT_SECONDS 5
#define BENCH_MAX_SECONDS     600
#define BENCH_BUF_PA	      0x1000000 /* 16 MiB: the blk kinds' data buffers (4 MiB) */

struct bench_result {
	uint64_t ops, bytes, cycles, errors;
	unsigned depth; /* requests or frames kept in flight */
	char why[160];	/* the first failure; empty when none */
};
/* The value of chv.bench; false when malformed. */
bool bench_parse(struct options *o, const char *v, size_t n);
bool bench_is_net(const struct options *o);
const char *bench_kind_name(unsigned kind);
void check_bench(const struct options *o);
void bench_net(const struct options *o, struct bench_result *r);

#endif
