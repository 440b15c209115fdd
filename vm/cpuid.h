/* CPUID and boot-MSR shaping: the leaves each vCPU sees, from what the
 * hypervisor supports, with the hypervisor bit, the vCPU's APIC id and a
 * topology that matches --cpus, and features the VMM cannot support hidden. */
#ifndef CHV_VM_CPUID_H
#define CHV_VM_CPUID_H

#include <stdint.h>

#include "vm/config.h"
#include "vm/hv.h"

#define CPUID_MAX_ENTRIES 256

struct cpuid_params {
	uint32_t vcpu_index;
	uint32_t max_cpus;
	struct cpu_topology topo;
	uint32_t phys_bits; /* 0: keep the host's */
};

/* APIC id of vCPU index under topo: thread, core, die and package fields each
 * take the bits needed for their count (as in leaf 0xB/0x1F). */
uint32_t cpuid_apic_id(const struct cpu_topology *topo, uint32_t index);

/* Copies the supported leaves in[0..n_in) to out and shapes them for one
 * vCPU. Returns the number of entries written, or -ENOSPC when cap is too small. */
int cpuid_shape(const struct hv_cpuid_entry *in, uint32_t n_in, const struct cpuid_params *p,
		struct hv_cpuid_entry *out, uint32_t cap);

/* The MSR values a vCPU starts with (as Linux expects at boot). Returns the count. */
int cpuid_boot_msrs(struct hv_msr *out, uint32_t cap);

#endif
