/* Descriptor tables, the exception path and the TSC. */
#include "guest.h"

struct tss64 {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
	uint8_t iomap[8192 + 1]; /* every port allowed, then the 0xff terminator */
} __attribute__((packed));

struct idt_gate {
	uint16_t off_lo, sel;
	uint8_t ist, type;
	uint16_t off_mid;
	uint32_t off_hi, reserved;
} __attribute__((packed));

extern uint64_t gdt[8];
extern char isr_table[], isr_spurious[];
extern char rsp0_stack_top[];

static struct tss64 tss;
static struct idt_gate idt[256];
static struct {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed)) idtr;

static void set_gate(unsigned vec, void *handler, unsigned dpl)
{
	uint64_t a = (uint64_t)(uintptr_t)handler;
	idt[vec] = (struct idt_gate){
	    .off_lo = (uint16_t)a,
	    .sel = SEL_KCODE64,
	    .type = (uint8_t)(0x8e | dpl << 5), /* present, 64-bit interrupt gate */
	    .off_mid = (uint16_t)(a >> 16),
	    .off_hi = (uint32_t)(a >> 32),
	};
}

void cpu_load_idt(void)
{
	__asm__ volatile("lidt %0" : : "m"(idtr));
}

void cpu_init(void)
{
	uint64_t base = (uint64_t)(uintptr_t)&tss, limit = sizeof(tss) - 1;

	/* IOPL 3 should be enough for port I/O at CPL3, but the development
	 * hosts' KVM drops the IOPL that iretq loads: an all-clear I/O bitmap
	 * grants the ports either way. */
	tss.iomap_base = __builtin_offsetof(struct tss64, iomap);
	tss.iomap[8192] = 0xff;
	tss.rsp[0] = (uint64_t)(uintptr_t)rsp0_stack_top;
	gdt[6] = (limit & 0xffff) | (base & 0xffffff) << 16 | 0x89ULL << 40 |
		 ((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
	gdt[7] = base >> 32;
	__asm__ volatile("ltr %w0" : : "r"(SEL_TSS));

	/* Mask both 8259s: nothing here takes interrupts, and on the same hosts
	 * CPL3 code runs with IF set whatever iretq loaded. */
	outb(0x21, 0xff);
	outb(0xa1, 0xff);

	for (unsigned v = 0; v < 32; v++)
		set_gate(v, isr_table + 16 * v, 0);
	set_gate(VEC_SPURIOUS, isr_spurious, 0);
	idtr.limit = sizeof(idt) - 1;
	idtr.base = (uint64_t)(uintptr_t)idt;
	cpu_load_idt();
}

void cpu_break_idt(void)
{
	static const struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) none = {0, 0};
	__asm__ volatile("lidt %0" : : "m"(none));
}

static const char *const exc_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS",
    "#NP", "#SS", "#GP", "#PF", "?",   "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

void exception_handler(const uint64_t *f);

/* Frame: r15..rax (15 registers), vector, error code, then the CPU's
 * rip, cs, rflags, rsp, ss. */
void exception_handler(const uint64_t *f)
{
	static int depth;
	uint64_t vec = f[15], err = f[16], rip = f[17], cs = f[18], rsp = f[20], cr2;

	progress(PROGRESS_EXCEPTION);
	if (depth++) {
		/* Fault while reporting a fault: stop the VM the surest way. */
		triple_fault();
	}
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	const char *name = vec < 32 && exc_names[vec] ? exc_names[vec] : "?";
	tap_fail("exception", "vector %lu (%s) error 0x%lx rip 0x%lx cs 0x%lx rsp 0x%lx cr2 0x%lx",
		 vec, name, err, rip, cs, rsp, cr2);
	kprintf("Bail out! exception %lu at rip 0x%lx\n", vec, rip);
	if (!tap_summary_done())
		tap_summary();
	power_off();
}

uint64_t tsc_khz(const char **source)
{
	static uint64_t khz;
	static const char *src;
	uint32_t r[4];

	if (khz)
		goto out;
	cpuid(0x40000000, 0, r);
	/* The hypervisor timing leaf (KVM, VMware), when offered. */
	if (r[0] >= 0x40000010 && r[0] < 0x40010000) {
		cpuid(0x40000010, 0, r);
		if (r[0]) {
			khz = r[0];
			src = "cpuid 0x40000010";
			goto out;
		}
	}
	cpuid(0, 0, r);
	uint32_t max = r[0];
	if (max >= 0x15) {
		cpuid(0x15, 0, r);
		if (r[0] && r[1] && r[2]) {
			khz = (uint64_t)r[2] * r[1] / r[0] / 1000;
			src = "cpuid 0x15";
			goto out;
		}
	}
	if (max >= 0x16) {
		cpuid(0x16, 0, r);
		if (r[0]) {
			khz = (uint64_t)r[0] * 1000;
			src = "cpuid 0x16";
			goto out;
		}
	}
	/* A high guess makes timeouts longer, never shorter. */
	khz = 4000000;
	src = "assumed";
out:
	if (source)
		*source = src;
	return khz;
}

void delay_us(uint64_t us)
{
	uint64_t end = rdtsc() + us * tsc_khz(NULL) / 1000;
	while ((int64_t)(rdtsc() - end) < 0)
		;
}
