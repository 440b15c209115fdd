/* ACPI table builders. They turn a plain description of the platform into
 * tables laid out at a given guest-physical base; nothing here knows KVM. */
#ifndef CHV_ACPI_ACPI_H
#define CHV_ACPI_ACPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACPI_MAX_CPUS 256

struct acpi_serial {
	uint16_t port; /* 0: no serial port */
	uint8_t irq;
};

/* \_SB.PCI0, the root bridge of segment 0 over the ECAM bus range. */
struct acpi_pci_root {
	bool present;			 /* needs ecam_base */
	uint64_t mem32_base, mem32_size; /* the 32-bit window, below 4 GiB, not empty */
	uint64_t mem64_base, mem64_size; /* the 64-bit window; size 0: none */
	/* _PRT: slot s, pin p (0..3 for INTA..INTD) -> GSI
	 * intx_gsi_base + (s + p) % intx_gsi_count. */
	uint32_t intx_gsi_base;
	uint32_t intx_gsi_count; /* 1..32 */
};

struct acpi_platform {
	uint32_t boot_cpus;		 /* enabled LAPICs */
	uint32_t max_cpus;		 /* the rest are online-capable, disabled */
	uint32_t apic_id[ACPI_MAX_CPUS]; /* per vCPU index, from the topology */
	uint64_t lapic_addr;
	uint64_t ioapic_addr;
	uint8_t ioapic_id;
	uint32_t ioapic_gsi_base;
	uint16_t pm_port; /* sleep control/status and reset register (1 byte each at pm_port) */
	uint8_t reset_value;
	uint8_t s5_slp_typ; /* SLP_TYP written for S5 */
	struct acpi_serial com1;
	uint64_t ecam_base; /* 0: no MCFG */
	uint8_t ecam_bus_start, ecam_bus_end;
	struct acpi_pci_root pci;
};

struct acpi_tables {
	uint64_t rsdp_gpa; /* where the guest finds the RSDP */
	size_t size;	   /* bytes used in the buffer */
};

/* Builds RSDP (first, at base_gpa), XSDT, FADT, DSDT, MADT (and MCFG when
 * ecam_base is set) into buf, which the caller copies to guest memory at
 * base_gpa. Returns 0, -EINVAL for a bad description, -ENOSPC when cap is too small. */
__attribute__((warn_unused_result)) int acpi_build(const struct acpi_platform *p, uint8_t *buf,
						   size_t cap, uint64_t base_gpa,
						   struct acpi_tables *out);

/* The 8-bit checksum byte that makes the sum of len bytes zero. */
uint8_t acpi_checksum(const uint8_t *p, size_t len);

#endif
