/* The final actions. Every register comes from the ACPI tables the guest
 * found, never from constants: the same image runs under QEMU. */
#include "guest.h"

extern char user_int3[];

/* From CPL3, where the CPU itself runs the code: the development hosts' KVM
 * emulates CPL0 and fails on an exception with no IDT instead of shutting
 * the VM down. */
void triple_fault(void)
{
	cpu_break_idt();
	user_call((uint64_t(*)(void *))(uintptr_t)user_int3, NULL);
	halt_forever();
}

void power_off(void)
{
	const struct acpi_info *a = &g_acpi;
	uint8_t typ = a->s5_found ? a->s5_slp_typ : 5;

	console_drain();
	if (a->fadt_pa) {
		if (a->hw_reduced && a->have_sleep_ctl) {
			gas_write(&a->sleep_ctl, (uint64_t)(typ & 7) << 2 | 1u << 5);
		} else {
			uint16_t v = (uint16_t)((typ & 7) << 10 | 1u << 13);
			if (a->x_pm1a_cnt.addr) {
				gas_write(&a->x_pm1a_cnt, v);
			} else if (a->pm1a_cnt_port) {
				outw((uint16_t)a->pm1a_cnt_port, v);
				if (a->pm1b_cnt_port)
					outw((uint16_t)a->pm1b_cnt_port, v);
			}
		}
		delay_us(100000);
	}
	/* Still here: end the VM anyway, so a harness never waits for a timeout. */
	kprintf("# power-off did not stop the VM; forcing a triple fault\n");
	console_drain();
	triple_fault();
}

static __attribute__((noreturn)) void reset(void)
{
	const struct acpi_info *a = &g_acpi;

	console_drain();
	if (a->reset_sup && a->reset_reg.addr) {
		gas_write(&a->reset_reg, a->reset_value);
		delay_us(100000);
	}
	outb(0x64, 0xfe); /* i8042 pulse reset line */
	delay_us(100000);
	triple_fault();
}

void do_action(enum action act)
{
	switch (act) {
	case ACTION_POWEROFF:
		power_off();
	case ACTION_RESET:
		reset();
	case ACTION_TRIPLEFAULT:
		console_drain();
		triple_fault();
	case ACTION_HANG:
		break;
	case ACTION_MMIOEXEC:
		/* Jump into the 32-bit MMIO hole, where no RAM backs the identity
		 * map: the hypervisor cannot fetch the instruction, and the VMM
		 * must end the VM as failed with a register dump. */
		console_drain();
		((void (*)(void))(uintptr_t)0xd0000000u)();
		break;
	}
	console_drain();
	halt_forever();
}
