/*
 * indep-c: a freestanding C test kernel for the Xen x86-64 PV ABI.
 *
 * Written from shared/xen-pv-abi.md alone, without Oxen's Rust libraries (pv-guest-kit,
 * hypercall-abi), so that it checks the ABI as the reference writes it down, not our
 * reading of it in Rust. It runs as dom0 on real Xen 4.17 and on Oxen, prints
 * "PASS: <name>" or "FAIL: <name>: <detail>" per check through console_io, then
 * "RESULT: PASS (n checks)" or "RESULT: FAIL (k of n failed)", and shuts the domain
 * down: poweroff when every check passed, crash otherwise.
 *
 * Section numbers (§) refer to shared/xen-pv-abi.md.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* xen_version(XENVER_version) must return this: (major << 16) | minor (§15.1). Oxen
 * reports the same 4.17 as real Xen; the build may override it with -D. */
#ifndef EXPECTED_XEN_VERSION
#define EXPECTED_XEN_VERSION 0x00040011
#endif

#define PAGE_SIZE 4096UL
#define VIRT_BASE 0xffffffff80000000UL /* our VIRT_BASE note (entry.S) */

/* Hypercall numbers (§2). */
#define HC_SET_TRAP_TABLE 0
#define HC_XEN_VERSION 17
#define HC_CONSOLE_IO 18
#define HC_IRET 23
#define HC_SCHED_OP 29
#define HC_UNALLOCATED 43

/* Sub-commands and values. */
#define CONSOLEIO_write 0
#define XENVER_version 0
#define SCHEDOP_shutdown 2
#define SHUTDOWN_poweroff 0
#define SHUTDOWN_crash 3
#define SIF_PRIVILEGED 0x1
#define SIF_INITDOMAIN 0x2
#define XEN_ENOSYS 38
#define XEN_EFAULT 14

/* Selectors (§7.1). */
#define FLAT_KERNEL_CS 0xe033
#define FLAT_KERNEL_SS 0xe02b

/* Hypervisor-reserved virtual range (§9.2, §15.1 platform_parameters). */
#define HYPERVISOR_VIRT_START 0xffff800000000000UL

#define RFLAGS_IF 0x200UL
#define RFLAGS_IOPL 0x3000UL

/* start_info (§5), with the offsets of the reference's table. */
struct start_info {
    char magic[32];
    uint64_t nr_pages;
    uint64_t shared_info;
    uint32_t flags;
    uint32_t pad0;
    uint64_t store_mfn;
    uint32_t store_evtchn;
    uint32_t pad1;
    union {
        struct {
            uint64_t mfn;
            uint32_t evtchn;
        } domU;
        struct {
            uint32_t info_off;
            uint32_t info_size;
        } dom0;
    } console;
    uint64_t pt_base;
    uint64_t nr_pt_frames;
    uint64_t mfn_list;
    uint64_t mod_start;
    uint64_t mod_len;
    char cmd_line[1024];
    uint64_t first_p2m_pfn;
    uint64_t nr_p2m_frames;
};
_Static_assert(offsetof(struct start_info, flags) == 48, "start_info.flags");
_Static_assert(offsetof(struct start_info, pt_base) == 88, "start_info.pt_base");
_Static_assert(offsetof(struct start_info, mfn_list) == 104, "start_info.mfn_list");
_Static_assert(offsetof(struct start_info, cmd_line) == 128, "start_info.cmd_line");
_Static_assert(sizeof(struct start_info) == 1168, "start_info size");

/* trap_info (§8.1). */
struct trap_info {
    uint8_t vector;
    uint8_t flags; /* bits 0-1: DPL, bit 2: mask events */
    uint16_t cs;
    uint32_t pad;
    uint64_t address;
};
_Static_assert(sizeof(struct trap_info) == 16, "trap_info size");

/* ------------------------------------------------------------------------------------ */
/* Shared with entry.S. */

enum { REG_RAX, REG_RBX, REG_RCX, REG_RDX, REG_RSI, REG_RDI, REG_RBP, REG_R8, REG_R9,
       REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15, REG_RSP, NR_REGS };
static const char *const reg_names[NR_REGS] = {
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8",
    "r9",  "r10", "r11", "r12", "r13", "r14", "r15", "rsp",
};

uint64_t entry_regs[NR_REGS];
uint16_t entry_segs[6]; /* cs ss ds es fs gs */
uint64_t entry_rflags;

uint64_t int3_pre[NR_REGS], int3_in[NR_REGS], int3_post[NR_REGS];
uint64_t int3_frame[7]; /* rcx r11 rip cs rflags rsp ss */
uint64_t int3_pre_rflags, int3_post_rflags, int3_hits;
uint16_t int3_handler_segs[2]; /* cs ss */

extern uint8_t hypercall_page[PAGE_SIZE];
extern char __bss_end[];
extern void int3_test(void);
extern char int3_handler[], int3_resume[];
void indep_main(struct start_info *si);

/* Left zero by the loader (§4.3: p_memsz beyond p_filesz is zero-filled). */
static volatile uint8_t bss_probe[8192];

/* ------------------------------------------------------------------------------------ */
/* Hypercalls through the page (§1.2, §1.3): call hypercall_page + nr*32; arguments in
 * rdi, rsi, rdx, r10, r8; result in rax. The argument registers may be clobbered. */

#define HYPERCALL3(nr, a1, a2, a3)                                                    \
    ({                                                                                \
        register uint64_t _a1 __asm__("rdi") = (uint64_t)(a1);                        \
        register uint64_t _a2 __asm__("rsi") = (uint64_t)(a2);                        \
        register uint64_t _a3 __asm__("rdx") = (uint64_t)(a3);                        \
        long _ret;                                                                    \
        __asm__ volatile("call hypercall_page + %c[offset]"                           \
                         : "=a"(_ret), "+r"(_a1), "+r"(_a2), "+r"(_a3)                \
                         : [offset] "i"((nr) * 32)                                    \
                         : "memory", "rcx", "r8", "r10", "r11", "cc");                 \
        _ret;                                                                         \
    })

void *memset(void *dst, int c, size_t n);
void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = dst;
    while (n--)
        *d++ = (uint8_t)c;
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n);
void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

/* ------------------------------------------------------------------------------------ */
/* Console output: console_io(CONSOLEIO_write, count, buf), one call per line (§13.1). */

static char line_buf[200];
static unsigned line_len;

static void flush(void)
{
    if (line_len) {
        (void)HYPERCALL3(HC_CONSOLE_IO, CONSOLEIO_write, line_len, line_buf);
        line_len = 0;
    }
}

static void put_char(char c)
{
    line_buf[line_len++] = c;
    if (c == '\n' || line_len == sizeof(line_buf))
        flush();
}

static void put_str(const char *s)
{
    while (*s)
        put_char(*s++);
}

static void put_hex(uint64_t v)
{
    put_str("0x");
    int shift = 60;
    while (shift > 0 && !((v >> shift) & 0xf))
        shift -= 4;
    for (; shift >= 0; shift -= 4)
        put_char("0123456789abcdef"[(v >> shift) & 0xf]);
}

static void put_dec(int64_t v)
{
    char digits[24];
    int n = 0;
    uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
    if (v < 0)
        put_char('-');
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n)
        put_char(digits[--n]);
}

/* %s %c %d %u %x (int), %ld %lu %lx (long), %%. Hex is printed with "0x". */
static void vprint(const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put_char(*fmt);
            continue;
        }
        int is_long = 0;
        if (*++fmt == 'l') {
            is_long = 1;
            fmt++;
        }
        switch (*fmt) {
        case 's': put_str(va_arg(ap, const char *)); break;
        case 'c': put_char((char)va_arg(ap, int)); break;
        case 'd': put_dec(is_long ? va_arg(ap, long) : va_arg(ap, int)); break;
        case 'u':
            put_dec(is_long ? (int64_t)va_arg(ap, unsigned long) : va_arg(ap, unsigned));
            break;
        case 'x': put_hex(is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned)); break;
        case '%': put_char('%'); break;
        default: put_char('?'); break;
        }
    }
}

__attribute__((format(printf, 1, 2))) static void print(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprint(fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------------------ */
/* Checks. */

static unsigned nr_checks, nr_failed;

__attribute__((format(printf, 3, 4))) static int check(int ok, const char *name,
                                                        const char *fmt, ...)
{
    nr_checks++;
    if (ok) {
        print("PASS: %s\n", name);
        return 1;
    }
    nr_failed++;
    print("FAIL: %s: ", name);
    va_list ap;
    va_start(ap, fmt);
    vprint(fmt, ap);
    va_end(ap);
    put_char('\n');
    return 0;
}

static int str_starts_with(const char *s, const char *prefix)
{
    while (*prefix)
        if (*s++ != *prefix++)
            return 0;
    return 1;
}

static uint64_t round_up(uint64_t v, uint64_t align)
{
    return (v + align - 1) & ~(align - 1);
}

static __attribute__((noreturn)) void shutdown(unsigned reason)
{
    flush();
    struct { uint32_t reason; } arg = { reason };
    long rc = HYPERCALL3(HC_SCHED_OP, SCHEDOP_shutdown, &arg, 0);
    print("indep-c: sched_op(SCHEDOP_shutdown, %u) returned %ld\n", reason, rc);
    for (;;)
        __asm__ volatile("pause");
}

/* ------------------------------------------------------------------------------------ */
/* The initial page tables (§4.3-§4.5): walk them from pt_base. A next-level table is
 * found by its MFN among the bootstrap page-table frames, whose PFNs (hence MFNs, via
 * mfn_list) follow from the 1:1 rule "virtual VIRT_BASE + pfn*4096 <-> PFN pfn". */

static const struct start_info *si;
static const uint64_t *p2m;

#define PTE_PRESENT 0x1UL
#define PTE_RW 0x2UL
#define PTE_PSE 0x80UL
#define PTE_MFN(e) (((e) & 0x000ffffffffff000UL) >> 12)

static uint64_t pfn_of(uint64_t va)
{
    return (va - VIRT_BASE) / PAGE_SIZE;
}

static const uint64_t *pt_frame(uint64_t mfn)
{
    uint64_t first = pfn_of(si->pt_base);
    for (uint64_t i = 0; i < si->nr_pt_frames; i++)
        if (p2m[first + i] == mfn)
            return (const uint64_t *)(si->pt_base + i * PAGE_SIZE);
    return NULL;
}

/* The L1 entry mapping va, or 0 (with *why) when the walk fails. */
static uint64_t l1_entry(uint64_t va, const char **why)
{
    const uint64_t *table = (const uint64_t *)si->pt_base;
    for (int level = 4;; level--) {
        uint64_t e = table[(va >> (12 + 9 * (level - 1))) & 511];
        if (!(e & PTE_PRESENT)) {
            *why = level == 4 ? "L4 entry not present"
                 : level == 3 ? "L3 entry not present"
                 : level == 2 ? "L2 entry not present" : "L1 entry not present";
            return 0;
        }
        if (level == 1)
            return e;
        if (e & PTE_PSE) {
            *why = "mapped by a large page";
            return 0;
        }
        table = pt_frame(PTE_MFN(e));
        if (!table) {
            *why = "a page table is not one of the bootstrap page-table frames";
            return 0;
        }
    }
}

static void check_mapping(const char *name, uint64_t va, int want_writable)
{
    const char *why = "";
    uint64_t e = l1_entry(va, &why);
    if (!e) {
        check(0, name, "va %lx: %s", va, why);
        return;
    }
    uint64_t want = p2m[pfn_of(va)];
    if (PTE_MFN(e) != want) {
        check(0, name, "va %lx (pfn %lx) maps mfn %lx, mfn_list says %lx", va, pfn_of(va),
              PTE_MFN(e), want);
        return;
    }
    if (!!(e & PTE_RW) != want_writable) {
        check(0, name, "va %lx: pte %lx is %s, expected %s", va, e,
              (e & PTE_RW) ? "writable" : "read-only", want_writable ? "writable" : "read-only");
        return;
    }
    check(1, name, "%s", "");
}

/* ------------------------------------------------------------------------------------ */
/* The hypercall page (§1.3). */

static int stub_ok(unsigned i, uint64_t *bad_offset)
{
    const uint8_t *stub = hypercall_page + i * 32;
    uint8_t want[32];
    memset(want, 0xcc, sizeof(want));
    if (i == HC_IRET) {
        const uint8_t iret[] = { 0x51, 0x41, 0x53, 0x50, 0xb8, 23, 0, 0, 0, 0x0f, 0x05 };
        memcpy(want, iret, sizeof(iret));
    } else {
        const uint8_t gen[] = { 0x51, 0x41, 0x53, 0xb8, (uint8_t)i, 0, 0, 0,
                                0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3 };
        memcpy(want, gen, sizeof(gen));
    }
    for (unsigned off = 0; off < 32; off++) {
        if (stub[off] != want[off]) {
            *bad_offset = off;
            return 0;
        }
    }
    return 1;
}

static void check_hypercall_page(void)
{
    uint64_t off = 0;
    const uint8_t *s0 = hypercall_page;
    check(stub_ok(0, &off), "hypercall page: stub 0 is push rcx; push r11; mov $0,%eax; syscall; "
                            "pop r11; pop rcx; ret; int3 padding",
          "byte %lu differs: %x %x %x %x %x %x %x %x %x %x %x %x %x %x", off, s0[0], s0[1], s0[2],
          s0[3], s0[4], s0[5], s0[6], s0[7], s0[8], s0[9], s0[10], s0[11], s0[12], s0[13]);

    unsigned bad = 0, first_bad = 0;
    for (unsigned i = 0; i < 128; i++) {
        if (i != HC_IRET && !stub_ok(i, &off) && !bad++)
            first_bad = i;
    }
    check(!bad, "hypercall page: all 127 ordinary stubs carry their own number",
          "%u stubs differ, the first is %u", bad, first_bad);

    const uint8_t *s23 = hypercall_page + HC_IRET * 32;
    check(stub_ok(HC_IRET, &off), "hypercall page: stub 23 (iret) is push rcx; push r11; "
                                  "push rax; mov $23,%eax; syscall",
          "byte %lu differs: %x %x %x %x %x %x %x %x %x %x %x %x", off, s23[0], s23[1], s23[2],
          s23[3], s23[4], s23[5], s23[6], s23[7], s23[8], s23[9], s23[10], s23[11]);
}

/* ------------------------------------------------------------------------------------ */
/* The entry state (§4.6). */

static void check_entry_state(void)
{
    print("indep-c: entry: rsp=%lx rsi=%lx cs=%x ss=%x ds=%x es=%x fs=%x gs=%x rflags=%lx\n",
          entry_regs[REG_RSP], entry_regs[REG_RSI], entry_segs[0], entry_segs[1], entry_segs[2],
          entry_segs[3], entry_segs[4], entry_segs[5], entry_rflags);

    unsigned nonzero = 0;
    for (int r = 0; r < NR_REGS; r++) {
        if (r == REG_RSI || r == REG_RSP || !entry_regs[r])
            continue;
        if (!nonzero++)
            print("indep-c: entry: nonzero:");
        print(" %s=%lx", reg_names[r], entry_regs[r]);
    }
    if (nonzero)
        put_char('\n');
    check(!nonzero, "entry: every general register but rsi and rsp is zero",
          "%u registers are not (listed above)", nonzero);
    check(entry_segs[0] == FLAT_KERNEL_CS && entry_segs[1] == FLAT_KERNEL_SS,
          "entry: cs == 0xe033 and ss == 0xe02b", "cs=%x ss=%x", entry_segs[0], entry_segs[1]);
    check(!entry_segs[2] && !entry_segs[3] && !entry_segs[4] && !entry_segs[5],
          "entry: ds, es, fs and gs are null", "ds=%x es=%x fs=%x gs=%x", entry_segs[2],
          entry_segs[3], entry_segs[4], entry_segs[5]);
    check((entry_rflags & RFLAGS_IF) && !(entry_rflags & RFLAGS_IOPL),
          "entry: rflags has IF set and IOPL 0", "rflags=%lx", entry_rflags);
}

/* ------------------------------------------------------------------------------------ */
/* start_info and the initial layout (§4.4, §5). */

static int check_start_info(void)
{
    print("indep-c: start_info at %lx: magic \"%s\" nr_pages=%lu flags=%x shared_info=%lx\n",
          (uint64_t)si, si->magic, si->nr_pages, si->flags, si->shared_info);
    print("indep-c: start_info: pt_base=%lx nr_pt_frames=%lu mfn_list=%lx mod_start=%lx "
          "mod_len=%lu console.dom0=%u+%u first_p2m_pfn=%lx nr_p2m_frames=%lu\n",
          si->pt_base, si->nr_pt_frames, si->mfn_list, si->mod_start, si->mod_len,
          si->console.dom0.info_off, si->console.dom0.info_size, si->first_p2m_pfn,
          si->nr_p2m_frames);

    unsigned len = 0;
    while (len < sizeof(si->cmd_line) && si->cmd_line[len])
        len++;
    int terminated = len < sizeof(si->cmd_line);
    print("indep-c: command line: \"");
    for (unsigned i = 0; i < len; i++)
        put_char(si->cmd_line[i]);
    print("\"\n");
    check(terminated, "start_info: command line is NUL-terminated", "no NUL in 1024 bytes");

    check((si->flags & (SIF_PRIVILEGED | SIF_INITDOMAIN)) == (SIF_PRIVILEGED | SIF_INITDOMAIN),
          "start_info: flags has SIF_PRIVILEGED and SIF_INITDOMAIN (dom0)", "flags=%x",
          si->flags);
    check(si->nr_pages > 0, "start_info: nr_pages is nonzero", "nr_pages=0");
    check(si->shared_info && !(si->shared_info & (PAGE_SIZE - 1)),
          "start_info: shared_info is a page-aligned machine address", "shared_info=%lx",
          si->shared_info);
    check(!si->mod_start && !si->mod_len, "start_info: no module, so mod_start and mod_len are 0",
          "mod_start=%lx mod_len=%lu", si->mod_start, si->mod_len);

    /* §4.4: kernel, [no initrd], P2M list, start_info, page tables, stack; page-rounded. */
    uint64_t kernel_end = round_up((uint64_t)__bss_end, PAGE_SIZE);
    uint64_t want_si = round_up(si->mfn_list + si->nr_pages * 8, PAGE_SIZE);
    int dom0 = !!(si->flags & SIF_INITDOMAIN);
    uint64_t want_pt = (uint64_t)si + (dom0 ? 1 : 3) * PAGE_SIZE;
    check(si->mfn_list == kernel_end, "layout: mfn_list starts on the page after the kernel",
          "mfn_list=%lx, kernel ends at %lx", si->mfn_list, kernel_end);
    check((uint64_t)si == want_si, "layout: start_info is on the page after the P2M list",
          "start_info=%lx, expected %lx", (uint64_t)si, want_si);
    check(si->pt_base == want_pt, "layout: the page tables follow start_info",
          "pt_base=%lx, expected %lx", si->pt_base, want_pt);

    uint64_t rsp = entry_regs[REG_RSP];
    check(!(rsp & (PAGE_SIZE - 1)), "entry: rsp is page aligned", "rsp=%lx", rsp);
    check(si->pt_base + si->nr_pt_frames * PAGE_SIZE == rsp - PAGE_SIZE,
          "layout: the boot stack page lies right after the page tables "
          "(pt_base + nr_pt_frames*4096 == rsp - 4096)",
          "pt_base + nr_pt_frames*4096 = %lx, rsp - 4096 = %lx",
          si->pt_base + si->nr_pt_frames * PAGE_SIZE, rsp - PAGE_SIZE);

    /* Only read through pointers that lie in the initial mapping we are sure of. */
    int layout_sane = si->mfn_list >= kernel_end && si->mfn_list < (uint64_t)si &&
                      si->pt_base > (uint64_t)si && si->pt_base < rsp &&
                      si->nr_pt_frames >= 2 && si->nr_pt_frames < 64;
    if (!layout_sane) {
        check(0, "layout: sane enough to read mfn_list and the page tables", "skipping those");
        return 0;
    }
    p2m = (const uint64_t *)si->mfn_list;
    check(p2m[0] != 0, "mfn_list: readable, first entry nonzero", "mfn_list[0]=0");
    print("indep-c: mfn_list[0]=%lx mfn_list[%lu]=%lx\n", p2m[0], si->nr_pages - 1,
          p2m[si->nr_pages - 1]);
    return 1;
}

static void check_page_tables(void)
{
    uint64_t rsp = entry_regs[REG_RSP];
    check_mapping("mapping: hypercall page is VIRT_BASE + pfn*4096 -> mfn_list[pfn], writable",
                  (uint64_t)hypercall_page, 1);
    check_mapping("mapping: start_info page -> mfn_list[pfn], writable", (uint64_t)si, 1);
    check_mapping("mapping: mfn_list page -> mfn_list[pfn], writable", si->mfn_list, 1);
    check_mapping("mapping: boot stack page -> mfn_list[pfn], writable", rsp - PAGE_SIZE, 1);
    check_mapping("mapping: 512 KiB of padding after the stack is mapped, writable",
                  rsp + (512UL << 10) - PAGE_SIZE, 1);

    unsigned bad = 0;
    uint64_t first_bad = 0;
    for (uint64_t i = 0; i < si->nr_pt_frames; i++) {
        uint64_t va = si->pt_base + i * PAGE_SIZE;
        const char *why = "";
        uint64_t e = l1_entry(va, &why);
        if (!e || PTE_MFN(e) != p2m[pfn_of(va)] || (e & PTE_RW)) {
            if (!bad++)
                first_bad = va;
        }
    }
    check(!bad, "mapping: every bootstrap page-table frame is mapped read-only",
          "%u frames are not, the first at %lx", bad, first_bad);
}

/* ------------------------------------------------------------------------------------ */
/* Hypercall results. */

static void check_hypercalls(void)
{
    long v = HYPERCALL3(HC_XEN_VERSION, XENVER_version, 0, 0);
    print("indep-c: xen_version(XENVER_version) = %lx (%ld.%ld)\n", v, v >> 16, v & 0xffff);
    check(v == EXPECTED_XEN_VERSION, "xen_version(XENVER_version) is the expected version",
          "got %lx, expected %x", v, EXPECTED_XEN_VERSION);

    long rc = HYPERCALL3(HC_XEN_VERSION, 0x1234, 0, 0);
    check(rc == -XEN_ENOSYS, "xen_version(unknown sub-op 0x1234) == -ENOSYS", "got %ld", rc);

    rc = HYPERCALL3(HC_UNALLOCATED, 0, 0, 0);
    check(rc == -XEN_ENOSYS, "unallocated hypercall 43 == -ENOSYS", "got %ld", rc);

    rc = HYPERCALL3(HC_CONSOLE_IO, CONSOLEIO_write, 4, 0x1UL);
    check(rc == -XEN_EFAULT, "console_io(write, 4, 0x1) == -EFAULT", "got %ld", rc);

    rc = HYPERCALL3(HC_CONSOLE_IO, CONSOLEIO_write, 4, 0x8000000000000000UL);
    check(rc == -XEN_EFAULT, "console_io(write, 4, non-canonical 0x8000000000000000) == -EFAULT",
          "got %ld", rc);

    /* A pointer into the hypervisor's own range must not be read on the guest's behalf. */
    rc = HYPERCALL3(HC_CONSOLE_IO, CONSOLEIO_write, 4, HYPERVISOR_VIRT_START + 0x30000000000UL);
    check(rc == -XEN_EFAULT, "console_io(write, 4, hypervisor address 0xffff830000000000) == -EFAULT",
          "got %ld", rc);

    rc = HYPERCALL3(HC_CONSOLE_IO, 0x99, 0, 0);
    check(rc == -XEN_ENOSYS, "console_io(unknown cmd 0x99) == -ENOSYS", "got %ld", rc);
}

/* ------------------------------------------------------------------------------------ */
/* One exception: int3 through a trap table, returned from with the iret hypercall. */

static int regs_equal(const uint64_t *a, const uint64_t *b, int skip_rcx_r11, int skip_rsp,
                      int *first_bad)
{
    for (int r = 0; r < NR_REGS; r++) {
        if (skip_rcx_r11 && (r == REG_RCX || r == REG_R11))
            continue;
        if (skip_rsp && r == REG_RSP)
            continue;
        if (a[r] != b[r]) {
            *first_bad = r;
            return 0;
        }
    }
    return 1;
}

static void check_int3(void)
{
    static struct trap_info traps[2];
    traps[0].vector = 3;
    traps[0].flags = 3; /* DPL 3, events not masked */
    traps[0].cs = FLAT_KERNEL_CS;
    traps[0].address = (uint64_t)int3_handler;
    long rc = HYPERCALL3(HC_SET_TRAP_TABLE, traps, 0, 0);
    if (!check(rc == 0, "set_trap_table([int3 -> handler, DPL 3]) == 0", "got %ld", rc))
        return;

    for (int r = 0; r < NR_REGS; r++)
        int3_pre[r] = 0x1000000000000000UL * (uint64_t)(r + 1) + 0x0101010101UL * (uint64_t)r;
    flush();
    int3_test();

    const uint64_t *f = int3_frame;
    print("indep-c: int3 frame: rcx=%lx r11=%lx rip=%lx cs=%lx rflags=%lx rsp=%lx ss=%lx\n",
          f[0], f[1], f[2], f[3], f[4], f[5], f[6]);
    print("indep-c: int3: before rsp=%lx rflags=%lx; handler rsp=%lx cs=%x ss=%x\n",
          int3_pre[REG_RSP], int3_pre_rflags, int3_in[REG_RSP], int3_handler_segs[0],
          int3_handler_segs[1]);

    check(int3_hits == 1, "int3: the handler ran once", "ran %lu times", int3_hits);
    check(int3_handler_segs[0] == FLAT_KERNEL_CS && int3_handler_segs[1] == FLAT_KERNEL_SS,
          "int3: handler runs with cs 0xe033 and ss 0xe02b", "cs=%x ss=%x",
          int3_handler_segs[0], int3_handler_segs[1]);
    check(int3_in[REG_RSP] == (int3_pre[REG_RSP] & ~15UL) - 7 * 8,
          "int3: frame is 7 qwords below the interrupted rsp aligned down to 16",
          "handler rsp=%lx, interrupted rsp=%lx", int3_in[REG_RSP], int3_pre[REG_RSP]);
    check(f[0] == int3_pre[REG_RCX] && f[1] == int3_pre[REG_R11],
          "int3: frame holds the interrupted rcx and r11", "rcx=%lx r11=%lx", f[0], f[1]);
    check(f[2] == (uint64_t)int3_resume, "int3: frame rip is the instruction after int3",
          "rip=%lx, expected %lx", f[2], (uint64_t)int3_resume);
    /* §8.3: kernel mode -> RPL cleared (0xe030); bits 32-39: the upcall mask, which is 1
     * until the guest clears it (§4.6). */
    uint64_t want_cs = (1UL << 32) | (FLAT_KERNEL_CS & ~3UL);
    check(f[3] == want_cs, "int3: frame cs is 0xe030 (kernel mode, RPL 0) with upcall mask 1 "
                           "in bits 32-39",
          "cs=%lx, expected %lx", f[3], want_cs);
    uint64_t want_rflags = int3_pre_rflags & ~RFLAGS_IF; /* IF = !upcall mask = 0 */
    check(f[4] == want_rflags, "int3: frame rflags is the interrupted rflags with IF = !mask = 0",
          "rflags=%lx, expected %lx", f[4], want_rflags);
    check(f[5] == int3_pre[REG_RSP] && f[6] == FLAT_KERNEL_SS,
          "int3: frame rsp and ss are the interrupted ones", "rsp=%lx ss=%lx", f[5], f[6]);
    int r = 0;
    check(regs_equal(int3_in, int3_pre, 1, 1, &r),
          "int3: the handler sees the interrupted registers (except rcx, r11)",
          "%s=%lx, expected %lx", reg_names[r], int3_in[r], int3_pre[r]);
    check(regs_equal(int3_post, int3_pre, 0, 0, &r),
          "iret: every register, rcx, r11 and rsp included, is back after the iret hypercall",
          "%s=%lx, expected %lx", reg_names[r], int3_post[r], int3_pre[r]);
    check(int3_post_rflags == int3_pre_rflags, "iret: rflags is back after the iret hypercall",
          "rflags=%lx, expected %lx", int3_post_rflags, int3_pre_rflags);
}

/* ------------------------------------------------------------------------------------ */

void indep_main(struct start_info *start_info)
{
    si = start_info;
    print("indep-c: hello from a freestanding C dom0 (no Oxen libraries)\n");

    if (!check(str_starts_with(si->magic, "xen-3.0-x86_64"),
               "start_info: magic starts with xen-3.0-x86_64", "magic is not (first bytes %x %x %x)",
               (unsigned)(uint8_t)si->magic[0], (unsigned)(uint8_t)si->magic[1],
               (unsigned)(uint8_t)si->magic[2])) {
        print("RESULT: FAIL (1 of 1 failed)\n");
        shutdown(SHUTDOWN_crash);
    }

    check_entry_state();
    int layout_sane = check_start_info();

    unsigned nonzero = 0;
    for (size_t i = 0; i < sizeof(bss_probe); i++)
        nonzero += bss_probe[i] != 0;
    check(!nonzero, "loader: .bss is zero-filled", "%u nonzero bytes", nonzero);

    check_hypercall_page();
    if (layout_sane)
        check_page_tables();
    check_hypercalls();
    check_int3();

    if (nr_failed) {
        print("RESULT: FAIL (%u of %u failed)\n", nr_failed, nr_checks);
        shutdown(SHUTDOWN_crash);
    }
    print("RESULT: PASS (%u checks)\n", nr_checks);
    shutdown(SHUTDOWN_poweroff);
}
