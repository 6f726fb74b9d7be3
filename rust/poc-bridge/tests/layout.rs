//! The Rust declarations of bridge.h (src/ffi.rs) against what a C compiler makes of the header
//! (csrc/layout.c, linked into this test by build.rs), plus a check that the C table covers
//! every `#define POC_*` and every struct field of the header — so drift fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{c_char, CStr};
use std::mem::{align_of, offset_of, size_of};

use poc_bridge::ffi::*;
use poc_bridge::{message, Status};

#[repr(C)]
struct Entry {
    name: *const c_char,
    value: u64,
}

extern "C" {
    fn poc_layout_entries(count: *mut usize) -> *const Entry;
}

fn c_side() -> BTreeMap<String, u64> {
    let mut n = 0usize;
    let p = unsafe { poc_layout_entries(&mut n) };
    let entries = unsafe { std::slice::from_raw_parts(p, n) };
    entries
        .iter()
        .map(|e| (unsafe { CStr::from_ptr(e.name) }.to_str().unwrap().to_string(), e.value))
        .collect()
}

fn rust_side() -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    macro_rules! constant {
        ($($c:ident),*) => { $( m.insert(stringify!($c).to_string(), $c as u64); )* };
    }
    macro_rules! ty {
        ($($t:ty),*) => { $(
            m.insert(format!("sizeof({})", stringify!($t)), size_of::<$t>() as u64);
            m.insert(format!("alignof({})", stringify!($t)), align_of::<$t>() as u64);
        )* };
    }
    macro_rules! field {
        ($t:ident: $($f:ident),*) => { $(
            m.insert(format!("offsetof({}.{})", stringify!($t), stringify!($f)), offset_of!($t, $f) as u64);
        )* };
    }
    constant!(
        POC_ABI_VERSION, POC_OK, POC_PENDING, POC_FULL, POC_EMPTY, POC_CLOSED, POC_CANCELLED, POC_SHUTDOWN,
        POC_ERROR, POC_INVALID, POC_PANIC, POC_DEFAULT_MAX_PAYLOAD
    );
    ty!(
        poc_status, poc_op_id, poc_agent_id, poc_send_complete_fn, poc_recv_complete_fn, poc_wake_fn,
        poc_agent_done_fn, poc_message_view, poc_sender_vtable, poc_receiver_vtable, poc_sender, poc_receiver,
        poc_future_vtable, poc_future, poc_agent_report
    );
    field!(poc_message_view: id, data, len);
    field!(poc_sender_vtable: abi_version, size, try_send, send, cancel, close, clone, release);
    field!(poc_receiver_vtable: abi_version, size, try_recv, recv, cancel, close, release);
    field!(poc_sender: handle, vtable);
    field!(poc_receiver: handle, vtable);
    field!(poc_future_vtable: abi_version, size, poll, cancel, release);
    field!(poc_future: handle, vtable);
    field!(poc_agent_report: status, reserved, messages, checksum, order_errors);
    m
}

#[test]
fn layout_and_constants_match_bridge_h() {
    let c = c_side();
    let rust = rust_side();
    let mut problems = Vec::new();
    for (k, v) in &c {
        match rust.get(k) {
            Some(r) if r == v => {}
            Some(r) => problems.push(format!("{k}: C says {v}, Rust says {r}")),
            None => problems.push(format!("{k}: in the C table, not checked on the Rust side")),
        }
    }
    for k in rust.keys().filter(|k| !c.contains_key(*k)) {
        problems.push(format!("{k}: checked on the Rust side, missing from csrc/layout.c"));
    }
    assert!(problems.is_empty(), "bridge.h and src/ffi.rs disagree:\n  {}", problems.join("\n  "));
}

/// bridge.h without comments.
fn header_code() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../native-cpp/include/poc/bridge.h");
    let src = std::fs::read_to_string(path).expect("read bridge.h");
    let mut out = String::new();
    let mut rest = src.as_str();
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        rest = &rest[i + 2..];
        let j = rest.find("*/").expect("unterminated comment");
        rest = &rest[j + 2..];
    }
    out.push_str(rest);
    out.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n")
}

fn ident_before(s: &str) -> String {
    s.trim_end().chars().rev().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<Vec<_>>().into_iter().rev().collect()
}

#[test]
fn layout_table_covers_every_define_and_field_of_bridge_h() {
    let code = header_code();
    let c = c_side();
    let mut missing = BTreeSet::new();

    // Every constant.
    for line in code.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("#define POC_") {
            let name = format!("POC_{}", rest.split_whitespace().next().unwrap());
            if name != "POC_API" && name != "POC_BRIDGE_H" && !c.contains_key(&name) {
                missing.insert(name);
            }
        }
    }

    // Every struct with a body, and each of its fields.
    let mut structs = 0;
    let mut rest = code.as_str();
    while let Some(i) = rest.find("struct ") {
        rest = &rest[i + "struct ".len()..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let after = rest[name.len()..].trim_start();
        if !after.starts_with('{') {
            continue; // a forward declaration or a use
        }
        structs += 1;
        let body_start = rest.find('{').unwrap() + 1;
        let body_end = body_start + rest[body_start..].find('}').expect("struct body");
        let body = &rest[body_start..body_end];
        if !c.contains_key(&format!("sizeof({name})")) {
            missing.insert(format!("sizeof({name})"));
        }
        for decl in body.split(';').map(str::trim).filter(|d| !d.is_empty()) {
            let field = match decl.find("(*") {
                Some(p) => decl[p + 2..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect(),
                None => ident_before(decl),
            };
            let key = format!("offsetof({name}.{field})");
            if !c.contains_key(&key) {
                missing.insert(key);
            }
        }
        rest = &rest[body_end..];
    }
    assert!(structs >= 8, "found only {structs} struct definitions in bridge.h: is the parser broken?");
    assert!(missing.is_empty(), "csrc/layout.c does not check: {missing:?}");
}

#[test]
fn status_names_match_poc_status_str() {
    let names = ["OK", "PENDING", "FULL", "EMPTY", "CLOSED", "CANCELLED", "SHUTDOWN", "ERROR", "INVALID", "PANIC"];
    for (i, n) in names.iter().enumerate() {
        assert_eq!(Status(i as i32).as_str(), *n);
    }
    assert_eq!(Status(-1).as_str(), "UNKNOWN");
    assert_eq!(Status(10).as_str(), "UNKNOWN");
    assert_eq!(format!("{:?}", Status(42)), "UNKNOWN(42)");
}

#[test]
fn checksum_matches_the_contract() {
    assert_eq!(message::splitmix64(0), 0xE220_A839_7B1D_CDAF);
    // 9-byte payload: one full word and one padded word.
    let payload: Vec<u8> = (1..=9).collect();
    let expected = message::splitmix64(5)
        .wrapping_add(message::splitmix64(9))
        .wrapping_add(u64::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8]))
        .wrapping_add(9);
    assert_eq!(message::checksum(5, &payload), expected);
    assert_eq!(message::producer_id(2, 7), (2 << 48) | 7);
}
