//! Rust awaiting an async call exported by C++: `ForeignFuture` over `poc_cpp_delayed_square`
//! (an asio::steady_timer on the C++ runtime's io_context), with `futures::executor::block_on`
//! and inside a tokio task; the overflow error; the exception thrown for 2^64 - 1 (`PANIC`, the
//! runtime keeps working); cancellation reaching the C++ side (the owed wake
//! fires from inside `cancel`/`release`, the next poll answers CANCELLED, and shutdown afterwards
//! has nothing pending); shutdown of the C++ runtime under a pending await.
//!
//! Bounded waits (`common::block_on`), no sleeps, no timing thresholds: the delays that must not
//! elapse are an hour long, and only cancel, release or shutdown end them.

mod common;
mod cpp_support;

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use common::*;
use cpp_support::*;
use poc_bridge::ffi::{self, cpp, poc_future};
use poc_bridge::future::{CallError, ForeignFuture};
use poc_bridge::{Message, Runtime, Status};

const HOUR_MS: u32 = 3_600_000;

fn square_raw(rt: &CppRuntime, x: u64, delay_ms: u32) -> poc_future {
    let mut f = poc_future { handle: 0, vtable: std::ptr::null() };
    let st = Status(unsafe { cpp::poc_cpp_delayed_square(rt.raw(), x, delay_ms, &mut f) });
    assert_eq!(st, Status::OK, "poc_cpp_delayed_square({x}, {delay_ms})");
    f
}

fn square(rt: &CppRuntime, x: u64, delay_ms: u32) -> ForeignFuture {
    unsafe { ForeignFuture::from_raw(square_raw(rt, x, delay_ms)) }.expect("C++ future vtable")
}

#[test]
fn block_on_awaits_a_cpp_timer() {
    let cpp = CppRuntime::new(1);
    assert_eq!(block_on("square 7", square(&cpp, 7, 1)), Ok(Message::new(49, Vec::new())));
    assert_eq!(block_on("square 0 ms", square(&cpp, 12, 0)).unwrap().id, 144);
    assert_eq!(cpp.shutdown(), Status::OK);
}

#[test]
fn tokio_task_awaits_a_cpp_timer() {
    let cpp = CppRuntime::new(2);
    let rt = Runtime::new(2).unwrap();
    let (a, b) = (square(&cpp, 7, 1), square(&cpp, 8, 2));
    let task = rt.handle().spawn(async move {
        let a = a.await.unwrap();
        let b = b.await.unwrap();
        (a.id, b.id)
    });
    assert_eq!(block_on("tokio task", task).unwrap(), (49, 64));
    assert_eq!(cpp.shutdown(), Status::OK);
}

#[test]
fn overflow_is_error_400() {
    let cpp = CppRuntime::new(1);
    match block_on("overflow", square(&cpp, (1u64 << 32) + 1, 0)) {
        Err(CallError::Error { code, message }) => assert_eq!((code, message.as_str()), (400, "overflow")),
        other => panic!("expected POC_ERROR 400, got {other:?}"),
    }
    assert_eq!(block_on("largest", square(&cpp, u32::MAX as u64, 0)).unwrap().id, (u32::MAX as u64).pow(2));
}

#[test]
fn an_exception_inside_the_cpp_operation_is_panic() {
    let cpp = CppRuntime::new(1);
    match block_on("square(2^64 - 1)", square(&cpp, u64::MAX, 0)) {
        Err(CallError::Panic(message)) => assert!(message.contains("square"), "not the square's exception: {message:?}"),
        other => panic!("expected POC_PANIC, got {other:?}"),
    }
    // Contained: the runtime keeps working.
    assert_eq!(block_on("square 3 after the throw", square(&cpp, 3, 0)), Ok(Message::new(9, Vec::new())));
    assert_eq!(cpp.shutdown(), Status::OK);
}

#[test]
fn dropping_a_pending_foreign_future_cancels_it_on_the_cpp_side() {
    let cpp = CppRuntime::new(1);
    let mut f = square(&cpp, 7, HOUR_MS);
    let (counter, waker) = counting_waker();
    assert!(poll_once(&mut f, &waker).is_pending());
    assert_eq!(counter.wakes.load(Ordering::SeqCst), 0);
    drop(f); // cancel + release: the C++ exporter fires the owed wake at once
    assert_eq!(counter.wakes.load(Ordering::SeqCst), 1, "the C++ side saw the cancel");
    // The timer was cancelled too: shutdown has nothing pending (it would otherwise wait for it),
    // and no second wake comes.
    assert_eq!(within("shutdown", move || cpp.shutdown()), Status::OK);
    assert_eq!(counter.wakes.load(Ordering::SeqCst), 1);
}

#[test]
fn cancel_then_await_is_cancelled() {
    let cpp = CppRuntime::new(1);
    let mut f = square(&cpp, 7, HOUR_MS);
    let (counter, waker) = counting_waker();
    assert!(poll_once(&mut f, &waker).is_pending());
    f.cancel();
    assert_eq!(counter.wakes.load(Ordering::SeqCst), 1);
    assert_eq!(block_on("cancelled", f), Err(CallError::Cancelled));
    assert_eq!(cpp.shutdown(), Status::OK);
}

#[test]
fn shutdown_under_a_pending_await_is_shutdown() {
    let cpp = CppRuntime::new(1);
    let mut f = square(&cpp, 7, HOUR_MS);
    let (counter, waker) = counting_waker();
    assert!(matches!(poll_once(&mut f, &waker), Poll::Pending));
    assert_eq!(within("shutdown", move || cpp.shutdown()), Status::OK);
    assert_eq!(counter.wakes.load(Ordering::SeqCst), 1);
    assert_eq!(block_on("after shutdown", f), Err(CallError::Shutdown));
}

#[test]
fn raw_vtable_stale_handle_and_shutdown_status() {
    static WAKES: AtomicUsize = AtomicUsize::new(0);
    unsafe extern "C" fn wake(_: *mut c_void) {
        WAKES.fetch_add(1, Ordering::SeqCst);
    }
    unsafe extern "C" fn deliver(_: *mut c_void, _: ffi::poc_status, _: *const ffi::poc_message_view) {}
    let cpp = CppRuntime::new(1);
    let f = square_raw(&cpp, 3, HOUR_MS);
    let vt = unsafe { &*f.vtable };
    assert_eq!(f.handle >> 56, 0xC3);
    assert_eq!(Status(unsafe { vt.release.unwrap()(f.handle) }), Status::OK);
    let user = std::ptr::null_mut();
    assert_eq!(Status(unsafe { vt.poll.unwrap()(f.handle, Some(wake), Some(deliver), user) }), Status::INVALID);
    assert_eq!(Status(unsafe { vt.release.unwrap()(f.handle) }), Status::INVALID);
    assert_eq!(WAKES.load(Ordering::SeqCst), 0);
    assert_eq!(cpp.shutdown(), Status::OK);
    let mut late = poc_future { handle: 0, vtable: std::ptr::null() };
    assert_eq!(Status(unsafe { cpp::poc_cpp_delayed_square(cpp.raw(), 2, 0, &mut late) }), Status::SHUTDOWN);
    assert_eq!(Status(unsafe { cpp::poc_cpp_delayed_square(std::ptr::null_mut(), 2, 0, &mut late) }), Status::INVALID);
}
