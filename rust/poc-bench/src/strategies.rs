//! `strategies`: Poc's wake-up adapter against peers' bridging designs, re-implemented here as
//! clearly labelled baselines (bench/native/README.md, "strategies").
//!
//! Pair Rust→C++, op "send": Rust producer task(s) send `ops` messages (payload 0, ids
//! `stream << 48 | seq`) into a bounded channel of capacity 1024 **owned by C++** (an Asio
//! `experimental::concurrent_channel` drained by a C++ coroutine consumer on an io_context
//! thread), with `in_flight` 1 (one task sends sequentially) or 64 (64 tokio tasks, each sending
//! `ops / 64` messages into the same channel with its own sender). Rust: a tokio multi-thread
//! runtime with `THREADS` (1) worker; C++: one io_context thread.
//!
//! * `poc`: `PortSender::send(msg).await` on a `poc_cpp_channel_new` channel, consumed by the C++
//!   consumer agent (`poc_cpp_consumer_start`: counts, checksums, checks per-stream order).
//! * `blocking_future`: mayon asio-poc's design (shim/mayon.cpp): per send a heap
//!   `std::promise`/`std::future`, `async_send` from the Rust thread, the Asio handler fulfils the
//!   promise on the io thread; the Rust `poll` blocks in `std::future::wait()` — the tokio worker
//!   is stalled until the send completed.
//! * `busy_polling`: the same shim future, but `poll` asks `wait_for(0)`; not ready → wake itself
//!   (`wake_by_ref`) and return `Pending`: the task is re-polled at once, burning CPU.
//!
//! Each run checks that the consumer got exactly every message (count, checksum, per-stream order).

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use poc_bridge::ffi::{cpp, poc_agent_report};
use poc_bridge::message::{checksum, producer_id, splitmix64};
use poc_bridge::{Message, PortSender, Status};

use crate::{cpp_agent_done, json_num, json_num_fine, json_str, measure, native_runtime, stats_of, wait, Config, CppRuntime, Progress, Res, CAPACITY, LIMIT, THREADS};

/// The in-flight settings: one sequential sender, 64 concurrent sender tasks.
pub const IN_FLIGHT: [usize; 2] = [1, 64];

// ----------------------------------------------------------------------------------------------
// The mayon shim (shim/mayon.cpp, compiled by build.rs)
// ----------------------------------------------------------------------------------------------

#[repr(C)]
struct MayonShim {
    _opaque: [u8; 0],
}
#[repr(C)]
struct MayonFuture {
    _opaque: [u8; 0],
}

extern "C" {
    fn mayon_create(capacity: usize) -> *mut MayonShim;
    fn mayon_send(s: *mut MayonShim, value: u64) -> *mut MayonFuture;
    fn mayon_future_wait(f: *mut MayonFuture);
    fn mayon_future_is_ready(f: *mut MayonFuture) -> i32;
    fn mayon_future_free(f: *mut MayonFuture);
    fn mayon_totals(s: *mut MayonShim, received: *mut u64, checksum: *mut u64, order_errors: *mut u64, send_errors: *mut u64);
    fn mayon_wait_received(s: *mut MayonShim, count: u64, timeout_ms: u32) -> u64;
    fn mayon_reset(s: *mut MayonShim) -> i32;
    fn mayon_destroy(s: *mut MayonShim);
}

/// The shim object (its io_context, thread, channel and consumer); destroyed (joined) on drop.
struct Shim(*mut MayonShim);

// SAFETY: the shim's functions may be called from any thread (concurrent_channel::async_send is
// thread-safe; the totals are atomics; reset/wait synchronise with the io thread).
unsafe impl Send for Shim {}
unsafe impl Sync for Shim {}

impl Shim {
    fn new(capacity: usize) -> Res<Shim> {
        // SAFETY: plain constructor; NULL on failure.
        let p = unsafe { mayon_create(capacity) };
        if p.is_null() {
            return Err("mayon shim: mayon_create failed".into());
        }
        Ok(Shim(p))
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        // SAFETY: made by mayon_create, destroyed once, not from its io thread; every future
        // handed out was freed by its MayonSend.
        unsafe { mayon_destroy(self.0) }
    }
}

/// How the Rust future over a shim send polls.
#[derive(Clone, Copy, PartialEq)]
enum Poll2 {
    /// mayon: block in `std::future::wait()` inside `poll`.
    Blocking,
    /// `wait_for(0)`; not ready → `wake_by_ref()` + `Pending`.
    Busy,
}

/// One mayon send as a Rust future: owns the shim's heap future object (freed on drop).
struct MayonSend {
    f: *mut MayonFuture,
    how: Poll2,
}

// SAFETY: the std::future object is only touched through `&mut self` (one thread at a time).
unsafe impl Send for MayonSend {}

impl MayonSend {
    fn start(shim: &Shim, value: u64, how: Poll2) -> Res<MayonSend> {
        // SAFETY: a live shim.
        let f = unsafe { mayon_send(shim.0, value) };
        if f.is_null() {
            return Err("mayon shim: mayon_send failed".into());
        }
        Ok(MayonSend { f, how })
    }
}

impl Future for MayonSend {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.how {
            Poll2::Blocking => {
                // SAFETY: a live future object we own. Blocks this (tokio worker) thread.
                unsafe { mayon_future_wait(self.f) };
                Poll::Ready(())
            }
            Poll2::Busy => {
                // SAFETY: a live future object we own; never blocks.
                if unsafe { mayon_future_is_ready(self.f) } != 0 {
                    Poll::Ready(())
                } else {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            }
        }
    }
}

impl Drop for MayonSend {
    fn drop(&mut self) {
        // SAFETY: ours, freed once. The promise lives in the Asio handler (shared state is
        // reference-counted), so freeing an unfinished future is safe too.
        unsafe { mayon_future_free(self.f) }
    }
}

// ----------------------------------------------------------------------------------------------
// Runs
// ----------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Strategy {
    Poc,
    Blocking,
    Busy,
}

impl Strategy {
    fn id(self) -> &'static str {
        match self {
            Strategy::Poc => "poc",
            Strategy::Blocking => "blocking_future",
            Strategy::Busy => "busy_polling",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Strategy::Poc => "Poc: completion callback wakes the task (PortSender::send().await)",
            Strategy::Blocking => "mayon asio-poc: std::promise/std::future, poll blocks in wait()",
            Strategy::Busy => "busy polling: std::future::wait_for(0), wake_by_ref() and Pending until ready",
        }
    }
    /// Messages per run (a multiple of 64). The shim strategies get fewer: a send there waits for
    /// a thread hop (measured 3–100 µs per message on the 2-core VM), so that the whole section
    /// stays within ~60 s (full) / ~10 s (quick) even when the VM is slow to wake threads.
    fn ops(self, quick: bool) -> u64 {
        match (self, quick) {
            (Strategy::Poc, false) => 200_000,
            (Strategy::Poc, true) => 20_032,
            (Strategy::Blocking | Strategy::Busy, false) => 50_048,
            (Strategy::Blocking | Strategy::Busy, true) => 4_032,
        }
    }
}

/// Process CPU time (user + system, all threads) so far, in ns.
fn cpu_ns() -> Res<f64> {
    // SAFETY: a zeroed rusage is a valid out buffer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Err(format!("getrusage: {}", std::io::Error::last_os_error()));
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e9 + t.tv_usec as f64 * 1e3;
    Ok(tv(ru.ru_utime) + tv(ru.ru_stime))
}

/// One run's outcome: (msgs/s, CPU ns per message, share of the sends whose first poll was
/// `Pending` — Poc rows only: the send had to wait for room and complete through the exporter's
/// pending path and a wake).
type RunFig = (f64, f64, Option<f64>);

/// The ids of producer `k` of `in_flight`: stream k + 1, seq 0 .. n/in_flight.
fn ids(k: usize, per: u64) -> impl Iterator<Item = u64> {
    (0..per).map(move |seq| producer_id(k as u64 + 1, seq))
}

fn expected_sums(in_flight: usize, per: u64) -> (u64, u64) {
    let (mut poc, mut mix) = (0u64, 0u64);
    for k in 0..in_flight {
        for id in ids(k, per) {
            poc = poc.wrapping_add(checksum(id, &[]));
            mix = mix.wrapping_add(splitmix64(id));
        }
    }
    (poc, mix)
}

/// Poc: a fresh C++ channel and C++ consumer agent per run; `in_flight` tasks send `n` messages
/// in all; timed until the consumer agent reported (the channel closed when the last sender was
/// dropped, so it has received everything).
fn poc_once(rt: &tokio::runtime::Runtime, cpp_rt: &CppRuntime, in_flight: usize, n: u64, expect_sum: u64) -> Res<RunFig> {
    let per = n / in_flight as u64;
    let (tx, rx) = cpp_rt.channel_ports(CAPACITY)?;
    let (dtx, drx) = std_mpsc::channel::<poc_agent_report>();
    let user = Box::into_raw(Box::new(dtx)) as *mut std::ffi::c_void;
    // SAFETY: live runtime; the agent takes the receiver; `user` is freed by the callback.
    let st = Status(unsafe { cpp::poc_cpp_consumer_start(cpp_rt.0, rx, Some(cpp_agent_done), user, std::ptr::null_mut()) });
    if st != Status::OK {
        // SAFETY: `done` is not called on error: reclaim the box; release our sender.
        drop(unsafe { Box::from_raw(user as *mut std_mpsc::Sender<poc_agent_report>) });
        // SAFETY: the receiver was not taken; both ports are ours.
        unsafe {
            (*rx.vtable).release.expect("C++ vtable")(rx.handle);
            (*tx.vtable).release.expect("C++ vtable")(tx.handle);
        }
        return Err(format!("poc_cpp_consumer_start: {st}"));
    }
    // SAFETY: a fresh sender port we own.
    let tx = unsafe { PortSender::from_raw(tx) }.map_err(|e| e.to_string())?;
    let mut senders = Vec::with_capacity(in_flight);
    for _ in 0..in_flight {
        senders.push(tx.try_clone().map_err(|s| format!("clone sender: {s}"))?);
    }
    drop(tx);
    let (ptx, prx) = std_mpsc::channel::<Res<u64>>();
    let c0 = cpu_ns()?;
    let t0 = Instant::now();
    for (k, s) in senders.into_iter().enumerate() {
        let ptx = ptx.clone();
        rt.spawn(async move {
            let mut r: Res<()> = Ok(());
            let mut pending = 0u64;
            for id in ids(k, per) {
                // Poll once by hand to count the sends that could not complete in the port call.
                let mut send = std::pin::pin!(s.send(Message::new(id, Vec::new())));
                let first = std::future::poll_fn(|cx| Poll::Ready(send.as_mut().poll(cx))).await;
                let done = match first {
                    Poll::Ready(done) => done,
                    Poll::Pending => {
                        pending += 1;
                        send.await
                    }
                };
                if let Err(e) = done {
                    r = Err(format!("poc send {id:#x}: {e}"));
                    break;
                }
            }
            drop(s); // the last sender dropped closes the channel: the consumer drains and ends
            let _ = ptx.send(r.map(|()| pending));
        });
    }
    drop(ptx);
    let mut pending = 0u64;
    for _ in 0..in_flight {
        pending += wait(&prx, "poc producer")??;
    }
    let report = wait(&drx, "C++ consumer agent's done")?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_ns()? - c0;
    if Status(report.status) != Status::OK || report.messages != n || report.checksum != expect_sum || report.order_errors != 0 {
        return Err(format!(
            "poc in_flight {in_flight}: C++ consumer ended {} with {} of {n} messages, {} order errors, checksum {:#x} (expected {expect_sum:#x})",
            Status(report.status), report.messages, report.order_errors, report.checksum
        ));
    }
    Ok((n as f64 / secs, cpu / n as f64, Some(pending as f64 / n as f64)))
}

/// mayon shim (blocking or busy polling): `in_flight` tasks send `n` messages in all; timed until
/// every send completed and the shim's consumer received all `n`.
fn shim_once(rt: &tokio::runtime::Runtime, shim: &Arc<Shim>, how: Poll2, in_flight: usize, n: u64, expect_mix: u64) -> Res<RunFig> {
    let per = n / in_flight as u64;
    // SAFETY: a live shim; not from its io thread.
    if unsafe { mayon_reset(shim.0) } != 0 {
        return Err("mayon shim: reset failed".into());
    }
    let (ptx, prx) = std_mpsc::channel::<Res<()>>();
    let c0 = cpu_ns()?;
    let t0 = Instant::now();
    for k in 0..in_flight {
        let ptx = ptx.clone();
        let shim = Arc::clone(shim);
        rt.spawn(async move {
            let mut r = Ok(());
            for id in ids(k, per) {
                match MayonSend::start(&shim, id, how) {
                    Ok(f) => f.await,
                    Err(e) => {
                        r = Err(e);
                        break;
                    }
                }
            }
            let _ = ptx.send(r);
        });
    }
    drop(ptx);
    for _ in 0..in_flight {
        wait(&prx, "mayon producer")??;
    }
    // SAFETY: a live shim.
    let got = unsafe { mayon_wait_received(shim.0, n, LIMIT.as_millis() as u32) };
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_ns()? - c0;
    let (mut received, mut sum, mut order_errors, mut send_errors) = (0, 0, 0, 0);
    // SAFETY: a live shim, valid out pointers.
    unsafe { mayon_totals(shim.0, &mut received, &mut sum, &mut order_errors, &mut send_errors) };
    if got != n || received != n || sum != expect_mix || order_errors != 0 || send_errors != 0 {
        return Err(format!(
            "mayon shim in_flight {in_flight}: consumer received {received} of {n} messages, {order_errors} order errors, {send_errors} failed sends, checksum {sum:#x} (expected {expect_mix:#x})"
        ));
    }
    Ok((n as f64 / secs, cpu / n as f64, None))
}

/// Number of progress lines of this section.
pub const LINES: usize = 3 * IN_FLIGHT.len();

/// The `strategies` rows (JSON) and their progress lines.
pub fn strategies(cfg: &Config, progress: &mut Progress) -> Res<Vec<String>> {
    let rt = native_runtime()?;
    let cpp_rt = CppRuntime::new(THREADS)?;
    let shim = Arc::new(Shim::new(CAPACITY)?);
    let mut rows = Vec::new();
    for strategy in [Strategy::Poc, Strategy::Blocking, Strategy::Busy] {
        let n = strategy.ops(cfg.quick);
        for in_flight in IN_FLIGHT {
            let (poc_sum, mix_sum) = expected_sums(in_flight, n / in_flight as u64);
            let mut cpus = Vec::new();
            let mut shares = Vec::new(); // (msgs/s, pending share) per run, Poc only
            let s = measure(cfg.runs, || {
                let (rate, cpu, share) = match strategy {
                    Strategy::Poc => poc_once(&rt, &cpp_rt, in_flight, n, poc_sum)?,
                    Strategy::Blocking => shim_once(&rt, &shim, Poll2::Blocking, in_flight, n, mix_sum)?,
                    Strategy::Busy => shim_once(&rt, &shim, Poll2::Busy, in_flight, n, mix_sum)?,
                };
                cpus.push(cpu);
                if let Some(share) = share {
                    shares.push((rate, share));
                }
                Ok(rate)
            })?;
            // The first run was the warm-up: the median CPU and pending share of the timed runs.
            let cpu_med = stats_of(cpus.split_off(1)).median;
            let timed: Vec<(f64, f64)> = shares.iter().skip(1).copied().collect();
            let pending = (!timed.is_empty()).then(|| stats_of(timed.iter().map(|&(_, p)| p).collect()));
            let per_run = timed.iter().map(|(r, p)| format!("{r:.2e}@{:.0}%", p * 100.0)).collect::<Vec<_>>().join(" ");
            progress.line(&format!(
                "strategy {} Rust->C++ send in_flight {in_flight}: {:.3e} msg/s (min {:.3e}, max {:.3e}), {:.0} CPU ns/msg{}",
                strategy.id(), s.median, s.min, s.max, cpu_med,
                match &pending {
                    Some(p) => format!(", sends pending {:.1}% (per run msg/s@pending: {per_run})", p.median * 100.0),
                    None => String::new(),
                }
            ));
            let pending_json = match pending {
                Some(p) => format!(
                    ", \"pending_share\": {}, \"pending_share_min\": {}, \"pending_share_max\": {}",
                    json_num_fine(p.median), json_num_fine(p.min), json_num_fine(p.max)
                ),
                None => String::new(),
            };
            rows.push(format!(
                "    {{\"strategy\": {}, \"label\": {}, \"pair\": \"Rust→C++\", \"op\": \"send\", \"in_flight\": {in_flight}, \"msgs_per_s\": {}, \"min\": {}, \"max\": {}, \"runs\": {}, \"ops\": {n}, \"cpu_ns_per_op\": {}{pending_json}, \"what\": {}}}",
                json_str(strategy.id()), json_str(strategy.label()), json_num(s.median), json_num(s.min), json_num(s.max), s.runs,
                json_num_fine(cpu_med), json_str(&what(strategy, in_flight, n))
            ));
        }
    }
    drop(shim);
    drop(cpp_rt);
    drop(rt);
    Ok(rows)
}

fn what(strategy: Strategy, in_flight: usize, n: u64) -> String {
    let producers = if in_flight == 1 {
        format!("one tokio task sends {n} messages one after the other")
    } else {
        format!("{in_flight} tokio tasks each send {} messages one after the other, concurrently, into the same channel (each its own sender)", n / in_flight as u64)
    };
    let common = format!(
        "Rust→C++ send, payload 0 (ids stream<<48|seq, one stream per task); {producers}; tokio multi-thread runtime with {THREADS} worker; the channel has capacity {CAPACITY}; msgs/s = messages ÷ time from spawning the tasks until every send completed and the consumer received all {n}; cpu_ns_per_op = process CPU time (getrusage RUSAGE_SELF, user+sys, all threads) over that interval ÷ messages, median of the timed runs; every run checks the consumer's count, checksum and per-stream order"
    );
    match strategy {
        Strategy::Poc => format!(
            "Poc: PortSender::send(Message{{id, empty payload}}).await on a Poc C++ channel (poc_cpp_channel_new: asio::experimental::concurrent_channel) drained by the C++ consumer agent (poc_cpp_consumer_start, a coroutine on a poc_cpp_runtime with 1 io_context thread); a full channel makes the send PENDING and the C++ completion callback wakes the task (pending_share = sends whose first poll returned Pending ÷ messages, median of the timed runs); a fresh channel and agent per run (made before the clock starts); {common}"
        ),
        Strategy::Blocking => format!(
            "re-implementation of mayon asio-poc's design (rust/poc-bench/shim/mayon.cpp, after future_void.cpp/.rs): per send C++ makes a heap std::promise<void>/std::future<void>, calls concurrent_channel<void(error_code, uint64_t)>::async_send from the Rust (tokio worker) thread with a handler that fulfils the promise on the shim's own io_context thread; the Rust future's first poll blocks in std::future::wait() (the tokio worker is stalled, so 64 tasks in flight still send one at a time) and then returns Ready; the consumer is a C++20 coroutine on that io_context (counts, checks per-stream order, sums splitmix64(id)); {common}"
        ),
        Strategy::Busy => format!(
            "the same shim send as blocking_future (heap std::promise/std::future per send, async_send from the Rust thread, the handler fulfils the promise on the io_context thread), but the Rust future's poll asks std::future::wait_for(0) without blocking and, if not ready, calls cx.waker().wake_by_ref() and returns Pending: the task is rescheduled at once and polls again (burns the worker's CPU while waiting); {common}"
        ),
    }
}
