//! Lent functions (`poc_async_fn`) between Rust and Rust: the "square" function of bridge.h in
//! its three modes (`future::lend::square_fn`, `poc_rust_square_fn`) called through `AsyncFn` and
//! through the raw function pointers (what a C++ or C# borrower does), Rust closures lent with
//! `lend` / `lend_with`, `sum_calls` over them (`poc_rust_sum_calls`), and the argument checks of
//! the two C functions.
//!
//! Deterministic: a call that must be pending at its first poll is made while the runtime's only
//! worker is held ([`Hold`]); delays that must not elapse are an hour long and only cancel,
//! release or shutdown end them; every wait is bounded (`common::LIMIT`). Each test takes the
//! serial lock and ends with `assert_quiet`: no Rust future, lent function or square task left.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use common::lent::*;
use common::{block_on, counting_waker, poll_once, within};
use poc_bridge::ffi::{self, poc_async_fn};
use poc_bridge::future::lend::{
    self, lend, lend_with, square_fn, sum_calls, AsyncFn, SquareMode, SQUARE_PANIC_MESSAGE,
};
use poc_bridge::future::{examples, live_futures, CallError, ForeignFuture};
use poc_bridge::{poc_rust_runtime_free, poc_rust_runtime_new, poc_rust_runtime_shutdown};
use poc_bridge::{poc_rust_square_fn, poc_rust_sum_calls, Message, Runtime, Status};

const HOUR_MS: u32 = 3_600_000;
const MODES: [SquareMode; 3] = [SquareMode::Ready, SquareMode::Posted, SquareMode::Timer];

fn m(x: u64) -> Message {
    Message::new(x, Vec::new())
}

fn own(f: poc_async_fn) -> AsyncFn {
    unsafe { AsyncFn::from_raw(f) }.expect("a lent function with both entry points")
}

/// The square function on `rt` (any mode), owned.
fn square_on(rt: &Runtime, mode: SquareMode, delay_ms: u32) -> AsyncFn {
    own(square_fn(Some(rt), mode, delay_ms).unwrap_or_else(|e| panic!("square_fn({mode:?}): {e}")))
}

fn ok(x: u64) -> Result<Message, CallError> {
    Ok(m(x))
}

/// Counts drops of what a closure holds.
struct DropCount(Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// square, Rust → Rust
// ---------------------------------------------------------------------------------------------

#[test]
fn ready_square_answers_at_the_first_poll_without_a_wake() {
    let _serial = serial();
    let f = square_fn(None, SquareMode::Ready, 0).unwrap();
    for x in [0, 7, u64::from(u32::MAX)] {
        let (st, fut) = raw_call(&f, x);
        assert_eq!(st, Status::OK, "call({x})");
        let p = Probe::new();
        assert_eq!(raw_poll(&fut, &p), Status::OK, "first poll of square({x})");
        assert_eq!(p.delivered(), vec![(Status::OK, x * x, Vec::new())]);
        assert_eq!(p.wakes(), 0, "a ready call takes no wake");
        assert_eq!(raw_poll(&fut, &p), Status::INVALID, "polled after it finished");
        assert_eq!(raw_release(&fut), Status::OK);
        assert_eq!(p.wakes(), 0);
    }
    // The same through AsyncFn / ForeignFuture with an instrumented waker.
    let f = own(f);
    let mut fut = f.call(&m(9)).unwrap();
    let (counter, waker) = counting_waker();
    assert_eq!(poll_once(&mut fut, &waker), Poll::Ready(ok(81)));
    assert_eq!(counter.wakes.load(Ordering::SeqCst), 0);
    drop((fut, f));
    assert_quiet("ready");
}

#[test]
fn posted_and_timer_squares_are_pending_then_woken_by_a_runtime_thread() {
    let _serial = serial();
    let rt = Runtime::new(1).unwrap();
    for (mode, delay) in [(SquareMode::Posted, 0), (SquareMode::Timer, 1)] {
        let f = square_fn(Some(&rt), mode, delay).unwrap();
        let p = Probe::new();
        let fut = {
            let _hold = Hold::worker_of(&rt);
            let (st, fut) = raw_call(&f, 12);
            assert_eq!(st, Status::OK);
            assert_eq!(raw_poll(&fut, &p), Status::PENDING, "{mode:?}: the task cannot have run yet");
            assert_eq!(p.wakes(), 0);
            fut
        }; // the worker runs the task now
        p.wait_wakes(1, &format!("{mode:?} wake"));
        let threads = p.wake_threads();
        assert!(threads[0].starts_with("poc-rust-"), "{mode:?}: woken on {:?}, not a runtime thread", threads[0]);
        assert_eq!(raw_poll(&fut, &p), Status::OK);
        assert_eq!(p.delivered(), vec![(Status::OK, 144, Vec::new())]);
        assert_eq!(p.wakes(), 1, "{mode:?}: exactly one wake");
        assert_eq!(raw_release(&fut), Status::OK);

        // Awaited with block_on on a thread that belongs to no runtime, and from a tokio task.
        let f = own(f);
        assert_eq!(block_on("square 5", f.call(&m(5)).unwrap()), ok(25));
        let call = f.call(&m(6)).unwrap();
        assert_eq!(block_on("tokio task", rt.handle().spawn(call)).unwrap(), ok(36));
    }
    within("runtime shutdown", move || drop(rt));
    assert_quiet("posted/timer");
}

#[test]
fn overflow_is_error_400_in_every_mode() {
    let _serial = serial();
    let rt = Runtime::new(2).unwrap();
    for mode in MODES {
        let f = square_on(&rt, mode, 0);
        for x in [1u64 << 32, u64::MAX - 1] {
            assert_eq!(block_on("overflow", f.call(&m(x)).unwrap()), Err(CallError::error(400, "overflow")), "{mode:?} {x}");
        }
        let max = u64::from(u32::MAX);
        assert_eq!(block_on("largest", f.call(&m(max)).unwrap()), ok(max * max), "{mode:?}");
    }
    within("runtime shutdown", move || drop(rt));
    assert_quiet("overflow");
}

#[test]
fn cancel_before_the_first_poll_answers_cancelled() {
    let _serial = serial();
    let rt = Runtime::new(1).unwrap();
    for mode in MODES {
        let f = square_on(&rt, mode, HOUR_MS);
        let fut = f.call(&m(5)).unwrap();
        fut.cancel();
        assert_eq!(block_on("cancelled", fut), Err(CallError::Cancelled), "{mode:?}");
        // The work was stopped: an hour-long timer task can only end by its abort.
        wait_until(&format!("{mode:?}: the cancelled call's task ended"), || lend::square_tasks_alive() == 0);
        if mode != SquareMode::Timer {
            assert_eq!(block_on("still usable", f.call(&m(4)).unwrap()), ok(16), "{mode:?}");
        }
    }
    within("runtime shutdown", move || drop(rt));
    assert_quiet("cancel before poll");
}

#[test]
fn cancel_during_work_stops_the_task() {
    let _serial = serial();
    let rt = Runtime::new(1).unwrap();

    // TIMER: an hour-long sleep in a task; only the cancel's abort can end it.
    let f = square_on(&rt, SquareMode::Timer, HOUR_MS);
    let mut fut = f.call(&m(6)).unwrap();
    let (counter, waker) = counting_waker();
    assert!(poll_once(&mut fut, &waker).is_pending());
    assert_eq!(lend::square_tasks_alive(), 1);
    fut.cancel();
    assert_eq!(counter.wakes.load(Ordering::SeqCst), 1, "cancel fires the owed wake");
    wait_until("the timer task was aborted", || lend::square_tasks_alive() == 0);
    assert_eq!(poll_once(&mut fut, &waker), Poll::Ready(Err(CallError::Cancelled)));
    assert_eq!(counter.wakes.load(Ordering::SeqCst), 1);
    drop((fut, f));

    // POSTED, cancelled while the worker is held: the task is dropped without computing.
    let f = square_on(&rt, SquareMode::Posted, 0);
    let mut fut = {
        let _hold = Hold::worker_of(&rt);
        let mut fut = f.call(&m(7)).unwrap();
        assert!(poll_once(&mut fut, &waker).is_pending());
        fut.cancel();
        assert_eq!(counter.wakes.load(Ordering::SeqCst), 2);
        fut
    };
    wait_until("the posted task was dropped", || lend::square_tasks_alive() == 0);
    assert_eq!(poll_once(&mut fut, &waker), Poll::Ready(Err(CallError::Cancelled)));
    drop((fut, f));

    // Dropping a pending call (cancel + release) stops its task too.
    let f = square_on(&rt, SquareMode::Timer, HOUR_MS);
    let mut fut = f.call(&m(8)).unwrap();
    assert!(poll_once(&mut fut, &waker).is_pending());
    drop(fut);
    wait_until("the dropped call's task was aborted", || lend::square_tasks_alive() == 0);
    assert_eq!(live_futures(), 0);
    drop(f);
    within("runtime shutdown", move || drop(rt));
    assert_quiet("cancel during work");
}

#[test]
fn dropping_calls_and_the_function_without_awaiting_releases_everything() {
    let _serial = serial();
    let rt = Runtime::new(1).unwrap();
    let mut kept = Vec::new();
    for mode in MODES {
        let f = square_on(&rt, mode, HOUR_MS);
        assert_eq!(lend::live_lent_fns(), 1);
        drop(f.call(&m(1)).unwrap()); // never polled
        let mut pending = f.call(&m(2)).unwrap();
        let (_, waker) = counting_waker();
        if mode != SquareMode::Ready {
            assert!(poll_once(&mut pending, &waker).is_pending());
        }
        kept.push((mode, f.call(&m(3)).unwrap()));
        drop(f); // released while calls are in flight: they keep their futures
        assert_eq!(lend::live_lent_fns(), 0, "{mode:?}: the function was released");
        drop(pending);
    }
    for (mode, fut) in kept {
        if mode == SquareMode::Timer {
            drop(fut); // an hour-long call: dropping it must stop it
        } else {
            assert_eq!(block_on("a call that outlived its function", fut), ok(9), "{mode:?}");
        }
    }
    within("runtime shutdown", move || drop(rt));
    assert_quiet("dropped unawaited");
}

#[test]
fn a_panicking_call_is_contained_and_the_function_stays_usable() {
    let _serial = serial();
    let rt = Runtime::new(2).unwrap();
    for mode in MODES {
        let f = square_on(&rt, mode, 0);
        assert_eq!(
            block_on("panic", f.call(&m(u64::MAX)).unwrap()),
            Err(CallError::Panic(SQUARE_PANIC_MESSAGE.to_string())),
            "{mode:?}"
        );
        assert_eq!(block_on("after the panic", f.call(&m(3)).unwrap()), ok(9), "{mode:?}");
    }
    // Raw: a READY panic is a PANIC answer of the first poll, message delivered, no wake.
    let f = square_fn(None, SquareMode::Ready, 0).unwrap();
    let (st, fut) = raw_call(&f, u64::MAX);
    assert_eq!(st, Status::OK, "the panic happens in the call's work, not in call");
    let p = Probe::new();
    assert_eq!(raw_poll(&fut, &p), Status::PANIC);
    assert_eq!(p.delivered(), vec![(Status::PANIC, 0, SQUARE_PANIC_MESSAGE.as_bytes().to_vec())]);
    assert_eq!(p.wakes(), 0);
    assert_eq!(raw_release(&fut), Status::OK);
    raw_release_fn(f);
    within("runtime shutdown", move || drop(rt));
    assert_quiet("panic");
}

#[test]
fn the_function_outlives_its_runtime() {
    let _serial = serial();
    let rt = Runtime::new(1).unwrap();
    let timer = square_on(&rt, SquareMode::Timer, HOUR_MS);
    let posted = square_on(&rt, SquareMode::Posted, 0);
    let ready = square_on(&rt, SquareMode::Ready, 0);
    let mut in_flight = timer.call(&m(2)).unwrap();
    let (counter, waker) = counting_waker();
    assert!(poll_once(&mut in_flight, &waker).is_pending());

    within("runtime shutdown", move || drop(rt));
    assert_eq!(counter.wakes.load(Ordering::SeqCst), 1, "shutdown woke the call in flight");
    assert_eq!(poll_once(&mut in_flight, &waker), Poll::Ready(Err(CallError::Shutdown)));
    drop(in_flight);
    for (name, f) in [("timer", &timer), ("posted", &posted), ("ready", &ready)] {
        assert_eq!(f.call(&m(3)).unwrap_err(), CallError::Shutdown, "{name}: a call after the runtime is gone");
    }
    drop((timer, posted, ready));

    // Made for a runtime that is already stopping.
    let rt = Runtime::new(1).unwrap();
    rt.shutdown().unwrap();
    for mode in MODES {
        assert_eq!(square_fn(Some(&rt), mode, 0).unwrap_err(), CallError::Shutdown, "{mode:?}");
    }
    assert_eq!(square_fn(None, SquareMode::Posted, 0).unwrap_err(), CallError::Invalid(Status::INVALID));
    drop(rt);
    assert_quiet("outlives");
}

// ---------------------------------------------------------------------------------------------
// lend / lend_with / AsyncFn
// ---------------------------------------------------------------------------------------------

#[test]
fn rust_closures_lent_and_called_through_the_c_abi() {
    let _serial = serial();
    let drops = Arc::new(AtomicUsize::new(0));
    let held = DropCount(Arc::clone(&drops));
    let f = AsyncFn::new(move |arg: Message| {
        let _held = &held;
        async move {
            examples::yield_now().await; // pending once, woken during its own poll
            if arg.id == 13 {
                panic!("unlucky {}", arg.id);
            }
            Ok(Message::new(arg.id + 1, arg.payload.iter().rev().copied().collect::<Vec<u8>>()))
        }
    });
    assert_eq!(lend::live_lent_fns(), 1);
    let v = block_on("echo", f.call(&Message::new(41, b"abc".to_vec())).unwrap()).unwrap();
    assert_eq!((v.id, &v.payload[..]), (42, &b"cba"[..]));
    assert_eq!(block_on("panic in the future", f.call(&m(13)).unwrap()), Err(CallError::Panic("unlucky 13".into())));
    assert_eq!(block_on("usable after", f.call(&m(1)).unwrap()).unwrap().id, 2);
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(f);
    assert_eq!(drops.load(Ordering::SeqCst), 1, "release dropped the closure, once");

    // A closure that panics before it makes a future: call answers PANIC, nothing started.
    let f = AsyncFn::new(|arg: Message| {
        if arg.id == 0 {
            panic!("no future for 0");
        }
        async move { Ok(arg) }
    });
    assert!(matches!(f.call(&m(0)), Err(CallError::Panic(_))));
    assert_eq!(live_futures(), 0);
    assert_eq!(block_on("after", f.call(&m(4)).unwrap()), ok(4));

    // lend_with: a refused call answers SHUTDOWN / PANIC / INVALID from call.
    let g = own(lend_with(|arg: Message| match arg.id {
        0 => Err(CallError::Shutdown),
        1 => Err(CallError::Panic("refused".into())),
        2 => Err(CallError::error(7, "not a start status")),
        _ => Ok(async move { Ok(arg) }),
    }));
    assert_eq!(g.call(&m(0)).unwrap_err(), CallError::Shutdown);
    assert!(matches!(g.call(&m(1)).unwrap_err(), CallError::Panic(_)));
    assert_eq!(g.call(&m(2)).unwrap_err(), CallError::Invalid(Status::INVALID));
    assert_eq!(live_futures(), 0, "refused calls export nothing");
    assert_eq!(block_on("accepted", g.call(&m(3)).unwrap()), ok(3));

    // Raw misuse of a Rust lent function.
    let raw = lend(|arg: Message| async move { Ok(arg) });
    let view = m(1).view();
    let mut out = no_future();
    unsafe {
        assert_eq!(Status(raw.call.unwrap()(raw.context, std::ptr::null(), &mut out)), Status::INVALID);
        assert_eq!(Status(raw.call.unwrap()(raw.context, &view, std::ptr::null_mut())), Status::INVALID);
        assert_eq!(Status(raw.call.unwrap()(std::ptr::null_mut(), &view, &mut out)), Status::INVALID);
        let forged = ffi::poc_message_view { id: 1, data: std::ptr::null(), len: 3 };
        assert_eq!(Status(raw.call.unwrap()(raw.context, &forged, &mut out)), Status::INVALID);
        raw.release.unwrap()(std::ptr::null_mut()); // ignored
    }
    assert!(out.vtable.is_null(), "out untouched");
    assert_eq!(live_futures(), 0);
    raw_release_fn(raw);
    drop((f, g));
    assert_quiet("closures");
}

#[test]
fn async_fn_releases_exactly_once() {
    let _serial = serial();
    // Dropped after some calls: one release, every future released on its own.
    let (f, counts) = counted(lend(|arg: Message| async move { Ok(arg) }));
    let f = own(f);
    for x in 0..3 {
        assert_eq!(block_on("call", f.call(&m(x)).unwrap()), ok(x));
    }
    drop(f.call(&m(9)).unwrap());
    assert_eq!(counts.fn_releases(), 0);
    drop(f);
    assert_eq!((counts.calls(), counts.fn_releases(), counts.future_releases()), (4, 1, 4));

    // into_raw hands it on without releasing.
    let (f, counts) = counted(lend(|arg: Message| async move { Ok(arg) }));
    let raw = own(f).into_raw();
    assert_eq!(counts.fn_releases(), 0);
    raw_release_fn(raw);
    assert_eq!(counts.fn_releases(), 1);

    // from_raw refuses NULL entry points and takes nothing.
    let (f, counts) = counted(lend(|arg: Message| async move { Ok(arg) }));
    for bad in [poc_async_fn { call: None, ..f }, poc_async_fn { release: None, ..f }] {
        assert!(unsafe { AsyncFn::from_raw(bad) }.is_err());
    }
    assert_eq!(counts.fn_releases(), 0);
    raw_release_fn(f);
    assert_eq!(counts.fn_releases(), 1);
    assert_quiet("release once");
}

// ---------------------------------------------------------------------------------------------
// sum_calls over Rust functions
// ---------------------------------------------------------------------------------------------

/// `poc_rust_sum_calls` driven through the raw vtable; returns (status, delivered).
fn sum_raw(f: poc_async_fn, first: u64, count: u32) -> (Status, Vec<(Status, u64, Vec<u8>)>) {
    let mut out = no_future();
    assert_eq!(Status(unsafe { poc_rust_sum_calls(f, first, count, &mut out) }), Status::OK);
    let p = Probe::new();
    let st = raw_drive(&out, &p, "sum_calls");
    assert_eq!(raw_release(&out), Status::OK);
    (st, p.delivered())
}

#[test]
fn sum_calls_over_rust_squares_in_every_mode() {
    let _serial = serial();
    let rt = Runtime::new(2).unwrap();
    for mode in MODES {
        let (f, counts) = counted(square_fn(Some(&rt), mode, 1).unwrap());
        let v = block_on("sum_calls", sum_calls(own(f), 1, 4)).unwrap();
        assert_eq!((v.id, &v.payload[..]), (1 + 4 + 9 + 16, &b"summed 4 calls"[..]), "{mode:?}");
        assert_eq!((counts.calls(), counts.future_releases(), counts.fn_releases()), (4, 4, 1), "{mode:?}");
        for i in 0..4 {
            assert_eq!(counts.of_call(i).last().map(String::as_str), Some("release"), "{mode:?} call {i}");
            assert!(!counts.of_call(i).contains(&"cancel".to_string()), "{mode:?}: a finished call is not cancelled");
        }

        // Through the C ABI, as a C++ or C# caller drives it.
        let (f, counts) = counted(square_fn(Some(&rt), mode, 1).unwrap());
        let (st, delivered) = sum_raw(f, 10, 3);
        assert_eq!(st, Status::OK, "{mode:?}");
        assert_eq!(delivered, vec![(Status::OK, 100 + 121 + 144, b"summed 3 calls".to_vec())]);
        assert_eq!((counts.calls(), counts.fn_releases()), (3, 1));

        // Inside a tokio task of the runtime that runs the calls.
        let f = square_on(&rt, mode, 1);
        let v = block_on("in a task", rt.handle().spawn(sum_calls(f, 2, 2))).unwrap().unwrap();
        assert_eq!(v.id, 4 + 9);
    }
    // No calls at all.
    let (f, counts) = counted(square_fn(None, SquareMode::Ready, 0).unwrap());
    assert_eq!(block_on("zero calls", sum_calls(own(f), 5, 0)), Ok(Message::new(0, b"summed 0 calls".to_vec())));
    assert_eq!((counts.calls(), counts.fn_releases()), (0, 1));
    within("runtime shutdown", move || drop(rt));
    assert_quiet("sum over squares");
}

#[test]
fn sum_calls_wraps_and_passes_first_plus_i() {
    let _serial = serial();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let f = AsyncFn::new(move |arg: Message| {
        s.lock().unwrap().push(arg.id);
        async move { Ok(Message::new(u64::MAX, Vec::new())) }
    });
    let v = block_on("wrapping", sum_calls(f, u64::MAX - 1, 3)).unwrap();
    assert_eq!(v.id, u64::MAX.wrapping_mul(3));
    assert_eq!(*seen.lock().unwrap(), vec![u64::MAX - 1, u64::MAX, 0]);
    assert_quiet("wrapping");
}

#[test]
fn sum_calls_error_rules() {
    let _serial = serial();
    let big = u64::from(u32::MAX);
    // ERROR passes through with its code, the message prefixed; the sum stops there.
    let (f, counts) = counted(square_fn(None, SquareMode::Ready, 0).unwrap());
    assert_eq!(
        block_on("error", sum_calls(own(f), big, 3)),
        Err(CallError::error(400, format!("call {}: overflow", big + 1)))
    );
    assert_eq!((counts.calls(), counts.fn_releases()), (2, 1));
    // ... also as the raw value {id = code, data = message}.
    let (f, counts) = counted(square_fn(None, SquareMode::Ready, 0).unwrap());
    let (st, delivered) = sum_raw(f, big, 3);
    assert_eq!(st, Status::ERROR);
    assert_eq!(delivered, vec![(Status::ERROR, 400, format!("call {}: overflow", big + 1).into_bytes())]);
    assert_eq!(counts.fn_releases(), 1);

    // PANIC passes through, prefixed.
    let (f, counts) = counted(square_fn(None, SquareMode::Ready, 0).unwrap());
    assert_eq!(
        block_on("panic", sum_calls(own(f), u64::MAX, 2)),
        Err(CallError::Panic(format!("call {}: {SQUARE_PANIC_MESSAGE}", u64::MAX)))
    );
    assert_eq!((counts.calls(), counts.fn_releases()), (1, 1));

    // SHUTDOWN answered by a call passes through.
    let f = AsyncFn::new(|_| async { Err(CallError::Shutdown) });
    assert_eq!(block_on("shutdown answer", sum_calls(f, 1, 2)), Err(CallError::Shutdown));

    // A call that could not start, or that answered CANCELLED / INVALID: ERROR 502.
    let cases: Vec<(AsyncFn, &str)> = vec![
        (own(lend_with(|_| Err::<std::future::Ready<_>, _>(CallError::Shutdown))), "call 5: could not start (SHUTDOWN)"),
        (own(lend_with(|_| Err::<std::future::Ready<_>, _>(CallError::Invalid(Status::INVALID)))), "call 5: could not start (INVALID)"),
        (own(lend_with(|_| Err::<std::future::Ready<_>, _>(CallError::Panic("x".into())))), "call 5: could not start (PANIC)"),
        (AsyncFn::new(|_| async { Err(CallError::Cancelled) }), "call 5: answered CANCELLED"),
        (AsyncFn::new(|_| async { Err(CallError::Invalid(Status::INVALID)) }), "call 5: answered INVALID"),
    ];
    for (f, message) in cases {
        assert_eq!(block_on(message, sum_calls(f, 5, 2)), Err(CallError::error(502, message)));
    }

    // The runtime of the calls is gone: the first call cannot start.
    let rt = Runtime::new(1).unwrap();
    let (f, counts) = counted(square_fn(Some(&rt), SquareMode::Posted, 0).unwrap());
    within("runtime shutdown", move || drop(rt));
    assert_eq!(block_on("no runtime", sum_calls(own(f), 1, 2)), Err(CallError::error(502, "call 1: could not start (SHUTDOWN)")));
    assert_eq!((counts.calls(), counts.fn_releases()), (1, 1));

    // The runtime shuts down under a call in flight: that call answers SHUTDOWN, which passes.
    let rt = Runtime::new(1).unwrap();
    let (f, counts) = counted(square_fn(Some(&rt), SquareMode::Timer, HOUR_MS).unwrap());
    let mut sum = Box::pin(sum_calls(own(f), 1, 2));
    let (counter, waker) = counting_waker();
    assert!(poll_once(&mut sum, &waker).is_pending());
    within("runtime shutdown", move || drop(rt));
    assert_eq!(counter.wakes.load(Ordering::SeqCst), 1);
    assert_eq!(poll_once(&mut sum, &waker), Poll::Ready(Err(CallError::Shutdown)));
    assert_eq!((counts.calls(), counts.fn_releases()), (1, 1), "finished: f released without waiting for the drop");
    drop(sum);
    assert_quiet("error rules");
}

#[test]
fn cancelling_sum_calls_cancels_then_releases_the_call_in_flight() {
    let _serial = serial();
    let rt = Runtime::new(1).unwrap();

    // Through the C ABI: cancel of the outer future.
    let (f, counts) = counted(square_fn(Some(&rt), SquareMode::Timer, HOUR_MS).unwrap());
    let mut out = no_future();
    assert_eq!(Status(unsafe { poc_rust_sum_calls(f, 1, 3, &mut out) }), Status::OK);
    let p = Probe::new();
    assert_eq!(raw_poll(&out, &p), Status::PENDING);
    assert_eq!(counts.calls(), 1);
    assert_eq!(lend::square_tasks_alive(), 1);
    assert_eq!(raw_cancel(&out), Status::OK);
    assert_eq!(p.wakes(), 1, "the owed wake of the outer future");
    assert_eq!(counts.of_call(0), ["poll", "cancel", "release"], "the call in flight: cancelled, then released");
    assert_eq!(counts.fn_releases(), 1, "f released with the dropped future");
    wait_until("the inner call's timer task was aborted", || lend::square_tasks_alive() == 0);
    assert_eq!(raw_poll(&out, &p), Status::CANCELLED);
    assert_eq!(raw_release(&out), Status::OK);
    assert_eq!((counts.calls(), counts.fn_releases()), (1, 1));

    // In Rust: dropping the pending sum_calls future.
    let (f, counts) = counted(square_fn(Some(&rt), SquareMode::Timer, HOUR_MS).unwrap());
    let mut sum = Box::pin(sum_calls(own(f), 1, 3));
    let (_, waker) = counting_waker();
    assert!(poll_once(&mut sum, &waker).is_pending());
    drop(sum);
    assert_eq!(counts.of_call(0), ["poll", "cancel", "release"]);
    assert_eq!(counts.fn_releases(), 1);
    within("runtime shutdown", move || drop(rt));
    assert_quiet("cancel sum");
}

#[test]
fn sum_calls_releases_f_exactly_once_on_every_path() {
    let _serial = serial();
    let echo = || lend(|arg: Message| async move { Ok(arg) });

    // Never polled: dropped (Rust) / released (C ABI).
    let (f, counts) = counted(echo());
    drop(sum_calls(own(f), 1, 3));
    assert_eq!((counts.calls(), counts.fn_releases()), (0, 1));
    let (f, counts) = counted(echo());
    let mut out = no_future();
    assert_eq!(Status(unsafe { poc_rust_sum_calls(f, 1, 3, &mut out) }), Status::OK);
    assert_eq!(counts.fn_releases(), 0, "kept by the future");
    assert_eq!(raw_release(&out), Status::OK);
    assert_eq!((counts.calls(), counts.fn_releases()), (0, 1));

    // NULL out: INVALID, released at once.
    let (f, counts) = counted(echo());
    assert_eq!(Status(unsafe { poc_rust_sum_calls(f, 1, 3, std::ptr::null_mut()) }), Status::INVALID);
    assert_eq!((counts.calls(), counts.fn_releases()), (0, 1));

    // NULL call: INVALID, released at once (its release is there).
    let (f, counts) = counted(echo());
    let mut out = no_future();
    assert_eq!(Status(unsafe { poc_rust_sum_calls(poc_async_fn { call: None, ..f }, 1, 3, &mut out) }), Status::INVALID);
    assert_eq!((counts.calls(), counts.fn_releases()), (0, 1));
    assert!(out.vtable.is_null(), "out untouched");

    // NULL release: INVALID, nothing can be released — the caller still has it.
    let (f, counts) = counted(echo());
    assert_eq!(Status(unsafe { poc_rust_sum_calls(poc_async_fn { release: None, ..f }, 1, 3, &mut out) }), Status::INVALID);
    assert_eq!((counts.calls(), counts.fn_releases()), (0, 0));
    raw_release_fn(f);
    assert_eq!(counts.fn_releases(), 1);

    // Success and error: released once the future finished (before it is released).
    let (f, counts) = counted(echo());
    let mut out = no_future();
    assert_eq!(Status(unsafe { poc_rust_sum_calls(f, 1, 2, &mut out) }), Status::OK);
    let p = Probe::new();
    assert_eq!(raw_drive(&out, &p, "sum"), Status::OK);
    assert_eq!(counts.fn_releases(), 1);
    assert_eq!(raw_release(&out), Status::OK);
    assert_eq!(counts.fn_releases(), 1);
    let (f, counts) = counted(square_fn(None, SquareMode::Ready, 0).unwrap());
    let (st, _) = sum_raw(f, 1 << 32, 2);
    assert_eq!((st, counts.fn_releases()), (Status::ERROR, 1));
    assert_quiet("release once");
}

// ---------------------------------------------------------------------------------------------
// The C functions' argument checks
// ---------------------------------------------------------------------------------------------

#[test]
fn poc_rust_square_fn_checks_its_arguments_and_the_runtime() {
    let _serial = serial();
    let mut rt = std::ptr::null_mut();
    assert_eq!(Status(unsafe { poc_rust_runtime_new(1, &mut rt) }), Status::OK);
    let mut out = no_fn();
    unsafe {
        for r in [rt, std::ptr::null_mut()] {
            assert_eq!(Status(poc_rust_square_fn(r, 3, 0, &mut out)), Status::INVALID, "unknown mode");
            assert_eq!(Status(poc_rust_square_fn(r, u32::MAX, 0, &mut out)), Status::INVALID, "unknown mode");
        }
        for mode in [ffi::POC_SQUARE_POSTED, ffi::POC_SQUARE_TIMER] {
            assert_eq!(Status(poc_rust_square_fn(std::ptr::null_mut(), mode, 0, &mut out)), Status::INVALID, "NULL rt");
        }
        for mode in [ffi::POC_SQUARE_READY, ffi::POC_SQUARE_POSTED, ffi::POC_SQUARE_TIMER] {
            assert_eq!(Status(poc_rust_square_fn(rt, mode, 0, std::ptr::null_mut())), Status::INVALID, "NULL out");
        }
    }
    assert!(out.call.is_none() && out.context.is_null(), "out untouched");
    assert_eq!(lend::live_lent_fns(), 0, "nothing was lent by the failed calls");

    // READY with no runtime; POSTED on rt.
    let mut ready = no_fn();
    let mut posted = no_fn();
    unsafe {
        assert_eq!(Status(poc_rust_square_fn(std::ptr::null_mut(), ffi::POC_SQUARE_READY, 0, &mut ready)), Status::OK);
        assert_eq!(Status(poc_rust_square_fn(rt, ffi::POC_SQUARE_POSTED, 0, &mut posted)), Status::OK);
    }
    for f in [&ready, &posted] {
        let (st, fut) = raw_call(f, 11);
        assert_eq!(st, Status::OK);
        let p = Probe::new();
        assert_eq!(raw_drive(&fut, &p, "square 11"), Status::OK);
        assert_eq!(p.delivered(), vec![(Status::OK, 121, Vec::new())]);
        assert_eq!(raw_release(&fut), Status::OK);
    }

    // After shutdown: no new function, calls of the old one answer SHUTDOWN; also after free.
    // (`rt` travels to the bounded thread as an integer: raw pointers are not Send.)
    let addr = rt as usize;
    assert_eq!(Status(within("shutdown", move || unsafe { poc_rust_runtime_shutdown(addr as *mut _) })), Status::OK);
    let mut late = no_fn();
    for mode in [ffi::POC_SQUARE_READY, ffi::POC_SQUARE_POSTED, ffi::POC_SQUARE_TIMER] {
        assert_eq!(Status(unsafe { poc_rust_square_fn(rt, mode, 0, &mut late) }), Status::SHUTDOWN, "mode {mode}");
    }
    assert!(late.call.is_none());
    let (st, fut) = raw_call(&posted, 2);
    assert_eq!(st, Status::SHUTDOWN);
    assert!(fut.vtable.is_null(), "no future on SHUTDOWN");
    within("free", move || unsafe { poc_rust_runtime_free(addr as *mut _) });
    assert_eq!(raw_call(&posted, 2).0, Status::SHUTDOWN, "after the runtime was freed");
    let (st, fut) = raw_call(&ready, 2);
    assert_eq!(st, Status::OK, "READY without a runtime is not affected");
    assert_eq!(raw_release(&fut), Status::OK);
    raw_release_fn(ready);
    raw_release_fn(posted);
    assert_quiet("C ABI");
}

#[test]
fn the_future_of_a_lent_call_is_a_plain_poc_future() {
    let _serial = serial();
    let f = square_fn(None, SquareMode::Ready, 0).unwrap();
    let (st, fut) = raw_call(&f, 3);
    assert_eq!(st, Status::OK);
    let fut = unsafe { ForeignFuture::from_raw(fut) }.unwrap();
    assert_eq!(block_on("plain", fut), ok(9));
    raw_release_fn(f);
    assert_quiet("plain");
}
