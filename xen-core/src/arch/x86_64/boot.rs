//! The first instructions: multiboot headers, the 32-bit entry, the switch to long mode and
//! the jump to the hypervisor's high address.
//!
//! A multiboot loader (QEMU's `-kernel`, GRUB) enters `oxen_start32` in 32-bit protected mode
//! with paging off, `eax` = the loader magic and `ebx` = the physical address of its
//! information structure. This code records the TSC, checks for long mode, turns on paging
//! with the static boot page tables below, and jumps to `oxen_start64` in the high image,
//! which clears `.bss`, takes the boot stack and calls [`super::oxen_entry`].
//!
//! Boot page tables (2 MiB pages, physical 0–4 GiB):
//! - L4 slot 0: identity map of the first 1 GiB (the 32→64-bit switch runs there),
//! - L4 slot 261: the image area, `virt = phys + IMAGE_VIRT_OFFSET` for the first 1 GiB, with
//!   2–6 MiB (where the image lives) in 4 KiB pages so the boot stack's guard page is unmapped
//!   from the start,
//! - L4 slot 262: the start of the direct map, `virt = phys + DIRECTMAP_BASE` for 0–4 GiB,
//!   through which the multiboot information is read before the final tables exist.

use core::arch::global_asm;

global_asm!(
    r#"
    .set MB1_MAGIC, 0x1BADB002
    .set MB1_FLAGS, 0x00000003
    .set MB2_MAGIC, 0xE85250D6

    .section .boot.header, "a"
    .balign 4
mb1_header:
    .long MB1_MAGIC
    .long MB1_FLAGS
    .long 0x100000000 - (MB1_MAGIC + MB1_FLAGS)

    .balign 8
mb2_header:
    .long MB2_MAGIC
    .long 0
    .long mb2_header_end - mb2_header
    .long 0x100000000 - (MB2_MAGIC + (mb2_header_end - mb2_header))
    /* Module-alignment tag: modules page aligned. */
    .balign 8
    .word 6, 0
    .long 8
    /* End tag. */
    .balign 8
    .word 0, 0
    .long 8
mb2_header_end:

    .section .boot.text, "ax"
    .code32
    .global oxen_start32
oxen_start32:
    cli
    cld
    mov %eax, %edi
    mov %ebx, %esi
    rdtsc
    mov %eax, boot_tsc
    mov %edx, boot_tsc + 4

    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb 90f
    mov $0x80000001, %eax
    cpuid
    test $(1 << 29), %edx
    jz 90f
    mov %edx, %ebp

    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $(1 << 5), %eax
    mov %eax, %cr4

    mov $0xC0000080, %ecx
    rdmsr
    or $(1 << 8), %eax
    test $(1 << 20), %ebp
    jz 1f
    or $(1 << 11), %eax
1:  wrmsr

    lgdt boot_gdtr
    mov %cr0, %eax
    or $0x80010001, %eax
    mov %eax, %cr0
    ljmp $0x08, $oxen_start64_low

    /* No long mode: say so on COM1 and stop. */
90: mov $boot_msg_no_long_mode, %esi
    mov $0x3f8, %dx
2:  lodsb
    test %al, %al
    jz 3f
    out %al, %dx
    jmp 2b
3:  hlt
    jmp 3b

    .code64
oxen_start64_low:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    movabs $oxen_start64, %rax
    jmp *%rax

    .section .boot.data, "aw"
    .balign 8
    .global boot_tsc
boot_tsc:
    .quad 0
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
boot_gdt_end:
boot_gdtr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt
boot_msg_no_long_mode:
    .asciz "Oxen: this CPU has no long mode; an x86-64 CPU is required.\r\n"

    .balign 4096
boot_pml4:
    .quad boot_pdpt_low + 0x3
    .fill 260, 8, 0
    .quad boot_pdpt_image + 0x3
    .quad boot_pdpt_direct + 0x3
    .fill 249, 8, 0
boot_pdpt_low:
    .quad boot_pd + 0x3
    .fill 511, 8, 0
boot_pdpt_image:
    .fill 321, 8, 0
    .quad boot_pd_image + 0x3
    .fill 190, 8, 0
boot_pdpt_direct:
    .quad boot_pd + 0x3
    .quad boot_pd + 0x1000 + 0x3
    .quad boot_pd + 0x2000 + 0x3
    .quad boot_pd + 0x3000 + 0x3
    .fill 508, 8, 0
boot_pd:
    .set boot_pd_addr, 0
    .rept 2048
    .quad boot_pd_addr + 0x83
    .set boot_pd_addr, boot_pd_addr + 0x200000
    .endr
    /* The image area: like boot_pd, but 2-6 MiB in 4 KiB pages so that the boot stack's
       guard page can be unmapped before any Rust code runs. */
boot_pd_image:
    .quad 0x83
    .quad boot_pt_image + 0x3
    .quad boot_pt_image + 0x1000 + 0x3
    .set boot_pd_addr, 0x600000
    .rept 509
    .quad boot_pd_addr + 0x83
    .set boot_pd_addr, boot_pd_addr + 0x200000
    .endr
boot_pt_image:
    .set boot_pt_addr, 0x200000
    .rept 1024
    .quad boot_pt_addr + 0x3
    .set boot_pt_addr, boot_pt_addr + 0x1000
    .endr

    .section .text.oxen_start64, "ax"
    .global oxen_start64
oxen_start64:
    mov %edi, %r12d
    mov %esi, %r13d
    movabs $__bss_start, %rdi
    movabs $__bss_end, %rcx
    sub %rdi, %rcx
    xor %eax, %eax
    rep stosb
    /* .bss is clear: unmap the boot stack's guard page (its lowest page) in the image's
       boot L1, so an overflow faults from the first Rust instruction on. */
    movabs $oxen_boot_stack_bottom, %rax
    movabs $0xffff82d040200000, %rcx
    sub %rcx, %rax
    shr $12, %rax
    cmp $1024, %rax
    jae 1f
    movabs $boot_pt_image, %rcx
    movq $0, (%rcx,%rax,8)
    movabs $oxen_boot_stack_bottom, %rax
    invlpg (%rax)
1:
    lea oxen_boot_stack_top(%rip), %rsp
    xor %ebp, %ebp
    mov %r12d, %edi
    mov %r13d, %esi
    movabs $boot_tsc, %rax
    mov (%rax), %rdx
    call {entry}
    ud2

    /* The boot CPU's stack (cleared with .bss before use). */
    .section .bss.oxen_boot_stack, "aw", @nobits
    .balign 4096
    .global oxen_boot_stack_bottom
oxen_boot_stack_bottom:
    .skip 131072
    .global oxen_boot_stack_top
oxen_boot_stack_top:
    "#,
    entry = sym super::oxen_entry,
    options(att_syntax)
);
