//! poc-bench-native-rust — the Rust figures of Poc's benchmark report that need no .NET:
//!
//! * `native_throughput`: a plain `tokio::sync::mpsc` bounded channel, one producer task, one
//!   consumer task (no Poc code on the message path);
//! * `native_latency`: ping-pong between two tasks over two plain tokio mpsc channels;
//! * `latency`: a Rust pinger task awaiting Poc ports (`PortSender::send` / `PortReceiver::recv`)
//!   with an echo agent of the Rust or the C++ runtime on the other side;
//! * `native_calls`: what awaiting an async call costs natively in tokio (ready / posted);
//! * `allocations`: heap allocations per message of the Rust import path (`PortSender::send`,
//!   `PortReceiver::recv`) on C++-owned channels, fast path and pending path, counted by the
//!   program's counting `#[global_allocator]` (alloc.rs), which counts only during that section;
//! * `strategies` (strategies.rs): Rust→C++ sends with Poc's adapter against re-implemented peer
//!   designs (mayon's blocking `std::future` poll, busy polling; shim/mayon.cpp);
//! * `call_allocations` (call_alloc.rs): heap allocations per async call of a Rust caller awaiting
//!   the C++ "square" lent function (ready / posted).
//!
//! Usage: poc-bench-native-rust --out FILE [--quick]. Writes one JSON object to FILE (schema and
//! methodology: bench/native/README.md) and prints one progress line per figure. Every figure
//! validates its own work (counts, order, payload bytes, checksums); a failure exits 1 with a
//! message. Bad arguments exit 2.
//!
//! Also: poc-bench-native-rust --criterion-summary DIR --out FILE summarises the criterion run of
//! benches/micro.rs (DIR = criterion's output directory) into micro-rust.json
//! (criterion_summary.rs).

use std::ffi::c_void;
use std::fmt::Write as _;
use std::hint::black_box;
use std::process::ExitCode;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use poc_bridge::ffi::{self, cpp, poc_agent_report};
use poc_bridge::message::{check_pattern, checksum, fill_pattern, producer_id, seq_of};
use poc_bridge::{Message, PortReceiver, PortSender, Runtime, Status};
use poc_cpp_sys as _; // links libpoc_cpp.a: the C++ runtime and its echo agent

mod alloc;
mod call_alloc;
mod criterion_summary;
mod strategies;

/// Counts allocations process-wide, only while `alloc::set_counting(true)` (the allocations
/// section); otherwise a relaxed load of an unwritten flag in front of `System`.
#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// Channel capacity of every channel here (the .NET driver's throughput capacity).
const CAPACITY: usize = 1024;
/// Worker threads of every runtime here: the default of Poc.Bridge's RustRuntime/CppRuntime
/// (`threads = 1`), which the .NET benchmark uses for its Poc figures.
const THREADS: u32 = 1;
const PAYLOADS: [usize; 3] = [0, 64, 4096];
const LATENCY_PAYLOAD: usize = 64;
const LATENCY_WARMUP: usize = 1_000;
/// Bound on any single wait for a benchmark task: a hang is reported, not waited out.
const LIMIT: Duration = Duration::from_secs(120);

type Res<T> = Result<T, String>;

struct Config {
    quick: bool,
    runs: usize,
    messages: u64,
    samples: usize,
    ready_calls: u64,
    posted_calls: u64,
}

impl Config {
    fn new(quick: bool) -> Config {
        if quick {
            Config { quick, runs: 3, messages: 20_000, samples: 5_000, ready_calls: 200_000, posted_calls: 20_000 }
        } else {
            Config { quick, runs: 7, messages: 200_000, samples: 50_000, ready_calls: 1_000_000, posted_calls: 100_000 }
        }
    }
}

// ----------------------------------------------------------------------------------------------
// Statistics and output
// ----------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
    runs: usize,
}

/// One warm-up run (discarded), then `runs` timed runs: median, min, max.
fn measure(runs: usize, mut once: impl FnMut() -> Res<f64>) -> Res<Stats> {
    once()?;
    let mut xs = Vec::with_capacity(runs);
    for _ in 0..runs {
        xs.push(once()?);
    }
    Ok(stats_of(xs))
}

/// Median, min and max of figures (at least one); `runs` = how many.
fn stats_of(mut xs: Vec<f64>) -> Stats {
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    let median = if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 };
    Stats { median, min: xs[0], max: xs[n - 1], runs: n }
}

/// Nearest-rank percentile of sorted samples: the smallest sample with at least p % at or below.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

struct Rtt {
    p50: f64,
    p99: f64,
    samples: usize,
}

fn rtt_of(mut samples: Vec<u64>) -> Rtt {
    samples.sort_unstable();
    Rtt { p50: percentile(&samples, 50.0), p99: percentile(&samples, 99.0), samples: samples.len() }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A finite number as JSON (rounded to 0.1; Rust's Display never uses an exponent).
fn json_num(x: f64) -> String {
    assert!(x.is_finite(), "non-finite figure");
    format!("{}", (x * 10.0).round() / 10.0)
}

struct Progress {
    done: usize,
    total: usize,
    t0: Instant,
}

impl Progress {
    fn line(&mut self, what: &str) {
        self.done += 1;
        println!("[native-rust {}/{} {:.0}s] {what}", self.done, self.total, self.t0.elapsed().as_secs_f64());
    }
}

// ----------------------------------------------------------------------------------------------
// Native tokio: throughput
// ----------------------------------------------------------------------------------------------

/// The native message: what Poc's Rust `Message` is, an id and an owned payload.
struct NativeMsg {
    id: u64,
    payload: Vec<u8>,
}

impl NativeMsg {
    /// A fresh payload of `len` bytes with the agents' pattern (one allocation, as Poc's
    /// producer agents make per message).
    fn with_pattern(id: u64, len: usize) -> NativeMsg {
        let mut payload = vec![0u8; len];
        fill_pattern(id, &mut payload);
        NativeMsg { id, payload }
    }
}

fn native_runtime() -> Res<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS as usize)
        .thread_name("native-tokio")
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

/// Waits (bounded) for a result that a task sends back.
fn wait<T>(rx: &std_mpsc::Receiver<T>, what: &str) -> Res<T> {
    rx.recv_timeout(LIMIT).map_err(|e| format!("{what}: no result within {LIMIT:?} ({e})"))
}

/// One run: `n` messages through `tokio::sync::mpsc::channel(CAPACITY)`; msgs/s.
fn native_throughput_once(rt: &tokio::runtime::Runtime, n: u64, payload: usize) -> Res<f64> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<NativeMsg>(CAPACITY);
    let (ptx, prx) = std_mpsc::channel();
    let (ctx, crx) = std_mpsc::channel();
    let t0 = Instant::now();
    rt.spawn(async move {
        // Consumer: the Poc consumer agent's checks — per-stream order, payload pattern, checksum.
        let (mut count, mut sum, mut errors, mut expected) = (0u64, 0u64, 0u64, 0u64);
        while let Some(m) = rx.recv().await {
            if seq_of(m.id) != expected || m.payload.len() != payload || !check_pattern(m.id, &m.payload) {
                errors += 1;
            }
            expected = seq_of(m.id) + 1;
            sum = sum.wrapping_add(checksum(m.id, &m.payload));
            count += 1;
        }
        let _ = ctx.send((count, sum, errors));
    });
    rt.spawn(async move {
        // Producer: the Poc producer agent's work — a fresh patterned payload and its checksum.
        let mut sum = 0u64;
        for seq in 0..n {
            let m = NativeMsg::with_pattern(producer_id(1, seq), payload);
            let s = checksum(m.id, &m.payload);
            if tx.send(m).await.is_err() {
                let _ = ptx.send(Err(format!("send {seq} failed: receiver gone")));
                return;
            }
            sum = sum.wrapping_add(s);
        }
        drop(tx); // closes the channel: the consumer drains and ends
        let _ = ptx.send(Ok(sum));
    });
    let sent_sum = wait(&prx, "native producer")??;
    let (count, got_sum, errors) = wait(&crx, "native consumer")?;
    let secs = t0.elapsed().as_secs_f64();
    if count != n || got_sum != sent_sum || errors != 0 {
        return Err(format!(
            "tokio mpsc payload {payload}: consumer got {count} of {n} messages, {errors} order/pattern errors, checksum {got_sum:#x} vs sent {sent_sum:#x}"
        ));
    }
    Ok(n as f64 / secs)
}

// ----------------------------------------------------------------------------------------------
// Native tokio: ping-pong latency
// ----------------------------------------------------------------------------------------------

fn check_reply(id: u64, got_id: u64, payload: &[u8]) -> Res<()> {
    if got_id != id || payload.len() != LATENCY_PAYLOAD || !check_pattern(id, payload) {
        return Err(format!(
            "ping {id}: the reply is id {got_id} with {} bytes{} — not the bytes sent",
            payload.len(),
            if check_pattern(got_id, payload) { "" } else { " (pattern broken)" }
        ));
    }
    Ok(())
}

fn native_latency(rt: &tokio::runtime::Runtime, samples: usize) -> Res<Rtt> {
    let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<NativeMsg>(CAPACITY);
    let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<NativeMsg>(CAPACITY);
    let (etx, erx) = std_mpsc::channel();
    let (rtx, rrx) = std_mpsc::channel();
    rt.spawn(async move {
        // Echo task: sends every message back unchanged until the ping channel closes.
        let mut echoed = 0u64;
        while let Some(m) = ping_rx.recv().await {
            if pong_tx.send(m).await.is_err() {
                break;
            }
            echoed += 1;
        }
        let _ = etx.send(echoed);
    });
    rt.spawn(async move {
        let r = async {
            let mut out = Vec::with_capacity(samples);
            for i in 0..(LATENCY_WARMUP + samples) {
                let id = i as u64;
                let msg = NativeMsg::with_pattern(id, LATENCY_PAYLOAD);
                let t = Instant::now();
                ping_tx.send(msg).await.map_err(|_| "ping channel closed".to_string())?;
                let back = pong_rx.recv().await.ok_or("pong channel closed")?;
                let dt = t.elapsed();
                check_reply(id, back.id, &back.payload)?;
                if i >= LATENCY_WARMUP {
                    out.push(dt.as_nanos() as u64);
                }
            }
            Ok::<_, String>(out)
        }
        .await;
        drop(ping_tx);
        let _ = rtx.send(r);
    });
    let out = wait(&rrx, "native pinger")??;
    let echoed = wait(&erx, "native echo")?;
    if echoed != (LATENCY_WARMUP + samples) as u64 || out.len() != samples {
        return Err(format!("native ping-pong: echoed {echoed}, {} samples", out.len()));
    }
    Ok(rtt_of(out))
}

// ----------------------------------------------------------------------------------------------
// Poc: Rust pinger, echo agent of Rust or C++
// ----------------------------------------------------------------------------------------------

/// A C++ runtime (poc_cpp_runtime_new), freed on drop.
struct CppRuntime(*mut ffi::poc_cpp_runtime);

impl CppRuntime {
    fn new(threads: u32) -> Res<CppRuntime> {
        let mut rt = std::ptr::null_mut();
        // SAFETY: `rt` is a valid out pointer.
        let st = Status(unsafe { cpp::poc_cpp_runtime_new(threads, &mut rt) });
        if st != Status::OK || rt.is_null() {
            return Err(format!("poc_cpp_runtime_new({threads}): {st}"));
        }
        Ok(CppRuntime(rt))
    }

    fn channel_ports(&self, capacity: usize) -> Res<(ffi::poc_sender, ffi::poc_receiver)> {
        let mut tx = ffi::poc_sender { handle: 0, vtable: std::ptr::null() };
        let mut rx = ffi::poc_receiver { handle: 0, vtable: std::ptr::null() };
        // SAFETY: live runtime, valid out pointers.
        let st = Status(unsafe { cpp::poc_cpp_channel_new(self.0, capacity, &mut tx, &mut rx) });
        if st != Status::OK {
            return Err(format!("poc_cpp_channel_new: {st}"));
        }
        Ok((tx, rx))
    }
}

impl Drop for CppRuntime {
    fn drop(&mut self) {
        // SAFETY: made by poc_cpp_runtime_new, freed once.
        unsafe { cpp::poc_cpp_runtime_free(self.0) }
    }
}

/// The done callback of the C++ echo agent: `user` is a boxed std mpsc sender, used once.
unsafe extern "C" fn cpp_agent_done(user: *mut c_void, report: *const poc_agent_report) {
    // SAFETY: `user` came from Box::into_raw below and the agent calls done exactly once.
    let tx = unsafe { Box::from_raw(user as *mut std_mpsc::Sender<poc_agent_report>) };
    // SAFETY: `report` is valid for the call (bridge.h).
    if let Some(r) = unsafe { report.as_ref() } {
        let _ = tx.send(*r);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Peer {
    Rust,
    Cpp,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Rust => "Rust",
            Peer::Cpp => "C++",
        }
    }
}

/// A Rust pinger task on `rt` sends a 64-byte message on Poc channel X (owned by `b`) and awaits
/// the reply on Poc channel Y (owned by Rust); an echo agent of `b` receives from X and sends to Y.
fn poc_latency(rt: &Runtime, cpp_rt: &CppRuntime, b: Peer, samples: usize) -> Res<Rtt> {
    let (y_tx, y_rx) = rt.channel_ports(CAPACITY, 0).map_err(|e| format!("Rust channel Y: {e}"))?;
    let (x_tx, x_rx) = match b {
        Peer::Rust => rt.channel_ports(CAPACITY, 0).map_err(|e| format!("Rust channel X: {e}"))?,
        Peer::Cpp => cpp_rt.channel_ports(CAPACITY)?,
    };
    let (dtx, drx) = std_mpsc::channel::<poc_agent_report>();
    match b {
        Peer::Rust => {
            // SAFETY: fresh ports we own, with Poc's own vtables.
            let (erx, etx) = unsafe {
                (
                    PortReceiver::from_raw(x_rx).map_err(|e| e.to_string())?,
                    PortSender::from_raw(y_tx).map_err(|e| e.to_string())?,
                )
            };
            rt.start_echo(erx, etx, move |r| {
                let _ = dtx.send(r.to_ffi());
            })
            .map_err(|e| format!("Rust echo agent: {e}"))?;
        }
        Peer::Cpp => {
            let user = Box::into_raw(Box::new(dtx)) as *mut c_void;
            // SAFETY: live runtime; the agent takes both ports; `user` is freed by the callback.
            let st = Status(unsafe {
                cpp::poc_cpp_echo_start(cpp_rt.0, x_rx, y_tx, Some(cpp_agent_done), user, std::ptr::null_mut())
            });
            if st != Status::OK {
                // SAFETY: `done` is not called on error: reclaim the box; the ports were not taken.
                drop(unsafe { Box::from_raw(user as *mut std_mpsc::Sender<poc_agent_report>) });
                return Err(format!("poc_cpp_echo_start: {st}"));
            }
        }
    }
    // SAFETY: fresh ports we own (X's sender, Y's receiver).
    let (tx, mut rx) = unsafe {
        (
            PortSender::from_raw(x_tx).map_err(|e| e.to_string())?,
            PortReceiver::from_raw(y_rx).map_err(|e| e.to_string())?,
        )
    };
    let (rtx, rrx) = std_mpsc::channel();
    rt.handle().spawn(async move {
        let r = async {
            let mut out = Vec::with_capacity(samples);
            for i in 0..(LATENCY_WARMUP + samples) {
                let id = i as u64;
                let msg = Message::with_pattern(id, LATENCY_PAYLOAD);
                let t = Instant::now();
                tx.send(msg).await.map_err(|e| format!("send on X: {e}"))?;
                let back = rx.recv().await.map_err(|e| format!("recv on Y: {e}"))?;
                let dt = t.elapsed();
                check_reply(id, back.id, &back.payload)?;
                if i >= LATENCY_WARMUP {
                    out.push(dt.as_nanos() as u64);
                }
            }
            Ok::<_, String>(out)
        }
        .await;
        drop(tx); // releases X's only sender: the echo agent sees CLOSED and ends OK
        let _ = rtx.send(r);
        drop(rx);
    });
    let out = wait(&rrx, "Poc pinger")??;
    let report = wait(&drx, "echo agent's done")?;
    let expect = (LATENCY_WARMUP + samples) as u64;
    if Status(report.status) != Status::OK || report.messages != expect || out.len() != samples {
        return Err(format!(
            "{} echo agent ended {} after {} messages (expected OK after {expect})",
            b.name(),
            Status(report.status),
            report.messages
        ));
    }
    Ok(rtt_of(out))
}

// ----------------------------------------------------------------------------------------------
// Native tokio: the cost of awaiting a call
// ----------------------------------------------------------------------------------------------

/// Awaits `std::future::ready(x)` `n` times in a task; ns per await.
fn calls_ready_once(rt: &tokio::runtime::Runtime, n: u64) -> Res<f64> {
    let (tx, rx) = std_mpsc::channel();
    rt.spawn(async move {
        let t0 = Instant::now();
        let mut acc = 0u64;
        for i in 0..n {
            let x = black_box(i);
            acc = acc.wrapping_add(std::future::ready(x.wrapping_mul(x)).await);
        }
        let secs = t0.elapsed().as_secs_f64();
        let _ = tx.send((black_box(acc), secs));
    });
    let (acc, secs) = wait(&rx, "ready calls")?;
    let expect = (0..n).fold(0u64, |a, i| a.wrapping_add(i.wrapping_mul(i)));
    if acc != expect {
        return Err(format!("ready calls: sum {acc} != {expect}"));
    }
    Ok(secs * 1e9 / n as f64)
}

/// Per call: spawn a task on `worker` (another runtime, or `rt` itself) that sends x*x on a
/// tokio oneshot, await the receiver in a task of `rt`; ns per call.
fn calls_posted_once(rt: &tokio::runtime::Runtime, worker: &tokio::runtime::Handle, n: u64) -> Res<f64> {
    let (tx, rx) = std_mpsc::channel();
    let handle = worker.clone();
    rt.spawn(async move {
        let t0 = Instant::now();
        let mut acc = 0u64;
        for i in 0..n {
            let (otx, orx) = tokio::sync::oneshot::channel::<u64>();
            let x = black_box(i);
            drop(handle.spawn(async move {
                let _ = otx.send(x.wrapping_mul(x));
            }));
            match orx.await {
                Ok(v) => acc = acc.wrapping_add(v),
                Err(_) => {
                    let _ = tx.send(Err(format!("posted call {i}: the oneshot was dropped")));
                    return;
                }
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let _ = tx.send(Ok((acc, secs)));
    });
    let (acc, secs) = wait(&rx, "posted calls")??;
    let expect = (0..n).fold(0u64, |a, i| a.wrapping_add(i.wrapping_mul(i)));
    if acc != expect {
        return Err(format!("posted calls: sum {acc} != {expect}"));
    }
    Ok(secs * 1e9 / n as f64)
}

// ----------------------------------------------------------------------------------------------
// Allocations per message on the Rust import path (C++-owned channels)
// ----------------------------------------------------------------------------------------------

/// Payloads of the allocation figures: 0 (no `Vec` anywhere: the adapter's own allocations) and
/// 64 (the test's payload `Vec` per message and the receive's payload copy come in).
const ALLOC_PAYLOADS: [usize; 2] = [0, 64];
const ALLOC_WARMUP: u64 = 1_000;

/// Per-class tallies of one allocation scenario (adapter windows) and the loop's total.
#[derive(Default)]
struct AllocRun {
    send_fast: alloc::Tally,
    send_pending: alloc::Tally,
    recv_fast: alloc::Tally,
    recv_pending: alloc::Tally,
    /// The whole timed loop; `ops` = messages.
    total: alloc::Tally,
}

impl AllocRun {
    fn send(&mut self, pended: bool, d: alloc::Snap) {
        if pended { &mut self.send_pending } else { &mut self.send_fast }.add(d);
    }
    fn recv(&mut self, pended: bool, d: alloc::Snap) {
        if pended { &mut self.recv_pending } else { &mut self.recv_fast }.add(d);
    }
}

fn check_msg(id: u64, payload: usize, m: &Message) -> Res<()> {
    if m.id != id || m.payload.len() != payload || !check_pattern(m.id, &m.payload) {
        return Err(format!("allocations: expected message {id} with {payload} pattern bytes, got id {} ({} bytes)", m.id, m.payload.len()));
    }
    Ok(())
}

/// Fast path: one C++-owned channel (capacity 1), both ends imported in one Rust task: each
/// message is sent (room: the send completes in the port call) and then received (a message is
/// queued: the receive completes in the port call). `warmup` messages uncounted, then `n`.
fn alloc_fast(rt: &Runtime, cpp_rt: &CppRuntime, payload: usize, n: u64) -> Res<AllocRun> {
    let (x_tx, x_rx) = cpp_rt.channel_ports(1)?;
    // SAFETY: fresh ports we own.
    let (tx, mut rx) = unsafe {
        (PortSender::from_raw(x_tx).map_err(|e| e.to_string())?, PortReceiver::from_raw(x_rx).map_err(|e| e.to_string())?)
    };
    let (rtx, rrx) = std_mpsc::channel();
    rt.handle().spawn(async move {
        let r = async {
            let mut run = AllocRun::default();
            let mut t0 = alloc::Snap::default();
            for i in 0..ALLOC_WARMUP + n {
                if i == ALLOC_WARMUP {
                    alloc::set_counting(true);
                    t0 = alloc::snap();
                }
                let m = Message::with_pattern(i, payload);
                let a = alloc::snap();
                let (r, sp) = alloc::pended(tx.send(m)).await;
                let b = alloc::snap();
                r.map_err(|e| format!("send: {e}"))?;
                let (r, rp) = alloc::pended(rx.recv()).await;
                let c = alloc::snap();
                let back = r.map_err(|e| format!("recv: {e}"))?;
                check_msg(i, payload, &back)?;
                drop(back);
                if i >= ALLOC_WARMUP {
                    run.send(sp, b - a);
                    run.recv(rp, c - b);
                }
            }
            let d = alloc::snap() - t0;
            alloc::set_counting(false);
            run.total = alloc::Tally { ops: n, allocs: d.allocs, bytes: d.bytes };
            Ok::<_, String>(run)
        }
        .await;
        alloc::set_counting(false);
        let _ = rtx.send(r);
    });
    wait(&rrx, "allocations (fast path)")?
}

/// Pending path: Rust task → C++-owned channel X (capacity 1) → C++ echo agent (its own thread)
/// → C++-owned channel Y (capacity 1) → the same Rust task. Messages go in pairs: the second
/// send finds X full until the echo took the first (it goes PENDING), and the receives are
/// issued before the echo (another thread) has sent the replies (they go PENDING). Which ops
/// really went pending is recorded per op.
fn alloc_pending(rt: &Runtime, cpp_rt: &CppRuntime, payload: usize, n: u64) -> Res<AllocRun> {
    let (x_tx, x_rx) = cpp_rt.channel_ports(1)?;
    let (y_tx, y_rx) = cpp_rt.channel_ports(1)?;
    let (dtx, drx) = std_mpsc::channel::<poc_agent_report>();
    let user = Box::into_raw(Box::new(dtx)) as *mut c_void;
    // SAFETY: live runtime; the agent takes both ports; `user` is freed by the callback.
    let st = Status(unsafe { cpp::poc_cpp_echo_start(cpp_rt.0, x_rx, y_tx, Some(cpp_agent_done), user, std::ptr::null_mut()) });
    if st != Status::OK {
        // SAFETY: `done` is not called on error.
        drop(unsafe { Box::from_raw(user as *mut std_mpsc::Sender<poc_agent_report>) });
        return Err(format!("poc_cpp_echo_start: {st}"));
    }
    // SAFETY: fresh ports we own (X's sender, Y's receiver).
    let (tx, mut rx) = unsafe {
        (PortSender::from_raw(x_tx).map_err(|e| e.to_string())?, PortReceiver::from_raw(y_rx).map_err(|e| e.to_string())?)
    };
    let total_msgs = ALLOC_WARMUP + n + (n % 2);
    let (rtx, rrx) = std_mpsc::channel();
    rt.handle().spawn(async move {
        let r = async {
            let mut run = AllocRun::default();
            let mut t0 = alloc::Snap::default();
            let mut i = 0u64;
            while i < total_msgs {
                if i == ALLOC_WARMUP {
                    alloc::set_counting(true);
                    t0 = alloc::snap();
                }
                let on = i >= ALLOC_WARMUP;
                let (m1, m2) = (Message::with_pattern(i, payload), Message::with_pattern(i + 1, payload));
                let a = alloc::snap();
                let (r1, p1) = alloc::pended(tx.send(m1)).await;
                let b = alloc::snap();
                let (r2, p2) = alloc::pended(tx.send(m2)).await;
                let c = alloc::snap();
                r1.and(r2).map_err(|e| format!("send on X: {e}"))?;
                let (q1, rp1) = alloc::pended(rx.recv()).await;
                let d = alloc::snap();
                let (q2, rp2) = alloc::pended(rx.recv()).await;
                let e = alloc::snap();
                let (back1, back2) = (q1.map_err(|e| format!("recv on Y: {e}"))?, q2.map_err(|e| format!("recv on Y: {e}"))?);
                check_msg(i, payload, &back1)?;
                check_msg(i + 1, payload, &back2)?;
                drop((back1, back2));
                if on {
                    run.send(p1, b - a);
                    run.send(p2, c - b);
                    run.recv(rp1, d - c);
                    run.recv(rp2, e - d);
                }
                i += 2;
            }
            let d = alloc::snap() - t0;
            alloc::set_counting(false);
            run.total = alloc::Tally { ops: total_msgs - ALLOC_WARMUP, allocs: d.allocs, bytes: d.bytes };
            Ok::<_, String>(run)
        }
        .await;
        alloc::set_counting(false);
        drop(tx); // X's only sender: the echo agent sees CLOSED and ends OK
        drop(rx);
        let _ = rtx.send(r);
    });
    let run = wait(&rrx, "allocations (pending path)")??;
    let report = wait(&drx, "echo agent's done")?;
    if Status(report.status) != Status::OK || report.messages != total_msgs {
        return Err(format!("C++ echo agent ended {} after {} messages (expected OK after {total_msgs})", Status(report.status), report.messages));
    }
    Ok(run)
}

/// The `allocations` rows (JSON) and their progress lines.
fn allocations(cfg: &Config, progress: &mut Progress) -> Res<Vec<String>> {
    let rt = Runtime::new(THREADS).map_err(|e| format!("poc Rust runtime: {e}"))?;
    let cpp_rt = CppRuntime::new(THREADS)?;
    let n = cfg.samples as u64;
    let mut rows = Vec::new();
    for payload in ALLOC_PAYLOADS {
        let fast = alloc_fast(&rt, &cpp_rt, payload, n)?;
        let pend = alloc_pending(&rt, &cpp_rt, payload, n)?;
        let adapter_note = if payload == 0 {
            "payload 0: no Vec anywhere, so this is the adapter's own allocation".to_string()
        } else {
            format!("payload {payload}: a receive includes its copy of the payload into the new Message's Vec (one {payload}-byte allocation per message, by design); the test's own payload Vec is made before the window")
        };
        let window = "counted from just before the op's future is created until it resolved, on every thread (process-wide counting #[global_allocator] wrapping System; the C++ exporter's operator new goes to malloc and is not counted)";
        let f_ops = fast.send_fast.ops + fast.send_pending.ops;
        let p_sends = pend.send_fast.ops + pend.send_pending.ops;
        let p_recvs = pend.recv_fast.ops + pend.recv_pending.ops;
        let classes: [(&str, alloc::Tally, String); 6] = [
            ("send fast (C++ channel)", fast.send_fast,
             format!("fast-path loop (one task sends a message on a C++-owned channel of capacity 1, then receives it): PortSender::send(msg).await that completed in the port call (room; no PENDING); {} of the loop's {f_ops} sends", fast.send_fast.ops)),
            ("recv fast (C++ channel)", fast.recv_fast,
             format!("fast-path loop: PortReceiver::recv().await that completed in the port call (a message was queued); {} of the loop's {f_ops} receives", fast.recv_fast.ops)),
            ("send pending (C++ channel)", pend.send_pending,
             format!("echo loop (pairs of sends on C++-owned channel X of capacity 1, a C++ echo agent on its own thread, pairs of receives on C++-owned channel Y of capacity 1): PortSender::send(msg).await that went PENDING (X full) and was completed by the C++ runtime's callback; {} of the loop's {p_sends} sends", pend.send_pending.ops)),
            ("send fast, echo loop (C++ channel)", pend.send_fast,
             format!("echo loop: the sends that did not go PENDING (room in X); an allocation here is a send slot that could not be reused after the previous pending send; {} of the loop's {p_sends} sends", pend.send_fast.ops)),
            ("recv pending (C++ channel)", pend.recv_pending,
             format!("echo loop: PortReceiver::recv().await that went PENDING (Y empty) and was completed by the C++ runtime's callback when the echo agent sent the reply; {} of the loop's {p_recvs} receives", pend.recv_pending.ops)),
            ("recv fast, echo loop (C++ channel)", pend.recv_fast,
             format!("echo loop: the receives that did not go PENDING (the reply was already in Y); {} of the loop's {p_recvs} receives", pend.recv_fast.ops)),
        ];
        for (path, t, what) in classes {
            progress.line(&format!(
                "allocations Rust {path} payload {payload}: {:.3} allocs/msg, {:.1} B/msg ({} ops)",
                t.allocs_per_op(), t.bytes_per_op(), t.ops
            ));
            rows.push(alloc_row(path, payload, "adapter", &t, &format!("{what}; {window}; {adapter_note}; {} warm-up messages first", ALLOC_WARMUP)));
        }
        let totals = [
            ("send+recv loop, fast path (C++ channel)", fast.total,
             "the whole fast-path loop per message: the test's Message::with_pattern (a Vec of payload bytes, none for 0), send, receive (with its payload copy), checks, and dropping the received message"),
            ("send+recv loop, pending path (C++ echo)", pend.total,
             "the whole pipelined echo loop per message (pairs of sends on C++ channel X, pairs of receives on C++ channel Y, capacity 1, C++ echo agent between): the test's Message per message, send, receive, checks, drop"),
        ];
        for (path, t, what) in totals {
            progress.line(&format!(
                "allocations Rust {path} payload {payload}: {:.3} allocs/msg, {:.1} B/msg total ({} msgs)",
                t.allocs_per_op(), t.bytes_per_op(), t.ops
            ));
            rows.push(alloc_row(path, payload, "total", &t, &format!("{what}; counted process-wide after {ALLOC_WARMUP} warm-up messages")));
        }
    }
    drop(cpp_rt);
    rt.shutdown().map_err(|e| format!("poc Rust runtime shutdown: {e}"))?;
    Ok(rows)
}

fn alloc_row(path: &str, payload: usize, scope: &str, t: &alloc::Tally, what: &str) -> String {
    format!(
        "    {{\"runtime\": \"Rust\", \"path\": {}, \"payload\": {payload}, \"scope\": {}, \"bytes_per_msg\": {}, \"allocs_per_msg\": {}, \"messages\": {}, \"allocs\": {}, \"bytes\": {}, \"what\": {}}}",
        json_str(path), json_str(scope), json_num_fine(t.bytes_per_op()), json_num_fine(t.allocs_per_op()), t.ops, t.allocs, t.bytes, json_str(what)
    )
}

// ----------------------------------------------------------------------------------------------
// main
// ----------------------------------------------------------------------------------------------

fn run(cfg: &Config, out_path: &str) -> Res<()> {
    let mut progress = Progress {
        done: 0,
        total: PAYLOADS.len() + 1 + 2 + 3 + ALLOC_PAYLOADS.len() * 8 + strategies::LINES + call_alloc::LINES,
        t0: Instant::now(),
    };
    let native = native_runtime()?;
    let mut json = String::from("{\n  \"runtime\": \"Rust\",\n");
    let _ = writeln!(json, "  \"mode\": {},", json_str(if cfg.quick { "quick" } else { "full" }));
    let _ = writeln!(json, "  \"threads\": {THREADS},");

    // native_throughput
    let mut rows = Vec::new();
    for payload in PAYLOADS {
        let s = measure(cfg.runs, || native_throughput_once(&native, cfg.messages, payload))?;
        progress.line(&format!(
            "tokio mpsc throughput payload {payload}: {:.3e} msg/s (min {:.3e}, max {:.3e})",
            s.median, s.min, s.max
        ));
        let what = format!(
            "tokio::sync::mpsc::channel({CAPACITY}) of {{id: u64, payload: Vec<u8>}}, one producer task (a fresh Vec of {payload} bytes per message, filled with the agents' pattern, checksummed) and one consumer task (checks order, pattern, checksum) on a tokio multi-thread runtime with {THREADS} worker thread (Poc.Bridge's RustRuntime default)"
        );
        rows.push(format!(
            "    {{\"payload\": {payload}, \"capacity\": {CAPACITY}, \"msgs_per_s\": {}, \"min\": {}, \"max\": {}, \"runs\": {}, \"messages\": {}, \"what\": {}}}",
            json_num(s.median), json_num(s.min), json_num(s.max), s.runs, cfg.messages, json_str(&what)
        ));
    }
    let _ = writeln!(json, "  \"native_throughput\": [\n{}\n  ],", rows.join(",\n"));

    // native_latency
    let r = native_latency(&native, cfg.samples)?;
    progress
        .line(&format!("tokio mpsc ping-pong payload {LATENCY_PAYLOAD}: RTT p50 {:.0} ns, p99 {:.0} ns", r.p50, r.p99));
    let what = format!(
        "ping-pong between two tasks of one tokio multi-thread runtime ({THREADS} worker thread) over two tokio::sync::mpsc::channel({CAPACITY}); the pinger sends a fresh {LATENCY_PAYLOAD}-byte message and awaits its echo; {LATENCY_WARMUP} warm-up round trips, then one sample per round trip"
    );
    let _ = writeln!(
        json,
        "  \"native_latency\": [\n    {{\"rtt_ns_p50\": {}, \"rtt_ns_p99\": {}, \"samples\": {}, \"payload\": {LATENCY_PAYLOAD}, \"what\": {}}}\n  ],",
        json_num(r.p50), json_num(r.p99), r.samples, json_str(&what)
    );

    // latency (Poc)
    let poc_rt = Runtime::new(THREADS).map_err(|e| format!("poc Rust runtime: {e}"))?;
    let cpp_rt = CppRuntime::new(THREADS)?;
    let mut rows = Vec::new();
    for b in [Peer::Rust, Peer::Cpp] {
        let r = poc_latency(&poc_rt, &cpp_rt, b, cfg.samples)?;
        progress.line(&format!(
            "Poc ping-pong Rust pinger -> {} echo payload {LATENCY_PAYLOAD}: RTT p50 {:.0} ns, p99 {:.0} ns",
            b.name(),
            r.p50,
            r.p99
        ));
        let what = format!(
            "Rust pinger task on a poc_bridge::Runtime ({THREADS} worker) sends on Poc channel X owned by {} (PortSender::send().await) and awaits the reply on Poc channel Y owned by Rust (PortReceiver::recv().await); the {} echo agent ({}) receives from X and sends to Y; capacity {CAPACITY}; {}",
            b.name(),
            b.name(),
            if b == Peer::Rust { "poc_rust_echo_start's agent, same runtime as the pinger" } else { "poc_cpp_echo_start on a poc_cpp_runtime with 1 thread" },
            if b == Peer::Rust { "one thread in all" } else { "two threads: one per runtime" }
        );
        rows.push(format!(
            "    {{\"a\": \"Rust\", \"b\": {}, \"rtt_ns_p50\": {}, \"rtt_ns_p99\": {}, \"samples\": {}, \"payload\": {LATENCY_PAYLOAD}, \"what\": {}}}",
            json_str(b.name()), json_num(r.p50), json_num(r.p99), r.samples, json_str(&what)
        ));
    }
    let _ = writeln!(json, "  \"latency\": [\n{}\n  ],", rows.join(",\n"));
    drop(cpp_rt);
    poc_rt.shutdown().map_err(|e| format!("poc Rust runtime shutdown: {e}"))?;

    // native_calls
    let ready = measure(cfg.runs, || calls_ready_once(&native, cfg.ready_calls))?;
    progress.line(&format!("tokio await std::future::ready: {:.2} ns/call", ready.median));
    let worker = native_runtime()?;
    let posted = measure(cfg.runs, || calls_posted_once(&native, worker.handle(), cfg.posted_calls))?;
    progress.line(&format!("tokio spawn on another runtime's thread + oneshot await: {:.1} ns/call", posted.median));
    drop(worker);
    let same = measure(cfg.runs, || calls_posted_once(&native, native.handle(), cfg.posted_calls))?;
    progress.line(&format!("tokio spawn on the same runtime + oneshot await: {:.1} ns/call", same.median));
    let rows = [
        ("ready", ready, cfg.ready_calls, format!(
            "awaiting an already-completed future: std::future::ready(x*x).await in a task of the tokio runtime ({THREADS} worker); ns per await, median of runs"
        )),
        ("posted", posted, cfg.posted_calls, format!(
            "per call: tokio::sync::oneshot::channel, spawn a task on a second tokio runtime ({THREADS} worker, its own thread) that sends x*x, await the receiver in a task of the first runtime ({THREADS} worker): the awaiting task suspends and is woken from the other thread (two thread hops per call); ns per call, median of runs"
        )),
        ("posted_same_thread", same, cfg.posted_calls, format!(
            "per call: tokio::sync::oneshot::channel, spawn a task on the same runtime ({THREADS} worker) that sends x*x, await the receiver: the awaiting task suspends and is woken by the other task on the same thread; ns per call, median of runs"
        )),
    ];
    let rows: Vec<String> = rows
        .iter()
        .map(|(mode, s, calls, what)| {
            format!(
                "    {{\"mode\": {}, \"ns_per_call\": {}, \"min\": {}, \"max\": {}, \"runs\": {}, \"calls\": {calls}, \"what\": {}}}",
                json_str(mode), json_num_fine(s.median), json_num_fine(s.min), json_num_fine(s.max), s.runs, json_str(what)
            )
        })
        .collect();
    let _ = writeln!(json, "  \"native_calls\": [\n{}\n  ],", rows.join(",\n"));
    drop(native);

    // allocations (the counting allocator is on only inside this section)
    let rows = allocations(cfg, &mut progress)?;
    let _ = writeln!(json, "  \"allocations\": [\n{}\n  ],", rows.join(",\n"));
    println!("[native-rust] sections so far: {:.1}s", progress.t0.elapsed().as_secs_f64());

    // call_allocations (counting allocator again, only inside the section)
    let t = Instant::now();
    let rows = call_alloc::call_allocations(cfg.samples as u64, &mut progress)?;
    let _ = writeln!(json, "  \"call_allocations\": [\n{}\n  ],", rows.join(",\n"));
    println!("[native-rust] call_allocations: {:.1}s", t.elapsed().as_secs_f64());

    // strategies
    let t = Instant::now();
    let rows = strategies::strategies(cfg, &mut progress)?;
    let _ = writeln!(json, "  \"strategies\": [\n{}\n  ]\n}}", rows.join(",\n"));
    println!("[native-rust] strategies: {:.1}s", t.elapsed().as_secs_f64());

    std::fs::write(out_path, json).map_err(|e| format!("writing {out_path}: {e}"))?;
    println!("[native-rust] wrote {out_path} in {:.0}s", progress.t0.elapsed().as_secs_f64());
    Ok(())
}

/// ns/call figures can be below 1: keep three decimals.
fn json_num_fine(x: f64) -> String {
    assert!(x.is_finite(), "non-finite figure");
    format!("{}", (x * 1000.0).round() / 1000.0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = None;
    let mut quick = false;
    let mut criterion_dir: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--quick" => quick = true,
            "--out" if i + 1 < args.len() => {
                i += 1;
                out = Some(args[i].clone());
            }
            "--criterion-summary" if i + 1 < args.len() => {
                i += 1;
                criterion_dir = Some(args[i].clone());
            }
            "--help" | "-h" => {
                println!("usage: poc-bench-native-rust --out FILE [--quick]");
                println!("       poc-bench-native-rust --criterion-summary DIR --out FILE");
                return ExitCode::SUCCESS;
            }
            a => {
                eprintln!("poc-bench-native-rust: unknown argument {a} (usage: --out FILE [--quick])");
                return ExitCode::from(2);
            }
        }
        i += 1;
    }
    let Some(out) = out else {
        eprintln!("poc-bench-native-rust: --out FILE is required");
        return ExitCode::from(2);
    };
    let result = match criterion_dir {
        Some(dir) => criterion_summary::summarise(&dir, &out),
        None => run(&Config::new(quick), &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("poc-bench-native-rust: FAILED: {e}");
            ExitCode::from(1)
        }
    }
}
