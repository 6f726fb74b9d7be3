//! Lent functions across Rust and C++: Rust calls the C++ "square" function
//! (`poc_cpp_square_fn`: READY, POSTED to the io_context, TIMER on an asio::steady_timer) through
//! `AsyncFn` and the raw pointers; Rust's `sum_calls` awaits C++ squares; C++'s `sum_calls`
//! (`poc_cpp_sum_calls`, a coroutine on the C++ runtime) awaits Rust squares.
//!
//! Deterministic: a call that must be pending at its first poll is made while the C++ runtime's
//! only thread is held inside a wake ([`CppHold`]); delays that must not elapse are an hour long
//! and only cancel, release or shutdown end them; every wait is bounded (`common::LIMIT`). The
//! C++ side exposes no live-future count through the C ABI, so releases of C++ functions and
//! futures are counted by the wrapper of `common::lent::counted`; the Rust side's counts are
//! asserted back at zero after every test (serial lock).

mod common;
mod cpp_support;

use std::ffi::c_void;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::task::Poll;

use common::lent::*;
use common::{block_on, counting_waker, poll_once, within, LIMIT};
use cpp_support::CppRuntime;
use poc_bridge::ffi::{self, cpp, poc_async_fn, poc_future};
use poc_bridge::future::lend::{self, square_fn, sum_calls, AsyncFn, SquareMode, SQUARE_PANIC_MESSAGE};
use poc_bridge::future::{CallError, ForeignFuture};
use poc_bridge::{poc_rust_sum_calls, Message, Runtime, Status};

const HOUR_MS: u32 = 3_600_000;
const MODES: [u32; 3] = [ffi::POC_SQUARE_READY, ffi::POC_SQUARE_POSTED, ffi::POC_SQUARE_TIMER];

fn m(x: u64) -> Message {
    Message::new(x, Vec::new())
}

fn ok(x: u64) -> Result<Message, CallError> {
    Ok(m(x))
}

fn own(f: poc_async_fn) -> AsyncFn {
    unsafe { AsyncFn::from_raw(f) }.expect("a lent function with both entry points")
}

/// The C++ square function, raw.
fn cpp_square_raw(cpp: &CppRuntime, mode: u32, delay_ms: u32) -> poc_async_fn {
    let mut f = no_fn();
    let st = Status(unsafe { cpp::poc_cpp_square_fn(cpp.raw(), mode, delay_ms, &mut f) });
    assert_eq!(st, Status::OK, "poc_cpp_square_fn(mode {mode}, {delay_ms} ms)");
    f
}

fn cpp_square(cpp: &CppRuntime, mode: u32, delay_ms: u32) -> AsyncFn {
    own(cpp_square_raw(cpp, mode, delay_ms))
}

/// The C++ panic of square(2^64 - 1) arrives as `Panic` with the exception's text.
fn assert_cpp_panic(r: Result<Message, CallError>, prefix: &str, what: &str) {
    match r {
        Err(CallError::Panic(text)) => {
            assert!(text.starts_with(prefix), "{what}: {text:?} does not start with {prefix:?}");
            assert!(text.contains("square"), "{what}: {text:?} is not the square's exception");
        }
        other => panic!("{what}: expected Panic, got {other:?}"),
    }
}

fn shutdown(cpp: CppRuntime) {
    assert_eq!(within("C++ shutdown and free", move || {
        let st = cpp.shutdown();
        drop(cpp);
        st
    }), Status::OK);
}

// ---------------------------------------------------------------------------------------------
// Holding the C++ runtime's only thread
// ---------------------------------------------------------------------------------------------

/// The `user` of the holding future's wake: the wake (on the C++ thread) says it entered, blocks
/// until released, then says it left — the last thing it does with this gate.
struct Gate {
    entered: mpsc::Sender<()>,
    release: Mutex<mpsc::Receiver<()>>,
    left: mpsc::Sender<()>,
}

unsafe extern "C" fn gate_wake(user: *mut c_void) {
    let g = unsafe { &*(user as *const Gate) };
    let left = g.left.clone();
    let _ = g.entered.send(());
    let _ = g.release.lock().unwrap().recv_timeout(LIMIT); // blocks the C++ thread on purpose
    let _ = left.send(()); // `g` is not touched after this
}

unsafe extern "C" fn ignore_deliver(_: *mut c_void, _: ffi::poc_status, _: *const ffi::poc_message_view) {}

/// Blocks the only thread of a one-thread C++ runtime (inside the wake of a `delayed_square`
/// future) until dropped: operations posted meanwhile cannot run, so a POSTED or TIMER call is
/// deterministically still pending at its first poll.
struct CppHold {
    gate: Arc<Gate>,
    release: mpsc::Sender<()>,
    left: mpsc::Receiver<()>,
    fut: poc_future,
}

impl CppHold {
    fn only_thread_of(cpp: &CppRuntime) -> CppHold {
        for _ in 0..1000 {
            let mut fut = no_future();
            assert_eq!(Status(unsafe { cpp::poc_cpp_delayed_square(cpp.raw(), 1, 1, &mut fut) }), Status::OK);
            let (entered_tx, entered_rx) = mpsc::channel();
            let (release_tx, release_rx) = mpsc::channel();
            let (left_tx, left_rx) = mpsc::channel();
            let gate = Arc::new(Gate { entered: entered_tx, release: Mutex::new(release_rx), left: left_tx });
            let vt = unsafe { &*fut.vtable };
            let user = Arc::as_ptr(&gate) as *mut c_void;
            let st = Status(unsafe { vt.poll.unwrap()(fut.handle, Some(gate_wake), Some(ignore_deliver), user) });
            if st == Status::PENDING {
                entered_rx.recv_timeout(LIMIT).expect("the C++ thread entered the holding wake");
                return CppHold { gate, release: release_tx, left: left_rx, fut };
            }
            // The 1 ms timer won the race with the poll: try again.
            assert_eq!(Status(unsafe { vt.release.unwrap()(fut.handle) }), Status::OK);
        }
        panic!("could not hold the C++ thread in 1000 attempts");
    }
}

impl Drop for CppHold {
    fn drop(&mut self) {
        let _ = self.release.send(());
        self.left.recv_timeout(LIMIT).expect("the holding wake returned");
        let vt = unsafe { &*self.fut.vtable };
        let user = Arc::as_ptr(&self.gate) as *mut c_void;
        let st = Status(unsafe { vt.poll.unwrap()(self.fut.handle, Some(gate_wake), Some(ignore_deliver), user) });
        assert_eq!(st, Status::OK, "the holding future finished");
        assert_eq!(Status(unsafe { vt.release.unwrap()(self.fut.handle) }), Status::OK);
    }
}

// ---------------------------------------------------------------------------------------------
// Rust → C++: the C++ square
// ---------------------------------------------------------------------------------------------

#[test]
fn cpp_ready_square_answers_at_the_first_poll_without_a_wake() {
    let _serial = serial();
    let cpp = CppRuntime::new(1);
    let (f, counts) = counted(cpp_square_raw(&cpp, ffi::POC_SQUARE_READY, 0));
    for x in [0, 7, u64::from(u32::MAX)] {
        let (st, fut) = raw_call(&f, x);
        assert_eq!(st, Status::OK, "call({x})");
        let p = Probe::new();
        assert_eq!(raw_poll(&fut, &p), Status::OK, "first poll of the C++ square({x})");
        assert_eq!(p.delivered(), vec![(Status::OK, x * x, Vec::new())]);
        assert_eq!(p.wakes(), 0, "a ready call takes no wake");
        assert_eq!(raw_release(&fut), Status::OK);
        assert_eq!(p.wakes(), 0);
    }
    let f = own(f);
    let mut fut = f.call(&m(9)).unwrap();
    let (counter, waker) = counting_waker();
    assert_eq!(poll_once(&mut fut, &waker), Poll::Ready(ok(81)));
    assert_eq!(counter.wakes.load(Ordering::SeqCst), 0);
    drop((fut, f));
    assert_eq!((counts.calls(), counts.future_releases(), counts.fn_releases()), (4, 4, 1));
    shutdown(cpp);
    assert_quiet("C++ ready");
}

#[test]
fn cpp_posted_and_timer_squares_are_pending_then_woken_by_a_cpp_thread() {
    let _serial = serial();
    let cpp = CppRuntime::new(1);
    let me = std::thread::current().name().unwrap_or("?").to_string();
    for (mode, delay) in [(ffi::POC_SQUARE_POSTED, 0), (ffi::POC_SQUARE_TIMER, 1)] {
        let f = cpp_square_raw(&cpp, mode, delay);
        let p = Probe::new();
        let fut = {
            let _hold = CppHold::only_thread_of(&cpp);
            let (st, fut) = raw_call(&f, 12);
            assert_eq!(st, Status::OK);
            assert_eq!(raw_poll(&fut, &p), Status::PENDING, "mode {mode}: the C++ thread is held");
            assert_eq!(p.wakes(), 0);
            fut
        };
        p.wait_wakes(1, &format!("mode {mode} wake"));
        assert_ne!(p.wake_threads()[0], me, "mode {mode}: the wake came from a C++ thread");
        assert_eq!(raw_poll(&fut, &p), Status::OK);
        assert_eq!(p.delivered(), vec![(Status::OK, 144, Vec::new())]);
        assert_eq!(p.wakes(), 1, "mode {mode}: exactly one wake");
        assert_eq!(raw_release(&fut), Status::OK);

        // Awaited with block_on, and from a tokio task.
        let f = own(f);
        assert_eq!(block_on("C++ square 5", f.call(&m(5)).unwrap()), ok(25));
        let rt = Runtime::new(1).unwrap();
        let call = f.call(&m(6)).unwrap();
        assert_eq!(block_on("tokio task", rt.handle().spawn(call)).unwrap(), ok(36));
        within("Rust runtime shutdown", move || drop(rt));
    }
    shutdown(cpp);
    assert_quiet("C++ posted/timer");
}

#[test]
fn cpp_overflow_is_error_400_in_every_mode() {
    let _serial = serial();
    let cpp = CppRuntime::new(2);
    for mode in MODES {
        let f = cpp_square(&cpp, mode, 0);
        for x in [1u64 << 32, u64::MAX - 1] {
            assert_eq!(block_on("overflow", f.call(&m(x)).unwrap()), Err(CallError::error(400, "overflow")), "mode {mode}, {x}");
        }
        let max = u64::from(u32::MAX);
        assert_eq!(block_on("largest", f.call(&m(max)).unwrap()), ok(max * max), "mode {mode}");
    }
    shutdown(cpp);
    assert_quiet("C++ overflow");
}

#[test]
fn cpp_cancel_before_the_first_poll_answers_cancelled() {
    let _serial = serial();
    let cpp = CppRuntime::new(1);
    for mode in MODES {
        let (f, counts) = counted(cpp_square_raw(&cpp, mode, HOUR_MS));
        let f = own(f);
        let fut = f.call(&m(5)).unwrap();
        fut.cancel();
        assert_eq!(block_on("cancelled", fut), Err(CallError::Cancelled), "mode {mode}");
        assert_eq!(counts.of_call(0), ["cancel", "poll", "release"], "mode {mode}");
        drop(f);
        assert_eq!(counts.fn_releases(), 1);
    }
    shutdown(cpp);
    assert_quiet("C++ cancel before poll");
}

#[test]
fn cpp_cancel_during_work_aborts_the_timer() {
    let _serial = serial();
    let cpp = CppRuntime::new(1);
    let f = cpp_square(&cpp, ffi::POC_SQUARE_TIMER, HOUR_MS);
    let mut fut = f.call(&m(6)).unwrap();
    let (counter, waker) = counting_waker();
    assert!(poll_once(&mut fut, &waker).is_pending());
    fut.cancel();
    assert_eq!(counter.wakes.load(Ordering::SeqCst), 1, "cancel fires the owed wake");
    // The hour-long wait ended by its cancellation (nothing else can end it): CANCELLED.
    assert_eq!(poll_once(&mut fut, &waker), Poll::Ready(Err(CallError::Cancelled)));
    drop(fut);
    // The function is still usable, and the runtime stops at once (no hour-long timer left).
    let f2 = cpp_square(&cpp, ffi::POC_SQUARE_TIMER, 0);
    assert_eq!(block_on("after the cancel", f2.call(&m(3)).unwrap()), ok(9));
    drop((f, f2));
    shutdown(cpp);
    assert_eq!(counter.wakes.load(Ordering::SeqCst), 1, "no second wake");
    assert_quiet("C++ cancel during work");
}

#[test]
fn cpp_calls_and_function_dropped_without_awaiting_are_released_once() {
    let _serial = serial();
    let cpp = CppRuntime::new(1);
    for mode in MODES {
        let (f, counts) = counted(cpp_square_raw(&cpp, mode, HOUR_MS));
        let f = own(f);
        drop(f.call(&m(1)).unwrap()); // never polled
        let mut pending = f.call(&m(2)).unwrap();
        let (_, waker) = counting_waker();
        let first = poll_once(&mut pending, &waker);
        match mode {
            ffi::POC_SQUARE_READY => assert_eq!(first, Poll::Ready(ok(4))),
            ffi::POC_SQUARE_TIMER => assert!(first.is_pending(), "an hour-long call"),
            _ => {} // POSTED: finished or not, dropping it must release it once
        }
        let later = f.call(&m(3)).unwrap();
        drop(f); // calls keep their futures
        assert_eq!(counts.fn_releases(), 1, "mode {mode}");
        drop(pending);
        if mode == ffi::POC_SQUARE_TIMER {
            drop(later);
        } else {
            assert_eq!(block_on("a call that outlived its function", later), ok(9), "mode {mode}");
        }
        assert_eq!((counts.calls(), counts.future_releases(), counts.fn_releases()), (3, 3, 1), "mode {mode}");
        assert_eq!(counts.of_call(1).iter().filter(|e| *e == "release").count(), 1);
    }
    shutdown(cpp);
    assert_quiet("C++ dropped unawaited");
}

#[test]
fn cpp_exception_is_contained_and_the_function_stays_usable() {
    let _serial = serial();
    let cpp = CppRuntime::new(2);
    for mode in MODES {
        let f = cpp_square(&cpp, mode, 0);
        assert_cpp_panic(block_on("C++ throw", f.call(&m(u64::MAX)).unwrap()), "", &format!("mode {mode}"));
        assert_eq!(block_on("after the throw", f.call(&m(3)).unwrap()), ok(9), "mode {mode}");
    }
    shutdown(cpp);
    assert_quiet("C++ panic");
}

#[test]
fn cpp_square_fn_arguments_and_shutdown() {
    let _serial = serial();
    let cpp = CppRuntime::new(1);
    let mut out = no_fn();
    unsafe {
        assert_eq!(Status(cpp::poc_cpp_square_fn(cpp.raw(), 3, 0, &mut out)), Status::INVALID, "unknown mode");
        for mode in MODES {
            assert_eq!(Status(cpp::poc_cpp_square_fn(std::ptr::null_mut(), mode, 0, &mut out)), Status::INVALID);
            assert_eq!(Status(cpp::poc_cpp_square_fn(cpp.raw(), mode, 0, std::ptr::null_mut())), Status::INVALID);
        }
    }
    assert!(out.call.is_none(), "out untouched");

    let timer = cpp_square(&cpp, ffi::POC_SQUARE_TIMER, HOUR_MS);
    let ready = cpp_square(&cpp, ffi::POC_SQUARE_READY, 0);
    let mut in_flight = timer.call(&m(2)).unwrap();
    let (counter, waker) = counting_waker();
    assert!(poll_once(&mut in_flight, &waker).is_pending());
    assert_eq!(within("C++ shutdown", {
        let raw = cpp.raw() as usize;
        move || Status(unsafe { cpp::poc_cpp_runtime_shutdown(raw as *mut _) })
    }), Status::OK);
    assert_eq!(counter.wakes.load(Ordering::SeqCst), 1, "shutdown woke the call in flight");
    assert_eq!(poll_once(&mut in_flight, &waker), Poll::Ready(Err(CallError::Shutdown)));
    for (name, f) in [("timer", &timer), ("ready", &ready)] {
        assert_eq!(f.call(&m(3)).unwrap_err(), CallError::Shutdown, "{name}: a call after shutdown");
    }
    for mode in MODES {
        assert_eq!(Status(unsafe { cpp::poc_cpp_square_fn(cpp.raw(), mode, 0, &mut out) }), Status::SHUTDOWN);
    }
    drop((in_flight, timer, ready));
    drop(cpp);
    assert_quiet("C++ arguments");
}

// ---------------------------------------------------------------------------------------------
// Rust sum_calls over C++ squares
// ---------------------------------------------------------------------------------------------

#[test]
fn rust_sum_calls_over_cpp_squares() {
    let _serial = serial();
    let cpp = CppRuntime::new(2);
    for mode in MODES {
        let (f, counts) = counted(cpp_square_raw(&cpp, mode, 1));
        let v = block_on("sum_calls", sum_calls(own(f), 1, 4)).unwrap();
        assert_eq!((v.id, &v.payload[..]), (30, &b"summed 4 calls"[..]), "mode {mode}");
        assert_eq!((counts.calls(), counts.future_releases(), counts.fn_releases()), (4, 4, 1), "mode {mode}");

        // Through the C ABI.
        let (f, counts) = counted(cpp_square_raw(&cpp, mode, 1));
        let mut out = no_future();
        assert_eq!(Status(unsafe { poc_rust_sum_calls(f, 10, 3, &mut out) }), Status::OK);
        let p = Probe::new();
        assert_eq!(raw_drive(&out, &p, "sum over C++"), Status::OK);
        assert_eq!(p.delivered(), vec![(Status::OK, 365, b"summed 3 calls".to_vec())]);
        assert_eq!(raw_release(&out), Status::OK);
        assert_eq!((counts.calls(), counts.fn_releases()), (3, 1));
    }
    shutdown(cpp);
    assert_quiet("sum over C++");
}

#[test]
fn rust_sum_calls_over_cpp_error_rules() {
    let _serial = serial();
    let cpp = CppRuntime::new(1);
    let big = u64::from(u32::MAX);
    for mode in MODES {
        // ERROR passes through, prefixed.
        let (f, counts) = counted(cpp_square_raw(&cpp, mode, 0));
        assert_eq!(
            block_on("error", sum_calls(own(f), big, 3)),
            Err(CallError::error(400, format!("call {}: overflow", big + 1))),
            "mode {mode}"
        );
        assert_eq!((counts.calls(), counts.fn_releases()), (2, 1));
        // PANIC (the C++ exception) passes through, prefixed.
        let (f, counts) = counted(cpp_square_raw(&cpp, mode, 0));
        let prefix = format!("call {}: ", u64::MAX);
        assert_cpp_panic(block_on("panic", sum_calls(own(f), u64::MAX, 2)), &prefix, &format!("mode {mode}"));
        assert_eq!((counts.calls(), counts.fn_releases()), (1, 1));
    }

    // SHUTDOWN of the C++ runtime under the call in flight passes through.
    let (f, counts) = counted(cpp_square_raw(&cpp, ffi::POC_SQUARE_TIMER, HOUR_MS));
    let mut sum = Box::pin(sum_calls(own(f), 1, 2));
    let (counter, waker) = counting_waker();
    assert!(poll_once(&mut sum, &waker).is_pending());
    assert_eq!(within("C++ shutdown", {
        let raw = cpp.raw() as usize;
        move || Status(unsafe { cpp::poc_cpp_runtime_shutdown(raw as *mut _) })
    }), Status::OK);
    assert_eq!(counter.wakes.load(Ordering::SeqCst), 1);
    assert_eq!(poll_once(&mut sum, &waker), Poll::Ready(Err(CallError::Shutdown)));
    assert_eq!((counts.calls(), counts.fn_releases()), (1, 1));
    drop(sum);

    // The C++ runtime is stopped: the next call cannot start.
    let cpp2 = CppRuntime::new(1);
    let (f, counts) = counted(cpp_square_raw(&cpp2, ffi::POC_SQUARE_READY, 0));
    assert_eq!(cpp2.shutdown(), Status::OK);
    assert_eq!(block_on("not started", sum_calls(own(f), 1, 2)), Err(CallError::error(502, "call 1: could not start (SHUTDOWN)")));
    assert_eq!((counts.calls(), counts.fn_releases()), (1, 1));
    drop((cpp, cpp2));
    assert_quiet("sum over C++ errors");
}

#[test]
fn cancelling_rust_sum_calls_cancels_then_releases_the_cpp_call_in_flight() {
    let _serial = serial();
    let cpp = CppRuntime::new(1);
    let (f, counts) = counted(cpp_square_raw(&cpp, ffi::POC_SQUARE_TIMER, HOUR_MS));
    let mut out = no_future();
    assert_eq!(Status(unsafe { poc_rust_sum_calls(f, 1, 3, &mut out) }), Status::OK);
    let p = Probe::new();
    assert_eq!(raw_poll(&out, &p), Status::PENDING);
    assert_eq!(counts.calls(), 1);
    assert_eq!(raw_cancel(&out), Status::OK);
    assert_eq!(p.wakes(), 1);
    assert_eq!(counts.of_call(0), ["poll", "cancel", "release"], "the C++ call in flight: cancelled, then released");
    assert_eq!(counts.fn_releases(), 1);
    assert_eq!(raw_poll(&out, &p), Status::CANCELLED);
    assert_eq!(raw_release(&out), Status::OK);
    shutdown(cpp);
    assert_quiet("cancel sum over C++");
}

// ---------------------------------------------------------------------------------------------
// C++ sum_calls over Rust squares (C++ → Rust)
// ---------------------------------------------------------------------------------------------

fn cpp_sum(cpp: &CppRuntime, f: poc_async_fn, first: u64, count: u32) -> ForeignFuture {
    let mut out = no_future();
    let st = Status(unsafe { cpp::poc_cpp_sum_calls(cpp.raw(), f, first, count, &mut out) });
    assert_eq!(st, Status::OK, "poc_cpp_sum_calls");
    unsafe { ForeignFuture::from_raw(out) }.expect("C++ future vtable")
}

#[test]
fn cpp_sum_calls_over_rust_squares() {
    let _serial = serial();
    let cpp = CppRuntime::new(1);
    let rt = Runtime::new(2).unwrap();
    for mode in [SquareMode::Ready, SquareMode::Posted, SquareMode::Timer] {
        let (f, counts) = counted(square_fn(Some(&rt), mode, 1).unwrap());
        let v = block_on("C++ sum over Rust", cpp_sum(&cpp, f, 1, 4)).unwrap();
        assert_eq!((v.id, &v.payload[..]), (30, &b"summed 4 calls"[..]), "{mode:?}");
        wait_until("C++ released the Rust function", || counts.fn_releases() == 1);
        assert_eq!((counts.calls(), counts.future_releases()), (4, 4), "{mode:?}");

        let (f, _) = counted(square_fn(Some(&rt), mode, 0).unwrap());
        assert_eq!(
            block_on("error", cpp_sum(&cpp, f, 1 << 32, 2)),
            Err(CallError::error(400, format!("call {}: overflow", 1u64 << 32)))
        );
        let (f, _) = counted(square_fn(Some(&rt), mode, 0).unwrap());
        assert_eq!(
            block_on("panic", cpp_sum(&cpp, f, u64::MAX, 2)),
            Err(CallError::Panic(format!("call {}: {SQUARE_PANIC_MESSAGE}", u64::MAX)))
        );
    }
    wait_until("every Rust function given back", || lend::live_lent_fns() == 0);
    shutdown(cpp);
    within("Rust runtime shutdown", move || drop(rt));
    assert_quiet("C++ sum over Rust");
}

#[test]
fn cancelling_cpp_sum_calls_reaches_the_rust_call_in_flight() {
    let _serial = serial();
    let cpp = CppRuntime::new(1);
    let rt = Runtime::new(1).unwrap();
    let (f, counts) = counted(square_fn(Some(&rt), SquareMode::Timer, HOUR_MS).unwrap());
    let mut sum = cpp_sum(&cpp, f, 1, 3);
    let (counter, waker) = counting_waker();
    assert!(poll_once(&mut sum, &waker).is_pending());
    // The coroutine starts the first call on the C++ thread.
    wait_until("C++ started the first Rust call", || counts.calls() == 1 && lend::square_tasks_alive() == 1);
    sum.cancel();
    // The cancellation reaches the Rust call: its future is cancelled, then released, and the
    // hour-long timer task of the Rust runtime is aborted.
    wait_until("the Rust call was released", || counts.future_releases() == 1);
    assert!(counts.of_call(0).contains(&"cancel".to_string()), "log of the Rust call: {:?}", counts.of_call(0));
    assert_eq!(counts.of_call(0).last().map(String::as_str), Some("release"));
    wait_until("the Rust timer task was aborted", || lend::square_tasks_alive() == 0);
    wait_until("C++ released the Rust function", || counts.fn_releases() == 1);
    wait_until("the C++ sum woke its awaiter", || counter.wakes.load(Ordering::SeqCst) == 1);
    assert_eq!(poll_once(&mut sum, &waker), Poll::Ready(Err(CallError::Cancelled)));
    assert_eq!(counts.calls(), 1, "no call after the cancel");
    drop(sum);
    shutdown(cpp);
    within("Rust runtime shutdown", move || drop(rt));
    assert_quiet("cancel C++ sum");
}

#[test]
fn poc_cpp_sum_calls_releases_f_once_when_it_fails() {
    let _serial = serial();
    let cpp = CppRuntime::new(1);
    let echo = || lend::lend(|arg: Message| async move { Ok(arg) });
    let mut out = no_future();
    let (f, counts) = counted(echo());
    assert_eq!(Status(unsafe { cpp::poc_cpp_sum_calls(cpp.raw(), f, 1, 2, std::ptr::null_mut()) }), Status::INVALID);
    assert_eq!((counts.calls(), counts.fn_releases()), (0, 1), "NULL out");
    let (f, counts) = counted(echo());
    assert_eq!(Status(unsafe { cpp::poc_cpp_sum_calls(std::ptr::null_mut(), f, 1, 2, &mut out) }), Status::INVALID);
    assert_eq!((counts.calls(), counts.fn_releases()), (0, 1), "NULL rt");
    // Released without being polled (the C++ coroutine runs on the io_context whether polled or
    // not, so it may have started a call): f is given back once, every started call released.
    let (f, counts) = counted(echo());
    drop(cpp_sum(&cpp, f, 1, 2));
    wait_until("C++ released f", || counts.fn_releases() == 1);
    wait_until("C++ released every call it started", || counts.future_releases() == counts.calls());
    assert!(counts.calls() <= 2);
    assert_eq!(cpp.shutdown(), Status::OK);
    let (f, counts) = counted(echo());
    assert_eq!(Status(unsafe { cpp::poc_cpp_sum_calls(cpp.raw(), f, 1, 2, &mut out) }), Status::SHUTDOWN);
    assert_eq!((counts.calls(), counts.fn_releases()), (0, 1), "after shutdown");
    assert!(out.vtable.is_null(), "out untouched");
    drop(cpp);
    assert_quiet("C++ sum releases");
}
