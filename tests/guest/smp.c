/* AP start-up: INIT-SIPI-SIPI through the xAPIC to every enabled LAPIC the
 * MADT lists. Each AP runs the trampoline (copied to 0x8000), checks in with
 * its APIC id and parks in cli;hlt. */
#include "guest.h"

#define TRAMPOLINE_PA 0x8000
#define SIPI_VECTOR   (TRAMPOLINE_PA >> 12)

#define LAPIC_ID     0x20
#define LAPIC_SVR    0xf0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define ICR_INIT     0x00004500 /* INIT, level assert */
#define ICR_STARTUP  0x00004600
#define ICR_BUSY     (1u << 12)

extern char ap_trampoline[], ap_trampoline_end[];

static volatile uint32_t ap_count;
static volatile uint32_t ap_ids[GUEST_MAX_CPUS];
static uint64_t lapic;

void ap_main(uint32_t idx);

void ap_main(uint32_t idx)
{
	uint32_t r[4];

	cpu_load_idt();
	cpuid(1, 0, r);
	uint32_t id = r[1] >> 24;
	cpuid(0, 0, r);
	if (r[0] >= 0xb) {
		cpuid(0xb, 0, r);
		id = r[3];
	}
	if (idx < GUEST_MAX_CPUS)
		ap_ids[idx] = id;
	__atomic_add_fetch(&ap_count, 1, __ATOMIC_SEQ_CST);
	halt_forever();
}

static uint32_t lapic_rd(uint32_t reg)
{
	return *(volatile uint32_t *)(uintptr_t)(lapic + reg);
}

static void lapic_wr(uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)(lapic + reg) = v;
}

static void send_ipi(uint32_t apic_id, uint32_t icr)
{
	lapic_wr(LAPIC_ICR_HI, apic_id << 24);
	lapic_wr(LAPIC_ICR_LO, icr);
	for (unsigned i = 0; i < 10000 && (lapic_rd(LAPIC_ICR_LO) & ICR_BUSY); i++)
		;
}

void smp_start(const struct acpi_info *a, struct smp_result *r)
{
	uint32_t targets[GUEST_MAX_CPUS];
	unsigned n = 0;

	lapic = a->lapic_pa;
	r->bsp_id = lapic_rd(LAPIC_ID) >> 24;
	lapic_wr(LAPIC_SVR, 0x100 | VEC_SPURIOUS); /* software-enable */

	size_t len = (size_t)(ap_trampoline_end - ap_trampoline);
	memcpy((void *)(uintptr_t)TRAMPOLINE_PA, ap_trampoline, len);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);

	for (unsigned i = 0; i < a->n_enabled; i++) {
		uint32_t id = a->enabled_ids[i];
		/* xAPIC destinations are 8 bits; 0xff is broadcast. */
		if (id != r->bsp_id && id < 0xff)
			targets[n++] = id;
	}
	r->sent = n;
	for (unsigned i = 0; i < n; i++)
		send_ipi(targets[i], ICR_INIT);
	delay_us(10000);
	for (int round = 0; round < 2; round++) {
		for (unsigned i = 0; i < n; i++)
			send_ipi(targets[i], ICR_STARTUP | SIPI_VECTOR);
		delay_us(200);
	}

	uint64_t khz = tsc_khz(NULL), t0 = rdtsc();
	while (ap_count < n && rdtsc() - t0 < 2000 * khz) /* 2 s */
		;
	r->started = ap_count;
	for (unsigned i = 0; i < r->started && i < GUEST_MAX_CPUS; i++)
		r->ap_ids[i] = ap_ids[i];
}
