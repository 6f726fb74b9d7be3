//! Rust ↔ Rust through the C ABI: a tokio channel exported as ports (poc_rust_channel_new) and
//! imported again with `PortSender` / `PortReceiver`. Every op crosses the vtables.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use futures::future::{select, Either};
use futures::StreamExt;
use poc_bridge::message::{checksum, producer_id, seq_of, stream_of};
use poc_bridge::{Message, RecvError, Runtime, SendError, TryRecvError, TrySendError};

fn pattern(stream: u64, seq: u64) -> Message {
    Message::with_pattern(producer_id(stream, seq), (seq % 100) as usize)
}

fn expected_checksum(stream: u64, n: u64) -> u64 {
    (0..n).map(|s| pattern(stream, s).checksum()).fold(0u64, u64::wrapping_add)
}

#[test]
fn fifo_order_through_the_c_abi() {
    let rt = Runtime::new(2).unwrap();
    let (tx, mut rx) = rt.channel(8).unwrap();
    let producer = rt.handle().spawn(async move {
        for s in 0..2000 {
            tx.send(pattern(1, s)).await.unwrap();
        }
    });
    let ids = block_on("fifo consumer", async move {
        let mut ids = Vec::new();
        loop {
            match rx.recv().await {
                Ok(m) => {
                    assert!(m.has_pattern());
                    ids.push(seq_of(m.id));
                }
                Err(RecvError::Closed) => break ids,
                Err(e) => panic!("{e}"),
            }
        }
    });
    assert_eq!(ids, (0..2000).collect::<Vec<_>>());
    block_on("producer task", producer).unwrap();
    rt.shutdown().unwrap();
}

#[test]
fn backpressure_capacity_1_ten_thousand_messages_none_dropped() {
    const N: u64 = 10_000;
    let rt = Runtime::new(2).unwrap();
    let (tx, mut rx) = rt.channel(1).unwrap();
    rt.handle().spawn(async move {
        for s in 0..N {
            tx.send(pattern(3, s)).await.expect("send under backpressure");
        }
    });
    let (count, sum, in_order) = block_on("slow-ish consumer without a runtime", async move {
        let (mut count, mut sum, mut in_order) = (0u64, 0u64, true);
        while let Ok(m) = rx.recv().await {
            in_order &= seq_of(m.id) == count && m.has_pattern();
            count += 1;
            sum = sum.wrapping_add(m.checksum());
        }
        (count, sum, in_order)
    });
    assert_eq!(count, N, "nothing dropped");
    assert_eq!(sum, expected_checksum(3, N));
    assert!(in_order);
    rt.shutdown().unwrap();
}

#[test]
fn close_then_drain_then_closed() {
    let rt = Runtime::new(1).unwrap();
    let (tx, mut rx) = rt.channel(4).unwrap();
    for s in 0..3 {
        tx.try_send(pattern(0, s)).unwrap();
    }
    assert_eq!(tx.close(), poc_bridge::Status::OK);
    let e = tx.try_send(pattern(0, 3)).unwrap_err();
    assert!(matches!(&e, TrySendError::Closed(m) if *m == pattern(0, 3)));
    let e = futures::executor::block_on(tx.send(pattern(0, 4))).unwrap_err();
    assert!(matches!(&e, SendError::Closed(m) if *m == pattern(0, 4)), "the message comes back");
    let got = block_on("drain", async move {
        let mut got = Vec::new();
        got.push(rx.try_recv().unwrap().id);
        while let Ok(m) = rx.recv().await {
            got.push(m.id);
        }
        assert_eq!(rx.recv().await.unwrap_err(), RecvError::Closed);
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Closed);
        got
    });
    assert_eq!(got, (0..3).map(|s| producer_id(0, s)).collect::<Vec<_>>());
    rt.shutdown().unwrap();
}

#[test]
fn receiver_close_fails_pending_sends_with_closed() {
    let rt = Runtime::new(2).unwrap();
    let (tx, rx) = rt.channel(1).unwrap();
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
    // whether the send is already pending or not yet issued, it must fail with CLOSED
    assert_eq!(rx.close(), poc_bridge::Status::OK);
    let r = block_on("pending send", pending).unwrap();
    match r {
        Err(SendError::Closed(m)) => assert_eq!(m, pattern(0, 1)),
        other => panic!("expected Closed with the message back, got {other:?}"),
    }
    assert!(matches!(tx.try_send(pattern(0, 2)), Err(TrySendError::Closed(_))));
    drop(rx);
    rt.shutdown().unwrap();
}

/// Receive futures dropped at random points (thousands of them) while a producer sends: the
/// stash keeps every message that won a cancel race, so nothing is lost and order holds.
#[test]
fn drop_while_pending_storm_on_block_on_loses_nothing() {
    const N: u64 = 20_000;
    let rt = Runtime::new(2).unwrap();
    let (tx, mut rx) = rt.channel(4).unwrap();
    rt.handle().spawn(async move {
        for s in 0..N {
            tx.send(pattern(5, s)).await.unwrap();
        }
    });
    let (count, sum, dropped) = block_on("storm consumer", async move {
        let mut rng = Rng::new(0x5eed);
        let (mut count, mut sum, mut dropped) = (0u64, 0u64, 0u64);
        loop {
            let k = rng.below(4);
            match select(rx.recv(), Yields(k)).await {
                Either::Left((Ok(m), _)) => {
                    assert_eq!(seq_of(m.id), count, "order kept across cancelled receives");
                    count += 1;
                    sum = sum.wrapping_add(m.checksum());
                }
                Either::Left((Err(RecvError::Closed), _)) => break,
                Either::Left((Err(e), _)) => panic!("{e}"),
                Either::Right(((), recv)) => {
                    drop(recv); // cancels the pending receive
                    dropped += 1;
                }
            }
        }
        (count, sum, dropped)
    });
    assert_eq!(count, N);
    assert_eq!(sum, expected_checksum(5, N));
    assert!(dropped > 1000, "the storm dropped only {dropped} receives");
    rt.shutdown().unwrap();
}

/// The same storm with the consumer as a tokio task on the exporting runtime (completions and
/// wakes on the same thread pool), and several producers.
#[test]
fn drop_while_pending_storm_on_the_runtime_loses_nothing() {
    const N: u64 = 5_000;
    const P: u64 = 4;
    let rt = Runtime::new(2).unwrap();
    let (tx, mut rx) = rt.channel(2).unwrap();
    for p in 0..P {
        let tx = tx.try_clone().unwrap();
        rt.handle().spawn(async move {
            for s in 0..N {
                tx.send(pattern(p, s)).await.unwrap();
            }
        });
    }
    drop(tx);
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
    let (next, sum) = done_rx.recv_timeout(LIMIT).expect("runtime consumer finished");
    assert!(next.iter().all(|&n| n == N), "counts per stream: {next:?}");
    let expected = (0..P).map(|p| expected_checksum(p, N)).fold(0u64, u64::wrapping_add);
    assert_eq!(sum, expected);
    rt.shutdown().unwrap();
}

/// Sends dropped at random points: a dropped send either went through or not, but nothing is
/// duplicated, everything that resolved `Ok` arrives, and arrival order follows send order.
#[test]
fn dropped_sends_are_never_duplicated_or_lost_when_ok() {
    const N: u64 = 5_000;
    let rt = Runtime::new(2).unwrap();
    let (tx, mut rx) = rt.channel(2).unwrap();
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
fn the_import_path_needs_no_runtime() {
    let rt = Runtime::new(1).unwrap();
    let (tx, mut rx) = rt.channel(1).unwrap();
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
    rt.shutdown().unwrap();
}

#[test]
fn shutdown_completes_pending_import_ops_with_shutdown() {
    let rt = Runtime::new(2).unwrap();
    let (tx, rx) = rt.channel(1).unwrap();
    let (tx2, mut rx2) = rt.channel(1).unwrap();
    tx.try_send(pattern(0, 0)).unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        futures::executor::block_on(async move {
            let (wakes, waker) = counting_waker();
            let mut send = tx.send(pattern(0, 1));
            let mut recv = rx2.recv();
            assert!(poll_once(&mut send, &waker).is_pending());
            assert!(poll_once(&mut recv, &waker).is_pending());
            let _ = ready_tx.send(());
            let s = send.await;
            let r = recv.await;
            drop(wakes);
            (s, r, tx)
        })
    });
    ready_rx.recv_timeout(LIMIT).expect("ops pending");
    rt.shutdown().unwrap();
    let (s, r, tx) = within("ops completed by shutdown", move || waiter.join().unwrap());
    assert!(matches!(s, Err(SendError::Shutdown(m)) if m == pattern(0, 1)));
    assert_eq!(r.unwrap_err(), RecvError::Shutdown);
    assert!(matches!(tx.try_send(pattern(0, 2)), Err(TrySendError::Shutdown(_))));
    drop(rt); // free; ports are released afterwards, safely
    drop((tx, rx, tx2));
}

#[test]
fn stream_forward_into_sink_then_close() {
    let rt = Runtime::new(2).unwrap();
    let (tx1, rx1) = rt.channel(4).unwrap();
    let (tx2, rx2) = rt.channel(4).unwrap();
    rt.handle().spawn(async move {
        for s in 0..300 {
            tx1.send(pattern(4, s)).await.unwrap();
        }
    });
    // rx1 → tx2: Stream::forward drives the Sink and closes it at the end of the stream
    let fwd = rt.handle().spawn(async move { rx1.map(Ok).forward(tx2).await });
    let ids: Vec<u64> = block_on("collect", rx2.map(|m| seq_of(m.id)).collect());
    assert_eq!(ids, (0..300).collect::<Vec<_>>());
    block_on("forward", fwd).unwrap().unwrap();
    rt.shutdown().unwrap();
}

#[test]
fn many_tasks_share_one_sender() {
    const T: u64 = 8;
    const N: u64 = 1_000;
    let rt = Runtime::new(2).unwrap();
    let (tx, mut rx) = rt.channel(3).unwrap();
    let tx = Arc::new(tx);
    for t in 0..T {
        let tx = tx.clone();
        rt.handle().spawn(async move {
            for s in 0..N {
                tx.send(pattern(t, s)).await.unwrap();
            }
        });
    }
    drop(tx); // the tasks hold the last references: the port is released when they finish
    let (next, sum) = block_on("consumer", async move {
        let mut next = vec![0u64; T as usize];
        let mut sum = 0u64;
        while let Ok(m) = rx.recv().await {
            let st = stream_of(m.id) as usize;
            assert_eq!(seq_of(m.id), next[st]);
            next[st] += 1;
            sum = sum.wrapping_add(checksum(m.id, &m.payload));
        }
        (next, sum)
    });
    assert!(next.iter().all(|&n| n == N));
    assert_eq!(sum, (0..T).map(|t| expected_checksum(t, N)).fold(0, u64::wrapping_add));
    rt.shutdown().unwrap();
}

#[test]
fn try_clone_keeps_the_channel_open_until_the_last_sender_goes() {
    let rt = Runtime::new(1).unwrap();
    let (tx, mut rx) = rt.channel(2).unwrap();
    let tx2 = tx.try_clone().unwrap();
    drop(tx);
    tx2.try_send(pattern(0, 0)).unwrap();
    assert_eq!(rx.try_recv().unwrap(), pattern(0, 0));
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    drop(tx2);
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Closed);
    rt.shutdown().unwrap();
}

#[test]
fn oversized_payload_is_rejected_through_the_import_too() {
    let rt = Runtime::new(1).unwrap();
    let (tx, rx) = rt.channel_ports(1, 8).unwrap();
    let tx = unsafe { poc_bridge::PortSender::from_raw(tx) }.unwrap();
    let _rx = unsafe { poc_bridge::PortReceiver::from_raw(rx) }.unwrap();
    let e = futures::executor::block_on(tx.send(Message::new(1, vec![0; 9]))).unwrap_err();
    assert_eq!(e.status(), poc_bridge::Status::INVALID);
    assert_eq!(e.into_inner().payload.len(), 9);
    rt.shutdown().unwrap();
}
