//! The agents exported as `poc_rust_*_start`, driven through the C ABI like a scenario would.

mod common;

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use common::*;
use poc_bridge::ffi::{self, poc_agent_report, poc_receiver, poc_rust_runtime, poc_sender};
use poc_bridge::message::producer_id;
use poc_bridge::*;

struct Done {
    calls: AtomicUsize,
    tx: Mutex<mpsc::Sender<(poc_agent_report, String)>>,
    rx: Mutex<mpsc::Receiver<(poc_agent_report, String)>>,
    /// When set, the callback re-enters the runtime (must not deadlock: done runs under no lock).
    reenter: Option<usize>,
}

impl Done {
    fn new() -> Arc<Done> {
        Self::with_reenter(None)
    }
    fn with_reenter(rt: Option<*mut poc_rust_runtime>) -> Arc<Done> {
        let (tx, rx) = mpsc::channel();
        Arc::new(Done { calls: 0.into(), tx: tx.into(), rx: rx.into(), reenter: rt.map(|p| p as usize) })
    }
    fn user(self: &Arc<Self>) -> *mut c_void {
        Arc::as_ptr(self) as *mut c_void
    }
    fn wait(&self, what: &str) -> poc_agent_report {
        let (r, thread) = self
            .rx
            .lock()
            .unwrap()
            .recv_timeout(LIMIT)
            .unwrap_or_else(|_| panic!("timed out after {LIMIT:?} waiting for agent: {what}"));
        assert!(thread.starts_with("poc-rust-"), "done ran on {thread:?}, not a runtime thread");
        r
    }
}

unsafe extern "C" fn on_done(user: *mut c_void, report: *const poc_agent_report) {
    let d = unsafe { &*(user as *const Done) };
    d.calls.fetch_add(1, Ordering::SeqCst);
    if let Some(rt) = d.reenter {
        let st = unsafe { poc_rust_agent_cancel(rt as *mut poc_rust_runtime, 12345) };
        assert_eq!(st, ffi::POC_OK);
    }
    let thread = std::thread::current().name().unwrap_or("?").to_string();
    let _ = d.tx.lock().unwrap().send((unsafe { *report }, thread));
}

fn runtime(threads: u32) -> *mut poc_rust_runtime {
    let mut rt = std::ptr::null_mut();
    assert_eq!(unsafe { poc_rust_runtime_new(threads, &mut rt) }, ffi::POC_OK);
    rt
}

fn channel(rt: *mut poc_rust_runtime, capacity: usize) -> (poc_sender, poc_receiver) {
    let mut tx = poc_sender { handle: 0, vtable: std::ptr::null() };
    let mut rx = poc_receiver { handle: 0, vtable: std::ptr::null() };
    assert_eq!(unsafe { poc_rust_channel_new(rt, capacity, &mut tx, &mut rx) }, ffi::POC_OK);
    (tx, rx)
}

fn expected(stream: u64, count: u64, len: usize) -> u64 {
    (0..count).map(|s| Message::with_pattern(producer_id(stream, s), len).checksum()).fold(0, u64::wrapping_add)
}

#[test]
fn producer_to_consumer() {
    let rt = runtime(2);
    let (tx, rx) = channel(rt, 4);
    let (pd, cd) = (Done::new(), Done::new());
    let (mut pid, mut cid) = (0, 0);
    unsafe {
        assert_eq!(poc_rust_producer_start(rt, tx, 1, 5000, 33, Some(on_done), pd.user(), &mut pid), ffi::POC_OK);
        assert_eq!(poc_rust_consumer_start(rt, rx, Some(on_done), cd.user(), &mut cid), ffi::POC_OK);
    }
    assert!(pid != 0 && cid != 0 && pid != cid, "ids are unique");
    let p = pd.wait("producer");
    let c = cd.wait("consumer");
    assert_eq!((Status(p.status), p.messages, p.order_errors), (Status::OK, 5000, 0));
    assert_eq!((Status(c.status), c.messages, c.order_errors), (Status::OK, 5000, 0));
    assert_eq!(p.checksum, expected(1, 5000, 33));
    assert_eq!(c.checksum, p.checksum);
    unsafe { poc_rust_runtime_free(rt) };
    assert_eq!((pd.calls.load(Ordering::SeqCst), cd.calls.load(Ordering::SeqCst)), (1, 1), "done exactly once");
}

#[test]
fn two_producers_interleave_and_the_consumer_checks_each_stream() {
    let rt = runtime(2);
    let (tx, rx) = channel(rt, 1);
    let (st, tx2) = raw_clone(tx);
    assert_eq!(st, Status::OK);
    let (a, b, c) = (Done::new(), Done::new(), Done::new());
    unsafe {
        assert_eq!(poc_rust_consumer_start(rt, rx, Some(on_done), c.user(), std::ptr::null_mut()), ffi::POC_OK);
        assert_eq!(poc_rust_producer_start(rt, tx, 7, 2000, 5, Some(on_done), a.user(), std::ptr::null_mut()), ffi::POC_OK);
        assert_eq!(poc_rust_producer_start(rt, tx2, 8, 3000, 0, Some(on_done), b.user(), std::ptr::null_mut()), ffi::POC_OK);
    }
    let (ra, rb, rc) = (a.wait("producer a"), b.wait("producer b"), c.wait("consumer"));
    assert_eq!((ra.status, rb.status, rc.status), (ffi::POC_OK, ffi::POC_OK, ffi::POC_OK));
    assert_eq!(rc.messages, 5000);
    assert_eq!(rc.order_errors, 0);
    assert_eq!(rc.checksum, ra.checksum.wrapping_add(rb.checksum));
    assert_eq!(rb.checksum, expected(8, 3000, 0));
    unsafe { poc_rust_runtime_free(rt) };
}

#[test]
fn echo_sends_everything_back_and_ends_when_its_input_closes() {
    let rt = runtime(2);
    let (to_echo_tx, to_echo_rx) = channel(rt, 2);
    let (from_echo_tx, from_echo_rx) = channel(rt, 2);
    let d = Done::new();
    unsafe {
        assert_eq!(poc_rust_echo_start(rt, to_echo_rx, from_echo_tx, Some(on_done), d.user(), std::ptr::null_mut()), ffi::POC_OK);
    }
    let tx = unsafe { PortSender::from_raw(to_echo_tx) }.unwrap();
    let mut rx = unsafe { PortReceiver::from_raw(from_echo_rx) }.unwrap();
    let (sent, back, rx) = block_on("ping-pong", async move {
        let mut sum = 0u64;
        let mut back = 0u64;
        for s in 0..1000 {
            let m = Message::with_pattern(producer_id(2, s), 17);
            sum = sum.wrapping_add(m.checksum());
            tx.send(m.clone()).await.unwrap();
            let r = rx.recv().await.unwrap();
            assert_eq!(r, m, "echoed unchanged");
            back = back.wrapping_add(r.checksum());
        }
        drop(tx); // closes the echo's input
        (sum, back, rx)
    });
    assert_eq!(sent, back);
    let r = d.wait("echo");
    assert_eq!((Status(r.status), r.messages, r.checksum), (Status::OK, 1000, sent));
    // the echo released its sender when it ended: our receiver sees CLOSED
    let mut rx = rx;
    assert_eq!(block_on("closed after echo", async move { rx.recv().await.map(|_| ()) }), Err(RecvError::Closed));
    unsafe { poc_rust_runtime_free(rt) };
}

#[test]
fn cancel_stops_an_agent_and_it_releases_its_ports() {
    let rt = runtime(2);
    let (tx, rx) = channel(rt, 1);
    let d = Done::with_reenter(Some(rt));
    let mut id = 0;
    unsafe {
        assert_eq!(poc_rust_consumer_start(rt, rx, Some(on_done), d.user(), &mut id), ffi::POC_OK);
        assert_eq!(poc_rust_agent_cancel(rt, id), ffi::POC_OK);
    }
    let r = d.wait("cancelled consumer");
    assert_eq!((Status(r.status), r.messages), (Status::CANCELLED, 0));
    // its receiver port was released: sends now fail CLOSED
    assert_eq!(raw_try_send(tx, &Message::new(1, vec![])), Status::CLOSED);
    unsafe {
        assert_eq!(poc_rust_agent_cancel(rt, id), ffi::POC_OK, "already ended");
        assert_eq!(poc_rust_agent_cancel(rt, 987_654_321), ffi::POC_OK, "unknown");
        assert_eq!(poc_rust_agent_cancel(std::ptr::null_mut(), id), ffi::POC_INVALID);
    }
    raw_send_release(tx);
    unsafe { poc_rust_runtime_free(rt) };
    assert_eq!(d.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_panicking_agent_body_is_contained() {
    let rt = runtime(1);
    let (tx, rx) = channel(rt, 1);
    let (pd, cd) = (Done::new(), Done::new());
    unsafe {
        // a payload of usize::MAX bytes panics ("capacity overflow") inside the producer body
        assert_eq!(
            poc_rust_producer_start(rt, tx, 0, 3, usize::MAX, Some(on_done), pd.user(), std::ptr::null_mut()),
            ffi::POC_OK
        );
        assert_eq!(poc_rust_consumer_start(rt, rx, Some(on_done), cd.user(), std::ptr::null_mut()), ffi::POC_OK);
    }
    let p = pd.wait("panicking producer");
    assert_eq!((Status(p.status), p.messages), (Status::PANIC, 0));
    // the producer's port was released: the channel closed and the consumer ended normally
    let c = cd.wait("consumer");
    assert_eq!((Status(c.status), c.messages), (Status::OK, 0));
    unsafe { poc_rust_runtime_free(rt) };
}

#[test]
fn start_errors_leave_the_ports_with_the_caller() {
    let rt = runtime(1);
    let (tx, rx) = channel(rt, 1);
    let d = Done::new();
    let bad = poc_sender { handle: tx.handle, vtable: std::ptr::null() };
    unsafe {
        assert_eq!(poc_rust_producer_start(rt, tx, 0, 1, 0, None, d.user(), std::ptr::null_mut()), ffi::POC_INVALID);
        assert_eq!(poc_rust_producer_start(std::ptr::null_mut(), tx, 0, 1, 0, Some(on_done), d.user(), std::ptr::null_mut()), ffi::POC_INVALID);
        assert_eq!(poc_rust_producer_start(rt, bad, 0, 1, 0, Some(on_done), d.user(), std::ptr::null_mut()), ffi::POC_INVALID);
        assert_eq!(poc_rust_echo_start(rt, rx, bad, Some(on_done), d.user(), std::ptr::null_mut()), ffi::POC_INVALID);
        assert_eq!(poc_rust_consumer_start(rt, poc_receiver { handle: 1, vtable: std::ptr::null() }, Some(on_done), d.user(), std::ptr::null_mut()), ffi::POC_INVALID);
    }
    // the ports were not taken: still live, still ours to release
    assert_eq!(raw_try_send(tx, &Message::new(1, vec![])), Status::OK);
    assert_eq!(raw_send_release(tx), Status::OK);
    assert_eq!(raw_recv_release(rx), Status::OK);
    unsafe { poc_rust_runtime_free(rt) };
    assert_eq!(d.calls.load(Ordering::SeqCst), 0, "done is not called on a start error");
}

#[test]
fn shutdown_stops_running_agents_with_shutdown_and_refuses_new_ones() {
    let rt = runtime(2);
    let (tx, rx) = channel(rt, 1);
    let (tx_b, rx_b) = channel(rt, 1);
    let (pd, cd) = (Done::new(), Done::new());
    unsafe {
        // a producer blocked by backpressure (nobody receives on channel a) ...
        assert_eq!(poc_rust_producer_start(rt, tx, 0, 1_000_000, 8, Some(on_done), pd.user(), std::ptr::null_mut()), ffi::POC_OK);
        // ... and a consumer waiting on an empty channel
        assert_eq!(poc_rust_consumer_start(rt, rx_b, Some(on_done), cd.user(), std::ptr::null_mut()), ffi::POC_OK);
        assert_eq!(poc_rust_runtime_shutdown(rt), ffi::POC_OK);
    }
    // shutdown waited for them: both reports are already there
    assert_eq!(pd.calls.load(Ordering::SeqCst), 1);
    assert_eq!(cd.calls.load(Ordering::SeqCst), 1);
    let p = pd.wait("producer at shutdown");
    let c = cd.wait("consumer at shutdown");
    assert_eq!(Status(p.status), Status::SHUTDOWN);
    assert!(p.messages <= 1, "capacity 1 and nobody receives: at most one message went in");
    assert_eq!(Status(c.status), Status::SHUTDOWN);
    let d = Done::new();
    unsafe {
        assert_eq!(poc_rust_consumer_start(rt, rx, Some(on_done), d.user(), std::ptr::null_mut()), ffi::POC_SHUTDOWN);
    }
    assert_eq!(raw_recv_release(rx), Status::OK, "not taken by the refused agent");
    assert_eq!(raw_send_release(tx_b), Status::OK);
    unsafe { poc_rust_runtime_free(rt) };
    assert_eq!(d.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn rust_api_agents_report_through_closures() {
    let rt = Runtime::new(2).unwrap();
    let (tx, rx) = rt.channel(3).unwrap();
    let (rtx, rrx) = mpsc::channel();
    let rtx2 = rtx.clone();
    rt.start_consumer(rx, move |r| {
        let _ = rtx.send(("consumer", *r));
    })
    .unwrap();
    rt.start_producer(tx, 4, 100, 9, move |r| {
        let _ = rtx2.send(("producer", *r));
    })
    .unwrap();
    let mut got = [rrx.recv_timeout(LIMIT).unwrap(), rrx.recv_timeout(LIMIT).unwrap()];
    got.sort_by_key(|(k, _)| *k);
    let (c, p) = (got[0].1, got[1].1);
    assert_eq!((c.status, c.messages, c.order_errors), (Status::OK, 100, 0));
    assert_eq!(p.checksum, c.checksum);
    assert_eq!(c.to_ffi().status, ffi::POC_OK);
    rt.shutdown().unwrap();
}

/// Agents import through the adapter, so they work against ports of any runtime: here the
/// channel belongs to runtime A and both agents run on runtime B. When A shuts down, B's agents
/// see `SHUTDOWN` from A's ports and end with it.
#[test]
fn agents_use_ports_exported_by_another_runtime() {
    let a = runtime(1);
    let b = runtime(2);
    let (tx, rx) = channel(a, 2);
    let (pd, cd) = (Done::new(), Done::new());
    unsafe {
        assert_eq!(poc_rust_producer_start(b, tx, 6, 3000, 12, Some(on_done), pd.user(), std::ptr::null_mut()), ffi::POC_OK);
        assert_eq!(poc_rust_consumer_start(b, rx, Some(on_done), cd.user(), std::ptr::null_mut()), ffi::POC_OK);
    }
    let (p, c) = (pd.wait("producer on B"), cd.wait("consumer on B"));
    assert_eq!((Status(c.status), c.messages, c.order_errors), (Status::OK, 3000, 0));
    assert_eq!(c.checksum, p.checksum);

    // A consumer on B waits on A's empty channel; A shuts down under it.
    let (tx, rx) = channel(a, 1);
    let d = Done::new();
    unsafe {
        assert_eq!(poc_rust_consumer_start(b, rx, Some(on_done), d.user(), std::ptr::null_mut()), ffi::POC_OK);
        assert_eq!(poc_rust_runtime_shutdown(a), ffi::POC_OK);
    }
    let r = d.wait("consumer on B after A shut down");
    assert_eq!(Status(r.status), Status::SHUTDOWN);
    assert_eq!(raw_send_release(tx), Status::OK);
    unsafe {
        poc_rust_runtime_free(a);
        poc_rust_runtime_free(b);
    }
}

#[test]
fn the_consumer_counts_order_and_pattern_errors() {
    let rt = runtime(1);
    let (tx, rx) = channel(rt, 8);
    let good = |stream, seq| Message::with_pattern(producer_id(stream, seq), 9);
    let mut bad_payload = good(1, 4);
    bad_payload.payload[3] ^= 0xFF;
    let msgs = [
        good(1, 0),
        good(1, 1),
        good(1, 3),  // gap: 2 is missing          -> error
        bad_payload, // in order, wrong payload    -> error
        good(2, 1),  // a stream must start at 0   -> error
        good(2, 2),
    ];
    let mut sum = 0u64;
    for m in &msgs {
        assert_eq!(raw_try_send(tx, m), Status::OK);
        sum = sum.wrapping_add(m.checksum());
    }
    assert_eq!(raw_send_release(tx), Status::OK); // the last sender: closes after draining
    let d = Done::new();
    unsafe {
        assert_eq!(poc_rust_consumer_start(rt, rx, Some(on_done), d.user(), std::ptr::null_mut()), ffi::POC_OK);
    }
    let r = d.wait("consumer");
    assert_eq!((Status(r.status), r.messages, r.order_errors, r.checksum), (Status::OK, 6, 3, sum));
    unsafe { poc_rust_runtime_free(rt) };
}
