/* The bzImage's setup sectors: boot sector stub, the setup header at 0x1f1
 * (boot protocol 2.12) and a real-mode entry for BIOS loaders (SeaBIOS,
 * qboot), which enters the 32-bit protocol at 0x100000 with
 * esi = boot_params. mkbzimage patches
 * setup_sects, syssize and init_size. Linked at 0: offsets are from the
 * start of the zero page, which is what ds points at on entry. */

	.code16
	.text
	.globl _start
_start:
	/* Not a boot sector: a BIOS that boots it just stops. */
	cli
1:	hlt
	jmp	1b

	.org	0x1f1
setup_sects:		.byte	0	/* patched */
root_flags:		.word	0
syssize:		.long	0	/* patched: payload size in 16-byte units */
ram_size:		.word	0
vid_mode:		.word	0xffff	/* "normal" */
root_dev:		.word	0
boot_flag:		.word	0xaa55
	/* 0x200: the real-mode entry (CS = ds + 0x20, IP = 0). */
			.byte	0xeb, start16 - 0x202
header:			.ascii	"HdrS"
version:		.word	0x020c
realmode_swtch:		.long	0
start_sys_seg:		.word	0x1000
kernel_version:		.word	0
type_of_loader:		.byte	0
loadflags:		.byte	0x01	/* LOADED_HIGH */
setup_move_size:	.word	0x8000
code32_start:		.long	0x100000
ramdisk_image:		.long	0
ramdisk_size:		.long	0
bootsect_kludge:	.long	0
heap_end_ptr:		.word	0
ext_loader_ver:		.byte	0
ext_loader_type:	.byte	0
cmd_line_ptr:		.long	0
initrd_addr_max:	.long	0x7fffffff
kernel_alignment:	.long	0x100000
relocatable_kernel:	.byte	0
min_alignment:		.byte	12
xloadflags:		.word	0x0001	/* XLF_KERNEL_64: entry at 0x100200 */
cmdline_size:		.long	4095
hardware_subarch:	.long	0
hardware_subarch_data:	.quad	0
payload_offset:		.long	0
payload_length:		.long	0
setup_data:		.quad	0
pref_address:		.quad	0x100000
init_size:		.long	0	/* patched */
handover_offset:	.long	0
	.org	0x268	/* fails to assemble if the header grew past 2.12's end */

start16:
	cli
	cld
	movw	%ds, %ax
	movw	%ax, %es
	movw	%ax, %ss
	movw	$0xe000, %sp	/* below the heap end the boot protocol suggests */

	/* No int 0x15/E820 here: qboot's handler crashes part-way through
	 * its table, so under a BIOS loader boot_params carries no memory map
	 * and the mem check has to be left out (docs/test-guest.md). */
	/* Fast A20 gate, in case the BIOS left it off. */
	inb	$0x92, %al
	orb	$0x02, %al
	andb	$0xfe, %al
	outb	%al, $0x92

	movw	%ds, %ax
	movzwl	%ax, %esi
	shll	$4, %esi		/* boot_params, linear */
	leal	gdt(%esi), %eax
	movl	%eax, gdt_ptr + 2
	lgdtl	gdt_ptr
	movl	%cr0, %eax
	orl	$1, %eax
	movl	%eax, %cr0
	movw	$0x18, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movw	%ax, %fs
	movw	%ax, %gs
	xorl	%ebx, %ebx
	xorl	%ebp, %ebp
	xorl	%edi, %edi
	ljmpl	$0x10, $0x100000

	.balign 8
gdt:
	.quad	0, 0
	.quad	0x00cf9b000000ffff	/* 0x10 code, 32-bit (__BOOT_CS) */
	.quad	0x00cf93000000ffff	/* 0x18 data (__BOOT_DS) */
gdt_ptr:
	.word	31
	.long	0			/* set at run time */

	.org	0x400			/* setup_sects = 1 */
