//! Allocation accounting: a counting global allocator checks that no op state, slot, message or
//! completion is leaked — on every path of the wake-up adapter (fast path, completion inside the
//! call, later completion, drop while pending, stash) and through the Rust exporter.
//!
//! One `#[test]` only: the allocator is process-wide, so the scenarios run one after another.
//! The adapter scenarios (single-threaded, against the fake port) count this thread's
//! allocations and frees exactly; the exporter scenario counts process-wide with a tolerance far
//! below one leak per message.

mod common;
#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use common::fake::*;
use common::*;
use counting_alloc::{live, thread_allocs, thread_live};
use poc_bridge::message::producer_id;
use poc_bridge::future::ForeignFuture;
use poc_bridge::{ffi, Message, RecvError, Runtime, Status};

/// Runs `round` `n` times on this thread after a warm-up; returns the growth of this thread's
/// live allocations.
fn growth(n: usize, mut round: impl FnMut(u64)) -> isize {
    for i in 0..10 {
        round(i);
    }
    let before = thread_live();
    for i in 0..n as u64 {
        round(i);
    }
    thread_live() - before
}

fn m(id: u64) -> Message {
    Message::with_pattern(id, 24)
}

#[test]
fn no_op_state_is_leaked_on_any_path() {
    let (_, waker) = counting_waker();

    // Adapter paths against the fake port (no threads involved: fully deterministic).
    let (tx, f) = fake_sender(Mode::Ok);
    let g = growth(1000, |i| {
        assert!(poll_once(&mut tx.send(m(i)), &waker).is_ready());
        f.sent.lock().unwrap().clear(); // the fake's own copy
    });
    assert_eq!(g, 0, "send fast path");

    f.set_mode(Mode::InlineThenPending(Status::CANCELLED));
    let g = growth(1000, |i| assert!(poll_once(&mut tx.send(m(i)), &waker).is_ready()));
    assert_eq!(g, 0, "send completed inside the call");

    f.set_mode(Mode::Pending);
    let g = growth(1000, |i| {
        let mut fut = tx.send(m(i));
        assert!(poll_once(&mut fut, &waker).is_pending());
        f.complete_send(f.pending()[0], Status::OK);
        assert!(poll_once(&mut fut, &waker).is_ready());
    });
    assert_eq!(g, 0, "send completed later");

    let g = growth(1000, |i| {
        let mut fut = tx.send(m(i));
        assert!(poll_once(&mut fut, &waker).is_pending());
        drop(fut); // cancel requested; the slot lives on in the exporter's reference
        f.complete_send(f.pending()[0], Status::CANCELLED);
        f.cancels.lock().unwrap().clear();
    });
    assert_eq!(g, 0, "send dropped while pending, completed after the drop");
    for outcome in [Status::OK, Status::CANCELLED] {
        let g = growth(1000, |i| {
            let mut fut = tx.send(m(i));
            assert!(poll_once(&mut fut, &waker).is_pending());
            fut.cancel(); // explicit cancel: the future waits for the real outcome
            f.complete_send(f.pending()[0], outcome);
            assert!(poll_once(&mut fut, &waker).is_ready());
            f.cancels.lock().unwrap().clear();
        });
        assert_eq!(g, 0, "explicit cancel of a pending send, completed {outcome}");
    }
    drop(tx);

    let (mut rx, f) = fake_receiver(Mode::Pending);
    let g = growth(1000, |i| {
        let mut fut = rx.recv();
        assert!(poll_once(&mut fut, &waker).is_pending());
        drop(fut);
        f.complete_recv(f.pending()[0], Status::OK, Some(&m(i))); // won the race: stashed
        assert_eq!(poll_once(&mut rx.recv(), &waker), Poll::Ready(Ok(m(i))));
        f.cancels.lock().unwrap().clear();
    });
    assert_eq!(g, 0, "recv stash");
    let g = growth(1000, |i| {
        f.queue.lock().unwrap().push_back(m(i));
        assert_eq!(poll_once(&mut rx.recv(), &waker), Poll::Ready(Ok(m(i))));
    });
    assert!(g <= 0, "recv fast path leaked {g}");
    drop(rx);

    pending_ops_completed_elsewhere_reuse_their_slot();
    awaited_foreign_futures_reuse_their_shared_block();

    // The Rust exporter end to end: runtime, channel, 10 000 messages with backpressure,
    // shutdown. A per-message leak would show as >= 10 000 live allocations.
    let cycle = || {
        let rt = Runtime::new(2).unwrap();
        let (tx, mut rx) = rt.channel(1).unwrap();
        rt.handle().spawn(async move {
            for s in 0..10_000 {
                tx.send(m(producer_id(1, s))).await.unwrap();
            }
        });
        let n = block_on("leak cycle", async move {
            let mut n = 0;
            loop {
                match rx.recv().await {
                    Ok(_) => n += 1,
                    Err(RecvError::Closed) => break n,
                    Err(e) => panic!("{e}"),
                }
            }
        });
        assert_eq!(n, 10_000);
        rt.shutdown().unwrap();
    };
    cycle();
    let before = live();
    for _ in 0..3 {
        cycle();
    }
    let g = live() - before;
    eprintln!("exporter cycles: live allocation growth {g}");
    assert!(g.abs() < 200, "30 000 messages through the exporter changed live allocations by {g}");
}

/// A pending send or receive completed on another thread: the completion drops its reference to
/// the op's slot *before* it wakes the task (import/slot.rs `wake_after_drop`), so the woken task
/// finds the slot unshared and the next op reuses it — this thread makes no allocation per op in
/// steady state. (With the wake first, the task usually ran while the completion still held its
/// reference, and every pending op allocated a new slot: the allocation benchmark's finding.) The
/// task polls again only after the wake, as an executor would: that is what makes this exact.
fn pending_ops_completed_elsewhere_reuse_their_slot() {
    const N: u64 = 1000;
    let (wakes, waker) = counting_waker();
    let wait_for_wake = |before: usize, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while wakes.wakes.load(SeqCst) == before {
            assert!(Instant::now() < deadline, "{what}: no wake within 30 s");
            std::thread::yield_now();
        }
    };
    // The completing thread: completes the op whose id is posted in `request` (0: none).
    let request = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let completer = |complete: Box<dyn Fn(u64) + Send>| {
        let (request, stop) = (request.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(SeqCst) {
                match request.swap(0, SeqCst) {
                    0 => std::thread::yield_now(),
                    op => complete(op),
                }
            }
        })
    };
    let pending_id = |f: &Fake| f.ops.lock().unwrap()[0].id; // (Fake::pending collects: allocates)
    let empty = |i: u64| Message::new(i, Vec::new()); // payload 0: the message itself allocates nothing

    let (tx, f) = fake_sender(Mode::Pending);
    let f2 = f.clone();
    let helper = completer(Box::new(move |op| f2.complete_send(op, Status::OK)));
    let mut send_round = |i: u64| {
        let mut fut = tx.send(empty(i));
        assert!(poll_once(&mut fut, &waker).is_pending());
        let before = wakes.wakes.load(SeqCst);
        request.store(pending_id(&f), SeqCst);
        wait_for_wake(before, "pending send");
        assert_eq!(poll_once(&mut fut, &waker), Poll::Ready(Ok(())));
    };
    (0..10).for_each(&mut send_round);
    let before = thread_allocs();
    (0..N).for_each(&mut send_round);
    let sends = thread_allocs() - before;
    stop.store(true, SeqCst);
    helper.join().unwrap();
    assert_eq!(sends, 0, "{N} pending sends completed on another thread allocated {sends} times on this thread");

    stop.store(false, SeqCst);
    let (mut rx, f) = fake_receiver(Mode::Pending);
    let f2 = f.clone();
    let helper = completer(Box::new(move |op| f2.complete_recv(op, Status::OK, Some(&Message::new(op, Vec::new())))));
    let mut recv_round = |_: u64| {
        let mut fut = rx.recv();
        assert!(poll_once(&mut fut, &waker).is_pending());
        let before = wakes.wakes.load(SeqCst);
        let op = pending_id(&f);
        request.store(op, SeqCst);
        wait_for_wake(before, "pending recv");
        assert_eq!(poll_once(&mut fut, &waker), Poll::Ready(Ok(empty(op))));
    };
    (0..10).for_each(&mut recv_round);
    let before = thread_allocs();
    (0..N).for_each(&mut recv_round);
    let recvs = thread_allocs() - before;
    stop.store(true, SeqCst);
    helper.join().unwrap();
    assert_eq!(recvs, 0, "{N} pending receives completed on another thread allocated {recvs} times on this thread");
}

// A minimal exporter for the futures test: handle = x; the first poll answers READY with x * x if
// x is even, PENDING if x is odd (the wake then comes from another thread: `OWED` holds it), and
// the next poll READY. Nothing here allocates.
static OWED: std::sync::Mutex<Option<(usize, usize)>> = std::sync::Mutex::new(None);
static POLLED_PENDING: AtomicU64 = AtomicU64::new(u64::MAX);

unsafe extern "C" fn fake_poll(
    handle: u64,
    wake: ffi::poc_wake_fn,
    deliver: ffi::poc_recv_complete_fn,
    user: *mut std::ffi::c_void,
) -> ffi::poc_status {
    if handle % 2 == 1 && POLLED_PENDING.swap(handle, SeqCst) != handle {
        *OWED.lock().unwrap() = Some((wake.unwrap() as usize, user as usize));
        return Status::PENDING.0;
    }
    let view = ffi::poc_message_view { id: handle * handle, data: std::ptr::null(), len: 0 };
    // SAFETY: deliver/user as the importer gave them, for this synchronous call.
    unsafe { deliver.unwrap()(user, Status::OK.0, &view) };
    Status::OK.0
}
unsafe extern "C" fn fake_ok(_: u64) -> ffi::poc_status {
    Status::OK.0
}
static FAKE_FUTURE: ffi::poc_future_vtable = ffi::poc_future_vtable {
    abi_version: ffi::POC_ABI_VERSION,
    size: std::mem::size_of::<ffi::poc_future_vtable>() as u32,
    poll: Some(fake_poll),
    cancel: Some(fake_ok),
    release: Some(fake_ok),
};

/// Awaiting imported futures one after another allocates nothing per future on this thread in
/// steady state: a dropped `ForeignFuture` keeps its `Shared` block as this thread's spare, and a
/// wake from another thread gives its reference up before it wakes the task (future/import.rs).
/// Without either, each future allocates one block (88 B: rust/poc-bench's `call_allocations`).
fn awaited_foreign_futures_reuse_their_shared_block() {
    const N: u64 = 1000;
    let (wakes, waker) = counting_waker();
    let go = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let waker_thread = {
        let (go, stop) = (go.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(SeqCst) {
                if go.swap(false, SeqCst) {
                    let (wake, user) = OWED.lock().unwrap().take().expect("a wake is owed");
                    // SAFETY: the wake the importer gave with the PENDING poll, called once.
                    let wake: unsafe extern "C" fn(*mut std::ffi::c_void) = unsafe { std::mem::transmute(wake) };
                    unsafe { wake(user as *mut std::ffi::c_void) };
                } else {
                    std::thread::yield_now();
                }
            }
        })
    };
    let mut round = |x: u64| {
        let fut = ffi::poc_future { handle: x, vtable: &FAKE_FUTURE };
        // SAFETY: a future of the fake exporter, owned here.
        let mut f = unsafe { ForeignFuture::from_raw(fut) }.expect("import");
        if x % 2 == 1 {
            let before = wakes.wakes.load(SeqCst);
            assert!(poll_once(&mut f, &waker).is_pending());
            go.store(true, SeqCst);
            let deadline = Instant::now() + Duration::from_secs(30);
            while wakes.wakes.load(SeqCst) == before {
                assert!(Instant::now() < deadline, "future {x}: no wake within 30 s");
                std::thread::yield_now();
            }
        }
        match poll_once(&mut f, &waker) {
            Poll::Ready(Ok(m)) => assert_eq!(m.id, x * x, "future {x}"),
            other => panic!("future {x}: {other:?}"),
        }
    };
    (0..10).for_each(&mut round);
    let before = thread_allocs();
    (10..10 + N).for_each(&mut round);
    let allocs = thread_allocs() - before;
    stop.store(true, SeqCst);
    waker_thread.join().unwrap();
    assert_eq!(allocs, 0, "{N} awaited futures (half woken from another thread) allocated {allocs} times on this thread");
}
