// mayon-sender — Rust sends into a C++ Asio `concurrent_channel` and awaits each send's
// completion: the other half of Zondax/mayon's asio-poc (its `Sender::send` returned a future
// whose poll called `FutureVoid::ready()`, which waited on a `std::future` — blocking the
// executor thread inside `poll`). Here a pending send registers a completion callback and
// returns `Pending`; the callback wakes the task; the thread never blocks.
//
// Protocol
//   1. A C++ runtime (2 threads) exports a `concurrent_channel` of capacity C (default 4) through
//      poc_cpp_channel_new; Rust imports its sender port as a PortSender. The receiver port is
//      kept for the C++ consumer agent (poc_cpp_consumer_start: a C++20 coroutine that receives
//      until CLOSED and reports count, checksum and order errors — stream 0 order and the payload
//      pattern).
//   2. The Rust side runs on a *current-thread* tokio runtime on main's thread: one thread for
//      every Rust task, so a poll that blocked would stop all of them.
//   3. A tick task on that runtime ticks every 1 ms (tokio interval) and counts its ticks, and
//      separately the ticks that happen while a send is in flight (its first poll returned
//      Pending and it has not completed yet). On the first tick that sees a send in flight it
//      starts the C++ consumer agent. So the first C sends find room and complete at once; send C
//      finds the channel full and waits — and can only ever complete because the thread kept
//      running the tick task while it waited. With mayon's blocking poll this step deadlocks.
//   4. Rust sends the values 0..N (id = value, i.e. stream 0, seq = value; payload: B bytes of
//      the agents' pattern, default 0), awaiting each send (each bounded by 30 s), and counts
//      the sends that completed at once and those that waited for room.
//   5. Rust drops its PortSender: releasing the last sender port closes the channel; the
//      consumer drains and ends OK. Its report is awaited (bounded).
//   Checks: every send completed Ok; at least one send waited; the tick task ticked while sends
//   were in flight (> 0 — a design invariant, not a timing threshold: a poll that blocked the
//   thread would allow none); the consumer ended OK with count N, the checksum Rust computed
//   over what it sent, 0 order errors; its done callback ran exactly once.
//
// Usage: mayon-sender [--messages N] [--capacity C] [--payload B]   (defaults 10000, 4, 0; N > C)
// Exit code 0 when every invariant held, 1 when one broke, 2 for bad arguments.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use poc_bridge::ffi::poc_receiver;
use poc_bridge::message::producer_id;
use poc_bridge::{Message, PortSender, Status};
use poc_scenarios::{describe, parse_options, Checks, CppRuntime, Options, Reports, LIMIT};

const USAGE: &str = "usage: mayon-sender [--messages N] [--capacity C] [--payload B]\n  \
    Rust (current-thread tokio) sends N values (default 10000) into a C++ concurrent_channel of\n  \
    capacity C (default 4, N must exceed it) with B-byte payloads (default 0); a C++ consumer checks them";

/// At most this many of the first sends (those that find room) are printed one by one.
const PRINTED: u64 = 4;

/// What the tick task and the sending task share (one thread, but tokio wants `Send` tasks).
#[derive(Default)]
struct Shared {
    in_flight: AtomicBool,
    stop: AtomicBool,
    ticks: AtomicU64,
    ticks_in_flight: AtomicU64,
}

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let defaults = Options { messages: 10_000, capacity: 4, payload: 0 };
    let o = match parse_options(defaults, &["--messages", "--capacity", "--payload"], USAGE, std::env::args().skip(1)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if o.messages <= o.capacity as u64 || o.messages >= 1 << 48 {
        eprintln!("--messages must exceed --capacity (so that sends wait for room) and stay below 2^48");
        eprintln!("{USAGE}");
        return 2;
    }
    println!(
        "mayon-sender: Rust (current-thread tokio) -> C++ concurrent_channel (capacity {}) -> C++ coroutine consumer, \
         {} messages ({}-byte payloads)",
        o.capacity, o.messages, o.payload
    );
    let checks = Checks::new();
    let cpp = match CppRuntime::new(2) {
        Ok(c) => Arc::new(c),
        Err(s) => {
            checks.check(false, format!("C++ runtime starts: {s}"));
            return checks.finish("mayon-sender");
        }
    };
    let (tx, rx) = match cpp.channel(o.capacity) {
        Ok(p) => p,
        Err(s) => {
            checks.check(false, format!("C++ channel created: {s}"));
            return checks.finish("mayon-sender");
        }
    };
    // SAFETY: a fresh sender port we own, with the C++ exporter's static vtable.
    let tx = match unsafe { PortSender::from_raw(tx) } {
        Ok(t) => t,
        Err(e) => {
            checks.check(false, format!("C++ sender port imported: {e}"));
            return checks.finish("mayon-sender");
        }
    };
    checks.check(true, "C++ channel created; its sender port imported into Rust (PortSender)");

    let tokio_rt = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(r) => r,
        Err(e) => {
            checks.check(false, format!("tokio current-thread runtime: {e}"));
            return checks.finish("mayon-sender");
        }
    };
    let shared = Arc::new(Shared::default());
    let consumer = Reports::new();
    let t0 = Instant::now();
    let outcome = tokio_rt.block_on(async {
        let ticker = tokio::spawn(tick_task(Arc::clone(&shared), Arc::clone(&cpp), rx, Arc::clone(&consumer)));
        let sent = send_all(&tx, &shared, o).await;
        shared.stop.store(true, Ordering::SeqCst);
        let unused_rx = ticker.await.ok().flatten();
        (sent, unused_rx)
    });
    let (sent, unused_rx) = outcome;
    drop(tx); // releases the last sender port: the channel closes, the consumer drains and ends
    let elapsed = t0.elapsed();

    let (ticks, ticks_in_flight) = (shared.ticks.load(Ordering::SeqCst), shared.ticks_in_flight.load(Ordering::SeqCst));
    match &sent {
        Ok(s) => {
            println!(
                "  sends: {} awaited, {} completed at once, {} waited for room (completion callback -> Waker)",
                o.messages, s.at_once, s.waited
            );
            checks.check(true, format!("all {} sends completed Ok", o.messages));
            checks.check(s.waited > 0, "sends waited for room (the channel was full before the consumer started)");
        }
        Err(e) => {
            checks.check(false, e);
        }
    }
    println!("  tick task: {ticks} ticks, {ticks_in_flight} of them while a send was in flight");
    checks.check(
        ticks_in_flight > 0,
        format!(
            "the executor thread kept running other tasks while sends were in flight ({ticks_in_flight} ticks > 0; \
             a poll that blocked, like mayon's FutureVoid::ready(), would allow 0)"
        ),
    );

    if let Some(rx) = unused_rx {
        // the consumer never started: give its port back, and fail
        // SAFETY: the port is ours; its vtable is the C++ exporter's static one.
        unsafe { ((*rx.vtable).release.expect("complete vtable"))(rx.handle) };
        checks.check(false, "the tick task started the C++ consumer");
    } else if let Some(r) = consumer.wait() {
        println!("  C++ consumer: {}", describe(&r));
        checks.check(
            Status(r.status) == Status::OK,
            "the consumer saw CLOSED after draining (the last sender was released) and ended OK",
        );
        checks.check(
            r.messages == o.messages,
            format!("count: {} received of {} sent, none dropped", r.messages, o.messages),
        );
        if let Ok(s) = &sent {
            checks.check(
                r.checksum == s.checksum,
                format!("consumer checksum {:016x} == Rust's checksum of what it sent", r.checksum),
            );
        }
        checks.check(r.order_errors == 0, "stream 0 order and payload pattern intact (0 order errors)");
    } else {
        checks.check(false, format!("the C++ consumer ended within {LIMIT:?}"));
    }
    println!(
        "  {:.0} messages/s (Rust send awaited -> C++ channel -> C++ coroutine)",
        o.messages as f64 / elapsed.as_secs_f64()
    );

    checks.check(cpp.shutdown() == Status::OK, "C++ runtime shut down");
    drop(tokio_rt);
    match Arc::try_unwrap(cpp) {
        Ok(cpp) => drop(cpp), // freed: no done callback can run any more
        Err(_) => {
            checks.check(false, "the tick task released the C++ runtime");
            return checks.finish("mayon-sender");
        }
    }
    let (calls, started) = consumer.calls();
    if started > 0 {
        checks.check(calls == 1, format!("the consumer's done callback ran exactly once ({calls})"));
    }
    checks.finish("mayon-sender")
}

struct Sent {
    at_once: u64,
    waited: u64,
    checksum: u64,
}

/// Step 4: sends 0..N, awaiting each; counts how each send completed.
async fn send_all(tx: &PortSender, shared: &Shared, o: Options) -> Result<Sent, String> {
    let mut s = Sent { at_once: 0, waited: 0, checksum: 0 };
    for value in 0..o.messages {
        let msg = Message::with_pattern(producer_id(0, value), o.payload);
        s.checksum = s.checksum.wrapping_add(msg.checksum());
        let mut send = pin!(tx.send(msg));
        // The first poll issues the port's `send`: Ready if there was room, Pending otherwise.
        let first = std::future::poll_fn(|cx| Poll::Ready(send.as_mut().poll(cx))).await;
        let result = match first {
            Poll::Ready(r) => {
                s.at_once += 1;
                if value < PRINTED.min(o.capacity as u64) {
                    println!("  send({value}): room in the channel, completed at once");
                }
                r
            }
            Poll::Pending => {
                s.waited += 1;
                let first_wait = s.waited == 1;
                if first_wait {
                    println!(
                        "  send({value}): the channel is full — pending; the task yields and awaits the completion callback"
                    );
                }
                let ticks_before = shared.ticks_in_flight.load(Ordering::SeqCst);
                shared.in_flight.store(true, Ordering::SeqCst);
                let r = tokio::time::timeout(LIMIT, send.as_mut()).await;
                shared.in_flight.store(false, Ordering::SeqCst);
                if first_wait {
                    let during = shared.ticks_in_flight.load(Ordering::SeqCst) - ticks_before;
                    println!("  send({value}): completed through the callback -> Waker, after {during} tick(s) of the tick task");
                    println!("  ... (the remaining sends are counted, not printed)");
                }
                match r {
                    Ok(r) => r,
                    Err(_) => return Err(format!("send({value}) did not complete within {LIMIT:?}")),
                }
            }
        };
        if let Err(e) = result {
            return Err(format!("send({value}) failed: {e}"));
        }
    }
    Ok(s)
}

/// Step 3: ticks every 1 ms until stopped; starts the C++ consumer on the first tick that sees a
/// send in flight. Returns the receiver port if it never started the consumer.
async fn tick_task(
    shared: Arc<Shared>,
    cpp: Arc<CppRuntime>,
    rx: poc_receiver,
    consumer: Arc<Reports>,
) -> Option<poc_receiver> {
    let mut rx = Some(rx);
    let mut interval = tokio::time::interval(Duration::from_millis(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !shared.stop.load(Ordering::SeqCst) {
        interval.tick().await;
        let tick = shared.ticks.fetch_add(1, Ordering::SeqCst) + 1;
        if shared.in_flight.load(Ordering::SeqCst) {
            shared.ticks_in_flight.fetch_add(1, Ordering::SeqCst);
            if let Some(port) = rx.take() {
                match cpp.start_consumer(port, &consumer) {
                    Ok(_) => println!(
                        "  tick {tick}: a send is waiting for room -> the tick task starts the C++ consumer agent"
                    ),
                    Err(s) => {
                        println!("  tick {tick}: starting the C++ consumer failed: {s}");
                        return Some(port); // not taken on error
                    }
                }
            }
        }
    }
    rx
}
