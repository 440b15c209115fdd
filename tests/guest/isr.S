/* Interrupt entry stubs and the CPL0 <-> CPL3 switch. */

	.text
	.code64

/* Vectors without an error code push a zero so every frame looks alike. */
.macro ISR_NOERR vec
	.balign 16
	pushq	$0
	pushq	$\vec
	jmp	isr_common
.endm
.macro ISR_ERR vec
	.balign 16
	pushq	$\vec
	jmp	isr_common
.endm

	.balign 16
	.globl isr_table
isr_table:
	ISR_NOERR 0
	ISR_NOERR 1
	ISR_NOERR 2
	ISR_NOERR 3
	ISR_NOERR 4
	ISR_NOERR 5
	.balign 16
	jmp	isr_ud
	ISR_NOERR 7
	ISR_ERR   8
	ISR_NOERR 9
	ISR_ERR   10
	ISR_ERR   11
	ISR_ERR   12
	ISR_ERR   13
	ISR_ERR   14
	ISR_NOERR 15
	ISR_NOERR 16
	ISR_ERR   17
	ISR_NOERR 18
	ISR_NOERR 19
	ISR_NOERR 20
	ISR_ERR   21
	ISR_NOERR 22
	ISR_NOERR 23
	ISR_NOERR 24
	ISR_NOERR 25
	ISR_NOERR 26
	ISR_NOERR 27
	ISR_NOERR 28
	ISR_ERR   29
	ISR_ERR   30
	ISR_NOERR 31

isr_common:
	pushq	%rax
	pushq	%rcx
	pushq	%rdx
	pushq	%rbx
	pushq	%rbp
	pushq	%rsi
	pushq	%rdi
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, %rdi
	andq	$-16, %rsp
	call	exception_handler	/* does not return */
	jmp	halt_forever

	.globl isr_spurious
isr_spurious:
	iretq

/* uint64_t user_call(uint64_t (*fn)(void *), void *arg)
 * Saves the callee-saved registers and the stack, then iretq to CPL3 with
 * IOPL 3 and interrupts off; user_entry calls fn(arg) and comes back with
 * ud2 at user_return_point; the #UD entry recognises that address from
 * CPL3 and resumes here on the saved stack. Not int $0x80 nor syscall: the
 * development hosts' KVM answers int $0x80 from CPL3 with #UD and leaves
 * syscall at CPL3, while a real fault is delivered correctly everywhere. */
	.globl user_call
user_call:
	pushq	%rbx
	pushq	%rbp
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, saved_ksp(%rip)
	pushq	$0x23			/* ss: user data | RPL 3 */
	pushq	$user_stack_top
	pushq	$0x3002			/* rflags: IOPL 3, IF 0 */
	pushq	$0x2b			/* cs: user code | RPL 3 */
	pushq	$user_entry
	iretq

user_entry:
	movq	%rdi, %rax
	movq	%rsi, %rdi
	call	*%rax
user_return_point:
	ud2

isr_ud:
	cmpq	$user_return_point, (%rsp)
	jne	1f
	cmpq	$0x2b, 8(%rsp)
	jne	1f
	movq	saved_ksp(%rip), %rsp
	movw	$0x10, %cx
	movw	%cx, %ss
	movw	%cx, %ds
	movw	%cx, %es
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbp
	popq	%rbx
	ret
1:	pushq	$0
	pushq	$6
	jmp	isr_common

/* Runs at CPL3 on the user stack: the IDT is empty by now, so the
 * breakpoint escalates to a triple fault in hardware. */
	.globl user_int3
user_int3:
	int3
	ud2

	.bss
	.balign 8
saved_ksp:
	.quad	0

/* The AP start-up code, copied to 0x8000 (SIPI vector 0x08) by smp.c. It
 * enters real mode at 0800:0000 and uses absolute addresses below 64 KiB. */
#define TRAMP 0x8000
#define T(x) (TRAMP + (x) - ap_trampoline)

	.section .rodata.trampoline, "a"
	.globl ap_trampoline, ap_trampoline_end
	.code16
ap_trampoline:
	cli
	cld
	xorw	%ax, %ax
	movw	%ax, %ds
	lgdtl	T(ap_gdt_ptr)
	movl	%cr0, %eax
	orl	$1, %eax
	movl	%eax, %cr0
	ljmpl	$0x18, $T(ap_prot)
	.code32
ap_prot:
	movw	$0x10, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movl	%cr4, %eax
	orl	$0x20, %eax
	movl	%eax, %cr4
	movl	$pml4, %eax
	movl	%eax, %cr3
	movl	$0xc0000080, %ecx
	rdmsr
	orl	$0x100, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$0x80000001, %eax
	movl	%eax, %cr0
	ljmp	$0x08, $ap_long64
	.balign 8
	.word	0, 0, 0
ap_gdt_ptr:
	.word	63			/* 8 descriptors, as entry.S asserts */
	.long	gdt
ap_trampoline_end:

	.text
	.code64
ap_long64:
	movw	$0x10, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movl	$1, %eax
	lock xaddl %eax, ap_ticket(%rip)
	movl	%eax, %edi
	leaq	1(%rax), %rsp
	shlq	$11, %rsp		/* 2 KiB per AP */
	addq	$ap_stacks, %rsp
	call	ap_main
	jmp	halt_forever

	.bss
	.balign 4
	.globl ap_ticket
ap_ticket:
	.long	0
