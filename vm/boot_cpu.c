/* The boot vCPU's initial state for each boot protocol, and the boot GDT and
 * page tables it needs. The other vCPUs wait for INIT/SIPI from the guest
 * (the in-kernel LAPIC keeps them in wait-for-SIPI). */
#include <errno.h>
#include <string.h>

#include "vm/layout.h"
#include "vm/vm_internal.h"

/* GDT: null, code, data, TSS (selectors 0x08, 0x10, 0x18). */
#define GDT_CODE32 0x00cf9b000000ffffULL
#define GDT_CODE64 0x00af9b000000ffffULL
#define GDT_DATA   0x00cf93000000ffffULL
#define GDT_TSS	   0x008f8b000000ffffULL

#define CR0_PE	 0x1ULL
#define CR0_ET	 0x10ULL
#define CR0_PG	 0x80000000ULL
#define CR4_PAE	 0x20ULL
#define EFER_LME 0x100ULL
#define EFER_LMA 0x400ULL

static struct hv_segment seg_from_gdt(uint64_t desc, uint16_t selector)
{
	return (struct hv_segment){
	    .base = 0,
	    .limit = 0xffffffff, /* flat; granularity 4 KiB over a 0xfffff limit */
	    .selector = selector,
	    .type = (desc >> 40) & 0xf,
	    .present = (desc >> 47) & 1,
	    .dpl = (desc >> 45) & 3,
	    .db = (desc >> 54) & 1,
	    .s = (desc >> 44) & 1,
	    .l = (desc >> 53) & 1,
	    .g = (desc >> 55) & 1,
	};
}

/* Identity map of the first 4 GiB with 2 MiB pages, as the 64-bit Linux
 * entry requires (the kernel, zero page and command line must be mapped). */
static int write_page_tables(struct vm_mem *m)
{
	uint64_t *pml4 = vm_mem_ptr(m, LAYOUT_PML4, 4096);
	uint64_t *pdpt = vm_mem_ptr(m, LAYOUT_PDPT, 4096);
	uint64_t *pd = vm_mem_ptr(m, LAYOUT_PD, 4 * 4096);
	if (!pml4 || !pdpt || !pd)
		return -EFAULT;
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = LAYOUT_PDPT | 0x3;
	for (uint64_t i = 0; i < 4; i++)
		pdpt[i] = (LAYOUT_PD + i * 4096) | 0x3;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | 0x83; /* present, writable, 2 MiB page */
	return 0;
}

int boot_cpu_setup(struct vm *vm, struct vcpu *bsp, struct chv_err *err)
{
	const struct hv_ops *ops = vm->ops;
	bool long_mode = vm->boot.proto == BOOT_LINUX64;
	uint64_t gdt[4] = {0, long_mode ? GDT_CODE64 : GDT_CODE32, GDT_DATA, GDT_TSS};
	if (vm_mem_write(&vm->mem, LAYOUT_GDT, gdt, sizeof(gdt)) < 0 ||
	    vm_mem_write(&vm->mem, LAYOUT_IDT, &(uint64_t){0}, 8) < 0)
		return chv_err_set(err, -EFAULT, "guest memory too small for the boot GDT");

	struct hv_sregs s;
	int r = ops->get_sregs(bsp->hv, &s);
	if (r < 0)
		return chv_err_set(err, r, "vcpu0: get special registers: %s", strerror(-r));
	s.cs = seg_from_gdt(gdt[1], 0x08);
	s.ds = s.es = s.fs = s.gs = s.ss = seg_from_gdt(gdt[2], 0x10);
	s.tr = seg_from_gdt(gdt[3], 0x18);
	s.gdt = (struct hv_dtable){LAYOUT_GDT, sizeof(gdt) - 1};
	s.idt = (struct hv_dtable){LAYOUT_IDT, 7};
	s.cr0 = CR0_PE | CR0_ET;
	s.cr4 = 0;
	s.efer = 0;
	if (long_mode) {
		if (write_page_tables(&vm->mem) < 0)
			return chv_err_set(err, -EFAULT,
					   "guest memory too small for boot page tables");
		s.cr3 = LAYOUT_PML4;
		s.cr4 = CR4_PAE;
		s.cr0 |= CR0_PG;
		s.efer = EFER_LME | EFER_LMA;
	}
	r = ops->set_sregs(bsp->hv, &s);
	if (r < 0)
		return chv_err_set(err, r, "vcpu0: set special registers: %s", strerror(-r));

	struct hv_regs regs = {.rip = vm->boot.entry, .rflags = 2};
	if (long_mode) {
		regs.rsi = vm->boot.boot_info;
		regs.rsp = LAYOUT_BOOT_STACK;
	} else {
		regs.rbx = vm->boot.boot_info;
	}
	r = ops->set_regs(bsp->hv, &regs);
	if (r < 0)
		return chv_err_set(err, r, "vcpu0: set registers: %s", strerror(-r));
	return 0;
}
