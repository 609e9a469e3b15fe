//! Keeps `docs/abi.md` in step with the constants: every hypercall and every sub-operation
//! number declared here must appear in its table with the same number, and every row of the
//! hypercall table must name the hypercall this crate decodes for that number.

use std::format;
use std::string::String;
use std::vec::Vec;

use crate::console::ConsoleIoCmd;
use crate::evtchn::EvtchnCmd;
use crate::grant::GnttabCmd;
use crate::hypercall::{Hypercall, NR_HYPERCALLS};
use crate::memory::MemoryCmd;
use crate::mm::{MmuCmd, MmuextCmd};
use crate::physdev::PhysdevCmd;
use crate::sched::SchedCmd;
use crate::segments::SegBase;
use crate::traps::{CallbackCmd, NmiCmd};
use crate::vcpu::VcpuCmd;
use crate::version::XenVersionCmd;
use crate::vm_assist::VmAssistCmd;

const ABI_MD: &str = include_str!("../../docs/abi.md");

/// The rows of the hypercall table (`| # | Name | Arguments | Status |`), as (number, name).
fn hypercall_rows() -> Vec<(u32, String)> {
    let start = ABI_MD
        .find("## 2. Hypercalls 0–55")
        .expect("docs/abi.md has a hypercall section");
    let section = &ABI_MD[start..];
    let end = section.find("\n## 3.").unwrap_or(section.len());
    section[..end]
        .lines()
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim);
            cells.next()?; // text before the first '|'
            let number = cells.next()?.parse::<u32>().ok()?;
            let name = cells.next()?.trim_matches('`');
            Some((number, String::from(name)))
        })
        .collect()
}

#[test]
fn docs_abi_md_matches_the_constants() {
    // Forward: every allocated hypercall has its row.
    for h in Hypercall::ALL {
        let row = format!("| {} | `{}` |", h.raw(), h.name());
        assert!(ABI_MD.contains(&row), "docs/abi.md lacks row {row}");
    }

    // Backward: exactly one row per number 0..=55, naming what the crate decodes.
    let rows = hypercall_rows();
    let numbers: Vec<u32> = rows.iter().map(|(n, _)| *n).collect();
    let expected: Vec<u32> = (0..NR_HYPERCALLS).collect();
    assert_eq!(
        numbers, expected,
        "hypercall table must list 0..=55 once each"
    );
    for (number, name) in &rows {
        match Hypercall::from_raw(*number) {
            Some(h) => assert_eq!(name, h.name(), "row {number}"),
            None => assert_eq!(name, "(unallocated)", "row {number}"),
        }
    }

    // Every sub-operation of every family: "| `NAME` | value |".
    let mut subops: Vec<(&str, u32)> = Vec::new();
    subops.extend(MmuCmd::ALL.iter().map(|c| (c.name(), c.raw())));
    subops.extend(MmuextCmd::ALL.iter().map(|c| (c.name(), c.raw())));
    subops.extend(MemoryCmd::ALL.iter().map(|c| (c.name(), c.raw())));
    subops.extend(EvtchnCmd::ALL.iter().map(|c| (c.name(), c.raw())));
    subops.extend(GnttabCmd::ALL.iter().map(|c| (c.name(), c.raw())));
    subops.extend(SchedCmd::ALL.iter().map(|c| (c.name(), c.raw())));
    subops.extend(VcpuCmd::ALL.iter().map(|c| (c.name(), c.raw())));
    subops.extend(XenVersionCmd::ALL.iter().map(|c| (c.name(), c.raw())));
    subops.extend(ConsoleIoCmd::ALL.iter().map(|c| (c.name(), c.raw())));
    subops.extend(VmAssistCmd::ALL.iter().map(|c| (c.name(), c.raw())));
    subops.extend(PhysdevCmd::ALL.iter().map(|c| (c.name(), c.raw())));
    subops.extend(CallbackCmd::ALL.iter().map(|c| (c.name(), c.raw())));
    subops.extend(NmiCmd::ALL.iter().map(|c| (c.name(), c.raw())));
    subops.extend(SegBase::ALL.iter().map(|c| (c.name(), c.raw())));
    for (name, value) in subops {
        let row = format!("| `{name}` | {value} |");
        assert!(ABI_MD.contains(&row), "docs/abi.md lacks row {row}");
    }
}

#[test]
fn docs_abi_md_has_the_maintenance_note_and_convention_tables() {
    assert!(ABI_MD.contains("kept true as the hypervisor implements calls"));
    for reg in crate::hypercall::HYPERCALL_ARG_REGISTERS {
        assert!(ABI_MD.contains(&format!("| `{reg}` |")), "register {reg}");
    }
}
