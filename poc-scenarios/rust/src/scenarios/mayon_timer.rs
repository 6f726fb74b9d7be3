// mayon-timer — mayon asio-poc's `examples/recv.rs` (Zondax/mayon crates/asio-poc) done right: a C++
// Asio timer task sends into a Rust tokio channel, and Rust receives with `.await`.
//
// Protocol
//   Setup: a C++ runtime (poc_cpp_runtime_new, 1 thread: an io_context) and the Rust runtime
//   (poc_bridge::Runtime, a tokio multi-thread runtime); main runs its async parts on that tokio
//   runtime with Handle::block_on, as #[tokio::main] would.
//
//   Part 1 — mayon's run.
//   1. The Rust side exports a bounded tokio channel of capacity 4 (Runtime::channel_ports) and
//      imports its receiver port (PortReceiver). The sender port goes to the C++ timer task
//      (poc_cpp_timer_start): every 10 ms an asio::steady_timer fires and the task sends
//      {count, "From Cpp async task!!"} (count from 0), *awaiting* each send.
//   2. Rust takes 3 messages (each receive bounded by 30 s), prints each, then prints
//      "All messages received".
//   3. Rust cancels the timer task (poc_cpp_agent_cancel). It ends with CANCELLED — its done
//      callback runs exactly once — and releases its sender port, which closes the channel.
//   4. Rust drains what the timer sent in the meantime, until CLOSED.
//   Checks: ids 0, 1, 2 in order with the text; the timer ended CANCELLED; every message the
//   timer counted as sent arrived, in order (count and checksum equal its report).
//
//   Part 2 — backpressure (mayon's try_send dropped a message whenever the channel was full).
//   1. A Rust channel of capacity C (default 1); the timer task gets its sender port through a
//      counting proxy vtable (same handle, same functions; it only counts whether each `send`
//      found room at once or had to wait), limited to N messages (default 50).
//   2. A slow Rust consumer: after every receive it awaits a 20 ms tokio sleep — slower than the
//      timer's 10 ms on purpose (sleeping to *be slow*, not to synchronise). It receives until
//      CLOSED: the timer ends OK after N sends and releases its port.
//   Checks: N messages arrived, ids 0..N in order, the text; the timer ended OK and its report
//   count equals the received count (it was paced by backpressure: none dropped); checksums
//   equal; every one of the timer's sends went through the proxy. Printed, not checked (they
//   depend on timing): how many sends waited for room, and the elapsed time.
//
//   Teardown: shut both runtimes down; each timer's done callback ran exactly once.
//
// Usage: mayon-timer [--messages N] [--capacity C]   (part 2's size; defaults 50 and 1)
// Exit code 0 when every invariant held, 1 when one broke, 2 for bad arguments.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use poc_bridge::ffi::{
    self, poc_message_view, poc_op_id, poc_send_complete_fn, poc_sender, poc_sender_vtable, poc_status,
};
use poc_bridge::{Message, PortReceiver, RecvError, Runtime, Status};
use poc_scenarios::{describe, parse_options, text, Checks, CppRuntime, Options, Reports, LIMIT};

const TEXT: &str = "From Cpp async task!!";
const USAGE: &str = "usage: mayon-timer [--messages N] [--capacity C]\n  \
    part 1: mayon's recv.rs (C++ timer -> Rust channel, 3 messages, cancel)\n  \
    part 2: N messages (default 50) through a Rust channel of capacity C (default 1) to a slow consumer";

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let defaults = Options { messages: 50, capacity: 1, payload: 0 };
    let o = match parse_options(defaults, &["--messages", "--capacity"], USAGE, std::env::args().skip(1)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if o.messages == 0 {
        // the timer task treats 0 as "until cancelled": part 2 would never end
        eprintln!("--messages must be at least 1");
        eprintln!("{USAGE}");
        return 2;
    }
    let checks = Checks::new();
    let cpp = match CppRuntime::new(1) {
        Ok(c) => c,
        Err(s) => {
            checks.check(false, format!("C++ runtime starts: {s}"));
            return checks.finish("mayon-timer");
        }
    };
    let rt = match Runtime::new(2) {
        Ok(r) => r,
        Err(e) => {
            checks.check(false, format!("Rust runtime starts: {e}"));
            return checks.finish("mayon-timer");
        }
    };

    let timer1 = Reports::new();
    let timer2 = Reports::new();
    part1(&checks, &cpp, &rt, &timer1);
    part2(&checks, &cpp, &rt, &timer2, o);

    println!("mayon-timer: teardown");
    checks.check(cpp.shutdown() == Status::OK, "C++ runtime shut down");
    checks.check(rt.shutdown().is_ok(), "Rust runtime shut down");
    drop(cpp); // after this no done callback can run any more
    drop(rt);
    for (t, which) in [(&timer1, "part 1"), (&timer2, "part 2")] {
        let (calls, started) = t.calls();
        if started > 0 {
            checks.check(calls == 1, format!("{which}: the timer's done callback ran exactly once ({calls})"));
        }
    }
    checks.finish("mayon-timer")
}

/// Receives until CLOSED, each receive bounded; `slow` awaits that long after every message.
async fn receive_all(rx: &mut PortReceiver, slow: Option<Duration>, print: bool) -> Result<Vec<Message>, String> {
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(LIMIT, rx.recv()).await {
            Ok(Ok(m)) => {
                if print {
                    println!("  Received: count={} msg=\"{}\"", m.id, text(&m.payload));
                }
                got.push(m);
                if let Some(d) = slow {
                    tokio::time::sleep(d).await;
                }
            }
            Ok(Err(RecvError::Closed)) => return Ok(got),
            Ok(Err(e)) => return Err(format!("receive failed after {} messages: {e}", got.len())),
            Err(_) => return Err(format!("no message and no CLOSED within {LIMIT:?} (after {} messages)", got.len())),
        }
    }
}

fn sum(ms: &[Message]) -> u64 {
    ms.iter().map(Message::checksum).fold(0, u64::wrapping_add)
}

fn in_order_with_text(ms: &[Message], from: u64) -> bool {
    ms.iter().enumerate().all(|(i, m)| m.id == from + i as u64 && m.payload == TEXT.as_bytes())
}

fn part1(checks: &Checks, cpp: &CppRuntime, rt: &Runtime, timer: &std::sync::Arc<Reports>) {
    println!(
        "mayon-timer, part 1: C++ Asio timer task -> Rust tokio channel (capacity 4) -> Rust task takes 3 messages"
    );
    let (tx, rx) = match rt.channel_ports(4, 0) {
        Ok(p) => p,
        Err(e) => {
            checks.check(false, format!("Rust channel exported: {e}"));
            return;
        }
    };
    // SAFETY: a fresh receiver port we own, with the Rust exporter's static vtable.
    let mut rx = unsafe { PortReceiver::from_raw(rx) }.expect("the Rust exporter's vtable is valid");
    let id = match cpp.start_timer(tx, 10, 0, timer) {
        Ok(id) => id,
        Err(s) => {
            checks.check(false, format!("timer task started: {s}"));
            return;
        }
    };
    checks
        .check(true, "timer task started on the C++ runtime (every 10 ms), holding the sender port of a Rust channel");

    let got = rt.handle().block_on(async {
        let mut got = Vec::new();
        for _ in 0..3 {
            match tokio::time::timeout(LIMIT, rx.recv()).await {
                Ok(Ok(m)) => {
                    println!("  Received: count={} msg=\"{}\"", m.id, text(&m.payload));
                    got.push(m);
                }
                Ok(Err(e)) => return Err(format!("receive failed: {e}")),
                Err(_) => return Err(format!("no message within {LIMIT:?}")),
            }
        }
        Ok(got)
    });
    let got = match got {
        Ok(g) => g,
        Err(e) => {
            checks.check(false, e);
            cpp.cancel(id);
            return;
        }
    };
    println!("  All messages received");
    checks.check(in_order_with_text(&got, 0), format!("counts 0, 1, 2 in order, each saying \"{TEXT}\""));

    checks.check(cpp.cancel(id) == Status::OK, "timer task cancelled (poc_cpp_agent_cancel)");
    let Some(report) = timer.wait() else {
        checks.check(false, format!("the timer task ended within {LIMIT:?} after the cancel"));
        return;
    };
    println!("  timer task report: {}", describe(&report));
    checks.check(Status(report.status) == Status::CANCELLED, "the timer task ended CANCELLED");

    // The timer released its sender port when it ended: the channel is closed; drain it.
    let rest = match rt.handle().block_on(receive_all(&mut rx, None, false)) {
        Ok(r) => r,
        Err(e) => {
            checks.check(false, e);
            return;
        }
    };
    println!("  after the cancel: {} more message(s) the timer had sent were drained, then CLOSED", rest.len());
    let all: Vec<Message> = got.into_iter().chain(rest).collect();
    checks.check(in_order_with_text(&all, 0), "every message in order, none missing");
    checks.check(
        all.len() as u64 == report.messages && sum(&all) == report.checksum,
        format!(
            "every message the timer sent arrived: {} sent, {} received, checksums equal",
            report.messages,
            all.len()
        ),
    );
}

fn part2(checks: &Checks, cpp: &CppRuntime, rt: &Runtime, timer: &std::sync::Arc<Reports>, o: Options) {
    const SLOW: Duration = Duration::from_millis(20);
    println!(
        "mayon-timer, part 2: backpressure — {} messages through a Rust channel of capacity {} to a slow consumer \
         ({} ms per message; the timer fires every 10 ms)",
        o.messages,
        o.capacity,
        SLOW.as_millis()
    );
    let (tx, rx) = match rt.channel_ports(o.capacity, 0) {
        Ok(p) => p,
        Err(e) => {
            checks.check(false, format!("Rust channel exported: {e}"));
            return;
        }
    };
    // SAFETY: a fresh receiver port we own.
    let mut rx = unsafe { PortReceiver::from_raw(rx) }.expect("the Rust exporter's vtable is valid");
    let counted = poc_sender { handle: tx.handle, vtable: &COUNTING_SENDER_VTABLE };
    let t0 = Instant::now();
    if let Err(s) = cpp.start_timer(counted, 10, o.messages, timer) {
        checks.check(false, format!("timer task started: {s}"));
        // SAFETY: on an error the port was not taken: it is still ours to release.
        unsafe { (inner().release.expect("the Rust exporter's vtable is complete"))(tx.handle) };
        return;
    }
    checks.check(true, format!("timer task started, limited to {} messages", o.messages));

    let got = rt.handle().block_on(receive_all(&mut rx, Some(SLOW), false));
    let elapsed = t0.elapsed();
    let got = match got {
        Ok(g) => g,
        Err(e) => {
            checks.check(false, e);
            return;
        }
    };
    let Some(report) = timer.wait() else {
        checks.check(false, format!("the timer task reported within {LIMIT:?}"));
        return;
    };
    println!("  timer task report: {}", describe(&report));
    println!("  Rust received {} messages, the timer sent {}", got.len(), report.messages);
    checks.check(Status(report.status) == Status::OK, "the timer task sent all its messages and ended OK");
    checks.check(
        got.len() as u64 == o.messages,
        format!("{} messages arrived of {}: none dropped", got.len(), o.messages),
    );
    checks.check(in_order_with_text(&got, 0), format!("counts 0..{} in order, each saying \"{TEXT}\"", o.messages));
    checks.check(
        report.messages == got.len() as u64 && report.checksum == sum(&got),
        format!(
            "the timer's report count equals the received count ({}) and the checksums are equal: \
             the timer was paced by backpressure, nothing was dropped",
            got.len()
        ),
    );
    let (at_once, waited) = (SENDS_AT_ONCE.load(Ordering::SeqCst), SENDS_WAITED.load(Ordering::SeqCst));
    checks.check(
        at_once + waited == report.messages,
        format!("all {} of the timer's sends went through the counting proxy", report.messages),
    );
    println!(
        "  the timer's sends: {at_once} found room at once, {waited} waited for room (mayon's try_send would have dropped those {waited})"
    );
    println!(
        "  {} messages took {} ms; unpaced, the timer would have needed about {} ms: the slow consumer set the pace",
        got.len(),
        elapsed.as_millis(),
        o.messages * 10
    );
}

// ---------------------------------------------------------------------------------------------
// A counting proxy of the Rust exporter's sender vtable. Same handle, same functions; `send`
// also counts how it was answered (OK: found room; PENDING: waited for room). The completion
// callback and `user` reach the exporter unchanged, so nothing about the contract changes.
// ---------------------------------------------------------------------------------------------

static SENDS_AT_ONCE: AtomicU64 = AtomicU64::new(0);
static SENDS_WAITED: AtomicU64 = AtomicU64::new(0);

fn inner() -> &'static poc_sender_vtable {
    &poc_bridge::export::SENDER_VTABLE
}

static COUNTING_SENDER_VTABLE: poc_sender_vtable = poc_sender_vtable {
    abi_version: ffi::POC_ABI_VERSION,
    size: std::mem::size_of::<poc_sender_vtable>() as u32,
    try_send: Some(counting_try_send),
    send: Some(counting_send),
    cancel: Some(counting_cancel),
    close: Some(counting_close),
    clone: Some(counting_clone),
    release: Some(counting_release),
};

unsafe extern "C" fn counting_try_send(handle: u64, msg: *const poc_message_view) -> poc_status {
    // SAFETY: forwarded as received; the Rust exporter checks everything.
    unsafe { (inner().try_send.unwrap_unchecked())(handle, msg) }
}

unsafe extern "C" fn counting_send(
    handle: u64,
    msg: *const poc_message_view,
    on_complete: poc_send_complete_fn,
    user: *mut std::ffi::c_void,
    op: *mut poc_op_id,
) -> poc_status {
    // SAFETY: forwarded as received.
    let st = unsafe { (inner().send.unwrap_unchecked())(handle, msg, on_complete, user, op) };
    match st {
        ffi::POC_OK => SENDS_AT_ONCE.fetch_add(1, Ordering::SeqCst),
        ffi::POC_PENDING => SENDS_WAITED.fetch_add(1, Ordering::SeqCst),
        _ => 0,
    };
    st
}

unsafe extern "C" fn counting_cancel(handle: u64, op: poc_op_id) -> poc_status {
    // SAFETY: forwarded.
    unsafe { (inner().cancel.unwrap_unchecked())(handle, op) }
}

unsafe extern "C" fn counting_close(handle: u64) -> poc_status {
    // SAFETY: forwarded.
    unsafe { (inner().close.unwrap_unchecked())(handle) }
}

unsafe extern "C" fn counting_clone(handle: u64, out: *mut poc_sender) -> poc_status {
    // SAFETY: forwarded; on success the clone is counted too.
    let st = unsafe { (inner().clone.unwrap_unchecked())(handle, out) };
    if st == ffi::POC_OK {
        // SAFETY: the exporter wrote a port to `out`.
        unsafe { (*out).vtable = &COUNTING_SENDER_VTABLE };
    }
    st
}

unsafe extern "C" fn counting_release(handle: u64) -> poc_status {
    // SAFETY: forwarded.
    unsafe { (inner().release.unwrap_unchecked())(handle) }
}
