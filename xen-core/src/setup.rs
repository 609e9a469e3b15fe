//! The boot sequence: from the first Rust instruction to a running hypervisor.

use crate::arch::{self, Handoff};
use crate::boot::cmdline::Options;
use crate::boot::multiboot::BootInfo;
use crate::console::{LogSink, Logger};
use crate::cpuinfo::{CpuFeatures, write_feature_names};
use crate::exit::ExitCode;
use crate::mm::memmap::MemoryMap;
use crate::time::ticks_to_ns;
use arrayvec::{ArrayString, ArrayVec};
use core::fmt::Write;
use log::{error, info, warn};

static LOGGER: Logger = Logger::new(LogSink {
    write_line: arch::console::write_fmt,
    now_ns: arch::time::now_ns,
});

/// Formats a byte count as MiB with one decimal.
struct Mib(u64);

impl core::fmt::Display for Mib {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0 >> 20)
    }
}

/// Formats nanoseconds as milliseconds with three decimals.
struct Ms(u64);

impl core::fmt::Display for Ms {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{}.{:03} ms",
            self.0 / 1_000_000,
            (self.0 / 1_000) % 1_000
        )
    }
}

/// Stops the boot with an error line that every log level shows.
fn boot_error(args: core::fmt::Arguments<'_>) -> ! {
    arch::console::emergency(format_args!("ERROR: {args}\n"));
    arch::panic::stop(ExitCode::BootError)
}

pub(crate) fn start(handoff: Handoff) -> ! {
    arch::early_init();
    arch::time::set_boot_tsc(handoff.entry_tsc);
    arch::console::init_early();

    // The loader's information, read through the boot direct map (first 4 GiB).
    let bi = match BootInfo::parse(
        handoff.magic,
        u64::from(handoff.info),
        &arch::mm::DirectMapReader,
    ) {
        Ok(bi) => bi,
        Err(e) => boot_error(format_args!("cannot use the boot information: {e}")),
    };
    let opts = Options::parse(bi.hypervisor_cmdline());
    arch::console::configure(&opts);
    arch::panic::set_noreboot(opts.noreboot);
    // Only fails if a logger is already set, which nothing else does.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(opts.loglvl);

    let (tsc_hz, tsc_source) = arch::time::calibrate();
    info!(
        "Oxen {} hypervisor (x86-64, Xen {}.{} PV guest ABI)",
        crate::VERSION,
        hypercall_abi::XEN_VERSION_MAJOR,
        hypercall_abi::XEN_VERSION_MINOR
    );
    info!("Command line: {}", bi.hypervisor_cmdline());
    for w in &opts.warnings {
        warn!("{w}");
    }
    if opts.dropped_warnings > 0 {
        warn!(
            "{} more command-line problems not shown",
            opts.dropped_warnings
        );
    }
    info!(
        "Boot loader: {} ({:?})",
        if bi.loader_name.is_empty() {
            "unnamed"
        } else {
            bi.loader_name.as_str()
        },
        bi.protocol
    );

    let cpu = arch::cpu::identify();
    let mut features = ArrayString::<256>::new();
    let _ = write_feature_names(&mut features, cpu.features);
    info!(
        "CPU: {} family {:#x} model {:#x} stepping {}{}{}",
        cpu.vendor,
        cpu.family,
        cpu.model,
        cpu.stepping,
        if cpu.brand.is_empty() { "" } else { ", " },
        cpu.brand
    );
    info!("CPU features: {features}");
    info!(
        "TSC: {}.{:03} MHz ({tsc_source})",
        tsc_hz / 1_000_000,
        (tsc_hz / 1_000) % 1_000
    );
    if !cpu.has(CpuFeatures::NX) {
        warn!("CPU has no NX: hypervisor data is executable");
    }

    // Memory: sanitise the firmware map, keep the image, modules and loader data out of the
    // allocator, then build the frame allocator, the final page tables and the heap.
    let map = MemoryMap::sanitize(&bi.memory);
    for r in map.regions() {
        log::debug!("  {:#014x} - {:#014x} {:?}", r.base, r.end(), r.kind);
    }
    if bi.dropped_regions > 0 {
        warn!(
            "{} memory-map entries beyond {} ignored",
            bi.dropped_regions,
            bi.memory.len()
        );
    }
    let mut reserved: ArrayVec<(u64, u64), 24> = ArrayVec::new();
    reserved.push(arch::mm::image_phys_range());
    reserved.push((bi.info_start.0, bi.info_start.0.saturating_add(bi.info_len)));
    for m in &bi.modules {
        let _ = reserved.try_push((m.start.0, m.end.0));
    }
    let free = map.free_frames(&reserved);
    let mem = match arch::mm::init(&map, &free, &cpu) {
        Ok(m) => m,
        Err(e) => boot_error(format_args!("memory setup failed: {e:?}")),
    };
    info!(
        "RAM: {} MiB usable of {} MiB (heap {} MiB, {} page-table frames, direct map to {:#x}{})",
        Mib(mem.usable_bytes),
        Mib(mem.ram_bytes),
        Mib(mem.heap_bytes),
        mem.pagetable_frames,
        mem.directmap_end,
        if mem.gib_pages { ", 1 GiB pages" } else { "" }
    );

    if !cpu.has(CpuFeatures::APIC) {
        boot_error(format_args!("this CPU has no local APIC"));
    }
    match arch::apic::init() {
        Ok(a) => {
            let first = arch::apic::check_timer_fires();
            info!(
                "Local APIC: id {}, version {:#x}, timer {}.{:03} MHz, first tick after {}",
                a.id,
                a.version & 0xff,
                a.timer_hz / 1_000_000,
                (a.timer_hz / 1_000) % 1_000,
                first.map_or(
                    ArrayString::<32>::from("none (timer dead?)").unwrap_or_default(),
                    |ns| {
                        let mut s = ArrayString::new();
                        let _ = write!(s, "{}", Ms(ns));
                        s
                    }
                )
            );
            if first.is_none() {
                error!("the local APIC timer did not fire");
            }
        }
        Err(e) => boot_error(format_args!("cannot map the local APIC: {e:?}")),
    }

    // Modules are numbered from 1, as `domU=` and the boot contract count them.
    for (i, m) in bi.modules.iter().enumerate() {
        info!(
            "module {}: {:#x}-{:#x} ({} KiB) '{}'",
            i + 1,
            m.start.0,
            m.end.0,
            m.len().div_ceil(1024),
            bi.module_string(m)
        );
    }
    if bi.dropped_modules > 0 {
        warn!(
            "{} modules beyond {} ignored",
            bi.dropped_modules,
            bi.modules.len()
        );
    }
    let boot_ns = ticks_to_ns(
        arch::cpu::rdtsc().wrapping_sub(arch::time::boot_tsc()),
        tsc_hz,
    );
    info!("Boot took {} (hypervisor entry to here)", Ms(boot_ns));

    if let Some(f) = opts.test_fault {
        arch::testfault::trigger(f);
    }

    // Machine frames get owners and types from here on; the M2P exists; the GDT moves to
    // its remappable area; syscall entry is armed.
    match arch::mm::init_frame_table(&map) {
        Ok(ft) => info!(
            "Frame table: {} frames ({} KiB), M2P {} KiB",
            ft.frames,
            ft.table_bytes / 1024,
            ft.m2p_bytes / 1024
        ),
        Err(e) => boot_error(format_args!("cannot build the frame table: {e:?}")),
    }
    if let Err(e) = arch::gdt_init_area() {
        boot_error(format_args!("cannot set up the GDT area: {e:?}"));
    }
    arch::guest::init_cpu(cpu.has(CpuFeatures::SMAP));
    match arch::cpu::enable_cpuid_faulting() {
        Some(how) => info!("CPUID faulting: on ({how}); guests' cpuid sees the PV policy"),
        None => info!(
            "CPUID faulting: not available; guests get the PV policy through the forced-emulation prefix"
        ),
    }

    // The wallclock, from the CMOS clock.
    let rtc = arch::rtc::read();
    let read_at = arch::time::now_ns();
    let wallclock = match crate::time::wallclock::rtc_to_unix(rtc) {
        Some(unix) => {
            info!("Wallclock: {unix} s since 1970 (CMOS clock)");
            crate::time::wallclock::boot_wallclock(unix, read_at)
        }
        None => {
            warn!("the CMOS clock reads nonsense ({rtc:?}); guests' wallclock starts at 1970");
            (0, 0)
        }
    };

    let Some(dom0) = bi.modules.first() else {
        boot_error(format_args!(
            "no dom0 kernel module: boot with the dom0 kernel as the first multiboot module"
        ));
    };
    let cmdline = bi.module_args(dom0);
    info!(
        "dom0 kernel: {} KiB, command line '{}'",
        dom0.len().div_ceil(1024),
        cmdline
    );
    let Some(kernel) = arch::mm::module_bytes(dom0.start, dom0.len()) else {
        boot_error(format_args!("the dom0 kernel module lies outside RAM"));
    };
    // Module 2 is dom0's ramdisk unless a domU= option claims it.
    let claimed = |n: u32| opts.domus.iter().any(|d| d.module == n);
    let initrd_module = if claimed(2) { None } else { bi.modules.get(1) };
    let initrd = initrd_module.and_then(|m| arch::mm::module_bytes(m.start, m.len()));
    if let Some(m) = initrd_module {
        info!("dom0 initrd: {} KiB", m.len().div_ceil(1024));
    }
    for d in &opts.domus {
        if usize::try_from(d.module).map_or(true, |n| n > bi.modules.len()) {
            boot_error(format_args!(
                "domU={}: there is no multiboot module {} ({} given)",
                d.module,
                d.module,
                bi.modules.len()
            ));
        }
    }

    // dom0's size: dom0_mem, or all free memory but a reserve for the hypervisor and what
    // the boot-time domUs get.
    let free = arch::mm::free_frame_count() * 4096;
    let domus_bytes: u64 = opts.domus.iter().map(|d| d.mem).sum();
    let reserve = (free / 16).clamp(16 << 20, 128 << 20);
    let default = free.saturating_sub(reserve).saturating_sub(domus_bytes);
    let bytes = opts.dom0_mem.resolve(free.saturating_sub(8 << 20), default);
    let nr_pages = bytes / 4096;
    info!(
        "dom0 memory: {} MiB ({nr_pages} pages)",
        Mib(nr_pages * 4096)
    );
    let pt = |dom: crate::types::DomId, privileged: bool| crate::mm::pagetable::PtContext {
        dom,
        privileged,
        io: privileged,
        io_limit: crate::runtime::io_limit(),
        xen_l4: arch::mm::xen_l4_slots(),
    };
    let free_before = arch::mm::free_frame_count();
    let build = |spec: &crate::domain::build::BuildSpec<'_>| {
        let start = arch::time::now_ns();
        let name = if spec.dom0 {
            alloc::string::String::from("dom0")
        } else {
            alloc::format!("{}", spec.dom)
        };
        let built = arch::mm::with_frame_table(|t, e| {
            crate::domain::build::build(t, e, &mut || arch::mm::alloc_frames(0), spec)
        });
        let built = match built {
            Some(Ok(b)) => b,
            Some(Err(e)) => boot_error(format_args!("cannot build {name}: {e}")),
            None => boot_error(format_args!("cannot build {name}: no frame table")),
        };
        info!(
            "{} built in {}: kernel {:#x}-{:#x}, entry {:#x}, {} page-table frames, P2M at {:#x}",
            name,
            Ms(arch::time::now_ns().saturating_sub(start)),
            built.layout.kernel.0,
            built.layout.kernel.1,
            built.entry,
            built.layout.nr_pt_frames,
            built.layout.p2m.0
        );
        built
    };
    let dom0_built = build(&crate::domain::build::BuildSpec {
        dom: crate::types::DomId::DOM0,
        dom0: true,
        kernel,
        initrd,
        cmdline,
        nr_pages,
        pt: pt(crate::types::DomId::DOM0, true),
    });
    let mut built_domus = alloc::vec::Vec::new();
    for (i, d) in opts.domus.iter().enumerate() {
        let id = crate::types::DomId(u16::try_from(i + 1).unwrap_or(u16::MAX));
        let Some(m) = usize::try_from(d.module - 1)
            .ok()
            .and_then(|n| bi.modules.get(n))
        else {
            continue;
        };
        let Some(kernel) = arch::mm::module_bytes(m.start, m.len()) else {
            boot_error(format_args!(
                "domU={}: the module lies outside RAM",
                d.module
            ));
        };
        let args = bi.module_args(m);
        info!(
            "{id}: kernel module {} ({} KiB), command line '{}'",
            d.module,
            m.len().div_ceil(1024),
            args
        );
        let b = build(&crate::domain::build::BuildSpec {
            dom: id,
            dom0: false,
            kernel,
            initrd: None,
            cmdline: args,
            nr_pages: d.mem / 4096,
            pt: pt(id, false),
        });
        built_domus.push((id, *d, b));
    }
    // The boot modules were copied into the domains: their memory goes back to the allocator.
    let mut released = 0;
    for m in bi.modules.iter() {
        released += arch::mm::release_boot_range(m.start, m.end);
    }
    log::debug!("released {released} frames of boot modules");
    let e820 = map
        .regions()
        .iter()
        .map(|r| hypercall_abi::memory::E820Entry {
            addr: r.base,
            size: r.len,
            type_: r.kind.e820_type(),
        })
        .collect();
    let mut domains = alloc::vec![crate::runtime::BootDomain {
        built: &dom0_built,
        id: crate::types::DomId::DOM0,
        dom0: true,
        nr_pages,
        vcpus: opts.dom0_max_vcpus,
        sched: crate::sched::DomParams::default(),
    }];
    for (id, d, b) in &built_domus {
        domains.push(crate::runtime::BootDomain {
            built: b,
            id: *id,
            dom0: false,
            nr_pages: d.mem / 4096,
            vcpus: d.vcpus,
            sched: crate::sched::DomParams {
                weight: d.weight,
                cap: d.cap,
            },
        });
    }
    crate::runtime::start(
        &domains,
        crate::runtime::BootInfo {
            cmdline: bi.hypervisor_cmdline(),
            memory_map: e820,
            audit: (opts.mmu_audit, free_before + released),
            tslice_ns: u64::from(opts.tslice_ms) * 1_000_000,
            wallclock,
        },
    )
}
