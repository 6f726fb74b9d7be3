//! [`Runtime`]: the tokio multi-thread runtime that the Rust side owns, its exported channels
//! and its agents. `poc_rust_runtime_*` in bridge.h are thin wrappers (see `capi.rs`).
//!
//! Shutdown follows docs/contract.md ("Shutdown"), in this order:
//!
//! 1. mark the runtime stopping — every later port call on its channels answers `SHUTDOWN`
//!    (each channel checks the flag under its own lock, so an op either registered before the
//!    next step or sees the flag); `release` stays valid;
//! 2. take every pending op of every channel and complete it with `SHUTDOWN`, in a task on the
//!    runtime (exactly once, on a runtime thread, never under a lock);
//! 3. stop every agent: each cancels its in-flight import op, waits for a send's real outcome
//!    (so its report counts exactly what was enqueued; see [`agents`](crate::agents)), ends with
//!    `SHUTDOWN` and releases its ports; other tasks are dropped by tokio in step 5, which
//!    cancels their import ops (outcome unknown);
//! 4. wait — bounded — until those completions and agents' `done` callbacks have run;
//! 5. stop tokio (`shutdown_timeout`, bounded); anything still outstanding after the bounds is
//!    reported on stderr, and a completion whose task was dropped unrun is run by its drop guard.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::agents::{self, AgentReport, StopSignal};
use crate::error::RuntimeError;
use crate::export::channel::{lock, Chan};
use crate::export::completion::Completion;
use crate::export::{handles, RECEIVER_VTABLE, SENDER_VTABLE};
use crate::ffi;
use crate::import::{PortReceiver, PortSender};
use crate::Status;

/// How long shutdown waits for outstanding completions/agents, then for tokio's threads.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(5);

/// Largest capacity a tokio bounded channel accepts (`Semaphore::MAX_PERMITS`).
const MAX_CAPACITY: usize = usize::MAX >> 3;

static NEXT_RUNTIME: AtomicU64 = AtomicU64::new(1);
static NEXT_OP: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The id of the runtime whose thread this is (0: none).
    static CURRENT_RUNTIME: Cell<u64> = const { Cell::new(0) };
}

/// What a runtime shares with its channels, pumps and agents (they outlive the `Runtime`).
pub(crate) struct RtCore {
    pub(crate) id: u64,
    handle: tokio::runtime::Handle,
    stopping: AtomicBool,
    channels: Mutex<HashMap<u64, Weak<Chan>>>,
    next_channel: AtomicU64,
    pub(crate) agents: Mutex<HashMap<u64, Arc<StopSignal>>>,
    /// Deferred completion batches and live agents; shutdown waits for 0.
    outstanding: Mutex<usize>,
    idle: Condvar,
}

impl RtCore {
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub(crate) fn next_op_id(&self) -> u64 {
        NEXT_OP.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        drop(self.handle.spawn(fut));
    }

    /// Spawns a task whose outcome the caller awaits. After tokio stopped, the task is dropped
    /// unrun and its `JoinHandle` reports it cancelled.
    pub(crate) fn spawn_task<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(fut)
    }

    /// Counts one piece of work that shutdown waits for; the guard uncounts it when dropped.
    pub(crate) fn track(self: &Arc<Self>) -> Outstanding {
        *lock(&self.outstanding) += 1;
        Outstanding(Arc::clone(self))
    }

    /// Runs completions on a runtime thread, after the caller dropped its locks: one spawned
    /// task per batch. If the task is dropped unrun (the runtime is being torn down), each
    /// completion still runs once, from its drop guard, with its status.
    pub(crate) fn defer(self: &Arc<Self>, batch: Vec<(Completion, Status)>) {
        if batch.is_empty() {
            return;
        }
        let batch: Vec<(Completion, Status)> = batch.into_iter().map(|(c, s)| (c.with_fallback(s), s)).collect();
        let guard = self.track();
        self.spawn(async move {
            let _guard = guard;
            for (c, s) in batch {
                c.complete(s, None);
            }
        });
    }

    pub(crate) fn forget_channel(&self, id: u64) {
        lock(&self.channels).remove(&id);
    }

    fn on_own_thread(&self) -> bool {
        CURRENT_RUNTIME.with(|c| c.get()) == self.id
    }

    /// Steps 1–3 of shutdown. Idempotent; never blocks.
    fn begin_shutdown(self: &Arc<Self>) {
        self.stopping.store(true, Ordering::SeqCst);
        let channels: Vec<Arc<Chan>> = lock(&self.channels).values().filter_map(Weak::upgrade).collect();
        let mut out = Vec::new();
        for c in &channels {
            c.take_all_for_shutdown(&mut out);
        }
        drop(channels); // outside the registry lock: a last reference runs Chan::drop
        self.defer(out);
        let agents: Vec<Arc<StopSignal>> = lock(&self.agents).values().cloned().collect();
        for a in agents {
            a.stop(Status::SHUTDOWN);
        }
    }

    /// Step 4: waits until nothing is outstanding, at most `bound`. `false` on timeout.
    fn wait_idle(&self, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        let mut n = lock(&self.outstanding);
        while *n > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            n = self.idle.wait_timeout(n, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }
}

/// Guard of [`RtCore::track`].
pub(crate) struct Outstanding(Arc<RtCore>);

impl Drop for Outstanding {
    fn drop(&mut self) {
        let mut n = lock(&self.0.outstanding);
        *n -= 1;
        if *n == 0 {
            self.0.idle.notify_all();
        }
    }
}

/// A tokio multi-thread runtime owned by the Rust side, the channels it exports and the agents
/// it runs. This is what a `poc_rust_runtime*` points to.
///
/// Ports it hands out stay safe to use after shutdown (`SHUTDOWN`) and to release after the
/// `Runtime` is dropped. Dropping it shuts it down.
///
/// # Thread safety
///
/// Every method may be called from any thread, except [`shutdown`](Self::shutdown) (and
/// dropping the last `Runtime`), which must not run on one of the runtime's own threads.
pub struct Runtime {
    core: Arc<RtCore>,
    tokio: Mutex<Option<tokio::runtime::Runtime>>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime").field("id", &self.core.id).field("stopping", &self.is_stopping()).finish()
    }
}

impl Runtime {
    /// Starts a runtime with `worker_threads` workers (1..=64), named `poc-rust-<id>`.
    pub fn new(worker_threads: u32) -> Result<Runtime, RuntimeError> {
        if !(1..=64).contains(&worker_threads) {
            return Err(RuntimeError(Status::INVALID));
        }
        let id = NEXT_RUNTIME.fetch_add(1, Ordering::Relaxed);
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads as usize)
            .enable_time()
            .thread_name(format!("poc-rust-{id}"))
            .on_thread_start(move || CURRENT_RUNTIME.with(|c| c.set(id)))
            .on_thread_stop(|| CURRENT_RUNTIME.with(|c| c.set(0)))
            // Spin briefly before parking, so that a wake from another runtime's thread finds the
            // worker awake (idle.rs; POC_IDLE_SPIN_US).
            .on_thread_park(crate::idle::before_park)
            .build()
            .map_err(|_| RuntimeError(Status::PANIC))?;
        let core = Arc::new(RtCore {
            id,
            handle: tokio.handle().clone(),
            stopping: AtomicBool::new(false),
            channels: Mutex::new(HashMap::new()),
            next_channel: AtomicU64::new(1),
            agents: Mutex::new(HashMap::new()),
            outstanding: Mutex::new(0),
            idle: Condvar::new(),
        });
        Ok(Runtime { core, tokio: Mutex::new(Some(tokio)) })
    }

    /// A handle to spawn tasks on the runtime (they are dropped at shutdown).
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.core.handle.clone()
    }

    /// The state shared with everything that may outlive the `Runtime` (ports, lent functions).
    pub(crate) fn core(&self) -> &Arc<RtCore> {
        &self.core
    }

    /// `true` once shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.core.is_stopping()
    }

    /// `true` when called on one of this runtime's threads.
    pub fn is_current_thread(&self) -> bool {
        self.core.on_own_thread()
    }

    /// Exports a bounded tokio channel as one sender and one receiver port (raw: the caller owns
    /// both and releases each exactly once). `capacity` >= 1; `max_payload` 0 means
    /// [`POC_DEFAULT_MAX_PAYLOAD`](ffi::POC_DEFAULT_MAX_PAYLOAD).
    /// Errors: `INVALID` (capacity 0 or above tokio's limit), `SHUTDOWN`.
    pub fn channel_ports(
        &self,
        capacity: usize,
        max_payload: usize,
    ) -> Result<(ffi::poc_sender, ffi::poc_receiver), RuntimeError> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(RuntimeError(Status::INVALID));
        }
        let max_payload = if max_payload == 0 { ffi::POC_DEFAULT_MAX_PAYLOAD } else { max_payload };
        let chan = {
            let mut channels = lock(&self.core.channels);
            if self.core.is_stopping() {
                return Err(RuntimeError(Status::SHUTDOWN));
            }
            let id = self.core.next_channel.fetch_add(1, Ordering::Relaxed);
            let chan = Arc::new(Chan::new(Arc::clone(&self.core), id, capacity, max_payload));
            channels.insert(id, Arc::downgrade(&chan));
            chan
        };
        let Some(tx) = handles::insert_sender(Arc::clone(&chan)) else {
            return Err(RuntimeError(Status::INVALID));
        };
        let Some(rx) = handles::insert_receiver(chan) else {
            if let Some(port) = handles::remove_sender(tx) {
                port.chan.release_sender(&port);
            }
            return Err(RuntimeError(Status::INVALID));
        };
        Ok((
            ffi::poc_sender { handle: tx, vtable: &SENDER_VTABLE },
            ffi::poc_receiver { handle: rx, vtable: &RECEIVER_VTABLE },
        ))
    }

    /// Exports a bounded tokio channel and imports both ends: the all-Rust path through the C
    /// ABI (every op goes through the vtables, exactly as a foreign importer's would).
    pub fn channel(&self, capacity: usize) -> Result<(PortSender, PortReceiver), RuntimeError> {
        let (tx, rx) = self.channel_ports(capacity, 0)?;
        // SAFETY: fresh ports we own, with our static vtables.
        unsafe {
            Ok((
                PortSender::from_raw(tx).expect("own vtable is valid"),
                PortReceiver::from_raw(rx).expect("own vtable is valid"),
            ))
        }
    }

    /// Shuts the runtime down (see the module docs for the steps). Idempotent; a concurrent
    /// second call waits for the first. `INVALID` when called on one of the runtime's threads.
    /// Blocks for at most about twice [`SHUTDOWN_BOUND`].
    pub fn shutdown(&self) -> Result<(), RuntimeError> {
        if self.core.on_own_thread() {
            return Err(RuntimeError(Status::INVALID));
        }
        let mut guard = lock(&self.tokio);
        let Some(tokio) = guard.take() else { return Ok(()) };
        self.core.begin_shutdown();
        if !self.core.wait_idle(SHUTDOWN_BOUND) {
            eprintln!(
                "poc-bridge: runtime {} shutdown: completions/agents still outstanding after {:?}; stopping anyway",
                self.core.id, SHUTDOWN_BOUND
            );
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            // Inside another runtime's context tokio refuses to block: stop from a plain thread.
            std::thread::scope(|s| {
                s.spawn(move || tokio.shutdown_timeout(SHUTDOWN_BOUND));
            });
        } else {
            tokio.shutdown_timeout(SHUTDOWN_BOUND);
        }
        Ok(())
    }

    /// Starts an agent: registers it (unless stopping), builds its body with `make_body` (only
    /// once registered — on error it is dropped unrun), writes its id to `id_out` and spawns it.
    pub(crate) fn start_agent(
        &self,
        make_body: impl FnOnce(agents::Ctx) -> agents::Body,
        done: agents::DoneFn,
        id_out: Option<&mut u64>,
    ) -> Result<u64, RuntimeError> {
        let stop = Arc::new(StopSignal::new());
        let id = agents::next_agent_id();
        let guard = {
            let mut registry = lock(&self.core.agents);
            if self.core.is_stopping() {
                return Err(RuntimeError(Status::SHUTDOWN));
            }
            registry.insert(id, Arc::clone(&stop));
            self.core.track()
        };
        let tally = Arc::new(agents::Tally::default());
        let body = make_body(agents::Ctx { tally: Arc::clone(&tally), stop });
        if let Some(out) = id_out {
            *out = id;
        }
        self.core.spawn(agents::run(Arc::clone(&self.core), id, tally, body, done, guard));
        Ok(id)
    }

    /// Starts a producer agent: sends `count` messages of `stream` (`payload_len` bytes of the
    /// pattern), awaiting each, then releases `tx`. `done` runs exactly once on a runtime thread.
    pub fn start_producer(
        &self,
        tx: PortSender,
        stream: u64,
        count: u64,
        payload_len: usize,
        done: impl FnOnce(&AgentReport) + Send + 'static,
    ) -> Result<u64, RuntimeError> {
        self.start_agent(
            move |agent| Box::pin(agents::producer(tx, stream, count, payload_len, agent)),
            Box::new(done),
            None,
        )
    }

    /// Starts a consumer agent: receives until `CLOSED`, checking per-stream order and payloads.
    pub fn start_consumer(
        &self,
        rx: PortReceiver,
        done: impl FnOnce(&AgentReport) + Send + 'static,
    ) -> Result<u64, RuntimeError> {
        self.start_agent(move |agent| Box::pin(agents::consumer(rx, agent)), Box::new(done), None)
    }

    /// Starts an echo agent: sends every message of `rx` back to `tx` until `rx` is closed.
    pub fn start_echo(
        &self,
        rx: PortReceiver,
        tx: PortSender,
        done: impl FnOnce(&AgentReport) + Send + 'static,
    ) -> Result<u64, RuntimeError> {
        self.start_agent(move |agent| Box::pin(agents::echo(rx, tx, agent)), Box::new(done), None)
    }

    /// Asks an agent to stop; it ends with `CANCELLED` unless it already ended. Never blocks;
    /// an unknown id is fine.
    pub fn cancel_agent(&self, agent: u64) {
        let stop = lock(&self.core.agents).get(&agent).cloned();
        if let Some(s) = stop {
            s.stop(Status::CANCELLED);
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if self.core.on_own_thread() {
            // Cannot block on our own thread: complete and stop everything, let tokio wind down
            // in the background.
            self.core.begin_shutdown();
            if let Some(tokio) = lock(&self.tokio).take() {
                tokio.shutdown_background();
            }
        } else {
            let _ = self.shutdown();
        }
    }
}
