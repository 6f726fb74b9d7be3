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
        POC_ERROR, POC_INVALID, POC_PANIC, POC_DEFAULT_MAX_PAYLOAD, POC_SQUARE_READY, POC_SQUARE_POSTED,
        POC_SQUARE_TIMER
    );
    ty!(
        poc_status, poc_op_id, poc_agent_id, poc_send_complete_fn, poc_recv_complete_fn, poc_wake_fn,
        poc_agent_done_fn, poc_message_view, poc_sender_vtable, poc_receiver_vtable, poc_sender, poc_receiver,
        poc_future_vtable, poc_future, poc_async_fn, poc_agent_report
    );
    field!(poc_message_view: id, data, len);
    field!(poc_sender_vtable: abi_version, size, try_send, send, cancel, close, clone, release);
    field!(poc_receiver_vtable: abi_version, size, try_recv, recv, cancel, close, release);
    field!(poc_sender: handle, vtable);
    field!(poc_receiver: handle, vtable);
    field!(poc_future_vtable: abi_version, size, poll, cancel, release);
    field!(poc_future: handle, vtable);
    field!(poc_async_fn: call, release, context);
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
// ---------------------------------------------------------------------------------------------
// Functions: every `POC_API` function of bridge.h is declared on the Rust side with the same
// parameters and return type — the C++ exports in `src/ffi.rs` (module `cpp`, `extern "C"`), the
// Rust exports in `src/capi.rs` (`#[no_mangle] extern "C" fn`). Compared as text, with C types
// translated to their Rust spelling, so a changed header fails here before it fails at link
// time or, worse, at run time. (The cross-runtime tests then call every C++ one for real.)
// ---------------------------------------------------------------------------------------------

/// `name → (parameter types, return type)`, in Rust spelling.
type Signatures = BTreeMap<String, (Vec<String>, String)>;

/// The text between the parenthesis at `open` and its match, and the index after the match.
fn balanced(s: &str, open: usize) -> (&str, usize) {
    let mut depth = 0usize;
    for (i, c) in s[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return (&s[open + 1..open + i], open + i + 1);
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses after {:?}", &s[open..(open + 40).min(s.len())]);
}

/// Splits a parameter list at the commas that are not nested in (), <> or [].
fn split_params(params: &str) -> Vec<String> {
    let params = params.replace("->", "→"); // an arrow is not a closing angle bracket
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0i32);
    for c in params.chars() {
        match c {
            '(' | '<' | '[' => depth += 1,
            ')' | '>' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter().map(|p| p.split_whitespace().collect::<Vec<_>>().join(" ")).filter(|p| !p.is_empty()).collect()
}

/// A C type as Rust spells it in src/ffi.rs: `const T*` → `*const T`, `T**` → `*mut *mut T`,
/// fixed-width integers, `size_t`, `char`, `void`.
fn c_type_to_rust(t: &str) -> String {
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    let stars = t.chars().filter(|&c| c == '*').count();
    let base = t.replace('*', "");
    let base = base.trim();
    let (is_const, base) = match base.strip_prefix("const ") {
        Some(b) => (true, b.trim()),
        None => (false, base),
    };
    let base = match base {
        "uint8_t" => "u8",
        "uint32_t" => "u32",
        "uint64_t" => "u64",
        "int32_t" => "i32",
        "size_t" => "usize",
        "char" => "c_char",
        "void" if stars > 0 => "c_void",
        "void" => "()",
        other => other,
    };
    let mut out = base.to_string();
    for i in 0..stars {
        let kind = if i == 0 && is_const { "*const" } else { "*mut" };
        out = format!("{kind} {out}");
    }
    out
}

fn header_functions() -> Signatures {
    let code = header_code();
    let mut out = Signatures::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("POC_API ") {
        rest = &rest[i + "POC_API ".len()..];
        let open = rest.find('(').expect("a function declaration");
        let head = rest[..open].trim();
        if head.starts_with("__") || head.is_empty() {
            continue; // the #define of POC_API itself
        }
        let (params, _) = balanced(rest, open);
        let name = ident_before(head);
        let ret = c_type_to_rust(head[..head.len() - name.len()].trim());
        let params: Vec<String> = if params.trim() == "void" {
            Vec::new()
        } else {
            split_params(params)
                .iter()
                .map(|p| {
                    let pname = ident_before(p);
                    c_type_to_rust(p[..p.len() - pname.len()].trim())
                })
                .collect()
        };
        out.insert(name, (params, ret));
    }
    out
}

/// The `fn poc_*` declarations or definitions of a Rust source file.
fn rust_functions(file: &str) -> Signatures {
    let path = format!("{}/src/{file}", env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let code: String = src.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n");
    let mut out = Signatures::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("fn poc_") {
        rest = &rest[i + 3..];
        let open = rest.find('(').expect("parameters");
        let name = rest[..open].trim().to_string();
        let (params, after) = balanced(rest, open);
        let tail = rest[after..].trim_start();
        let ret = match tail.strip_prefix("->") {
            Some(r) => r.split(['{', ';']).next().unwrap().trim().to_string(),
            None => "()".to_string(),
        };
        let norm =
            |t: &str| t.replace("ffi::", "").replace("std::", "").split_whitespace().collect::<Vec<_>>().join(" ");
        let params = split_params(params)
            .iter()
            .map(|p| norm(p.split_once(':').map(|(_, t)| t).unwrap_or_else(|| panic!("parameter {p:?} of {name}"))))
            .collect();
        out.insert(name, (params, norm(&ret)));
        rest = &rest[after..];
    }
    out
}

#[test]
fn every_function_of_bridge_h_is_declared_in_rust_with_its_signature() {
    let header = header_functions();
    assert!(header.len() >= 20, "found only {} POC_API functions in bridge.h: is the parser broken?", header.len());
    let mut rust = rust_functions("ffi.rs");
    let exported = rust_functions("capi.rs");
    for name in exported.keys() {
        assert!(!rust.contains_key(name), "{name} is both declared (ffi.rs) and defined (capi.rs)");
    }
    rust.extend(exported);
    let mut problems = Vec::new();
    for (name, sig) in &header {
        match rust.get(name) {
            None => problems
                .push(format!("{name}: in bridge.h, not declared in src/ffi.rs (cpp) nor defined in src/capi.rs")),
            Some(r) if r != sig => problems.push(format!("{name}: bridge.h says {sig:?}, Rust says {r:?}")),
            Some(_) => {}
        }
    }
    for name in rust.keys().filter(|n| !header.contains_key(*n)) {
        problems.push(format!("{name}: declared in Rust, not in bridge.h"));
    }
    assert!(problems.is_empty(), "bridge.h and the Rust declarations disagree:\n  {}", problems.join("\n  "));
}

#[test]
fn c_types_translate_as_ffi_rs_spells_them() {
    assert_eq!(c_type_to_rust("poc_cpp_runtime**"), "*mut *mut poc_cpp_runtime");
    assert_eq!(c_type_to_rust("const poc_message_view*"), "*const poc_message_view");
    assert_eq!(c_type_to_rust("const char *"), "*const c_char");
    assert_eq!(c_type_to_rust("void*"), "*mut c_void");
    assert_eq!(c_type_to_rust("void"), "()");
    assert_eq!(c_type_to_rust("size_t"), "usize");
    assert_eq!(
        split_params("a: Option<unsafe extern \"C\" fn(x: u8, y: u8) -> u8>, b: u32,"),
        ["a: Option<unsafe extern \"C\" fn(x: u8, y: u8) → u8>", "b: u32"]
    );
}
