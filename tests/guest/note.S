/* The PVH entry note: name "Xen", type 18 (XEN_ELFNOTE_PHYS32_ENTRY), desc =
 * the 32-bit physical entry point. */
	.section .note.Xen, "a", @note
	.balign 4
	.long	4		/* namesz, including the NUL */
	.long	4		/* descsz */
	.long	18		/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz	"Xen"
	.balign 4
	.long	entry32
	.balign 4
