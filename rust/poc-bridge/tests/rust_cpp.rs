//! Rust ↔ C++: a C++ Asio `concurrent_channel` (`poc_cpp_channel_new`) imported into Rust with
//! `PortSender` / `PortReceiver`. The same behaviours as `rust_to_rust.rs`, with the C++
//! exporter on the other side of every vtable call: FIFO, backpressure, close → drain → CLOSED,
//! receiver close, drop-while-pending storms, dropped sends, import with no runtime, shutdown of
//! the C++ runtime with Rust ops pending, payload limits, raw completions counted exactly once.

mod common;
mod cpp_support;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use cpp_support::*;
use futures::future::{select, Either};
use futures::StreamExt;
use poc_bridge::ffi::POC_DEFAULT_MAX_PAYLOAD;
use poc_bridge::message::{producer_id, seq_of, stream_of};
use poc_bridge::{
    Message, PortReceiver, PortSender, RecvError, Runtime, SendError, Status, TryRecvError, TrySendError,
};

fn pattern(stream: u64, seq: u64) -> Message {
    Message::with_pattern(producer_id(stream, seq), (seq % 100) as usize)
}

fn expected_checksum(stream: u64, n: u64) -> u64 {
    (0..n).map(|s| pattern(stream, s).checksum()).fold(0u64, u64::wrapping_add)
}

/// The checksum a C++ producer agent reports for `n` messages of `len`-byte payloads.
fn producer_checksum(stream: u64, n: u64, len: usize) -> u64 {
    (0..n).map(|s| Message::with_pattern(producer_id(stream, s), len).checksum()).fold(0, u64::wrapping_add)
}

/// Receives until CLOSED; asserts order and pattern; returns (count, checksum).
async fn drain_in_order(rx: &mut PortReceiver, stream: u64) -> (u64, u64) {
    let (mut count, mut sum) = (0u64, 0u64);
    loop {
        match rx.recv().await {
            Ok(m) => {
                assert_eq!((stream_of(m.id), seq_of(m.id)), (stream, count), "FIFO order");
                assert!(m.has_pattern(), "payload of {:#x} intact", m.id);
                count += 1;
                sum = sum.wrapping_add(m.checksum());
            }
            Err(RecvError::Closed) => return (count, sum),
            Err(e) => panic!("receive failed: {e}"),
        }
    }
}

#[test]
fn fifo_order_from_a_tokio_task_through_a_cpp_channel() {
    let cpp = CppRuntime::new(2);
    let rt = Runtime::new(2).unwrap();
    let (tx, mut rx) = cpp.channel(8);
    let producer = rt.handle().spawn(async move {
        for s in 0..2000 {
            tx.send(pattern(1, s)).await.expect("send into the C++ channel");
        }
        // dropping tx releases the last C++ sender port: the channel closes
    });
    let (count, sum) = block_on("consumer of the C++ channel", async move { drain_in_order(&mut rx, 1).await });
    assert_eq!(count, 2000);
    assert_eq!(sum, expected_checksum(1, 2000));
    block_on("producer task", producer).unwrap();
    rt.shutdown().unwrap();
    assert_eq!(cpp.shutdown(), Status::OK);
}

#[test]
fn backpressure_capacity_1_ten_thousand_messages_none_dropped() {
    const N: u64 = 10_000;
    let cpp = CppRuntime::new(2);
    let rt = Runtime::new(2).unwrap();
    let (tx, mut rx) = cpp.channel(1);
    rt.handle().spawn(async move {
        for s in 0..N {
            tx.send(pattern(3, s)).await.expect("send under backpressure");
        }
    });
    let (count, sum) = block_on("consumer without a runtime", async move { drain_in_order(&mut rx, 3).await });
    assert_eq!(count, N, "nothing dropped");
    assert_eq!(sum, expected_checksum(3, N), "checksum of what arrived == checksum of what was sent");
    rt.shutdown().unwrap();
}

#[test]
fn close_then_drain_then_closed() {
    let cpp = CppRuntime::new(1);
    let (tx, mut rx) = cpp.channel(4);
    for s in 0..3 {
        tx.try_send(pattern(0, s)).unwrap();
    }
    assert!(matches!(tx.try_send(pattern(0, 9)), Ok(())), "capacity 4 has room for a 4th");
    assert_eq!(tx.close(), Status::OK);
    assert_eq!(tx.close(), Status::OK, "close is idempotent");
    let e = tx.try_send(pattern(0, 3)).unwrap_err();
    assert!(matches!(&e, TrySendError::Closed(m) if *m == pattern(0, 3)));
    let e = futures::executor::block_on(tx.send(pattern(0, 4))).unwrap_err();
    assert!(matches!(&e, SendError::Closed(m) if *m == pattern(0, 4)), "the message comes back");
    let got = block_on("drain", async move {
        let mut got = vec![rx.try_recv().unwrap().id];
        while let Ok(m) = rx.recv().await {
            got.push(m.id);
        }
        assert_eq!(rx.recv().await.unwrap_err(), RecvError::Closed);
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Closed);
        got
    });
    let mut expected: Vec<u64> = (0..3).map(|s| producer_id(0, s)).collect();
    expected.push(producer_id(0, 9));
    assert_eq!(got, expected, "everything queued before the close is drained, in order");
}

#[test]
fn receiver_close_fails_pending_sends_with_closed() {
    let cpp = CppRuntime::new(2);
    let rt = Runtime::new(2).unwrap();
    let (tx, rx) = cpp.channel(1);
    let tx = Arc::new(tx);
    tx.try_send(pattern(0, 0)).unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let pending = {
        let tx = tx.clone();
        rt.handle().spawn(async move {
            let fut = tx.send(pattern(0, 1));
            let _ = started_tx.send(());
            fut.await
        })
    };
    started_rx.recv_timeout(LIMIT).expect("send task started");
    // whether the send is already pending in the C++ exporter or not yet issued, it fails CLOSED
    assert_eq!(rx.close(), Status::OK);
    match block_on("pending send", pending).unwrap() {
        Err(SendError::Closed(m)) => assert_eq!(m, pattern(0, 1)),
        other => panic!("expected Closed with the message back, got {other:?}"),
    }
    assert!(matches!(tx.try_send(pattern(0, 2)), Err(TrySendError::Closed(_))));
    drop(rx);
    rt.shutdown().unwrap();
}

/// Receive futures dropped at random points while a C++ producer agent sends: every cancel that
/// lost its race to the C++ exporter left its message in the stash, so nothing is lost and the
/// order holds; the C++ producer's count and checksum equal what Rust received.
#[test]
fn drop_while_pending_storm_on_block_on_loses_nothing() {
    const N: u64 = 20_000;
    const LEN: usize = 24;
    let cpp = CppRuntime::new(2);
    let (tx, rx) = cpp.channel_ports(4, 0);
    let mut rx = unsafe { PortReceiver::from_raw(rx) }.unwrap();
    let producer = Reports::new();
    cpp.start_producer(tx, 5, N, LEN, &producer);
    let (count, sum, dropped) = block_on("storm consumer", async move {
        let mut rng = Rng::new(0x5eed);
        let (mut count, mut sum, mut dropped) = (0u64, 0u64, 0u64);
        loop {
            match select(rx.recv(), Yields(rng.below(4))).await {
                Either::Left((Ok(m), _)) => {
                    assert_eq!(seq_of(m.id), count, "order kept across cancelled receives");
                    assert!(m.has_pattern());
                    count += 1;
                    sum = sum.wrapping_add(m.checksum());
                }
                Either::Left((Err(RecvError::Closed), _)) => break,
                Either::Left((Err(e), _)) => panic!("{e}"),
                Either::Right(((), recv)) => {
                    drop(recv); // cancels the pending receive in the C++ exporter
                    dropped += 1;
                }
            }
        }
        (count, sum, dropped)
    });
    let p = producer.wait("C++ producer");
    assert_eq!((status(&p), p.messages), (Status::OK, N));
    assert_eq!(count, N, "every message arrived once");
    assert_eq!(sum, p.checksum, "Rust's checksum == the C++ producer's");
    assert_eq!(sum, producer_checksum(5, N, LEN));
    assert!(dropped > 0, "the storm dropped no receive: it tested nothing");
    drop(cpp);
    producer.assert_exactly_once("producer");
}

/// The same storm with the consumer as a tokio task (completions from C++ threads, wakes into the
/// tokio pool) and four C++ producers on cloned sender ports.
#[test]
fn drop_while_pending_storm_on_tokio_loses_nothing() {
    const N: u64 = 5_000;
    const P: u64 = 4;
    let cpp = CppRuntime::new(2);
    let rt = Runtime::new(2).unwrap();
    let (tx, rx) = cpp.channel_ports(2, 0);
    let mut rx = unsafe { PortReceiver::from_raw(rx) }.unwrap();
    let producers = Reports::new();
    let mut senders = vec![tx];
    for _ in 1..P {
        let (st, clone) = raw_clone(tx);
        assert_eq!(st, Status::OK, "clone a C++ sender port");
        senders.push(clone);
    }
    for (p, s) in senders.into_iter().enumerate() {
        cpp.start_producer(s, p as u64, N, 8, &producers);
    }
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    rt.handle().spawn(async move {
        let mut rng = Rng::new(42);
        let mut next = vec![0u64; P as usize];
        let mut sum = 0u64;
        loop {
            match select(rx.recv(), Yields(rng.below(3))).await {
                Either::Left((Ok(m), _)) => {
                    let st = stream_of(m.id) as usize;
                    assert_eq!(seq_of(m.id), next[st], "per-stream order");
                    next[st] += 1;
                    sum = sum.wrapping_add(m.checksum());
                }
                Either::Left((Err(RecvError::Closed), _)) => break,
                Either::Left((Err(e), _)) => panic!("{e}"),
                Either::Right(_) => {}
            }
        }
        let _ = done_tx.send((next, sum));
    });
    let (next, sum) = done_rx.recv_timeout(LIMIT).expect("tokio consumer finished within the limit");
    assert!(next.iter().all(|&n| n == N), "counts per stream: {next:?}");
    let mut produced = 0u64;
    for i in 0..P {
        let r = producers.wait(&format!("producer {i}"));
        assert_eq!((status(&r), r.messages), (Status::OK, N));
        produced = produced.wrapping_add(r.checksum);
    }
    assert_eq!(sum, produced, "Rust's checksum == the sum of the C++ producers'");
    rt.shutdown().unwrap();
    drop(cpp);
    producers.assert_exactly_once("producers");
}

/// Sends into a C++ channel dropped at random points: a dropped send either went through or not,
/// but nothing is duplicated, every send that resolved `Ok` arrives, and order follows send order.
#[test]
fn dropped_sends_are_never_duplicated_or_lost_when_ok() {
    const N: u64 = 5_000;
    let cpp = CppRuntime::new(2);
    let rt = Runtime::new(2).unwrap();
    let (tx, mut rx) = cpp.channel(2);
    let consumer = rt.handle().spawn(async move {
        let mut got = Vec::new();
        while let Ok(m) = rx.recv().await {
            got.push(m.id);
        }
        got
    });
    let oks = block_on("dropping sender", async move {
        let mut rng = Rng::new(7);
        let mut oks = HashSet::new();
        for s in 0..N {
            match select(tx.send(pattern(9, s)), Yields(rng.below(3))).await {
                Either::Left((r, _)) => {
                    r.unwrap();
                    oks.insert(producer_id(9, s));
                }
                Either::Right(_) => {} // dropped: cancelled, or it won the race
            }
        }
        oks
    });
    let got = block_on("consumer", consumer).unwrap();
    let set: HashSet<u64> = got.iter().copied().collect();
    assert_eq!(set.len(), got.len(), "no duplicates");
    assert!(oks.is_subset(&set), "every Ok send arrived");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "order follows send order");
    assert!(oks.len() < N as usize, "some sends were dropped before completing");
    rt.shutdown().unwrap();
}

#[test]
fn the_import_of_a_cpp_channel_needs_no_runtime() {
    let cpp = CppRuntime::new(1);
    let (tx, mut rx) = cpp.channel(1);
    let sum = block_on("send and recv on one block_on thread", async move {
        assert!(tokio::runtime::Handle::try_current().is_err(), "no tokio context here");
        let mut sum = 0u64;
        for s in 0..500 {
            // capacity 1: every second send waits for the recv below to make room
            let m = pattern(2, s);
            sum = sum.wrapping_add(m.checksum());
            let (a, b) = futures::future::join(tx.send(m), rx.recv()).await;
            a.unwrap();
            assert_eq!(seq_of(b.unwrap().id), s);
        }
        sum
    });
    assert_eq!(sum, expected_checksum(2, 500));
}

/// Shutting down the C++ runtime while Rust has a send and a receive pending on its ports: both
/// complete with SHUTDOWN (the message comes back), later calls answer SHUTDOWN, and the ports
/// are released safely after the runtime was freed.
#[test]
fn cpp_shutdown_completes_pending_rust_imports_with_shutdown() {
    let cpp = CppRuntime::new(2);
    let (tx, rx) = cpp.channel(1);
    let (tx2, mut rx2) = cpp.channel(1);
    tx.try_send(pattern(0, 0)).unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        futures::executor::block_on(async move {
            let (_wakes, waker) = counting_waker();
            let mut send = tx.send(pattern(0, 1));
            let mut recv = rx2.recv();
            assert!(poll_once(&mut send, &waker).is_pending(), "the channel is full: the send waits");
            assert!(poll_once(&mut recv, &waker).is_pending(), "nothing queued: the receive waits");
            let _ = ready_tx.send(());
            let s = send.await;
            let r = recv.await;
            (s, r, tx, rx2)
        })
    });
    ready_rx.recv_timeout(LIMIT).expect("ops pending on the C++ ports");
    assert_eq!(cpp.shutdown(), Status::OK);
    let (s, r, tx, mut rx2) = within("pending imports completed by the C++ shutdown", move || waiter.join().unwrap());
    assert!(matches!(&s, Err(SendError::Shutdown(m)) if *m == pattern(0, 1)), "send: {s:?}");
    assert_eq!(r.unwrap_err(), RecvError::Shutdown);
    assert!(matches!(tx.try_send(pattern(0, 2)), Err(TrySendError::Shutdown(_))));
    assert_eq!(rx2.try_recv().unwrap_err(), TryRecvError::Shutdown);
    assert_eq!(tx.close(), Status::SHUTDOWN);
    drop(cpp); // free; the ports are released afterwards, safely
    drop((tx, rx, tx2, rx2));
}

#[test]
fn oversized_payloads_are_rejected_by_the_cpp_exporter() {
    let cpp = CppRuntime::new(1);
    // a per-channel limit of 8 bytes
    let (tx, rx) = cpp.channel_ports(2, 8);
    let tx = unsafe { PortSender::from_raw(tx) }.unwrap();
    let mut rx = unsafe { PortReceiver::from_raw(rx) }.unwrap();
    let e = futures::executor::block_on(tx.send(Message::new(1, vec![0; 9]))).unwrap_err();
    assert_eq!(e.status(), Status::INVALID);
    assert_eq!(e.into_inner().payload.len(), 9, "the message comes back");
    let e = tx.try_send(Message::new(2, vec![0; 9])).unwrap_err();
    assert_eq!(e.status(), Status::INVALID);
    futures::executor::block_on(tx.send(Message::new(3, vec![7; 8]))).expect("8 bytes is within the limit");
    assert_eq!(rx.try_recv().unwrap(), Message::new(3, vec![7; 8]), "only the valid message went in");
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);

    // the default limit, 16 MiB
    let (tx, mut rx) = cpp.channel(1);
    let e = tx.try_send(Message::new(4, vec![0; POC_DEFAULT_MAX_PAYLOAD + 1])).unwrap_err();
    assert_eq!(e.status(), Status::INVALID);
    let big = Message::with_pattern(5, POC_DEFAULT_MAX_PAYLOAD);
    futures::executor::block_on(tx.send(big.clone())).expect("exactly 16 MiB is accepted");
    let got = rx.try_recv().unwrap();
    assert_eq!(got.checksum(), big.checksum());
    assert!(got == big, "16 MiB payload crossed intact");
    assert_eq!(cpp.shutdown(), Status::OK);
}

/// The C++ exporter's vtables driven raw from Rust, counting callbacks: after PENDING the
/// completion runs exactly once, on a C++ thread (never the caller's), with the outcome; a fast
/// path calls no completion; deliver runs synchronously.
#[test]
fn raw_ops_on_cpp_ports_complete_exactly_once() {
    let cpp = CppRuntime::new(2);
    let (tx, rx) = cpp.channel_ports(1, 0);
    let me = std::thread::current().name().unwrap_or("?").to_string();
    let sends = Recorder::new();
    let recvs = Recorder::new();
    let mut pending = 0usize;

    // fast path: room for one
    let mut op = 0;
    assert_eq!(raw_send(tx, &pattern(0, 0), &sends, &mut op), Status::OK);
    // full: two sends wait
    let (mut op1, mut op2) = (0, 0);
    assert_eq!(raw_send(tx, &pattern(0, 1), &sends, &mut op1), Status::PENDING);
    assert_eq!(raw_send(tx, &pattern(0, 2), &sends, &mut op2), Status::PENDING);
    pending += 2;
    assert!(op1 != 0 && op2 != 0 && op1 != op2, "op ids written and distinct");
    assert_eq!(raw_try_send(tx, &pattern(0, 3)), Status::FULL);
    // cancel the second: no effect had happened, so it completes CANCELLED
    assert_eq!(raw_send_cancel(tx, op2), Status::OK);
    let e = sends.next("cancelled send");
    assert_eq!(e.status, Status::CANCELLED);
    assert_ne!(e.thread, me, "completion on a C++ thread, not the caller's");
    assert_eq!(raw_send_cancel(tx, op2), Status::OK, "a second cancel of a completed op is a no-op");
    // receive the first: room appears, the first pending send completes OK
    assert_eq!(raw_try_recv(rx, &recvs), Status::OK);
    let e = sends.next("send that got room");
    assert_eq!(e.status, Status::OK);
    let mut rop = 0;
    assert_eq!(raw_recv(rx, &recvs, &mut rop), Status::OK, "queued: delivered synchronously");
    assert_eq!(recvs.delivers(), 2);
    assert_eq!(
        recvs.delivered.lock().unwrap().iter().map(|m| m.id).collect::<Vec<_>>(),
        [producer_id(0, 0), producer_id(0, 1)]
    );
    // an empty channel: the receive waits, then the sender's close completes it with CLOSED
    assert_eq!(raw_recv(rx, &recvs, &mut rop), Status::PENDING);
    pending += 1;
    assert_eq!(raw_send_close(tx), Status::OK);
    let e = recvs.next("receive completed by close");
    assert_eq!((e.status, e.msg.is_none()), (Status::CLOSED, true));
    assert_ne!(e.thread, me);
    assert_eq!(raw_recv(rx, &recvs, &mut rop), Status::CLOSED, "closed and drained");
    assert_eq!(raw_send_release(tx), Status::OK);
    assert_eq!(raw_recv_release(rx), Status::OK);
    assert_eq!(raw_send_release(tx), Status::INVALID, "a second release is INVALID");
    assert_eq!(raw_recv_release(rx), Status::INVALID);
    drop(cpp); // no callback can come after the runtime is gone
    assert_eq!(sends.completions() + recvs.completions(), pending, "exactly one completion per PENDING");
    assert!(sends.try_next().is_none() && recvs.try_next().is_none(), "no extra completion");
}

/// Rust as a bridge between two C++ channels: C++ producer → C++ channel → Rust `Stream` →
/// `Sink` → C++ channel → C++ consumer. `forward` closes the Sink at the end, which closes the
/// second channel, which ends the consumer.
#[test]
fn stream_forward_between_two_cpp_channels() {
    const N: u64 = 3_000;
    let cpp = CppRuntime::new(2);
    let rt = Runtime::new(1).unwrap();
    let (tx1, rx1) = cpp.channel_ports(4, 0);
    let (tx2, rx2) = cpp.channel_ports(4, 0);
    let (rx1, tx2) = unsafe { (PortReceiver::from_raw(rx1).unwrap(), PortSender::from_raw(tx2).unwrap()) };
    let (producer, consumer) = (Reports::new(), Reports::new());
    cpp.start_consumer(rx2, &consumer);
    cpp.start_producer(tx1, 6, N, 17, &producer);
    let fwd = rt.handle().spawn(async move { rx1.map(Ok).forward(tx2).await });
    let p = producer.wait("C++ producer");
    let c = consumer.wait("C++ consumer");
    assert_eq!((status(&p), p.messages), (Status::OK, N));
    assert_eq!((status(&c), c.messages, c.order_errors), (Status::OK, N, 0));
    assert_eq!(c.checksum, p.checksum);
    block_on("forward", fwd).unwrap().unwrap();
    rt.shutdown().unwrap();
    drop(cpp);
    producer.assert_exactly_once("producer");
    consumer.assert_exactly_once("consumer");
}
