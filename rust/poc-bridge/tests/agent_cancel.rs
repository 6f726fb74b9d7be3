//! Exact accounting of stopped Rust agents (bridge.h rule 5: a cancelled op completes with its
//! real outcome, and the agents report it, as the C++ and .NET agents do). A producer or echo
//! stopped while a send is in flight counts that send if and only if the message was enqueued;
//! a consumer or echo counts only the messages it processed.
//!
//! * Fake ports (`common/fake.rs`): each race forced deterministically — the send in flight when
//!   the agent is stopped completes OK (counted) or CANCELLED (not counted), for the producer,
//!   the echo, and a stop by shutdown; a stopped consumer counts what it processed, not the
//!   message its dropped receive still brings.
//! * Storms on real channels (Rust-owned and C++-owned): a Rust producer agent sends into a
//!   small channel while the test drains a random number of messages, then stops the agent
//!   (`cancel_agent`, or a shutdown of the agent's runtime) and drains the rest until `CLOSED` —
//!   in every iteration what arrived equals the producer's report exactly (count and checksum).
//!   The same for an echo agent between two channels, and a consumer agent stopped while the
//!   test sends.

mod common;
mod cpp_support;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::fake::*;
use common::*;
use cpp_support::*;
use poc_bridge::ffi::{poc_agent_report, poc_receiver, poc_sender};
use poc_bridge::message::producer_id;
use poc_bridge::{Message, PortReceiver, PortSender, RecvError, Runtime, SendError, Status};

const LEN: usize = 16;

fn import_tx(tx: poc_sender) -> PortSender {
    unsafe { PortSender::from_raw(tx) }.expect("sender vtable")
}

fn import_rx(rx: poc_receiver) -> PortReceiver {
    unsafe { PortReceiver::from_raw(rx) }.expect("receiver vtable")
}

/// The message a producer agent sends as `seq` of `stream` in these tests.
fn produced(stream: u64, seq: u64) -> Message {
    Message::with_pattern(producer_id(stream, seq), LEN)
}

/// Checksum of the first `n` messages of a producer agent's `stream`.
fn prefix_checksum(stream: u64, n: u64) -> u64 {
    (0..n).map(|s| produced(stream, s).checksum()).fold(0, u64::wrapping_add)
}

// --- the races, forced on fake ports ------------------------------------------------------------

/// How a test stops an agent.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stop {
    /// `Runtime::cancel_agent` (the report says CANCELLED).
    Cancel,
    /// `Runtime::shutdown` of the agent's runtime (SHUTDOWN), from another thread: it waits for
    /// the agent, which waits for the outcome of its cancelled send, which the test provides.
    Shutdown,
}

impl Stop {
    fn status(self) -> Status {
        match self {
            Stop::Cancel => Status::CANCELLED,
            Stop::Shutdown => Status::SHUTDOWN,
        }
    }

    /// Starts the stop; the returned handle finishes it (and shuts the runtime down) on join.
    fn begin(self, rt: Runtime, agent: u64) -> std::thread::JoinHandle<()> {
        if self == Stop::Cancel {
            rt.cancel_agent(agent); // never blocks
        }
        std::thread::spawn(move || rt.shutdown().unwrap())
    }
}

/// A producer agent on a fake sender whose every send waits: the test completes the first
/// `before` sends OK, stops the agent while the next one is pending, waits until the agent asked
/// the port to cancel that send, and completes it with `outcome` — the race a dropped send
/// could not report.
fn producer_stopped_in_a_send(before: u64, outcome: Status, stop: Stop) -> poc_agent_report {
    let rt = Runtime::new(2).unwrap();
    let (tx, f) = fake_sender(Mode::Pending);
    let reports = Reports::new();
    let id = rt.start_producer(tx, 3, 1_000, LEN, reports.closure()).unwrap();
    for _ in 0..before {
        let op = f.wait_pending();
        f.complete_send(op, Status::OK);
    }
    let op = f.wait_pending();
    let stopping = stop.begin(rt, id);
    f.wait_cancel(op);
    f.complete_send(op, outcome);
    within("the runtime shuts down", move || stopping.join().unwrap());
    let r = reports.wait("stopped producer");
    reports.assert_exactly_once("producer");
    assert!(f.pending().is_empty(), "no send was started after the stop");
    assert_eq!(*f.cancels.lock().unwrap(), [op], "only the send in flight was cancelled");
    assert_eq!(f.releases.load(Ordering::SeqCst), 1, "the port was released once");
    assert_eq!(Status(r.status), stop.status());
    r
}

#[test]
fn a_stopped_producer_counts_a_cancelled_send_that_won_the_race() {
    for stop in [Stop::Cancel, Stop::Shutdown] {
        let r = producer_stopped_in_a_send(3, Status::OK, stop);
        assert_eq!((r.messages, r.checksum), (4, prefix_checksum(3, 4)), "{stop:?}: the 4th message was enqueued");
    }
}

#[test]
fn a_stopped_producer_does_not_count_a_cancelled_send_that_had_no_effect() {
    for stop in [Stop::Cancel, Stop::Shutdown] {
        let r = producer_stopped_in_a_send(3, Status::CANCELLED, stop);
        assert_eq!((r.messages, r.checksum), (3, prefix_checksum(3, 3)), "{stop:?}: the 4th was not enqueued");
    }
}

/// The last send completes OK and the stop comes before the agent saw the completion: the
/// published outcome wins, the message is counted and the producer finished normally.
#[test]
fn a_send_completed_before_the_stop_was_seen_is_counted() {
    let rt = Runtime::new(2).unwrap();
    let (tx, f) = fake_sender(Mode::Pending);
    let reports = Reports::new();
    let id = rt.start_producer(tx, 3, 4, LEN, reports.closure()).unwrap();
    for _ in 0..4 {
        let op = f.wait_pending();
        f.complete_send(op, Status::OK);
    }
    rt.cancel_agent(id);
    let r = reports.wait("producer");
    assert_eq!((status(&r), r.messages, r.checksum), (Status::OK, 4, prefix_checksum(3, 4)));
    assert!(f.cancels.lock().unwrap().is_empty(), "nothing was in flight to cancel");
    rt.shutdown().unwrap();
    reports.assert_exactly_once("producer");
}

/// An echo stopped while it sends back the message it received: counted if and only if the send
/// enqueued it; no receive is started after the stop.
#[test]
fn a_stopped_echo_counts_exactly_the_messages_it_sent_back() {
    for (outcome, n) in [(Status::OK, 1u64), (Status::CANCELLED, 0)] {
        let rt = Runtime::new(2).unwrap();
        let (rx, frx) = fake_receiver(Mode::Pending);
        let (tx, ftx) = fake_sender(Mode::Pending);
        let m = produced(4, 0);
        frx.queue.lock().unwrap().push_back(m.clone()); // the echo's first receive: fast path
        let reports = Reports::new();
        let id = rt.start_echo(rx, tx, reports.closure()).unwrap();
        let op = ftx.wait_pending();
        rt.cancel_agent(id);
        ftx.wait_cancel(op);
        ftx.complete_send(op, outcome);
        let r = reports.wait("stopped echo");
        let sum = if n == 1 { m.checksum() } else { 0 };
        assert_eq!((status(&r), r.messages, r.checksum), (Status::CANCELLED, n, sum), "send ended {outcome}");
        assert_eq!(frx.recvs.load(Ordering::SeqCst), 1, "no receive after the stop");
        assert_eq!((frx.releases.load(Ordering::SeqCst), ftx.releases.load(Ordering::SeqCst)), (1, 1));
        rt.shutdown().unwrap();
        reports.assert_exactly_once("echo");
    }
}

/// A consumer stopped while a receive is pending counts what it processed; the dropped receive
/// is cancelled, and a message it still brings (won the race) goes to the released port's stash
/// — not into the report.
#[test]
fn a_stopped_consumer_counts_what_it_processed_and_not_what_its_dropped_receive_brings() {
    let rt = Runtime::new(2).unwrap();
    let (rx, f) = fake_receiver(Mode::Pending);
    for s in 0..2 {
        f.queue.lock().unwrap().push_back(produced(5, s));
    }
    let reports = Reports::new();
    let id = rt.start_consumer(rx, reports.closure()).unwrap();
    let op = f.wait_pending(); // the third receive waits
    rt.cancel_agent(id);
    let r = reports.wait("stopped consumer");
    assert_eq!((status(&r), r.messages, r.checksum, r.order_errors), (Status::CANCELLED, 2, prefix_checksum(5, 2), 0));
    assert_eq!(*f.cancels.lock().unwrap(), [op], "the pending receive was cancelled");
    assert_eq!(f.releases.load(Ordering::SeqCst), 1);
    // it wins the race anyway, after the agent ended: the completion is safe and changes nothing
    within("late completion", move || f.complete_recv(op, Status::OK, Some(&produced(5, 2))));
    rt.shutdown().unwrap();
    reports.assert_exactly_once("consumer");
}

// --- storms on real channels --------------------------------------------------------------------

/// Who exports the channel of a storm.
#[derive(Clone, Copy)]
enum Owner<'a> {
    Rust(&'a Runtime),
    Cpp(&'a CppRuntime),
}

impl Owner<'_> {
    fn ports(self, capacity: usize) -> (poc_sender, poc_receiver) {
        match self {
            Owner::Rust(rt) => rt.channel_ports(capacity, 0).unwrap(),
            Owner::Cpp(cpp) => cpp.channel_ports(capacity, 0),
        }
    }
}

/// Receives `k` messages, polls `spins` more times, calls `stop`, then receives until `CLOSED`
/// (the stopped producer released the last sender). Asserts FIFO order and payloads; returns
/// (count, checksum) of everything that arrived. If the channel closes before `k`, `stop` runs
/// after the drain.
fn drain_around_stop(
    mut rx: PortReceiver,
    stream: u64,
    k: u64,
    spins: u64,
    stop: impl FnOnce() + Send + 'static,
) -> (u64, u64) {
    block_on("drain around the stop", async move {
        let mut stop = Some(stop);
        let (mut n, mut sum) = (0u64, 0u64);
        loop {
            if n == k {
                if let Some(s) = stop.take() {
                    Yields(spins).await;
                    s();
                }
            }
            match rx.recv().await {
                Ok(m) => {
                    assert_eq!(m.id, producer_id(stream, n), "FIFO: message {n}");
                    assert!(m.has_pattern(), "payload of message {n}");
                    n += 1;
                    sum = sum.wrapping_add(m.checksum());
                }
                Err(RecvError::Closed) => break,
                Err(e) => panic!("drain: {e}"),
            }
        }
        if let Some(s) = stop.take() {
            s();
        }
        (n, sum)
    })
}

/// Many iterations of: a Rust producer agent on `agents` sends into a channel of `owner`; the
/// test drains a random prefix, cancels the agent, drains the rest. Every iteration: what
/// arrived == what the producer reported. Returns the reports, to be checked exactly once after
/// the runtime is gone.
fn cancel_storm(agents: &Arc<Runtime>, owner: Owner<'_>, iterations: u64, seed: u64) -> Vec<Arc<Reports>> {
    const COUNT: u64 = 40;
    let mut rng = Rng::new(seed);
    let mut cancelled = 0;
    let mut all = Vec::new();
    for i in 0..iterations {
        let (tx, rx) = owner.ports(1 + rng.below(3) as usize);
        let reports = Reports::new();
        all.push(Arc::clone(&reports));
        let id = agents.start_producer(import_tx(tx), i, COUNT, LEN, reports.closure()).unwrap();
        let (k, spins) = (rng.below(COUNT + 1), rng.below(4));
        let rt = Arc::clone(agents);
        let (n, sum) = drain_around_stop(import_rx(rx), i, k, spins, move || rt.cancel_agent(id));
        let p = reports.wait("cancelled producer");
        let st = status(&p);
        assert!(st == Status::CANCELLED || st == Status::OK, "iteration {i}: producer ended {st}");
        assert_eq!(
            (n, sum),
            (p.messages, p.checksum),
            "iteration {i} (stopped after {k} received): arrived vs the producer's report ({st})"
        );
        cancelled += (st == Status::CANCELLED) as u64;
    }
    assert!(cancelled > 0, "no iteration stopped the producer before it finished: the storm tested nothing");
    all
}

/// Shuts the agents' runtime down (every storm closure holding it has run and been dropped),
/// then checks that each agent reported exactly once.
fn finish(agents: Arc<Runtime>, reports: Vec<Arc<Reports>>) {
    Arc::try_unwrap(agents).expect("no other reference").shutdown().unwrap();
    for r in reports {
        r.assert_exactly_once("agent");
    }
}

#[test]
fn cancelled_rust_producer_accounts_exactly_on_a_rust_channel() {
    let rt = Arc::new(Runtime::new(2).unwrap());
    let reports = cancel_storm(&rt, Owner::Rust(&rt), 1000, 0xC0FFEE);
    finish(rt, reports);
}

#[test]
fn cancelled_rust_producer_accounts_exactly_on_a_cpp_channel() {
    let cpp = CppRuntime::new(2);
    let rt = Arc::new(Runtime::new(2).unwrap());
    let reports = cancel_storm(&rt, Owner::Cpp(&cpp), 1000, 0xBEEF);
    finish(rt, reports);
    drop(cpp);
}

/// The producer agent's runtime is shut down at a random point (a new runtime per iteration;
/// the channel belongs to another runtime that lives on, so it can be drained afterwards).
fn shutdown_storm(owner: Owner<'_>, iterations: u64, seed: u64) {
    const COUNT: u64 = 40;
    let mut rng = Rng::new(seed);
    let mut stopped = 0;
    for i in 0..iterations {
        let (tx, rx) = owner.ports(1 + rng.below(3) as usize);
        let agents = Runtime::new(1 + rng.below(2) as u32).unwrap();
        let reports = Reports::new();
        agents.start_producer(import_tx(tx), i, COUNT, LEN, reports.closure()).unwrap();
        let (k, spins) = (rng.below(COUNT + 1), rng.below(4));
        let (n, sum) = drain_around_stop(import_rx(rx), i, k, spins, move || agents.shutdown().unwrap());
        let p = reports.wait("producer of a runtime that shut down");
        let st = status(&p);
        assert!(st == Status::SHUTDOWN || st == Status::OK, "iteration {i}: producer ended {st}");
        assert_eq!(
            (n, sum),
            (p.messages, p.checksum),
            "iteration {i} (shut down after {k} received): arrived vs the producer's report ({st})"
        );
        stopped += (st == Status::SHUTDOWN) as u64;
        reports.assert_exactly_once("producer");
    }
    assert!(stopped > 0, "no shutdown stopped the producer before it finished: the storm tested nothing");
}

#[test]
fn rust_producer_stopped_by_shutdown_accounts_exactly_on_a_rust_channel() {
    let owner = Runtime::new(1).unwrap();
    shutdown_storm(Owner::Rust(&owner), 200, 0xD00D);
    owner.shutdown().unwrap();
}

#[test]
fn rust_producer_stopped_by_shutdown_accounts_exactly_on_a_cpp_channel() {
    let cpp = CppRuntime::new(2);
    shutdown_storm(Owner::Cpp(&cpp), 200, 0xFACE);
    drop(cpp);
}

/// A Rust producer agent feeds channel `a`; a Rust echo agent sends `a` back into channel `b`;
/// the test drains `b`, cancels the echo at a random point and drains the rest. Every
/// iteration: what arrived in `b` == the echo's report (it counts a message once enqueued).
fn echo_storm(agents: &Arc<Runtime>, owner: Owner<'_>, iterations: u64, seed: u64) -> Vec<Arc<Reports>> {
    const COUNT: u64 = 40;
    let mut rng = Rng::new(seed);
    let mut cancelled = 0;
    let mut all = Vec::new();
    for i in 0..iterations {
        let (a_tx, a_rx) = owner.ports(1 + rng.below(2) as usize);
        let (b_tx, b_rx) = owner.ports(1 + rng.below(2) as usize);
        let (producer, echo) = (Reports::new(), Reports::new());
        all.extend([Arc::clone(&producer), Arc::clone(&echo)]);
        agents.start_producer(import_tx(a_tx), i, COUNT, LEN, producer.closure()).unwrap();
        let id = agents.start_echo(import_rx(a_rx), import_tx(b_tx), echo.closure()).unwrap();
        let (k, spins) = (rng.below(COUNT + 1), rng.below(4));
        let rt = Arc::clone(agents);
        let (n, sum) = drain_around_stop(import_rx(b_rx), i, k, spins, move || rt.cancel_agent(id));
        let e = echo.wait("cancelled echo");
        let p = producer.wait("producer into the echo");
        let st = status(&e);
        assert!(st == Status::CANCELLED || st == Status::OK, "iteration {i}: echo ended {st}");
        assert_eq!((n, sum), (e.messages, e.checksum), "iteration {i} (stopped after {k}): arrived vs the echo's report");
        // the echo's release of `a` closed it under the producer, which counted exactly too
        assert!(matches!(status(&p), Status::OK | Status::CLOSED), "iteration {i}: producer ended {}", status(&p));
        assert!(p.messages >= e.messages && p.checksum == prefix_checksum(i, p.messages), "iteration {i}: producer {p:?}");
        cancelled += (st == Status::CANCELLED) as u64;
    }
    assert!(cancelled > 0, "no iteration stopped the echo before it finished: the storm tested nothing");
    all
}

#[test]
fn cancelled_rust_echo_accounts_exactly_on_rust_channels() {
    let rt = Arc::new(Runtime::new(2).unwrap());
    let reports = echo_storm(&rt, Owner::Rust(&rt), 300, 0xEC40);
    finish(rt, reports);
}

#[test]
fn cancelled_rust_echo_accounts_exactly_on_cpp_channels() {
    let cpp = CppRuntime::new(2);
    let rt = Arc::new(Runtime::new(2).unwrap());
    let reports = echo_storm(&rt, Owner::Cpp(&cpp), 300, 0xEC41);
    finish(rt, reports);
    drop(cpp);
}

/// The test sends into a channel that a Rust consumer agent drains, cancels the consumer after a
/// random number of sends, and keeps sending until the released receiver closes the channel.
/// Every iteration: the consumer's report is exactly the first `n` messages (in order, checksum
/// of that prefix) and `n` <= what was enqueued <= `n` + capacity + 1 (the messages dropped
/// with the released receiver: its queue and at most one in its stash — never one it counted).
fn consumer_storm(agents: &Arc<Runtime>, owner: Owner<'_>, iterations: u64, seed: u64) -> Vec<Arc<Reports>> {
    const COUNT: u64 = 40;
    let mut rng = Rng::new(seed);
    let mut cancelled = 0;
    let mut all = Vec::new();
    for i in 0..iterations {
        let capacity = 1 + rng.below(3);
        let (tx, rx) = owner.ports(capacity as usize);
        let consumer = Reports::new();
        all.push(Arc::clone(&consumer));
        let id = agents.start_consumer(import_rx(rx), consumer.closure()).unwrap();
        let tx = import_tx(tx);
        let (k, spins) = (rng.below(COUNT + 1), rng.below(4));
        let rt = Arc::clone(agents);
        let enqueued = block_on("sends around the stop", async move {
            let mut enqueued = 0u64;
            loop {
                if enqueued == k {
                    Yields(spins).await;
                    rt.cancel_agent(id);
                }
                if enqueued == COUNT {
                    drop(tx); // the last sender: the consumer sees CLOSED unless it was stopped
                    return enqueued;
                }
                match tx.send(produced(i, enqueued)).await {
                    Ok(()) => enqueued += 1,
                    Err(SendError::Closed(_)) => return enqueued,
                    Err(e) => panic!("iteration {i}: send failed: {e}"),
                }
            }
        });
        let c = consumer.wait("cancelled consumer");
        let st = status(&c);
        assert!(st == Status::CANCELLED || st == Status::OK, "iteration {i}: consumer ended {st}");
        assert_eq!(c.order_errors, 0, "iteration {i}");
        assert_eq!(c.checksum, prefix_checksum(i, c.messages), "iteration {i}: the consumer counted the first {} messages", c.messages);
        assert!(
            c.messages <= enqueued && enqueued <= c.messages + capacity + 1,
            "iteration {i}: consumer counted {} of {enqueued} enqueued (capacity {capacity})",
            c.messages
        );
        if st == Status::OK {
            assert_eq!(c.messages, enqueued, "iteration {i}: a consumer that saw CLOSED received everything");
        }
        cancelled += (st == Status::CANCELLED) as u64;
    }
    assert!(cancelled > 0, "no iteration stopped the consumer before it finished: the storm tested nothing");
    all
}

#[test]
fn cancelled_rust_consumer_counts_exactly_what_it_processed_on_a_rust_channel() {
    let rt = Arc::new(Runtime::new(2).unwrap());
    let reports = consumer_storm(&rt, Owner::Rust(&rt), 300, 0xC0C0);
    finish(rt, reports);
}

#[test]
fn cancelled_rust_consumer_counts_exactly_what_it_processed_on_a_cpp_channel() {
    let cpp = CppRuntime::new(2);
    let rt = Arc::new(Runtime::new(2).unwrap());
    let reports = consumer_storm(&rt, Owner::Cpp(&cpp), 300, 0xC0C1);
    finish(rt, reports);
    drop(cpp);
}
