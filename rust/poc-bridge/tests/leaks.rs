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

use std::task::Poll;

use common::fake::*;
use common::*;
use counting_alloc::{live, thread_live};
use poc_bridge::message::producer_id;
use poc_bridge::{Message, RecvError, Runtime, Status};

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
