//! Agents: small tokio tasks on a [`Runtime`](crate::Runtime) that work against *any* port,
//! through the import adapter ([`PortSender`] / [`PortReceiver`]) — so a Rust producer can feed
//! a C++ or .NET channel as easily as a Rust one.
//!
//! Semantics shared with the C++ agents (bridge.h, "Agents"):
//!
//! * an agent owns the ports it was given and releases them when it ends (a producer that held
//!   the last sender therefore closes the channel), *before* its `done` runs;
//! * `done` runs exactly once, on a runtime thread, never under a lock, with an
//!   [`AgentReport`]: `OK` when it finished normally (consumer: saw `CLOSED`; producer: sent
//!   all), `CANCELLED` after [`Runtime::cancel_agent`](crate::Runtime::cancel_agent),
//!   `SHUTDOWN` when its runtime shut down, `PANIC` when its body panicked (contained), or the
//!   status that stopped it;
//! * messages follow the convention of docs/contract.md: `id = stream << 48 | seq`, payload
//!   byte *i* = `(id + i) as u8`; `checksum` is the wrapping sum of message checksums.
//!
//! # Stopping, and exact accounting
//!
//! A stop ([`Runtime::cancel_agent`](crate::Runtime::cancel_agent), or the shutdown of the
//! agent's runtime) is a signal the body watches at every await, like the C++ agents' stop
//! reason and cancellation slot:
//!
//! * a **send** in flight is cancelled with [`PortSender::send_with_cancel`]: the port's cancel
//!   is requested and the body waits for the op's one completion (bridge.h rule 5). If the send
//!   won the race the message *was* enqueued and is counted; if the cancel took effect
//!   (`CANCELLED`) it is not. So a producer's or echo's report counts exactly the messages
//!   that reached the channel — a consumer that drains it receives exactly that many.
//! * a **receive** in flight is dropped (the port's cancel is requested; a message that still
//!   arrives goes to the `PortReceiver`'s stash and is dropped with the port, as queued messages
//!   are when a receiver is released). A consumer or echo counts a message only once it has
//!   processed it, in the same poll that received it, so it never counts one it did not see
//!   and never loses one it counted.
//! * no new op starts once the stop is seen; the body then returns the stop's status, drops its
//!   ports (releasing them) and `done` reports.
//!
//! Shutdown waits (bounded) for its agents to finish this way; an agent whose exporter never
//! completes a cancelled op is dropped when tokio stops, and its in-flight send is then not
//! counted (outcome unknown).

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use futures::FutureExt;

use crate::error::{RecvError, SendError};
use crate::export::channel::lock;
use crate::ffi;
use crate::import::slot::contain;
use crate::import::{PortReceiver, PortSender};
use crate::message::{seq_of, stream_of};
use crate::runtime::{Outstanding, RtCore};
use crate::{Message, Status};

/// What an agent did (the Rust form of `poc_agent_report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentReport {
    /// `OK`, `CANCELLED`, `SHUTDOWN`, `PANIC` or the status that stopped the agent.
    pub status: Status,
    /// Messages sent (producer), received (consumer) or echoed (echo).
    pub messages: u64,
    /// Wrapping sum of the checksums of those messages.
    pub checksum: u64,
    /// Consumer: messages whose seq did not follow the previous one of their stream (a stream
    /// starts at seq 0), or whose payload did not match the pattern. 0 for the other agents.
    pub order_errors: u64,
}

impl AgentReport {
    /// The C form, for a `poc_agent_done_fn`.
    pub fn to_ffi(&self) -> ffi::poc_agent_report {
        ffi::poc_agent_report {
            status: self.status.0,
            reserved: 0,
            messages: self.messages,
            checksum: self.checksum,
            order_errors: self.order_errors,
        }
    }
}

/// The callback an agent calls exactly once when it ends.
pub(crate) type DoneFn = Box<dyn FnOnce(&AgentReport) + Send>;
/// An agent's body: resolves to the status it ended with.
pub(crate) type Body = Pin<Box<dyn Future<Output = Status> + Send>>;

static NEXT_AGENT: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_agent_id() -> u64 {
    NEXT_AGENT.fetch_add(1, Ordering::Relaxed)
}

/// Counters an agent body updates as it goes (read even if the body is stopped half-way).
#[derive(Default)]
pub(crate) struct Tally {
    messages: AtomicU64,
    checksum: AtomicU64,
    order_errors: AtomicU64,
}

impl Tally {
    fn count(&self, checksum: u64) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.checksum.fetch_add(checksum, Ordering::Relaxed); // wrapping, as the checksum is
    }

    fn report(&self, status: Status) -> AgentReport {
        AgentReport {
            status,
            messages: self.messages.load(Ordering::Relaxed),
            checksum: self.checksum.load(Ordering::Relaxed),
            order_errors: self.order_errors.load(Ordering::Relaxed),
        }
    }
}

/// What an agent body gets besides its ports: where it counts, and the stop it watches.
pub(crate) struct Ctx {
    pub(crate) tally: Arc<Tally>,
    pub(crate) stop: Arc<StopSignal>,
}

impl Ctx {
    /// The status an op's error ends the agent with: an op that ended `CANCELLED` reports why
    /// the agent was stopped (`CANCELLED` or `SHUTDOWN`); any other status is reported as is.
    fn status_of(&self, status: Status) -> Status {
        match status {
            Status::CANCELLED => self.stopped(),
            s => s,
        }
    }

    /// The status of a stopped agent.
    fn stopped(&self) -> Status {
        self.stop.reason().unwrap_or(Status::CANCELLED)
    }

    /// Sends `msg` unless the agent is stopped; a send in flight when the stop comes is
    /// cancelled and its real outcome returned (`Ok`: it was enqueued).
    async fn send(&self, tx: &PortSender, msg: Message) -> Result<(), SendError<Message>> {
        tx.send_with_cancel(msg, self.stop.stopped()).await
    }

    /// Receives unless the agent is stopped: `None` once the stop is seen (checked before the
    /// receive, so a busy channel cannot hide it). A receive in flight is then dropped: a
    /// message it may still bring stays in `rx`'s stash, uncounted.
    async fn recv(&self, rx: &mut PortReceiver) -> Option<Result<Message, RecvError>> {
        let mut recv = rx.recv();
        poll_fn(|cx| {
            if self.stop.poll_stopped(cx).is_ready() {
                return Poll::Ready(None);
            }
            Pin::new(&mut recv).poll(cx).map(Some)
        })
        .await
    }
}

/// A one-shot stop request (`CANCELLED` or `SHUTDOWN`) that the agent's body watches.
pub(crate) struct StopSignal {
    status: AtomicI32,
    waker: AtomicWaker,
}

impl StopSignal {
    pub(crate) fn new() -> Self {
        StopSignal { status: AtomicI32::new(ffi::POC_OK), waker: AtomicWaker::new() }
    }

    /// Requests a stop; the first request wins. Never blocks.
    pub(crate) fn stop(&self, status: Status) {
        if self.status.compare_exchange(ffi::POC_OK, status.0, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.waker.wake();
        }
    }

    /// The stop's status once one was requested.
    fn reason(&self) -> Option<Status> {
        match self.status.load(Ordering::Acquire) {
            ffi::POC_OK => None,
            s => Some(Status(s)),
        }
    }

    /// A future that resolves once a stop is requested (one task polls it at a time: the
    /// agent's).
    fn stopped(&self) -> impl Future<Output = Status> + '_ {
        poll_fn(move |cx| self.poll_stopped(cx))
    }

    fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<Status> {
        let s = self.status.load(Ordering::Acquire);
        if s != ffi::POC_OK {
            return Poll::Ready(Status(s));
        }
        self.waker.register(cx.waker());
        match self.status.load(Ordering::Acquire) {
            ffi::POC_OK => Poll::Pending,
            s => Poll::Ready(Status(s)),
        }
    }
}

/// Calls `done` exactly once: from `finish`, or — if the agent's task is dropped unrun or
/// unwinds — from `Drop` with `SHUTDOWN`. Unregisters the agent first, then calls `done` with no
/// lock held, then uncounts the agent for shutdown's wait.
struct DoneGuard {
    core: Arc<RtCore>,
    id: u64,
    tally: Arc<Tally>,
    done: Option<DoneFn>,
    outstanding: Option<Outstanding>,
}

impl DoneGuard {
    fn fire(&mut self, status: Status) {
        if let Some(done) = self.done.take() {
            lock(&self.core.agents).remove(&self.id);
            let report = self.tally.report(status);
            contain(move || done(&report));
            drop(self.outstanding.take());
        }
    }
}

impl Drop for DoneGuard {
    fn drop(&mut self) {
        self.fire(Status::SHUTDOWN);
    }
}

/// The task of one agent: runs the body until it ends (by itself, on an error, or because it
/// saw a stop — see the module docs) or panics; then drops the body (releasing its ports) and
/// reports.
pub(crate) fn run(
    core: Arc<RtCore>,
    id: u64,
    tally: Arc<Tally>,
    body: Body,
    done: DoneFn,
    outstanding: Outstanding,
) -> impl Future<Output = ()> + Send + 'static {
    let mut guard = DoneGuard { core, id, tally, done: Some(done), outstanding: Some(outstanding) };
    async move {
        let mut body = std::panic::AssertUnwindSafe(body).catch_unwind();
        let status = match (&mut body).await {
            Ok(s) => s,
            Err(_panic) => Status::PANIC,
        };
        contain(move || drop(body)); // releases the ports before `done` runs
        guard.fire(status);
    }
}

/// Producer: `count` messages of `stream`, `payload_len` bytes each, awaiting every send.
pub(crate) async fn producer(tx: PortSender, stream: u64, count: u64, payload_len: usize, agent: Ctx) -> Status {
    for seq in 0..count {
        let msg = Message::with_pattern(crate::message::producer_id(stream, seq), payload_len);
        let sum = msg.checksum();
        if let Err(e) = agent.send(&tx, msg).await {
            return agent.status_of(e.status());
        }
        agent.tally.count(sum);
    }
    drop(tx);
    Status::OK
}

/// Consumer: receives until `CLOSED`, checking order per stream and the payload pattern.
pub(crate) async fn consumer(mut rx: PortReceiver, agent: Ctx) -> Status {
    let tally = &agent.tally;
    // stream → the seq expected next; a stream starts at seq 0 (as the C++ consumer checks).
    let mut next_seq: HashMap<u64, u64> = HashMap::new();
    loop {
        let Some(r) = agent.recv(&mut rx).await else { return agent.stopped() };
        match r {
            Ok(m) => {
                let (stream, seq) = (stream_of(m.id), seq_of(m.id));
                let expected = next_seq.entry(stream).or_insert(0);
                let out_of_order = seq != *expected;
                *expected = seq.wrapping_add(1);
                if out_of_order || !m.has_pattern() {
                    tally.order_errors.fetch_add(1, Ordering::Relaxed);
                }
                tally.count(m.checksum());
            }
            Err(RecvError::Closed) => return Status::OK,
            Err(e) => return e.status(),
        }
    }
}

/// Echo: sends every message of `rx` back to `tx`, unchanged, until `rx` reports `CLOSED`.
/// Counts a message once its send enqueued it.
pub(crate) async fn echo(mut rx: PortReceiver, tx: PortSender, agent: Ctx) -> Status {
    loop {
        let Some(r) = agent.recv(&mut rx).await else { return agent.stopped() };
        match r {
            Ok(m) => {
                let sum = m.checksum();
                if let Err(e) = agent.send(&tx, m).await {
                    return agent.status_of(e.status());
                }
                agent.tally.count(sum);
            }
            Err(RecvError::Closed) => return Status::OK,
            Err(e) => return e.status(),
        }
    }
}
