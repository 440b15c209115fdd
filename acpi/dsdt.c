/* The DSDT: the devices a hardware-reduced guest cannot discover otherwise.
 *
 *   Name (\_S5_, Package () { SLP_TYP, 0, 0, 0 })
 *   Scope (\_SB) {
 *     Device (COM1)  PNP0501 with its port and IRQ     (when present)
 *     Device (PWRB)  PNP0C0C control-method power button
 *     Device (CPnn)  ACPI0007, _UID = vCPU index, _STA present or not
 *     Device (MBRD)  PNP0C02 reserving the ECAM window  (when present)
 *     Device (PCI0)  PNP0A08/PNP0A03 root bridge: _SEG/_BBN/_UID 0, _CRS
 *                    (bus range, 0xCF8 ports, I/O above them, the memory
 *                    windows) and _PRT (32 slots x 4 pins) (when present)
 *   }
 */
#include <errno.h>

#include "acpi/aml.h"
#include "acpi/sdt.h"
#include "acpi/tables.h"

/* _STA: present, enabled, shown in UI, functioning. */
#define STA_PRESENT    0x0f
#define ECAM_BUS_SHIFT 20

static void dsdt_com1(struct aml *a, const struct acpi_serial *s)
{
	aml_device_begin(a, "COM1");
	aml_name_decl(a, "_HID");
	aml_eisaid(a, "PNP0501");
	aml_name_decl(a, "_UID");
	aml_int(a, 1);
	aml_name_decl(a, "_STA");
	aml_int(a, STA_PRESENT);
	aml_name_decl(a, "_CRS");
	aml_res_begin(a);
	aml_res_io(a, true, s->port, s->port, 0, 8);
	if (s->irq < 16)
		aml_res_irq_noflags(a, s->irq);
	else
		aml_res_interrupt(a, true, false, false, s->irq);
	aml_res_end(a);
	aml_end(a);
}

static void dsdt_power_button(struct aml *a)
{
	aml_device_begin(a, "PWRB");
	aml_name_decl(a, "_HID");
	aml_eisaid(a, "PNP0C0C");
	aml_name_decl(a, "_UID");
	aml_int(a, 0);
	aml_end(a);
}

/* CPU devices are named CP00-CPFF. */
_Static_assert(ACPI_MAX_CPUS <= 256, "CPnn names two hex digits");

static void dsdt_cpus(struct aml *a, const struct acpi_platform *p)
{
	for (uint32_t i = 0; i < p->max_cpus; i++) {
		static const char hex[] = "0123456789ABCDEF";
		const char name[5] = {'C', 'P', hex[(i >> 4) & 0xf], hex[i & 0xf], '\0'};

		aml_device_begin(a, name);
		aml_name_decl(a, "_HID");
		aml_string(a, "ACPI0007");
		aml_name_decl(a, "_UID");
		aml_int(a, i);
		/* A method, so that CPU hotplug can later read a register. */
		aml_method_return_int(a, "_STA", i < p->boot_cpus ? STA_PRESENT : 0);
		aml_end(a);
	}
}

static void dsdt_ecam_reservation(struct aml *a, const struct acpi_platform *p)
{
	uint64_t start = p->ecam_base + ((uint64_t)p->ecam_bus_start << ECAM_BUS_SHIFT);
	uint64_t size = (uint64_t)(p->ecam_bus_end - p->ecam_bus_start + 1) << ECAM_BUS_SHIFT;

	aml_device_begin(a, "MBRD");
	aml_name_decl(a, "_HID");
	aml_eisaid(a, "PNP0C02");
	aml_name_decl(a, "_UID");
	aml_int(a, 0);
	aml_name_decl(a, "_CRS");
	aml_res_begin(a);
	if (start + size - 1 <= UINT32_MAX)
		aml_res_mem32_fixed(a, true, (uint32_t)start, (uint32_t)size);
	else
		aml_res_qword_mem(a, false, false, true, start, start + size - 1);
	aml_res_end(a);
	aml_end(a);
}

/* Producer I/O window above the configuration ports; below them live the
 * legacy devices the DSDT declares on their own. */
#define PCI_IO_WINDOW_START 0x0d00
#define PCI_CONFIG_PORT	    0x0cf8
#define PCI_PRT_SLOTS	    32

static void dsdt_pci_prt(struct aml *a, const struct acpi_pci_root *r)
{
	aml_name_decl(a, "_PRT");
	aml_package_begin(a);
	for (uint32_t slot = 0; slot < PCI_PRT_SLOTS; slot++)
		for (uint32_t pin = 0; pin < 4; pin++) {
			aml_package_begin(a);
			/* Address: device in the high word, any function. */
			aml_int(a, (uint64_t)slot << 16 | 0xffff);
			aml_int(a, pin);
			aml_int(a, 0); /* no link device: the next is a GSI */
			aml_int(a, r->intx_gsi_base + (slot + pin) % r->intx_gsi_count);
			aml_end(a);
		}
	aml_end(a);
}

static void dsdt_pci_root(struct aml *a, const struct acpi_platform *p)
{
	const struct acpi_pci_root *r = &p->pci;

	aml_device_begin(a, "PCI0");
	aml_name_decl(a, "_HID");
	aml_eisaid(a, "PNP0A08");
	aml_name_decl(a, "_CID");
	aml_eisaid(a, "PNP0A03");
	aml_name_decl(a, "_SEG");
	aml_int(a, 0);
	aml_name_decl(a, "_BBN");
	aml_int(a, p->ecam_bus_start);
	aml_name_decl(a, "_UID");
	aml_int(a, 0);
	aml_name_decl(a, "_CRS");
	aml_res_begin(a);
	aml_res_word_bus(a, p->ecam_bus_start, p->ecam_bus_end);
	aml_res_io(a, true, PCI_CONFIG_PORT, PCI_CONFIG_PORT, 1, 8);
	aml_res_word_io(a, PCI_IO_WINDOW_START, 0xffff);
	aml_res_dword_mem(a, true, false, true, (uint32_t)r->mem32_base,
			  (uint32_t)(r->mem32_base + r->mem32_size - 1));
	if (r->mem64_size)
		aml_res_qword_mem(a, true, false, true, r->mem64_base,
				  r->mem64_base + r->mem64_size - 1);
	aml_res_end(a);
	dsdt_pci_prt(a, r);
	aml_end(a);
}

int acpi_dsdt_write(const struct acpi_platform *p, uint8_t *t, size_t cap, size_t *len)
{
	struct aml a;
	int ret;

	if (cap < ACPI_SDT_HDR_LEN)
		return -ENOSPC;
	/* A DSDT's length field is 32 bits. */
	if (cap > UINT32_MAX)
		cap = UINT32_MAX;
	aml_init(&a, t + ACPI_SDT_HDR_LEN, cap - ACPI_SDT_HDR_LEN);

	aml_name_decl(&a, "\\_S5_");
	aml_package_begin(&a);
	aml_int(&a, p->s5_slp_typ);
	aml_int(&a, 0);
	aml_int(&a, 0);
	aml_int(&a, 0);
	aml_end(&a);

	aml_scope_begin(&a, "\\_SB");
	if (p->com1.port)
		dsdt_com1(&a, &p->com1);
	dsdt_power_button(&a);
	dsdt_cpus(&a, p);
	if (p->ecam_base)
		dsdt_ecam_reservation(&a, p);
	if (p->pci.present)
		dsdt_pci_root(&a, p);
	aml_end(&a);

	ret = aml_finish(&a);
	if (ret)
		return ret;
	/* Revision 2: integers are 64 bits wide. */
	acpi_sdt_header(t, "DSDT", (uint32_t)(ACPI_SDT_HDR_LEN + a.len), 2);
	acpi_sdt_seal(t);
	*len = ACPI_SDT_HDR_LEN + a.len;
	return 0;
}
