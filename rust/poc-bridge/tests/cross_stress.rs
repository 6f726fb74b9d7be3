//! Cross-runtime stress for the leak and memory checks: `scripts/valgrind` runs this binary under
//! valgrind memcheck (it is an ordinary test too). Messages move Rust ↔ C++ both ways through both
//! exporters — Rust channels (the tokio exporter) read and written by C++ agents, C++ channels
//! (the Asio exporter) read and written by Rust imports and Rust agents — with receives dropped
//! while pending, agents cancelled mid-stream, async calls cancelled in both directions, and each
//! runtime shut down under pending operations. Every round creates its runtimes and channels and
//! ends with both runtimes gone and every port released, so anything a path forgets to free is
//! still allocated at exit, where memcheck looks.
//!
//! Accounting is exact, as in the other cross-runtime tests: counts and checksums of what arrived
//! equal the reports of the agents that sent it, every agent reports exactly once. The report
//! recorders are created before the runtimes, so that if an assertion fails they are dropped after
//! them while unwinding (a C++ agent's `done` never runs against a freed recorder).
//!
//! Size: `POC_STRESS_ROUNDS` rounds (default 2) of `POC_STRESS_MESSAGES` messages per stream
//! (default 2 000). scripts/valgrind picks sizes that finish in a few minutes under memcheck.

mod common;
mod cpp_support;

use std::sync::mpsc;
use std::task::Poll;

use common::*;
use cpp_support::*;
use futures::future::{select, Either};
use poc_bridge::ffi::{cpp, poc_future, poc_receiver, poc_sender};
use poc_bridge::future::lend::{square_fn, SquareMode};
use poc_bridge::future::{CallError, ForeignFuture};
use poc_bridge::message::{producer_id, seq_of, stream_of};
use poc_bridge::{Message, PortReceiver, PortSender, RecvError, Runtime, SendError, Status};

const HOUR_MS: u32 = 3_600_000;

fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn rounds() -> u64 {
    env_or("POC_STRESS_ROUNDS", 2).max(1)
}

fn messages() -> u64 {
    env_or("POC_STRESS_MESSAGES", 2_000).max(1)
}

fn import_tx(tx: poc_sender) -> PortSender {
    unsafe { PortSender::from_raw(tx) }.expect("sender vtable")
}

fn import_rx(rx: poc_receiver) -> PortReceiver {
    unsafe { PortReceiver::from_raw(rx) }.expect("receiver vtable")
}

/// Payload lengths vary per round and stream (0 included), so message buffers of many sizes are
/// allocated and freed on both sides.
fn payload_len(round: u64, stream: u64) -> usize {
    ((round * 13 + stream * 7) % 48) as usize
}

/// Receives until CLOSED; about every other receive is dropped while pending after a random
/// number (0–3) of polls (a cancel in the exporter; a message that won the race is kept by the
/// import for the next receive), and the receive after a drop is awaited plainly, so the loop
/// never spins on an empty channel (which starves the other threads under valgrind). Checks
/// per-stream order; returns (count, checksum, receives dropped).
async fn drain_with_drops(rx: &mut PortReceiver, seed: u64, streams: usize) -> (u64, u64, u64) {
    let mut rng = Rng::new(seed);
    let mut next = vec![0u64; streams];
    let (mut count, mut sum, mut dropped) = (0u64, 0u64, 0u64);
    loop {
        let raced = if rng.below(2) == 0 {
            match select(rx.recv(), Yields(rng.below(4))).await {
                Either::Left((got, _)) => Some(got),
                Either::Right(((), recv)) => {
                    drop(recv);
                    dropped += 1;
                    None
                }
            }
        } else {
            None
        };
        let got = match raced {
            Some(got) => got,
            None => rx.recv().await,
        };
        match got {
            Ok(m) => {
                let s = stream_of(m.id) as usize;
                assert!(s < streams, "unexpected stream of {:#x}", m.id);
                assert_eq!(seq_of(m.id), next[s], "order of stream {s}");
                assert!(m.has_pattern(), "payload of {:#x} intact", m.id);
                next[s] += 1;
                count += 1;
                sum = sum.wrapping_add(m.checksum());
            }
            Err(RecvError::Closed) => return (count, sum, dropped),
            Err(e) => panic!("receive failed: {e}"),
        }
    }
}

/// Rust producer agents (tokio) → one C++ channel (capacity 1, the sender cloned through the C++
/// vtable) → a Rust `PortReceiver` on a thread with no runtime that drops receives at random
/// points: the Asio exporter serving Rust imports, cancels included.
#[test]
fn rust_producers_through_a_cpp_channel_with_dropped_receives() {
    let n = messages();
    for round in 0..rounds() {
        let producers = Reports::new();
        let rt = Runtime::new(2).unwrap();
        let cpp = CppRuntime::new(2);
        let (tx, rx) = cpp.channel_ports(1, 0);
        let (st, tx2) = raw_clone(tx);
        assert_eq!(st, Status::OK, "clone a C++ sender port");
        rt.start_producer(import_tx(tx), 0, n, payload_len(round, 0), producers.closure()).unwrap();
        rt.start_producer(import_tx(tx2), 1, n, payload_len(round, 1), producers.closure()).unwrap();
        let mut rx = import_rx(rx);
        let (count, sum, dropped) =
            block_on("Rust receiver of the C++ channel", async move { drain_with_drops(&mut rx, round + 1, 2).await });
        let (a, b) = (producers.wait("Rust producer 0"), producers.wait("Rust producer 1"));
        assert_eq!((status(&a), a.messages, status(&b), b.messages), (Status::OK, n, Status::OK, n));
        assert_eq!(count, 2 * n, "every message arrived once (round {round})");
        assert_eq!(sum, a.checksum.wrapping_add(b.checksum), "checksum (round {round})");
        assert!(dropped > 0, "no receive was dropped: the cancel path was not exercised");
        rt.shutdown().unwrap();
        drop(cpp);
        producers.assert_exactly_once("Rust producers");
    }
}

/// A C++ producer agent → a Rust channel (capacity 1) → a C++ echo agent → a C++ channel
/// (capacity 1) → a Rust echo agent → a Rust channel → a Rust `PortReceiver` dropping receives:
/// every message crosses both exporters and both importers of each runtime.
#[test]
fn a_ring_through_both_exporters_and_both_importers() {
    let n = messages();
    for round in 0..rounds() {
        let (producer, cpp_echo, rust_echo) = (Reports::new(), Reports::new(), Reports::new());
        let rt = Runtime::new(2).unwrap();
        let cpp = CppRuntime::new(2);
        let (a_tx, a_rx) = rt.channel_ports(1, 0).unwrap();
        let (b_tx, b_rx) = cpp.channel_ports(1, 0);
        let (c_tx, c_rx) = rt.channel_ports(1, 0).unwrap();
        cpp.start_echo(a_rx, b_tx, &cpp_echo);
        rt.start_echo(import_rx(b_rx), import_tx(c_tx), rust_echo.closure()).unwrap();
        cpp.start_producer(a_tx, 0, n, payload_len(round, 2), &producer);
        let mut rx = import_rx(c_rx);
        let (count, sum, _) =
            block_on("Rust receiver at the end of the ring", async move { drain_with_drops(&mut rx, round + 7, 1).await });
        let (p, e1, e2) = (producer.wait("C++ producer"), cpp_echo.wait("C++ echo"), rust_echo.wait("Rust echo"));
        assert_eq!((status(&p), p.messages), (Status::OK, n));
        assert_eq!((status(&e1), e1.messages, e1.checksum), (Status::OK, n, p.checksum), "C++ echo");
        assert_eq!((status(&e2), e2.messages, e2.checksum), (Status::OK, n, p.checksum), "Rust echo");
        assert_eq!((count, sum), (n, p.checksum), "what arrived == what the C++ producer sent");
        rt.shutdown().unwrap();
        drop(cpp);
        for (r, what) in [(&producer, "producer"), (&cpp_echo, "C++ echo"), (&rust_echo, "Rust echo")] {
            r.assert_exactly_once(what);
        }
    }
}

/// Producers cancelled mid-stream while blocked on a full channel of the other runtime: a C++
/// producer on a Rust channel (a pending send cancelled in the tokio exporter) and a Rust producer
/// on a C++ channel (cancelled in the Asio exporter). What each counted is exactly what arrived.
#[test]
fn producers_cancelled_mid_stream_on_foreign_channels() {
    for round in 0..rounds() {
        let mut rng = Rng::new(round + 11);
        let cpp_producer = Reports::new();
        let rust_producer = Reports::new();
        let rt = Runtime::new(2).unwrap();
        let cpp = CppRuntime::new(2);

        // C++ producer → Rust channel.
        let (tx, rx) = rt.channel_ports(1, 0).unwrap();
        let id = cpp.start_producer(tx, 3, u64::MAX >> 16, payload_len(round, 3), &cpp_producer);
        let before = 1 + rng.below(200);
        let mut rx = import_rx(rx);
        let rx = block_on("first messages of the C++ producer", async move {
            for _ in 0..before {
                rx.recv().await.expect("a message of the C++ producer");
            }
            rx
        });
        cpp.cancel(id);
        let p = cpp_producer.wait("cancelled C++ producer");
        assert_eq!(status(&p), Status::CANCELLED);
        let mut rx = rx;
        let (rest, rest_sum) = block_on("drain the Rust channel", async move {
            let (mut n, mut sum) = (0u64, 0u64);
            while let Ok(m) = rx.recv().await {
                assert_eq!(seq_of(m.id), before + n, "order after the cancel");
                n += 1;
                sum = sum.wrapping_add(m.checksum());
            }
            (n, sum)
        });
        assert_eq!(before + rest, p.messages, "C++ producer counted exactly what arrived");
        let first_sum = (0..before)
            .map(|s| Message::with_pattern(producer_id(3, s), payload_len(round, 3)).checksum())
            .fold(0u64, u64::wrapping_add);
        assert_eq!(first_sum.wrapping_add(rest_sum), p.checksum);

        // Rust producer → C++ channel.
        let (tx, rx) = cpp.channel_ports(1, 0);
        let id = rt
            .start_producer(import_tx(tx), 4, u64::MAX >> 16, payload_len(round, 4), rust_producer.closure())
            .unwrap();
        let before = 1 + rng.below(200);
        let mut rx = import_rx(rx);
        let rx = block_on("first messages of the Rust producer", async move {
            for _ in 0..before {
                rx.recv().await.expect("a message of the Rust producer");
            }
            rx
        });
        rt.cancel_agent(id);
        let p = rust_producer.wait("cancelled Rust producer");
        assert_eq!(status(&p), Status::CANCELLED);
        let mut rx = rx;
        let rest = block_on("drain the C++ channel", async move {
            let mut n = 0u64;
            while let Ok(m) = rx.recv().await {
                assert_eq!(seq_of(m.id), before + n, "order after the cancel");
                n += 1;
            }
            n
        });
        assert_eq!(before + rest, p.messages, "Rust producer counted exactly what arrived");

        rt.shutdown().unwrap();
        drop(cpp);
        cpp_producer.assert_exactly_once("C++ producer");
        rust_producer.assert_exactly_once("Rust producer");
    }
}

/// Each runtime shut down while agents of the other are blocked on its ports (a producer on a full
/// channel, a consumer on an empty one) and while Rust imports have a send and a receive pending
/// on C++ ports: everything completes with SHUTDOWN, exactly once, and is released afterwards.
#[test]
fn shutdown_of_either_runtime_under_pending_cross_runtime_ops() {
    for round in 0..rounds() {
        // The Rust runtime goes first: C++ agents on Rust ports.
        let (producer, consumer) = (Reports::new(), Reports::new());
        let rt = Runtime::new(2).unwrap();
        let cpp = CppRuntime::new(2);
        let (ptx, prx) = rt.channel_ports(1, 0).unwrap();
        let (ctx, crx) = rt.channel_ports(1, 0).unwrap();
        cpp.start_producer(ptx, 1, u64::MAX >> 16, payload_len(round, 5), &producer);
        cpp.start_consumer(crx, &consumer);
        let (mut prx, ctx) = (import_rx(prx), import_tx(ctx));
        let (prx, ctx) = block_on("both C++ agents run", async move {
            assert_eq!(prx.recv().await.expect("first message").id, producer_id(1, 0));
            for s in 0..2 {
                ctx.send(Message::with_pattern(producer_id(0, s), 3)).await.expect("send to the C++ consumer");
            }
            (prx, ctx)
        });
        within("Rust runtime shutdown", move || rt.shutdown()).unwrap();
        let (p, c) = (producer.wait("C++ producer"), consumer.wait("C++ consumer"));
        assert_eq!((status(&p), status(&c)), (Status::SHUTDOWN, Status::SHUTDOWN), "{p:?} {c:?}");
        drop((prx, ctx));
        assert_eq!(cpp.shutdown(), Status::OK);
        drop(cpp);
        producer.assert_exactly_once("C++ producer");
        consumer.assert_exactly_once("C++ consumer");

        // The C++ runtime goes first: Rust agents and pending Rust imports on C++ ports.
        let (producer, consumer) = (Reports::new(), Reports::new());
        let rt = Runtime::new(2).unwrap();
        let cpp = CppRuntime::new(2);
        let (ptx, prx) = cpp.channel_ports(1, 0);
        let (ctx, crx) = cpp.channel_ports(1, 0);
        rt.start_producer(import_tx(ptx), 1, u64::MAX >> 16, payload_len(round, 6), producer.closure()).unwrap();
        rt.start_consumer(import_rx(crx), consumer.closure()).unwrap();
        let (mut prx, ctx) = (import_rx(prx), import_tx(ctx));
        let (prx, ctx) = block_on("both Rust agents run", async move {
            assert_eq!(prx.recv().await.expect("first message").id, producer_id(1, 0));
            for s in 0..2 {
                ctx.send(Message::with_pattern(producer_id(0, s), 3)).await.expect("send to the Rust consumer");
            }
            (prx, ctx)
        });
        let (tx, rx) = cpp.channel(1);
        let (tx2, mut rx2) = cpp.channel(1);
        tx.try_send(Message::with_pattern(producer_id(9, 0), 5)).unwrap();
        let (ready_tx, ready_rx) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            futures::executor::block_on(async move {
                let (_wakes, waker) = counting_waker();
                let mut send = tx.send(Message::with_pattern(producer_id(9, 1), 5));
                let mut recv = rx2.recv();
                assert!(poll_once(&mut send, &waker).is_pending(), "the channel is full: the send waits");
                assert!(poll_once(&mut recv, &waker).is_pending(), "nothing queued: the receive waits");
                let _ = ready_tx.send(());
                (send.await, recv.await)
            })
        });
        ready_rx.recv_timeout(LIMIT).expect("Rust imports pending on C++ ports");
        assert_eq!(cpp.shutdown(), Status::OK, "C++ runtime shutdown (bounded by the C++ side)");
        let (p, c) = (producer.wait("Rust producer"), consumer.wait("Rust consumer"));
        assert_eq!((status(&p), status(&c)), (Status::SHUTDOWN, Status::SHUTDOWN), "{p:?} {c:?}");
        let (s, r) = within("pending imports completed by the C++ shutdown", move || waiter.join().unwrap());
        assert!(matches!(&s, Err(SendError::Shutdown(m)) if m.id == producer_id(9, 1)), "send: {s:?}");
        assert_eq!(r.unwrap_err(), RecvError::Shutdown);
        drop(cpp); // freed; the ports below are released afterwards
        drop((prx, ctx, rx, tx2));
        rt.shutdown().unwrap();
        producer.assert_exactly_once("Rust producer");
        consumer.assert_exactly_once("Rust consumer");
    }
}

fn cpp_square(cpp: &CppRuntime, x: u64, delay_ms: u32) -> ForeignFuture {
    let mut f = poc_future { handle: 0, vtable: std::ptr::null() };
    assert_eq!(Status(unsafe { cpp::poc_cpp_delayed_square(cpp.raw(), x, delay_ms, &mut f) }), Status::OK);
    unsafe { ForeignFuture::from_raw(f) }.expect("C++ future vtable")
}

fn cpp_sum_calls(cpp: &CppRuntime, f: poc_bridge::ffi::poc_async_fn, first: u64, count: u32) -> ForeignFuture {
    let mut out = poc_future { handle: 0, vtable: std::ptr::null() };
    assert_eq!(Status(unsafe { cpp::poc_cpp_sum_calls(cpp.raw(), f, first, count, &mut out) }), Status::OK);
    unsafe { ForeignFuture::from_raw(out) }.expect("C++ future vtable")
}

/// Async calls both ways, completed, cancelled and cut by shutdown: Rust awaiting C++ timer
/// operations (`poc_cpp_delayed_square`) and C++ awaiting Rust futures (`poc_cpp_sum_calls` over
/// the Rust square function, posted and hour-long timer modes).
#[test]
fn async_calls_both_ways_completed_cancelled_and_shut_down() {
    for round in 0..rounds() {
        let rt = Runtime::new(2).unwrap();
        let cpp = CppRuntime::new(2);
        let x = round + 2;

        // Rust → C++: a value, an error, a pending call dropped (cancel + release on the C++ side).
        assert_eq!(block_on("C++ square", cpp_square(&cpp, x, 0)).unwrap().id, x * x);
        assert!(matches!(block_on("C++ overflow", cpp_square(&cpp, 1 << 40, 0)), Err(CallError::Error { code: 400, .. })));
        let mut pending = cpp_square(&cpp, x, HOUR_MS);
        let (_, waker) = counting_waker();
        assert!(poll_once(&mut pending, &waker).is_pending());
        drop(pending);

        // C++ → Rust: C++ sums of Rust squares, one to completion, one cancelled during an
        // hour-long Rust call.
        let f = square_fn(Some(&rt), SquareMode::Posted, 0).unwrap();
        let v = block_on("C++ sum of Rust squares", cpp_sum_calls(&cpp, f, 1, 4)).unwrap();
        assert_eq!(v.id, 1 + 4 + 9 + 16);
        let f = square_fn(Some(&rt), SquareMode::Timer, HOUR_MS).unwrap();
        let mut sum = cpp_sum_calls(&cpp, f, 1, 3);
        let (counter, waker) = counting_waker();
        assert!(poll_once(&mut sum, &waker).is_pending());
        sum.cancel();
        let deadline = std::time::Instant::now() + LIMIT;
        while counter.wakes.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            assert!(std::time::Instant::now() < deadline, "the cancelled C++ sum never woke its awaiter");
            std::thread::yield_now();
        }
        assert_eq!(poll_once(&mut sum, &waker), Poll::Ready(Err(CallError::Cancelled)));
        drop(sum);

        // Shutdown under a pending Rust → C++ call.
        let mut pending = cpp_square(&cpp, x, HOUR_MS);
        let (_, waker) = counting_waker();
        assert!(poll_once(&mut pending, &waker).is_pending());
        assert_eq!(cpp.shutdown(), Status::OK, "C++ runtime shutdown (bounded by the C++ side)");
        assert_eq!(block_on("after the shutdown", pending), Err(CallError::Shutdown));
        drop(cpp);
        within("Rust runtime shutdown", move || drop(rt));
    }
}
