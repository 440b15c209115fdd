/* Entry points, the GDT and the identity map.
 *   0x100000  32-bit entry: PVH (ebx = hvm_start_info) or the Linux 32-bit
 *             boot protocol (esi = boot_params); told apart by the PVH magic.
 *   0x100200  64-bit Linux entry (rsi = boot_params, loader's page tables).
 * Both end in long64 on our own GDT, page tables and stack. */

#define PVH_MAGIC 0x336ec578
#define MSR_EFER  0xc0000080

	.section .text.entry32, "ax"
	.code32
	.globl entry32
entry32:
	cli
	cld
	/* ebx may be garbage under the Linux protocol; address 0 is readable. */
	cmpl	$PVH_MAGIC, (%ebx)
	jne	1f
	movl	$1, boot_proto_raw
	movl	%ebx, boot_info_raw
	jmp	2f
1:	movl	$2, boot_proto_raw
	movl	%esi, boot_info_raw
2:	lgdt	gdt_ptr
	ljmp	$0x18, $3f
3:	movw	$0x10, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movl	%cr4, %eax
	orl	$0x20, %eax		/* PAE */
	movl	%eax, %cr4
	movl	$pml4, %eax
	movl	%eax, %cr3
	movl	$MSR_EFER, %ecx
	rdmsr
	orl	$0x100, %eax		/* LME */
	wrmsr
	movl	%cr0, %eax
	orl	$0x80000001, %eax	/* PG | PE */
	movl	%eax, %cr0
	ljmp	$0x08, $long64

	/* The Linux 64-bit entry sits at load address + 0x200. */
	.org	0x200
	.code64
	.globl entry64
entry64:
	cli
	cld
	movl	$3, boot_proto_raw(%rip)
	movq	%rsi, boot_info_raw(%rip)
	lgdt	gdt_ptr(%rip)
	movq	$pml4, %rax
	movq	%rax, %cr3
	pushq	$0x08
	pushq	$long64
	lretq

	.text
	.code64
long64:
	movw	$0x10, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	xorl	%eax, %eax
	movw	%ax, %fs
	movw	%ax, %gs
	movq	$bsp_stack_top, %rsp
	/* A bzImage loader copies only the file: clear .bss ourselves. */
	movq	$__bss_start, %rdi
	movq	$__bss_end, %rcx
	subq	%rdi, %rcx
	shrq	$3, %rcx
	xorl	%eax, %eax
	rep stosq
	call	kmain
	.globl halt_forever
halt_forever:
	cli
	hlt
	jmp	halt_forever

	.data
	.globl boot_proto_raw, boot_info_raw
	.balign 8
boot_proto_raw:	.long 0
	.long 0
boot_info_raw:	.quad 0

	.balign 16
	.globl gdt, gdt_ptr
gdt:
	.quad 0
	.quad 0x00af9b000000ffff	/* 0x08 kernel code, 64-bit */
	.quad 0x00cf93000000ffff	/* 0x10 kernel data */
	.quad 0x00cf9b000000ffff	/* 0x18 kernel code, 32-bit */
	.quad 0x00cff3000000ffff	/* 0x20 user data (DPL 3) */
	.quad 0x00affb000000ffff	/* 0x28 user code, 64-bit (DPL 3) */
	.quad 0, 0			/* 0x30 TSS, filled in by cpu_init() */
gdt_end:
	.if gdt_end - gdt != 64
	.error "isr.S hard-codes a 64-byte GDT"
	.endif
	.balign 8
	.word 0, 0, 0
gdt_ptr:
	.word	gdt_end - gdt - 1
	.quad	gdt

	/* Identity map of 4 GiB with 2 MiB pages, user-accessible so CPL3 code
	 * can reach everything; the top GiB (MMIO) is uncached. */
	.section .data.pgt, "aw"
	.balign 4096
	.globl pml4
pml4:
	.quad	pdpt + 0x7
	.fill	511, 8, 0
pdpt:
	.quad	pd + 0x0000 + 0x7
	.quad	pd + 0x1000 + 0x7
	.quad	pd + 0x2000 + 0x7
	.quad	pd + 0x3000 + 0x7
	.fill	508, 8, 0
pd:
	.set	i, 0
	.rept	2048
	.if	i >= 1536
	.quad	(i << 21) | 0x9f	/* P RW US PWT PCD PS */
	.else
	.quad	(i << 21) | 0x87	/* P RW US PS */
	.endif
	.set	i, i + 1
	.endr

	/* Stacks are not part of the image and are never cleared. */
	.section .stack, "aw", @nobits
	.balign 4096
	.globl bsp_stack_top, rsp0_stack_top, user_stack_top, ap_stacks
	.skip	16384
bsp_stack_top:
	.skip	16384
rsp0_stack_top:
	.skip	65536
user_stack_top:
ap_stacks:
	.skip	2048 * 256
