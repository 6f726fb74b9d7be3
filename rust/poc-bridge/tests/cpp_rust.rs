//! C++ ↔ Rust through agents: C++ Asio agents (`poc_cpp_*_start`) driving channels exported by
//! the Rust runtime (`poc_rust_channel_new` / `Runtime::channel_ports`), and Rust agents driving
//! C++ channels. C++ producer → Rust channel → Rust consumer, Rust producer → C++ channel → C++
//! consumer, echo across, producers of both runtimes on one channel, close → drain, the mayon
//! timer into a Rust channel, cancellation of an agent blocked on a foreign port, and shutdown of
//! either runtime while the other's agents are blocked on its ports (nothing hangs, every agent
//! reports exactly once).

mod common;
mod cpp_support;

use common::*;
use cpp_support::*;
use poc_bridge::ffi::{poc_receiver, poc_sender};
use poc_bridge::message::{producer_id, seq_of};
use poc_bridge::{Message, PortReceiver, PortSender, RecvError, Runtime, SendError, Status, TrySendError};

/// The checksum a producer agent (either runtime) reports for `n` messages of `len` bytes.
fn producer_checksum(stream: u64, n: u64, len: usize) -> u64 {
    (0..n).map(|s| Message::with_pattern(producer_id(stream, s), len).checksum()).fold(0, u64::wrapping_add)
}

fn import_tx(tx: poc_sender) -> PortSender {
    unsafe { PortSender::from_raw(tx) }.expect("sender vtable")
}

fn import_rx(rx: poc_receiver) -> PortReceiver {
    unsafe { PortReceiver::from_raw(rx) }.expect("receiver vtable")
}

#[test]
fn cpp_producer_into_a_rust_channel_to_a_rust_consumer() {
    const N: u64 = 5_000;
    let rt = Runtime::new(2).unwrap();
    let cpp = CppRuntime::new(2);
    let (tx, rx) = rt.channel_ports(4, 0).unwrap();
    let (producer, consumer) = (Reports::new(), Reports::new());
    rt.start_consumer(import_rx(rx), consumer.closure()).unwrap();
    cpp.start_producer(tx, 1, N, 33, &producer);
    let p = producer.wait("C++ producer");
    let c = consumer.wait("Rust consumer");
    assert_eq!((status(&p), p.messages), (Status::OK, N));
    assert_eq!(
        (status(&c), c.messages, c.order_errors),
        (Status::OK, N, 0),
        "Rust consumer saw CLOSED after all, in order"
    );
    assert_eq!(p.checksum, producer_checksum(1, N, 33), "C++ producer checksum == Rust's computation");
    assert_eq!(c.checksum, p.checksum);
    drop(cpp);
    rt.shutdown().unwrap();
    producer.assert_exactly_once("C++ producer");
    consumer.assert_exactly_once("Rust consumer");
}

/// Backpressure across the seam: a C++ producer into a Rust channel of capacity 1, 10 000
/// messages, a Rust consumer on a thread with no runtime. Nothing dropped, checksums equal.
#[test]
fn cpp_producer_backpressure_capacity_1_into_rust() {
    const N: u64 = 10_000;
    const LEN: usize = 16;
    let rt = Runtime::new(2).unwrap();
    let cpp = CppRuntime::new(2);
    let (tx, rx) = rt.channel_ports(1, 0).unwrap();
    let mut rx = import_rx(rx);
    let producer = Reports::new();
    cpp.start_producer(tx, 2, N, LEN, &producer);
    let (count, sum) = block_on("Rust consumer of a C++ producer", async move {
        let (mut count, mut sum) = (0u64, 0u64);
        loop {
            match rx.recv().await {
                Ok(m) => {
                    assert_eq!(m.id, producer_id(2, count), "order");
                    assert!(m.has_pattern());
                    count += 1;
                    sum = sum.wrapping_add(m.checksum());
                }
                Err(RecvError::Closed) => break (count, sum),
                Err(e) => panic!("{e}"),
            }
        }
    });
    let p = producer.wait("C++ producer");
    assert_eq!((status(&p), p.messages), (Status::OK, N));
    assert_eq!(count, N, "nothing dropped");
    assert_eq!(sum, p.checksum);
    assert_eq!(sum, producer_checksum(2, N, LEN));
    drop(cpp);
    producer.assert_exactly_once("C++ producer");
    rt.shutdown().unwrap();
}

/// Rust producer agent → C++ channel (capacity 1) → C++ consumer agent, 10 000 messages.
#[test]
fn rust_producer_into_a_cpp_channel_to_a_cpp_consumer() {
    const N: u64 = 10_000;
    const LEN: usize = 16;
    let rt = Runtime::new(2).unwrap();
    let cpp = CppRuntime::new(2);
    let (tx, rx) = cpp.channel_ports(1, 0);
    let (producer, consumer) = (Reports::new(), Reports::new());
    cpp.start_consumer(rx, &consumer);
    rt.start_producer(import_tx(tx), 3, N, LEN, producer.closure()).unwrap();
    let p = producer.wait("Rust producer");
    let c = consumer.wait("C++ consumer");
    assert_eq!((status(&p), p.messages), (Status::OK, N));
    assert_eq!((status(&c), c.messages, c.order_errors), (Status::OK, N, 0));
    assert_eq!(c.checksum, p.checksum, "C++ consumer checksum == Rust producer checksum");
    assert_eq!(p.checksum, producer_checksum(3, N, LEN));
    rt.shutdown().unwrap();
    drop(cpp);
    producer.assert_exactly_once("Rust producer");
    consumer.assert_exactly_once("C++ consumer");
}

/// Ping-pong through a C++ echo agent sitting between two Rust channels: Rust sends one message,
/// awaits its echo, compares, 1 000 times; dropping Rust's sender ends the echo with OK, and its
/// release of the return sender ends Rust's receive with CLOSED.
#[test]
fn ping_pong_through_a_cpp_echo_between_rust_channels() {
    const N: u64 = 1_000;
    let rt = Runtime::new(2).unwrap();
    let cpp = CppRuntime::new(2);
    let (to_echo_tx, to_echo_rx) = rt.channel_ports(1, 0).unwrap();
    let (from_echo_tx, from_echo_rx) = rt.channel_ports(1, 0).unwrap();
    let echo = Reports::new();
    cpp.start_echo(to_echo_rx, from_echo_tx, &echo);
    let (ping, mut pong) = (import_tx(to_echo_tx), import_rx(from_echo_rx));
    let sum = block_on("ping-pong", async move {
        let mut sum = 0u64;
        for i in 0..N {
            let m = Message::with_pattern(producer_id(4, i), (i % 40) as usize);
            sum = sum.wrapping_add(m.checksum());
            ping.send(m.clone()).await.expect("ping");
            assert_eq!(pong.recv().await.expect("pong"), m, "the echo is the ping, unchanged");
        }
        drop(ping); // the echo's input closes
        assert_eq!(pong.recv().await.unwrap_err(), RecvError::Closed, "the echo released its sender");
        sum
    });
    let e = echo.wait("C++ echo");
    assert_eq!((status(&e), e.messages, e.checksum), (Status::OK, N, sum));
    drop(cpp);
    echo.assert_exactly_once("C++ echo");
    rt.shutdown().unwrap();
}

/// A Rust echo agent between two C++ channels, fed by a C++ producer and drained by a C++
/// consumer: C++ → Rust → C++.
#[test]
fn rust_echo_between_cpp_channels() {
    const N: u64 = 5_000;
    let rt = Runtime::new(2).unwrap();
    let cpp = CppRuntime::new(2);
    let (a_tx, a_rx) = cpp.channel_ports(2, 0);
    let (b_tx, b_rx) = cpp.channel_ports(2, 0);
    let (producer, echo, consumer) = (Reports::new(), Reports::new(), Reports::new());
    cpp.start_consumer(b_rx, &consumer);
    rt.start_echo(import_rx(a_rx), import_tx(b_tx), echo.closure()).unwrap();
    cpp.start_producer(a_tx, 5, N, 40, &producer);
    let (p, e, c) = (producer.wait("C++ producer"), echo.wait("Rust echo"), consumer.wait("C++ consumer"));
    assert_eq!((status(&p), p.messages), (Status::OK, N));
    assert_eq!((status(&e), e.messages), (Status::OK, N));
    assert_eq!((status(&c), c.messages, c.order_errors), (Status::OK, N, 0));
    assert_eq!((e.checksum, c.checksum), (p.checksum, p.checksum));
    rt.shutdown().unwrap();
    drop(cpp);
    for (r, what) in [(&producer, "producer"), (&echo, "echo"), (&consumer, "consumer")] {
        r.assert_exactly_once(what);
    }
}

/// A C++ producer and a Rust producer share one Rust channel (capacity 2, the sender port cloned
/// through the Rust vtable); a C++ consumer checks each stream's order; the channel closes when
/// the last of the two producers releases its port.
#[test]
fn producers_of_both_runtimes_share_a_rust_channel_drained_by_cpp() {
    const N: u64 = 4_000;
    let rt = Runtime::new(2).unwrap();
    let cpp = CppRuntime::new(2);
    let (tx, rx) = rt.channel_ports(2, 0).unwrap();
    let (st, tx2) = raw_clone(tx);
    assert_eq!(st, Status::OK);
    let (cpp_prod, rust_prod, consumer) = (Reports::new(), Reports::new(), Reports::new());
    cpp.start_consumer(rx, &consumer);
    cpp.start_producer(tx, 1, N, 8, &cpp_prod);
    rt.start_producer(import_tx(tx2), 2, N, 9, rust_prod.closure()).unwrap();
    let (a, b, c) = (cpp_prod.wait("C++ producer"), rust_prod.wait("Rust producer"), consumer.wait("C++ consumer"));
    assert_eq!((status(&a), a.messages, status(&b), b.messages), (Status::OK, N, Status::OK, N));
    assert_eq!((status(&c), c.messages, c.order_errors), (Status::OK, 2 * N, 0));
    assert_eq!(c.checksum, a.checksum.wrapping_add(b.checksum));
    assert_eq!(b.checksum, producer_checksum(2, N, 9));
    rt.shutdown().unwrap();
    drop(cpp);
    for (r, what) in [(&cpp_prod, "C++ producer"), (&rust_prod, "Rust producer"), (&consumer, "consumer")] {
        r.assert_exactly_once(what);
    }
}

/// Close → drain → CLOSED with a C++ consumer on a Rust channel: the three queued messages are
/// delivered, then the consumer ends OK.
#[test]
fn cpp_consumer_drains_a_closed_rust_channel() {
    let rt = Runtime::new(1).unwrap();
    let cpp = CppRuntime::new(1);
    let (tx, rx) = rt.channel_ports(4, 0).unwrap();
    let tx = import_tx(tx);
    let mut sum = 0u64;
    for s in 0..3 {
        let m = Message::with_pattern(producer_id(0, s), 5);
        sum = sum.wrapping_add(m.checksum());
        tx.try_send(m).unwrap();
    }
    assert_eq!(tx.close(), Status::OK);
    let consumer = Reports::new();
    cpp.start_consumer(rx, &consumer);
    let c = consumer.wait("C++ consumer");
    assert_eq!((status(&c), c.messages, c.order_errors, c.checksum), (Status::OK, 3, 0, sum));
    assert!(matches!(tx.try_send(Message::default()), Err(TrySendError::Closed(_))));
    drop(tx);
    drop(cpp);
    consumer.assert_exactly_once("C++ consumer");
    rt.shutdown().unwrap();
}

/// The mayon timer task (`poc_cpp_timer_start`) sending into a Rust channel of capacity 1: five
/// messages {0..5, "From Cpp async task!!"} arrive in order, then CLOSED when the timer ends and
/// releases its sender; its report matches what Rust received.
#[test]
fn cpp_timer_into_a_rust_channel() {
    let rt = Runtime::new(1).unwrap();
    let cpp = CppRuntime::new(1);
    let (tx, rx) = rt.channel_ports(1, 0).unwrap();
    let mut rx = import_rx(rx);
    let timer = Reports::new();
    cpp.start_timer(tx, 1, 5, &timer);
    let got = block_on("timer messages", async move {
        let mut got = Vec::new();
        loop {
            match rx.recv().await {
                Ok(m) => got.push(m),
                Err(RecvError::Closed) => break got,
                Err(e) => panic!("{e}"),
            }
        }
    });
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    assert!(got.iter().all(|m| m.payload == b"From Cpp async task!!"));
    let t = timer.wait("timer");
    assert_eq!((status(&t), t.messages), (Status::OK, 5));
    assert_eq!(t.checksum, got.iter().map(Message::checksum).fold(0, u64::wrapping_add));
    drop(cpp);
    timer.assert_exactly_once("timer");
    rt.shutdown().unwrap();
}

/// Cancelling an agent that waits on a port of the other runtime: it ends CANCELLED exactly once
/// and releases its port (the other side then sees CLOSED); nothing it sent is lost.
#[test]
fn cancelling_agents_blocked_on_foreign_ports() {
    let rt = Runtime::new(2).unwrap();
    let cpp = CppRuntime::new(2);

    // A C++ consumer waiting on an empty Rust channel.
    let (tx, rx) = rt.channel_ports(1, 0).unwrap();
    let tx = import_tx(tx);
    let consumer = Reports::new();
    let id = cpp.start_consumer(rx, &consumer);
    cpp.cancel(id);
    let c = consumer.wait("cancelled C++ consumer");
    assert_eq!((status(&c), c.messages), (Status::CANCELLED, 0));
    let e = block_on("send after the consumer released the receiver", async move { tx.send(Message::default()).await });
    assert!(matches!(e, Err(SendError::Closed(_))), "the C++ consumer released the Rust receiver: {e:?}");

    // A Rust consumer waiting on an empty C++ channel.
    let (tx, rx) = cpp.channel_ports(1, 0);
    let tx = import_tx(tx);
    let consumer2 = Reports::new();
    let id = rt.start_consumer(import_rx(rx), consumer2.closure()).unwrap();
    rt.cancel_agent(id);
    let c = consumer2.wait("cancelled Rust consumer");
    assert_eq!((status(&c), c.messages), (Status::CANCELLED, 0));
    let e =
        block_on(
            "send after the Rust consumer released the C++ receiver",
            async move { tx.send(Message::default()).await },
        );
    assert!(matches!(e, Err(SendError::Closed(_))), "{e:?}");

    // A C++ producer blocked on a full Rust channel: what it reports as sent is exactly what the
    // channel holds after its release closed it.
    let (tx, rx) = rt.channel_ports(1, 0).unwrap();
    let mut rx = import_rx(rx);
    let producer = Reports::new();
    let id = cpp.start_producer(tx, 7, u64::MAX >> 16, 8, &producer);
    cpp.cancel(id);
    let p = producer.wait("cancelled C++ producer");
    assert_eq!(status(&p), Status::CANCELLED);
    let (n, sum) = block_on("drain what the producer sent", async move {
        let (mut n, mut sum) = (0u64, 0u64);
        while let Ok(m) = rx.recv().await {
            assert_eq!(seq_of(m.id), n);
            n += 1;
            sum = sum.wrapping_add(m.checksum());
        }
        (n, sum)
    });
    assert_eq!((n, sum), (p.messages, p.checksum), "every message the producer counted arrived");

    drop(cpp);
    rt.shutdown().unwrap();
    consumer.assert_exactly_once("C++ consumer");
    consumer2.assert_exactly_once("Rust consumer");
    producer.assert_exactly_once("C++ producer");
}

/// Shutting down the Rust runtime while C++ agents are blocked on its ports: a C++ producer on a
/// full Rust channel and a C++ consumer on an empty one both end with SHUTDOWN (bounded), each
/// reporting exactly once; the C++ runtime is unaffected and shuts down cleanly afterwards.
#[test]
fn rust_shutdown_ends_cpp_agents_blocked_on_rust_ports() {
    let rt = Runtime::new(2).unwrap();
    let cpp = CppRuntime::new(2);
    let (ptx, prx) = rt.channel_ports(1, 0).unwrap();
    let (ctx, crx) = rt.channel_ports(1, 0).unwrap();
    let (mut prx, ctx) = (import_rx(prx), import_tx(ctx));
    let (producer, consumer) = (Reports::new(), Reports::new());
    cpp.start_producer(ptx, 1, u64::MAX >> 16, 8, &producer);
    cpp.start_consumer(crx, &consumer);
    // Evidence that both agents run: one message from the producer, and two sends into a
    // capacity-1 channel, the second of which can only complete after the consumer took one.
    let (prx, ctx) = block_on("both C++ agents are running", async move {
        assert_eq!(prx.recv().await.expect("first message of the C++ producer").id, producer_id(1, 0));
        for s in 0..2 {
            ctx.send(Message::with_pattern(producer_id(0, s), 3)).await.expect("send to the C++ consumer");
        }
        (prx, ctx)
    });
    // Now the producer waits for room (or is about to) and the consumer waits for a message.
    within("Rust runtime shutdown", move || rt.shutdown()).unwrap();
    let p = producer.wait("C++ producer after the Rust shutdown");
    let c = consumer.wait("C++ consumer after the Rust shutdown");
    assert_eq!(status(&p), Status::SHUTDOWN, "producer report {p:?}");
    assert!(p.messages >= 1);
    assert_eq!(status(&c), Status::SHUTDOWN, "consumer report {c:?}");
    assert!(c.messages >= 1 && c.order_errors == 0);
    assert_eq!(ctx.close(), Status::SHUTDOWN, "Rust ports answer SHUTDOWN now");
    drop((prx, ctx));
    assert_eq!(cpp.shutdown(), Status::OK, "the C++ runtime shuts down cleanly");
    drop(cpp);
    producer.assert_exactly_once("C++ producer");
    consumer.assert_exactly_once("C++ consumer");
}

/// The mirror image: shutting down the C++ runtime while Rust agents are blocked on its ports.
#[test]
fn cpp_shutdown_ends_rust_agents_blocked_on_cpp_ports() {
    let rt = Runtime::new(2).unwrap();
    let cpp = CppRuntime::new(2);
    let (ptx, prx) = cpp.channel_ports(1, 0);
    let (ctx, crx) = cpp.channel_ports(1, 0);
    let (mut prx, ctx) = (import_rx(prx), import_tx(ctx));
    let (producer, consumer) = (Reports::new(), Reports::new());
    rt.start_producer(import_tx(ptx), 1, u64::MAX >> 16, 8, producer.closure()).unwrap();
    rt.start_consumer(import_rx(crx), consumer.closure()).unwrap();
    let (prx, ctx) = block_on("both Rust agents are running", async move {
        assert_eq!(prx.recv().await.expect("first message of the Rust producer").id, producer_id(1, 0));
        for s in 0..2 {
            ctx.send(Message::with_pattern(producer_id(0, s), 3)).await.expect("send to the Rust consumer");
        }
        (prx, ctx)
    });
    assert_eq!(cpp.shutdown(), Status::OK);
    let p = producer.wait("Rust producer after the C++ shutdown");
    let c = consumer.wait("Rust consumer after the C++ shutdown");
    assert_eq!(status(&p), Status::SHUTDOWN, "producer report {p:?}");
    assert_eq!(status(&c), Status::SHUTDOWN, "consumer report {c:?}");
    assert!(c.messages >= 1 && c.order_errors == 0);
    assert_eq!(ctx.close(), Status::SHUTDOWN, "C++ ports answer SHUTDOWN now");
    drop(cpp);
    drop((prx, ctx));
    rt.shutdown().unwrap();
    producer.assert_exactly_once("Rust producer");
    consumer.assert_exactly_once("Rust consumer");
}
