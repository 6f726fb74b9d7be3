//! What Rust and C++ must agree on beside the channels: the checksum (Rust's implementation ==
//! `poc_message_checksum`), status names (`Status::as_str` == `poc_status_str`), the ABI
//! version, and handles — a handle of one runtime given to the other runtime's vtable is
//! `INVALID`, calls no callback and harms neither channel. Also the argument checks of the C++
//! agent starters (the ports stay with the caller on an error).

mod common;
mod cpp_support;

use std::ffi::c_void;

use common::*;
use cpp_support::*;
use poc_bridge::ffi::{self, cpp, poc_message_view, poc_receiver, poc_sender};
use poc_bridge::message::{checksum, producer_id, splitmix64};
use poc_bridge::{Message, PortReceiver, PortSender, Runtime, Status};

#[test]
fn rust_checksum_equals_poc_message_checksum() {
    let mut rng = Rng::new(0xC0FFEE);
    let mut cases: Vec<Message> = Vec::new();
    // every length around the word boundaries, ids at the edges
    for len in 0..=67usize {
        for id in [0u64, 1, 0xFF, u64::MAX, 1 << 63, producer_id(3, 12345)] {
            let payload = (0..len).map(|_| rng.next() as u8).collect::<Vec<u8>>();
            cases.push(Message::new(id, payload));
        }
    }
    // random sizes up to 64 KiB, all-ones payloads (wrapping sums), the agents' pattern
    for _ in 0..300 {
        let len = rng.below(65_536) as usize;
        cases.push(Message::new(rng.next(), (0..len).map(|_| rng.next() as u8).collect::<Vec<u8>>()));
    }
    for len in [8usize, 4096, 100_003] {
        cases.push(Message::new(u64::MAX, vec![0xFF; len]));
        cases.push(Message::with_pattern(producer_id(7, len as u64), len));
    }
    for m in &cases {
        assert_eq!(m.checksum(), cpp_checksum(m), "checksum of id {:#x}, {} bytes", m.id, m.payload.len());
    }
    // the documented reference value, and a view with NULL data and length 0
    assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
    let v = poc_message_view { id: 42, data: std::ptr::null(), len: 0 };
    assert_eq!(unsafe { cpp::poc_message_checksum(&v) }, checksum(42, &[]));
    assert_eq!(unsafe { cpp::poc_message_checksum(std::ptr::null()) }, 0, "NULL view → 0");
    // a set is the wrapping sum, independent of order
    let total: u64 = cases.iter().map(cpp_checksum).fold(0, u64::wrapping_add);
    let reversed: u64 = cases.iter().rev().map(Message::checksum).fold(0, u64::wrapping_add);
    assert_eq!(total, reversed);
}

#[test]
fn status_names_equal_poc_status_str() {
    for s in (-3..=15).chain([i32::MIN, i32::MAX, 100]) {
        assert_eq!(Status(s).as_str(), cpp_status_str(s), "name of status {s}");
    }
    assert_eq!(cpp_status_str(ffi::POC_PANIC), "PANIC");
    assert_eq!(cpp_status_str(-1), "UNKNOWN");
}

#[test]
fn abi_version_matches() {
    assert_eq!(unsafe { cpp::poc_abi_version() }, ffi::POC_ABI_VERSION);
    let cpp = CppRuntime::new(1);
    let (tx, rx) = cpp.channel_ports(1, 0);
    unsafe {
        assert_eq!(
            ((*tx.vtable).abi_version, (*tx.vtable).size as usize),
            (ffi::POC_ABI_VERSION, std::mem::size_of::<ffi::poc_sender_vtable>())
        );
        assert_eq!(
            ((*rx.vtable).abi_version, (*rx.vtable).size as usize),
            (ffi::POC_ABI_VERSION, std::mem::size_of::<ffi::poc_receiver_vtable>())
        );
    }
    assert_eq!((raw_send_release(tx), raw_recv_release(rx)), (Status::OK, Status::OK));
}

/// Calls every function of a sender vtable with `handle` and expects INVALID and no callback.
fn sender_vtable_rejects(vt: *const ffi::poc_sender_vtable, handle: u64, what: &str) {
    let port = poc_sender { handle, vtable: vt };
    let rec = Recorder::new();
    let msg = Message::new(1, vec![1, 2, 3]);
    let mut op = 0;
    assert_eq!(raw_try_send(port, &msg), Status::INVALID, "try_send: {what}");
    assert_eq!(raw_send(port, &msg, &rec, &mut op), Status::INVALID, "send: {what}");
    assert_eq!(raw_send_cancel(port, 1), Status::INVALID, "cancel: {what}");
    assert_eq!(raw_send_close(port), Status::INVALID, "close: {what}");
    let (st, out) = raw_clone(port);
    assert_eq!(st, Status::INVALID, "clone: {what}");
    assert_eq!(out.handle, 0, "clone wrote no port: {what}");
    assert_eq!(raw_send_release(port), Status::INVALID, "release: {what}");
    assert_eq!((rec.completions(), rec.delivers()), (0, 0), "no callback: {what}");
}

/// Calls every function of a receiver vtable with `handle` and expects INVALID and no callback.
fn receiver_vtable_rejects(vt: *const ffi::poc_receiver_vtable, handle: u64, what: &str) {
    let port = poc_receiver { handle, vtable: vt };
    let rec = Recorder::new();
    let mut op = 0;
    assert_eq!(raw_try_recv(port, &rec), Status::INVALID, "try_recv: {what}");
    assert_eq!(raw_recv(port, &rec, &mut op), Status::INVALID, "recv: {what}");
    assert_eq!(raw_recv_cancel(port, 1), Status::INVALID, "cancel: {what}");
    assert_eq!(raw_recv_close(port), Status::INVALID, "close: {what}");
    assert_eq!(raw_recv_release(port), Status::INVALID, "release: {what}");
    assert_eq!((rec.completions(), rec.delivers()), (0, 0), "no callback: {what}");
}

/// A C++ handle given to the Rust vtables and a Rust handle given to the C++ vtables (both kinds,
/// crossed kinds, live and released): INVALID, no callback, and both channels still work.
#[test]
fn handles_of_one_runtime_are_invalid_in_the_other() {
    let rt = Runtime::new(1).unwrap();
    let cpp = CppRuntime::new(1);
    let (rtx, rrx) = rt.channel_ports(2, 0).unwrap();
    let (ctx, crx) = cpp.channel_ports(2, 0);
    let (rust_tx_vt, rust_rx_vt) = (rtx.vtable, rrx.vtable);
    let (cpp_tx_vt, cpp_rx_vt) = (ctx.vtable, crx.vtable);
    assert!(rust_tx_vt != cpp_tx_vt && rust_rx_vt != cpp_rx_vt, "two exporters, two vtables");

    for (h, what) in [(ctx.handle, "C++ sender handle"), (crx.handle, "C++ receiver handle")] {
        sender_vtable_rejects(rust_tx_vt, h, &format!("{what} on the Rust sender vtable"));
        receiver_vtable_rejects(rust_rx_vt, h, &format!("{what} on the Rust receiver vtable"));
    }
    for (h, what) in [(rtx.handle, "Rust sender handle"), (rrx.handle, "Rust receiver handle")] {
        sender_vtable_rejects(cpp_tx_vt, h, &format!("{what} on the C++ sender vtable"));
        receiver_vtable_rejects(cpp_rx_vt, h, &format!("{what} on the C++ receiver vtable"));
    }

    // Both channels are untouched: a message goes through each (through their own vtables).
    let (rtx, mut rrx) = unsafe { (PortSender::from_raw(rtx).unwrap(), PortReceiver::from_raw(rrx).unwrap()) };
    let (ctx, mut crx) = unsafe { (PortSender::from_raw(ctx).unwrap(), PortReceiver::from_raw(crx).unwrap()) };
    rtx.try_send(Message::new(1, vec![1])).unwrap();
    ctx.try_send(Message::new(2, vec![2])).unwrap();
    assert_eq!(rrx.try_recv().unwrap(), Message::new(1, vec![1]));
    assert_eq!(crx.try_recv().unwrap(), Message::new(2, vec![2]));

    // Released handles of each runtime: stale for their own exporter, foreign for the other.
    let (rtx, rrx, ctx, crx) = (rtx.into_raw(), rrx.into_raw(), ctx.into_raw(), crx.into_raw());
    assert_eq!(raw_send_release(rtx), Status::OK);
    assert_eq!(raw_recv_release(rrx), Status::OK);
    assert_eq!(raw_send_release(ctx), Status::OK);
    assert_eq!(raw_recv_release(crx), Status::OK);
    for (vt, h, what) in [
        (rust_tx_vt, rtx.handle, "released Rust sender on the Rust vtable"),
        (cpp_tx_vt, ctx.handle, "released C++ sender on the C++ vtable"),
        (rust_tx_vt, ctx.handle, "released C++ sender on the Rust vtable"),
        (cpp_tx_vt, rtx.handle, "released Rust sender on the C++ vtable"),
    ] {
        sender_vtable_rejects(vt, h, what);
    }
    for (vt, h, what) in [
        (rust_rx_vt, rrx.handle, "released Rust receiver on the Rust vtable"),
        (cpp_rx_vt, crx.handle, "released C++ receiver on the C++ vtable"),
        (rust_rx_vt, crx.handle, "released C++ receiver on the Rust vtable"),
        (cpp_rx_vt, rrx.handle, "released Rust receiver on the C++ vtable"),
    ] {
        receiver_vtable_rejects(vt, h, what);
    }
    // forged numbers
    for h in [0u64, 1, u64::MAX, ctx.handle ^ 1, rtx.handle ^ (1 << 40)] {
        sender_vtable_rejects(cpp_tx_vt, h, &format!("forged {h:#x} on the C++ sender vtable"));
        sender_vtable_rejects(rust_tx_vt, h, &format!("forged {h:#x} on the Rust sender vtable"));
    }
    rt.shutdown().unwrap();
}

unsafe extern "C" fn never_called(_: *mut c_void, _: *const ffi::poc_agent_report) {
    panic!("done must not be called when an agent did not start");
}

/// The C++ agent starters check their arguments: NULL runtime, NULL done, a port with a NULL
/// vtable → INVALID, `done` not called, the ports not taken (still ours to use and release).
/// After shutdown → SHUTDOWN, same rules.
#[test]
fn cpp_agent_start_errors_leave_the_ports_with_the_caller() {
    let rt = Runtime::new(1).unwrap();
    let cpp = CppRuntime::new(1);
    let (tx, rx) = rt.channel_ports(1, 0).unwrap();
    let null_rx = poc_receiver { handle: rx.handle, vtable: std::ptr::null() };
    let null_tx = poc_sender { handle: tx.handle, vtable: std::ptr::null() };
    let user = std::ptr::null_mut();
    let mut id = 0;
    unsafe {
        assert_eq!(
            Status(cpp::poc_cpp_consumer_start(std::ptr::null_mut(), rx, Some(never_called), user, &mut id)),
            Status::INVALID
        );
        assert_eq!(Status(cpp::poc_cpp_consumer_start(cpp.raw(), rx, None, user, &mut id)), Status::INVALID);
        assert_eq!(
            Status(cpp::poc_cpp_consumer_start(cpp.raw(), null_rx, Some(never_called), user, &mut id)),
            Status::INVALID
        );
        assert_eq!(
            Status(cpp::poc_cpp_producer_start(cpp.raw(), null_tx, 0, 1, 0, Some(never_called), user, &mut id)),
            Status::INVALID
        );
        assert_eq!(
            Status(cpp::poc_cpp_echo_start(cpp.raw(), rx, null_tx, Some(never_called), user, &mut id)),
            Status::INVALID
        );
        assert_eq!(
            Status(cpp::poc_cpp_timer_start(cpp.raw(), null_tx, 1, 1, Some(never_called), user, &mut id)),
            Status::INVALID
        );
        assert_eq!(Status(cpp::poc_cpp_agent_cancel(std::ptr::null_mut(), 1)), Status::INVALID);
        assert_eq!(Status(cpp::poc_cpp_agent_cancel(cpp.raw(), 987_654_321)), Status::OK, "unknown agent: a no-op");
    }
    assert_eq!(id, 0, "no agent id written");
    // the ports are still ours: they work and release once
    assert_eq!(raw_try_send(tx, &Message::new(1, vec![])), Status::OK);
    let rec = Recorder::new();
    assert_eq!(raw_try_recv(rx, &rec), Status::OK);
    assert_eq!(rec.delivers(), 1);

    assert_eq!(cpp.shutdown(), Status::OK);
    unsafe {
        assert_eq!(
            Status(cpp::poc_cpp_consumer_start(cpp.raw(), rx, Some(never_called), user, &mut id)),
            Status::SHUTDOWN
        );
        assert_eq!(
            Status(cpp::poc_cpp_producer_start(cpp.raw(), tx, 0, 1, 0, Some(never_called), user, &mut id)),
            Status::SHUTDOWN
        );
        let (mut a, mut b) =
            (poc_sender { handle: 0, vtable: std::ptr::null() }, poc_receiver { handle: 0, vtable: std::ptr::null() });
        assert_eq!(Status(cpp::poc_cpp_channel_new(cpp.raw(), 1, &mut a, &mut b)), Status::SHUTDOWN);
    }
    assert_eq!((raw_send_release(tx), raw_recv_release(rx)), (Status::OK, Status::OK), "still ours to release");
    rt.shutdown().unwrap();
}

#[test]
fn cpp_channel_new_checks_its_arguments() {
    let cpp = CppRuntime::new(1);
    let (mut a, mut b) =
        (poc_sender { handle: 0, vtable: std::ptr::null() }, poc_receiver { handle: 0, vtable: std::ptr::null() });
    unsafe {
        assert_eq!(Status(cpp::poc_cpp_channel_new(cpp.raw(), 0, &mut a, &mut b)), Status::INVALID, "capacity 0");
        assert_eq!(Status(cpp::poc_cpp_channel_new(std::ptr::null_mut(), 1, &mut a, &mut b)), Status::INVALID);
        assert_eq!(Status(cpp::poc_cpp_channel_new(cpp.raw(), 1, std::ptr::null_mut(), &mut b)), Status::INVALID);
        assert_eq!(Status(cpp::poc_cpp_channel_new(cpp.raw(), 1, &mut a, std::ptr::null_mut())), Status::INVALID);
        let mut rt = std::ptr::null_mut();
        assert_eq!(Status(cpp::poc_cpp_runtime_new(0, &mut rt)), Status::INVALID);
        assert_eq!(Status(cpp::poc_cpp_runtime_new(65, &mut rt)), Status::INVALID);
        assert_eq!(Status(cpp::poc_cpp_runtime_new(1, std::ptr::null_mut())), Status::INVALID);
        assert_eq!(Status(cpp::poc_cpp_runtime_shutdown(std::ptr::null_mut())), Status::INVALID);
        cpp::poc_cpp_runtime_free(std::ptr::null_mut()); // ignored
    }
    assert_eq!((a.handle, b.handle), (0, 0), "nothing written on error");
}
