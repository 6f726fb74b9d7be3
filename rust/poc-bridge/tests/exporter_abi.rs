//! The Rust exporter through its raw C ABI, driven the way a C++ or C# importer drives it:
//! counting C callbacks, checking statuses, threads and exactly-once.

mod common;

use std::sync::Arc;

use common::*;
use poc_bridge::ffi::{self, poc_receiver, poc_sender};
use poc_bridge::{Message, Runtime, Status};

fn channel(rt: &Runtime, capacity: usize) -> (poc_sender, poc_receiver) {
    rt.channel_ports(capacity, 0).expect("channel")
}

fn msg(id: u64) -> Message {
    Message::with_pattern(id, (id % 40) as usize)
}

#[test]
fn fast_paths_complete_inline_without_calling_the_completion() {
    let rt = Runtime::new(2).unwrap();
    let (tx, rx) = channel(&rt, 4);
    let rec = Recorder::new();
    let mut op = 0;
    assert_eq!(raw_send(tx, &msg(1), &rec, &mut op), Status::OK);
    assert_eq!(raw_try_send(tx, &msg(2)), Status::OK);
    assert_eq!(raw_recv(rx, &rec, &mut op), Status::OK);
    // deliver ran synchronously, before recv returned
    assert_eq!(rec.delivers(), 1);
    assert_eq!(raw_try_recv(rx, &rec), Status::OK);
    assert_eq!(rec.delivers(), 2);
    assert_eq!(raw_try_recv(rx, &rec), Status::EMPTY);
    let got: Vec<u64> = rec.delivered.lock().unwrap().iter().map(|m| m.id).collect();
    assert_eq!(got, [1, 2]);
    assert!(rec.delivered.lock().unwrap().iter().all(Message::has_pattern));
    assert_eq!(raw_send_release(tx), Status::OK);
    assert_eq!(raw_recv_release(rx), Status::OK);
    rt.shutdown().unwrap();
    assert_eq!(rec.completions(), 0, "no completion for fast paths");
}

#[test]
fn pending_send_completes_exactly_once_on_a_runtime_thread() {
    let rt = Runtime::new(2).unwrap();
    let (tx, rx) = channel(&rt, 1);
    let rec = Recorder::new();
    let mut op = 0;
    assert_eq!(raw_send(tx, &msg(1), &rec, &mut op), Status::OK);
    assert_eq!(raw_try_send(tx, &msg(2)), Status::FULL);
    let mut op2 = 0;
    assert_eq!(raw_send(tx, &msg(2), &rec, &mut op2), Status::PENDING);
    assert_ne!(op2, 0, "op id written");
    assert_eq!(raw_try_send(tx, &msg(3)), Status::FULL, "a pending send goes first");
    let drain = Recorder::new();
    assert_eq!(raw_try_recv(rx, &drain), Status::OK); // makes room: the pending send goes in
    let e = rec.next("pending send");
    assert_eq!((e.kind, e.status), ("send", Status::OK));
    assert_runtime_thread(&e);
    assert_eq!(raw_try_recv(rx, &drain), Status::OK);
    let ids: Vec<u64> = drain.delivered.lock().unwrap().iter().map(|m| m.id).collect();
    assert_eq!(ids, [1, 2]);
    // cancel after completion: a no-op
    assert_eq!(raw_send_cancel(tx, op2), Status::OK);
    raw_send_release(tx);
    raw_recv_release(rx);
    rt.shutdown().unwrap();
    assert_eq!(rec.completions(), 1, "exactly once");
}

#[test]
fn pending_recv_completes_exactly_once_with_the_message() {
    let rt = Runtime::new(2).unwrap();
    let (tx, rx) = channel(&rt, 2);
    let rec = Recorder::new();
    let mut op = 0;
    assert_eq!(raw_recv(rx, &rec, &mut op), Status::PENDING);
    assert_ne!(op, 0);
    assert_eq!(raw_try_send(tx, &msg(77)), Status::OK);
    let e = rec.next("pending recv");
    assert_eq!(e.status, Status::OK);
    assert_eq!(e.msg.as_ref().map(|m| m.id), Some(77));
    assert_runtime_thread(&e);
    assert!(e.msg.unwrap().has_pattern());
    assert_eq!(rec.delivers(), 0, "deliver is for the fast path only");
    raw_send_release(tx);
    raw_recv_release(rx);
    rt.shutdown().unwrap();
    assert_eq!(rec.completions(), 1);
}

#[test]
fn concurrent_recvs_are_served_in_issue_order() {
    let rt = Runtime::new(2).unwrap();
    let (tx, rx) = channel(&rt, 64);
    let recs: Vec<_> = (0..16).map(|_| Recorder::new()).collect();
    for r in &recs {
        let mut op = 0;
        assert_eq!(raw_recv(rx, r, &mut op), Status::PENDING);
    }
    let fresh = Recorder::new();
    assert_eq!(raw_try_recv(rx, &fresh), Status::EMPTY);
    for i in 0..16 {
        assert_eq!(raw_try_send(tx, &msg(i)), Status::OK);
    }
    for (i, r) in recs.iter().enumerate() {
        let e = r.next("ordered recv");
        assert_eq!(e.msg.map(|m| m.id), Some(i as u64), "recv #{i} got another message");
    }
    raw_send_release(tx);
    raw_recv_release(rx);
    rt.shutdown().unwrap();
    assert!(recs.iter().all(|r| r.completions() == 1));
}

#[test]
fn cancel_is_exact_and_completes_once() {
    let rt = Runtime::new(2).unwrap();
    let (tx, rx) = channel(&rt, 1);
    // a pending send, cancelled before room appears: CANCELLED, nothing enqueued
    let rec = Recorder::new();
    let mut op = 0;
    assert_eq!(raw_send(tx, &msg(1), &rec, &mut op), Status::OK);
    let mut op2 = 0;
    assert_eq!(raw_send(tx, &msg(2), &rec, &mut op2), Status::PENDING);
    assert_eq!(raw_send_cancel(tx, op2), Status::OK);
    let e = rec.next("cancelled send");
    assert_eq!(e.status, Status::CANCELLED);
    assert_runtime_thread(&e);
    // a pending recv, cancelled: CANCELLED, nothing dequeued
    let drain = Recorder::new();
    assert_eq!(raw_try_recv(rx, &drain), Status::OK); // id 1
    let rrec = Recorder::new();
    let mut rop = 0;
    assert_eq!(raw_recv(rx, &rrec, &mut rop), Status::PENDING);
    assert_eq!(raw_recv_cancel(rx, rop), Status::OK);
    assert_eq!(rrec.next("cancelled recv").status, Status::CANCELLED);
    // nothing of the cancelled send was enqueued; unknown ops are fine
    assert_eq!(raw_try_recv(rx, &drain), Status::EMPTY);
    assert_eq!(raw_recv_cancel(rx, 123_456_789), Status::OK);
    assert_eq!(raw_send_cancel(tx, 0), Status::OK);
    // cancelling again after completion: still OK, no second completion
    assert_eq!(raw_send_cancel(tx, op2), Status::OK);
    assert_eq!(raw_recv_cancel(rx, rop), Status::OK);
    raw_send_release(tx);
    raw_recv_release(rx);
    rt.shutdown().unwrap();
    assert_eq!(rec.completions(), 1);
    assert_eq!(rrec.completions(), 1);
    assert_eq!(drain.delivered.lock().unwrap().len(), 1);
}

#[test]
fn sender_close_fails_pending_sends_then_receivers_drain_then_closed() {
    let rt = Runtime::new(2).unwrap();
    let (tx, rx) = channel(&rt, 2);
    let rec = Recorder::new();
    let mut op = 0;
    assert_eq!(raw_try_send(tx, &msg(1)), Status::OK);
    assert_eq!(raw_try_send(tx, &msg(2)), Status::OK);
    assert_eq!(raw_send(tx, &msg(3), &rec, &mut op), Status::PENDING);
    let (st, tx2) = raw_clone(tx);
    assert_eq!(st, Status::OK);
    assert_eq!(raw_send_close(tx2), Status::OK, "close from any sender closes for all");
    assert_eq!(raw_send_close(tx2), Status::OK, "idempotent");
    assert_eq!(rec.next("send pending at close").status, Status::CLOSED);
    assert_eq!(raw_try_send(tx, &msg(4)), Status::CLOSED);
    assert_eq!(raw_send(tx, &msg(4), &rec, &mut op), Status::CLOSED);
    let drain = Recorder::new();
    assert_eq!(raw_try_recv(rx, &drain), Status::OK);
    assert_eq!(raw_recv(rx, &drain, &mut op), Status::OK);
    assert_eq!(raw_try_recv(rx, &drain), Status::CLOSED);
    assert_eq!(raw_recv(rx, &drain, &mut op), Status::CLOSED);
    let ids: Vec<u64> = drain.delivered.lock().unwrap().iter().map(|m| m.id).collect();
    assert_eq!(ids, [1, 2]);
    for p in [tx, tx2] {
        assert_eq!(raw_send_release(p), Status::OK);
    }
    raw_recv_release(rx);
    rt.shutdown().unwrap();
    assert_eq!(rec.completions(), 1);
}

#[test]
fn pending_recv_gets_closed_when_the_last_sender_is_released() {
    let rt = Runtime::new(2).unwrap();
    let (tx, rx) = channel(&rt, 2);
    let (st, tx2) = raw_clone(tx);
    assert_eq!(st, Status::OK);
    let rec = Recorder::new();
    let mut op = 0;
    assert_eq!(raw_recv(rx, &rec, &mut op), Status::PENDING);
    assert_eq!(raw_send_release(tx), Status::OK);
    assert_eq!(raw_try_send(tx2, &msg(5)), Status::OK, "a clone keeps the channel open");
    assert_eq!(rec.next("recv served by the clone").msg.map(|m| m.id), Some(5));
    assert_eq!(raw_recv(rx, &rec, &mut op), Status::PENDING);
    assert_eq!(raw_send_release(tx2), Status::OK); // the last sender
    let e = rec.next("recv pending when the last sender went");
    assert_eq!(e.status, Status::CLOSED);
    assert!(e.msg.is_none());
    assert_eq!(raw_recv_release(rx), Status::OK);
    rt.shutdown().unwrap();
    assert_eq!(rec.completions(), 2);
}

#[test]
fn receiver_close_fails_pending_and_later_sends_and_drops_queued_messages() {
    let rt = Runtime::new(2).unwrap();
    let (tx, rx) = channel(&rt, 1);
    let rec = Recorder::new();
    let mut op = 0;
    assert_eq!(raw_try_send(tx, &msg(1)), Status::OK);
    assert_eq!(raw_send(tx, &msg(2), &rec, &mut op), Status::PENDING);
    assert_eq!(raw_recv_close(rx), Status::OK);
    assert_eq!(rec.next("send pending at receiver close").status, Status::CLOSED);
    assert_eq!(raw_try_send(tx, &msg(3)), Status::CLOSED);
    assert_eq!(raw_send(tx, &msg(3), &rec, &mut op), Status::CLOSED);
    let drain = Recorder::new();
    assert_eq!(raw_try_recv(rx, &drain), Status::CLOSED, "queued messages were dropped");
    assert_eq!(raw_recv_close(rx), Status::OK, "idempotent");
    raw_send_release(tx);
    raw_recv_release(rx);
    rt.shutdown().unwrap();
    assert_eq!(rec.completions(), 1);
    assert_eq!(drain.delivers(), 0);
}

#[test]
fn receiver_release_completes_pending_recv_closed_and_fails_sends() {
    let rt = Runtime::new(2).unwrap();
    let (tx, rx) = channel(&rt, 1);
    let rec = Recorder::new();
    let mut op = 0;
    assert_eq!(raw_recv(rx, &rec, &mut op), Status::PENDING);
    assert_eq!(raw_recv_release(rx), Status::OK);
    assert_eq!(rec.next("recv pending at release").status, Status::CLOSED);
    assert_eq!(raw_try_send(tx, &msg(1)), Status::CLOSED);
    raw_send_release(tx);
    rt.shutdown().unwrap();
    assert_eq!(rec.completions(), 1);
}

#[test]
fn releasing_a_sender_cancels_its_own_pending_sends_only() {
    let rt = Runtime::new(2).unwrap();
    let (tx, rx) = channel(&rt, 1);
    let (_, tx2) = raw_clone(tx);
    let a = Recorder::new();
    let b = Recorder::new();
    let mut op = 0;
    assert_eq!(raw_try_send(tx, &msg(1)), Status::OK);
    assert_eq!(raw_send(tx, &msg(2), &a, &mut op), Status::PENDING);
    assert_eq!(raw_send(tx2, &msg(3), &b, &mut op), Status::PENDING);
    assert_eq!(raw_send_release(tx), Status::OK);
    assert_eq!(a.next("send of the released port").status, Status::CANCELLED);
    let drain = Recorder::new();
    assert_eq!(raw_try_recv(rx, &drain), Status::OK); // 1; room for tx2's send
    assert_eq!(b.next("send of the other port").status, Status::OK);
    assert_eq!(raw_try_recv(rx, &drain), Status::OK); // 3
    let ids: Vec<u64> = drain.delivered.lock().unwrap().iter().map(|m| m.id).collect();
    assert_eq!(ids, [1, 3]);
    raw_send_release(tx2);
    raw_recv_release(rx);
    rt.shutdown().unwrap();
    assert_eq!((a.completions(), b.completions()), (1, 1));
}

#[test]
fn bad_handles_and_arguments_are_invalid_never_ub() {
    let rt = Runtime::new(1).unwrap();
    let (tx, rx) = channel(&rt, 1);
    let rec = Recorder::new();
    let mut op = 0;
    let stvt = tx.vtable;
    let rxvt = rx.vtable;
    // Numbers that cannot name a live port even with other tests running in parallel: no tag,
    // generation 0, an index never allocated, and our own live slots with another generation.
    let forged = [
        0u64,
        1,
        u64::MAX,
        0x5200_0000_0000_0000,
        0x52FF_FFFF_0000_0001,
        tx.handle & 0x00FF_FFFF_FFFF_FFFF,
        tx.handle + 1,
        tx.handle - 1,
        rx.handle + 1,
    ];
    for h in forged {
        let s = poc_sender { handle: h, vtable: stvt };
        let r = poc_receiver { handle: h, vtable: rxvt };
        assert_eq!(raw_try_send(s, &msg(1)), Status::INVALID, "forged sender {h:#x}");
        assert_eq!(raw_send(s, &msg(1), &rec, &mut op), Status::INVALID);
        assert_eq!(raw_send_cancel(s, 1), Status::INVALID);
        assert_eq!(raw_send_close(s), Status::INVALID);
        assert_eq!(raw_clone(s).0, Status::INVALID);
        assert_eq!(raw_send_release(s), Status::INVALID);
        assert_eq!(raw_try_recv(r, &rec), Status::INVALID, "forged receiver {h:#x}");
        assert_eq!(raw_recv(r, &rec, &mut op), Status::INVALID);
        assert_eq!(raw_recv_cancel(r, 1), Status::INVALID);
        assert_eq!(raw_recv_close(r), Status::INVALID);
        assert_eq!(raw_recv_release(r), Status::INVALID);
    }
    // wrong kind: a receiver handle through the sender vtable and vice versa
    let s_as_r = poc_receiver { handle: tx.handle, vtable: rxvt };
    let r_as_s = poc_sender { handle: rx.handle, vtable: stvt };
    assert_eq!(raw_try_recv(s_as_r, &rec), Status::INVALID);
    assert_eq!(raw_recv_release(s_as_r), Status::INVALID);
    assert_eq!(raw_try_send(r_as_s, &msg(1)), Status::INVALID);
    assert_eq!(raw_send_release(r_as_s), Status::INVALID);
    // NULL pointers
    let vt = unsafe { &*tx.vtable };
    let view = msg(1).view();
    unsafe {
        assert_eq!(Status((vt.try_send.unwrap())(tx.handle, std::ptr::null())), Status::INVALID);
        assert_eq!(Status((vt.send.unwrap())(tx.handle, &view, None, rec.user(), &mut op)), Status::INVALID);
        assert_eq!(Status((vt.send.unwrap())(tx.handle, &view, Some(rec_send_done), rec.user(), std::ptr::null_mut())), Status::INVALID);
        assert_eq!(Status((vt.clone.unwrap())(tx.handle, std::ptr::null_mut())), Status::INVALID);
        let rvt = &*rx.vtable;
        assert_eq!(Status((rvt.try_recv.unwrap())(rx.handle, None, rec.user())), Status::INVALID);
        assert_eq!(Status((rvt.recv.unwrap())(rx.handle, Some(rec_deliver), None, rec.user(), &mut op)), Status::INVALID);
        assert_eq!(Status((rvt.recv.unwrap())(rx.handle, Some(rec_deliver), Some(rec_recv_done), rec.user(), std::ptr::null_mut())), Status::INVALID);
        // data NULL with a length
        let bad = ffi::poc_message_view { id: 1, data: std::ptr::null(), len: 3 };
        assert_eq!(Status((vt.try_send.unwrap())(tx.handle, &bad)), Status::INVALID);
        let empty = ffi::poc_message_view { id: 1, data: std::ptr::null(), len: 0 };
        assert_eq!(Status((vt.try_send.unwrap())(tx.handle, &empty)), Status::OK, "NULL data with len 0 is fine");
    }
    // the ports still work after all that
    assert_eq!(raw_try_recv(rx, &rec), Status::OK);
    // double release, and use after release
    assert_eq!(raw_send_release(tx), Status::OK);
    assert_eq!(raw_send_release(tx), Status::INVALID);
    assert_eq!(raw_try_send(tx, &msg(1)), Status::INVALID);
    assert_eq!(raw_recv_release(rx), Status::OK);
    assert_eq!(raw_recv_release(rx), Status::INVALID);
    assert_eq!(raw_try_recv(rx, &rec), Status::INVALID);
    rt.shutdown().unwrap();
    assert_eq!(rec.completions(), 0);
}

#[test]
fn a_stale_handle_stays_invalid_after_its_slot_is_reused() {
    let rt = Runtime::new(1).unwrap();
    let (tx, rx) = channel(&rt, 1);
    raw_send_release(tx);
    raw_recv_release(rx);
    // new ports may reuse the slots, with a new generation
    let ports: Vec<_> = (0..8).map(|_| channel(&rt, 1)).collect();
    assert_eq!(raw_try_send(tx, &msg(1)), Status::INVALID);
    assert_eq!(raw_send_release(tx), Status::INVALID);
    assert_eq!(raw_recv_release(rx), Status::INVALID);
    for (t, r) in ports {
        assert_eq!(raw_try_send(t, &msg(1)), Status::OK);
        raw_send_release(t);
        raw_recv_release(r);
    }
}

#[test]
fn payload_limits_and_capacity_are_checked() {
    let rt = Runtime::new(1).unwrap();
    let (tx, rx) = rt.channel_ports(2, 16).unwrap();
    let rec = Recorder::new();
    let mut op = 0;
    assert_eq!(raw_try_send(tx, &Message::new(1, vec![0; 16])), Status::OK, "at the limit");
    assert_eq!(raw_try_send(tx, &Message::new(2, vec![0; 17])), Status::INVALID, "over the limit");
    assert_eq!(raw_send(tx, &Message::new(2, vec![0; 17]), &rec, &mut op), Status::INVALID);
    raw_send_release(tx);
    raw_recv_release(rx);
    // the default limit, through the C entry point
    let mut raw: *mut ffi::poc_rust_runtime = std::ptr::null_mut();
    assert_eq!(Status(unsafe { poc_bridge::poc_rust_runtime_new(1, &mut raw) }), Status::OK);
    let mut tx = poc_sender { handle: 0, vtable: std::ptr::null() };
    let mut rx = poc_receiver { handle: 0, vtable: std::ptr::null() };
    assert_eq!(Status(unsafe { poc_bridge::poc_rust_channel_new(raw, 0, &mut tx, &mut rx) }), Status::INVALID, "capacity 0");
    assert_eq!(Status(unsafe { poc_bridge::poc_rust_channel_new(raw, usize::MAX, &mut tx, &mut rx) }), Status::INVALID);
    assert_eq!(Status(unsafe { poc_bridge::poc_rust_channel_new(raw, 1, std::ptr::null_mut(), &mut rx) }), Status::INVALID);
    assert_eq!(Status(unsafe { poc_bridge::poc_rust_channel_new(std::ptr::null_mut(), 1, &mut tx, &mut rx) }), Status::INVALID);
    assert_eq!(Status(unsafe { poc_bridge::poc_rust_channel_new(raw, 1, &mut tx, &mut rx) }), Status::OK);
    let vt = unsafe { &*tx.vtable };
    assert_eq!((vt.abi_version, vt.size as usize), (ffi::POC_ABI_VERSION, std::mem::size_of::<ffi::poc_sender_vtable>()));
    let big = Message::new(3, vec![0; ffi::POC_DEFAULT_MAX_PAYLOAD + 1]);
    assert_eq!(raw_try_send(tx, &big), Status::INVALID);
    let at = Message::new(4, vec![0; ffi::POC_DEFAULT_MAX_PAYLOAD]);
    assert_eq!(raw_try_send(tx, &at), Status::OK);
    assert_eq!(raw_try_recv(rx, &rec), Status::OK);
    assert_eq!(rec.delivered.lock().unwrap()[0].payload.len(), ffi::POC_DEFAULT_MAX_PAYLOAD);
    raw_send_release(tx);
    raw_recv_release(rx);
    unsafe { poc_bridge::poc_rust_runtime_free(raw) };
    assert_eq!(rec.completions(), 0);
}

/// A completion that calls back into the same port (bridge.h rule 4): issues the next recv from
/// inside the completion of the previous one. Must not deadlock.
#[test]
fn completions_may_reenter_the_port() {
    struct Chain {
        rx: poc_receiver,
        left: std::sync::atomic::AtomicUsize,
        done: std::sync::Mutex<std::sync::mpsc::Sender<Vec<u64>>>,
        got: std::sync::Mutex<Vec<u64>>,
    }
    unsafe extern "C" fn again(user: *mut std::ffi::c_void, status: ffi::poc_status, m: *const ffi::poc_message_view) {
        let c = unsafe { &*(user as *const Chain) };
        assert_eq!(status, ffi::POC_OK);
        c.got.lock().unwrap().push(unsafe { (*m).id });
        if c.left.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            let _ = c.done.lock().unwrap().send(c.got.lock().unwrap().clone());
            return;
        }
        let mut op = 0;
        let vt = unsafe { &*c.rx.vtable };
        let st = unsafe { (vt.recv.unwrap())(c.rx.handle, Some(again), Some(again), user, &mut op) };
        assert!(st == ffi::POC_OK || st == ffi::POC_PENDING);
    }
    let rt = Runtime::new(2).unwrap();
    let (tx, rx) = channel(&rt, 1);
    let (dtx, drx) = std::sync::mpsc::channel();
    let chain = Arc::new(Chain { rx, left: 100.into(), done: dtx.into(), got: Default::default() });
    let mut op = 0;
    let vt = unsafe { &*rx.vtable };
    let st = unsafe { (vt.recv.unwrap())(rx.handle, Some(again), Some(again), Arc::as_ptr(&chain) as *mut _, &mut op) };
    assert_eq!(Status(st), Status::PENDING);
    {
        let (t, rec) = (tx, Recorder::new());
        within("producer", move || {
            for i in 0..100 {
                let mut op = 0;
                if raw_send(t, &msg(i), &rec, &mut op) == Status::PENDING {
                    assert_eq!(rec.next("send").status, Status::OK);
                }
            }
        });
    }
    let got = drx.recv_timeout(LIMIT).expect("chain of re-entrant receives finished");
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    raw_send_release(tx);
    raw_recv_release(rx);
    rt.shutdown().unwrap();
}

#[test]
fn shutdown_completes_pending_ops_and_later_calls_get_shutdown() {
    let rt = Runtime::new(2).unwrap();
    let (tx, rx) = channel(&rt, 1);
    let (tx_b, rx_b) = channel(&rt, 1);
    let sends = Recorder::new();
    let recvs = Recorder::new();
    let mut op = 0;
    assert_eq!(raw_try_send(tx, &msg(1)), Status::OK);
    for i in 0..10 {
        assert_eq!(raw_send(tx, &msg(i), &sends, &mut op), Status::PENDING);
        assert_eq!(raw_recv(rx_b, &recvs, &mut op), Status::PENDING);
    }
    rt.shutdown().unwrap();
    assert_eq!(sends.completions(), 10);
    assert_eq!(recvs.completions(), 10);
    for _ in 0..10 {
        let e = sends.next("send at shutdown");
        assert_eq!(e.status, Status::SHUTDOWN);
        assert_runtime_thread(&e);
        assert_eq!(recvs.next("recv at shutdown").status, Status::SHUTDOWN);
    }
    // later calls: SHUTDOWN; release stays valid
    let rec = Recorder::new();
    assert_eq!(raw_try_send(tx, &msg(9)), Status::SHUTDOWN);
    assert_eq!(raw_send(tx, &msg(9), &rec, &mut op), Status::SHUTDOWN);
    assert_eq!(raw_try_recv(rx, &rec), Status::SHUTDOWN);
    assert_eq!(raw_recv(rx, &rec, &mut op), Status::SHUTDOWN);
    assert_eq!(raw_send_cancel(tx, op), Status::SHUTDOWN);
    assert_eq!(raw_send_close(tx), Status::SHUTDOWN);
    assert_eq!(raw_recv_close(rx), Status::SHUTDOWN);
    assert_eq!(raw_clone(tx).0, Status::SHUTDOWN);
    assert!(matches!(rt.channel_ports(1, 0), Err(e) if e.0 == Status::SHUTDOWN));
    assert_eq!(rt.shutdown(), Ok(()), "idempotent");
    drop(rt); // free: ports outlive the runtime
    for p in [tx, tx_b] {
        assert_eq!(raw_send_release(p), Status::OK);
    }
    for p in [rx, rx_b] {
        assert_eq!(raw_recv_release(p), Status::OK);
    }
    assert_eq!(raw_send_release(tx), Status::INVALID);
    assert_eq!(rec.completions(), 0);
    assert_eq!(sends.completions() + recvs.completions(), 20, "exactly once");
}

#[test]
fn shutdown_on_a_runtime_thread_is_invalid_and_c_lifecycle_checks_arguments() {
    let mut raw: *mut ffi::poc_rust_runtime = std::ptr::null_mut();
    unsafe {
        assert_eq!(Status(poc_bridge::poc_rust_runtime_new(0, &mut raw)), Status::INVALID);
        assert_eq!(Status(poc_bridge::poc_rust_runtime_new(65, &mut raw)), Status::INVALID);
        assert_eq!(Status(poc_bridge::poc_rust_runtime_new(1, std::ptr::null_mut())), Status::INVALID);
        assert_eq!(Status(poc_bridge::poc_rust_runtime_shutdown(std::ptr::null_mut())), Status::INVALID);
        poc_bridge::poc_rust_runtime_free(std::ptr::null_mut());
        assert_eq!(Status(poc_bridge::poc_rust_runtime_new(2, &mut raw)), Status::OK);
    }
    struct P(*mut ffi::poc_rust_runtime);
    unsafe impl Send for P {}
    let p = P(raw);
    let rt: &Runtime = unsafe { &*(raw as *const Runtime) };
    let (tx, rx) = std::sync::mpsc::channel();
    rt.handle().spawn(async move {
        let p = p;
        let st = unsafe { poc_bridge::poc_rust_runtime_shutdown(p.0) };
        let _ = tx.send(Status(st));
    });
    assert_eq!(rx.recv_timeout(LIMIT).expect("shutdown from a runtime thread returned"), Status::INVALID);
    assert!(!rt.is_stopping());
    unsafe {
        assert_eq!(Status(poc_bridge::poc_rust_runtime_shutdown(raw)), Status::OK);
        assert_eq!(Status(poc_bridge::poc_rust_runtime_shutdown(raw)), Status::OK);
        poc_bridge::poc_rust_runtime_free(raw);
    }
}

#[test]
fn handle_table_is_safe_under_concurrency() {
    let rt = Arc::new(Runtime::new(2).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let rt = rt.clone();
            std::thread::spawn(move || {
                let mut stale = Vec::new();
                for i in 0..500u64 {
                    let (tx, rx) = channel(&rt, 1);
                    let (st, tx2) = raw_clone(tx);
                    assert_eq!(st, Status::OK);
                    assert_eq!(raw_try_send(tx2, &msg(i)), Status::OK);
                    assert_eq!(raw_send_release(tx), Status::OK);
                    assert_eq!(raw_send_release(tx2), Status::OK);
                    let rec = Recorder::new();
                    assert_eq!(raw_try_recv(rx, &rec), Status::OK);
                    assert_eq!(raw_try_recv(rx, &rec), Status::CLOSED);
                    assert_eq!(raw_recv_release(rx), Status::OK);
                    stale.push((tx, tx2, rx));
                    // other threads' stale handles are being reused right now: still INVALID
                    for &(a, b, r) in stale.iter().rev().take(3) {
                        assert_eq!(raw_try_send(a, &msg(t)), Status::INVALID);
                        assert_eq!(raw_send_release(b), Status::INVALID);
                        assert_eq!(raw_recv_release(r), Status::INVALID);
                    }
                }
            })
        })
        .collect();
    within("handle table threads", move || {
        for t in threads {
            t.join().expect("thread");
        }
    });
    rt.shutdown().unwrap();
}
