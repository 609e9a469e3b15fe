/*
 * indep-c: entry point, ELF notes, hypercall page and the int3 round trip.
 *
 * Written from shared/xen-pv-abi.md alone (§1.3, §4.1, §4.6, §8.1, §8.3, §8.5);
 * it uses none of Oxen's libraries. Built by `cargo xtask build` with the system gcc.
 */

#define VIRT_BASE       0xffffffff80000000
#define HYPERCALL_IRET  23

/* Indices into the register arrays shared with kernel.c (REG_* there). */
#define R_RAX 0
#define R_RBX 1
#define R_RCX 2
#define R_RDX 3
#define R_RSI 4
#define R_RDI 5
#define R_RBP 6
#define R_R8  7
#define R_R9  8
#define R_R10 9
#define R_R11 10
#define R_R12 11
#define R_R13 12
#define R_R14 13
#define R_R15 14
#define R_RSP 15

/* --------------------------------------------------------------------------------------
 * ELF notes (§4.1): name "Xen", 4-byte aligned, type selects the item.
 */
.macro xen_note_head type
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4                 /* namesz: "Xen\0" */
    .long 2f - 1f           /* descsz */
    .long \type
    .asciz "Xen"
1:
.endm

.macro xen_note_tail
2:  .balign 4
    .popsection
.endm

/* A number note: `kind` is .quad or .long. */
.macro xen_note type, kind, value
    xen_note_head \type
    \kind \value
    xen_note_tail
.endm

/* A string note. */
.macro xen_note_str type, str
    xen_note_head \type
    .asciz "\str"
    xen_note_tail
.endm

    xen_note_str 5, "xen-3.0"               /* XEN_VERSION */
    xen_note_str 6, "indep-c"               /* GUEST_OS */
    xen_note_str 7, "0"                     /* GUEST_VERSION */
    xen_note_str 8, "generic"               /* LOADER */
    xen_note 3,  .quad, VIRT_BASE           /* VIRT_BASE */
    xen_note 4,  .quad, 0                   /* PADDR_OFFSET */
    xen_note 1,  .quad, indep_start         /* ENTRY */
    xen_note 2,  .quad, hypercall_page      /* HYPERCALL_PAGE */
    xen_note_str 10, "dom0"                 /* FEATURES: we support running as dom0 */
    xen_note 17, .long, (1 << 11)           /* SUPPORTED_FEATURES: XENFEAT_dom0 */

/* --------------------------------------------------------------------------------------
 * The hypercall page (§1.3): one page of the image, filled by the domain builder. The
 * poison (0xc3, `ret`) is what the page holds if nobody fills it.
 */
    .section .text.hypercall_page, "ax"
    .balign 4096
    .globl hypercall_page
hypercall_page:
    .fill 4096, 1, 0xc3

/* --------------------------------------------------------------------------------------
 * Entry (§4.6): rsi = start_info, rsp = end of the bootstrap stack page. Record every
 * register first, touching nothing, then switch to our own stack and call indep_main.
 */
    .section .text.entry, "ax"
    .globl indep_start
indep_start:
    mov %rax, entry_regs + R_RAX*8(%rip)
    mov %rbx, entry_regs + R_RBX*8(%rip)
    mov %rcx, entry_regs + R_RCX*8(%rip)
    mov %rdx, entry_regs + R_RDX*8(%rip)
    mov %rsi, entry_regs + R_RSI*8(%rip)
    mov %rdi, entry_regs + R_RDI*8(%rip)
    mov %rbp, entry_regs + R_RBP*8(%rip)
    mov %r8,  entry_regs + R_R8*8(%rip)
    mov %r9,  entry_regs + R_R9*8(%rip)
    mov %r10, entry_regs + R_R10*8(%rip)
    mov %r11, entry_regs + R_R11*8(%rip)
    mov %r12, entry_regs + R_R12*8(%rip)
    mov %r13, entry_regs + R_R13*8(%rip)
    mov %r14, entry_regs + R_R14*8(%rip)
    mov %r15, entry_regs + R_R15*8(%rip)
    mov %rsp, entry_regs + R_RSP*8(%rip)
    movw %cs, entry_segs + 0(%rip)
    movw %ss, entry_segs + 2(%rip)
    movw %ds, entry_segs + 4(%rip)
    movw %es, entry_segs + 6(%rip)
    movw %fs, entry_segs + 8(%rip)
    movw %gs, entry_segs + 10(%rip)
    pushfq                              /* uses one slot of the builder's stack */
    popq entry_rflags(%rip)

    lea boot_stack_top(%rip), %rsp
    xor %ebp, %ebp
    mov %rsi, %rdi                      /* indep_main(start_info) */
    cld
    call indep_main
    /* indep_main shuts the domain down; if that returns, spin (hlt would #GP in ring 3). */
1:  pause
    jmp 1b

/* --------------------------------------------------------------------------------------
 * int3 round trip (§8.1, §8.3, §8.5).
 *
 * int3_test (C ABI, no arguments) loads every general register from int3_pre[] (rsp is
 * recorded in int3_pre[R_RSP]), executes int3, and records every register after the
 * return in int3_post[]. The handler records the registers it sees (int3_in[]), the
 * 7-qword bounce frame (int3_frame[]), its own rsp, cs, ss and rflags, then returns with
 * the iret hypercall.
 */
    .text
    .globl int3_test
int3_test:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    pushfq
    popq int3_pre_rflags(%rip)          /* no instruction below changes the flags */
    mov %rsp, int3_pre + R_RSP*8(%rip)
    mov int3_pre + R_RAX*8(%rip), %rax
    mov int3_pre + R_RBX*8(%rip), %rbx
    mov int3_pre + R_RCX*8(%rip), %rcx
    mov int3_pre + R_RDX*8(%rip), %rdx
    mov int3_pre + R_RSI*8(%rip), %rsi
    mov int3_pre + R_RDI*8(%rip), %rdi
    mov int3_pre + R_RBP*8(%rip), %rbp
    mov int3_pre + R_R8*8(%rip),  %r8
    mov int3_pre + R_R9*8(%rip),  %r9
    mov int3_pre + R_R10*8(%rip), %r10
    mov int3_pre + R_R11*8(%rip), %r11
    mov int3_pre + R_R12*8(%rip), %r12
    mov int3_pre + R_R13*8(%rip), %r13
    mov int3_pre + R_R14*8(%rip), %r14
    mov int3_pre + R_R15*8(%rip), %r15
    int3
    .globl int3_resume
int3_resume:
    mov %rax, int3_post + R_RAX*8(%rip)
    mov %rbx, int3_post + R_RBX*8(%rip)
    mov %rcx, int3_post + R_RCX*8(%rip)
    mov %rdx, int3_post + R_RDX*8(%rip)
    mov %rsi, int3_post + R_RSI*8(%rip)
    mov %rdi, int3_post + R_RDI*8(%rip)
    mov %rbp, int3_post + R_RBP*8(%rip)
    mov %r8,  int3_post + R_R8*8(%rip)
    mov %r9,  int3_post + R_R9*8(%rip)
    mov %r10, int3_post + R_R10*8(%rip)
    mov %r11, int3_post + R_R11*8(%rip)
    mov %r12, int3_post + R_R12*8(%rip)
    mov %r13, int3_post + R_R13*8(%rip)
    mov %r14, int3_post + R_R14*8(%rip)
    mov %r15, int3_post + R_R15*8(%rip)
    mov %rsp, int3_post + R_RSP*8(%rip)
    pushfq
    popq int3_post_rflags(%rip)
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret

    .globl int3_handler
int3_handler:
    /* rsp -> [rcx, r11, rip, cs, rflags, rsp, ss] (§8.3); rcx and r11 are scratch. */
    mov %rax, int3_in + R_RAX*8(%rip)
    mov %rbx, int3_in + R_RBX*8(%rip)
    mov %rcx, int3_in + R_RCX*8(%rip)
    mov %rdx, int3_in + R_RDX*8(%rip)
    mov %rsi, int3_in + R_RSI*8(%rip)
    mov %rdi, int3_in + R_RDI*8(%rip)
    mov %rbp, int3_in + R_RBP*8(%rip)
    mov %r8,  int3_in + R_R8*8(%rip)
    mov %r9,  int3_in + R_R9*8(%rip)
    mov %r10, int3_in + R_R10*8(%rip)
    mov %r11, int3_in + R_R11*8(%rip)
    mov %r12, int3_in + R_R12*8(%rip)
    mov %r13, int3_in + R_R13*8(%rip)
    mov %r14, int3_in + R_R14*8(%rip)
    mov %r15, int3_in + R_R15*8(%rip)
    mov %rsp, int3_in + R_RSP*8(%rip)
    movw %cs, int3_handler_segs + 0(%rip)
    movw %ss, int3_handler_segs + 2(%rip)
    mov 0*8(%rsp), %rcx
    mov %rcx, int3_frame + 0*8(%rip)
    mov 1*8(%rsp), %rcx
    mov %rcx, int3_frame + 1*8(%rip)
    mov 2*8(%rsp), %rcx
    mov %rcx, int3_frame + 2*8(%rip)
    mov 3*8(%rsp), %rcx
    mov %rcx, int3_frame + 3*8(%rip)
    mov 4*8(%rsp), %rcx
    mov %rcx, int3_frame + 4*8(%rip)
    mov 5*8(%rsp), %rcx
    mov %rcx, int3_frame + 5*8(%rip)
    mov 6*8(%rsp), %rcx
    mov %rcx, int3_frame + 6*8(%rip)
    incq int3_hits(%rip)
    /* Back to the interrupted code with the iret hypercall (§8.5): the stack must hold
     * [flags, rip, cs, rflags, rsp, ss]. Pop the saved rcx/r11 into their registers (the
     * stub pushes them again for Xen), push flags = 0 and jump (never call) to stub 23. */
    pop %rcx
    pop %r11
    pushq $0
    jmp hypercall_page + HYPERCALL_IRET*32

/* --------------------------------------------------------------------------------------
 * Our own stack.
 */
    .section .bss
    .balign 4096
boot_stack:
    .skip 16384
boot_stack_top:

    .section .note.GNU-stack, "", @progbits
