//! Assembly text shared by the kit's entry points ([`super::traps`], [`super::upcall`],
//! [`super::user`]): saving the interrupted code's general registers as a
//! [`Registers`](crate::frame::Registers), calling a Rust handler with a pointer to the frame
//! so built, and restoring the registers afterwards.
//!
//! Each macro expands to a string literal (a `concat!`), so an entry's `global_asm!` names
//! it among its template strings; `{…}` operands in the text are the including block's own.
//! They are Rust macros rather than assembler `.macro`s because each `global_asm!` block may
//! be assembled on its own (one per codegen unit), so a `.macro` defined in one block is not
//! guaranteed to be visible in another.

use crate::frame::REGISTERS_SIZE;

/// Pushes every general register, RAX first: the 15 pushes (and [`REGISTERS_SIZE`] bytes)
/// leave RSP at a [`Registers`](crate::frame::Registers), R15 at the lowest address.
macro_rules! push_registers {
    () => {
        concat!(
            "    push %rax\n",
            "    push %rbx\n",
            "    push %rcx\n",
            "    push %rdx\n",
            "    push %rsi\n",
            "    push %rdi\n",
            "    push %rbp\n",
            "    push %r8\n",
            "    push %r9\n",
            "    push %r10\n",
            "    push %r11\n",
            "    push %r12\n",
            "    push %r13\n",
            "    push %r14\n",
            "    push %r15\n",
        )
    };
}

/// Restores every general register from the [`Registers`](crate::frame::Registers) at RSP
/// (the reverse of [`push_registers!`]), leaving RSP just above it.
macro_rules! pop_registers {
    () => {
        concat!(
            "    pop %r15\n",
            "    pop %r14\n",
            "    pop %r13\n",
            "    pop %r12\n",
            "    pop %r11\n",
            "    pop %r10\n",
            "    pop %r9\n",
            "    pop %r8\n",
            "    pop %rbp\n",
            "    pop %rdi\n",
            "    pop %rsi\n",
            "    pop %rdx\n",
            "    pop %rcx\n",
            "    pop %rbx\n",
            "    pop %rax\n",
        )
    };
}

/// Calls the `extern "C"` handler named by the including block's operand `$handler` with the
/// frame at RSP as its first argument (RDI), on a 16-byte aligned stack with DF clear (as the
/// System V ABI wants at a call). The frame's address stays in RBX, callee-saved, so the code
/// that follows puts the stack back with `mov %rbx, %rsp`.
macro_rules! call_with_frame {
    ($handler:ident) => {
        concat!(
            "    mov %rsp, %rdi\n",
            "    mov %rsp, %rbx\n",
            "    and $-16, %rsp\n",
            "    cld\n",
            "    call {",
            stringify!($handler),
            "}\n",
        )
    };
}

pub(super) use {call_with_frame, pop_registers, push_registers};

// The pushes above are the 15 fields of `Registers`.
const _: () = assert!(REGISTERS_SIZE == 15 * 8);
