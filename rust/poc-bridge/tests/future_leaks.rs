//! Allocation accounting for async calls: a counting global allocator checks that exporting,
//! polling, finishing, cancelling and releasing futures — and importing them as
//! `ForeignFuture` — frees everything it allocated (UniFFI leaked per call when a handle was
//! borrowed instead of consumed: ARCHITECTURE §6).
//!
//! Single-threaded tests: this thread's allocations and frees are counted exactly, after a
//! warm-up that lets the handle tables reach their steady size. Also: lent functions
//! (`poc_async_fn`) and `sum_calls` free what they allocate, and the first poll of a future that
//! is ready at once allocates nothing and takes no wake.

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use std::ffi::{c_void, CString};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use poc_bridge::ffi::{self, poc_future};
use poc_bridge::future::lend::{self, lend, square_fn, sum_calls, AsyncFn, SquareMode};
use poc_bridge::future::{examples, export_future, export_ready, CallError, ForeignFuture};
use poc_bridge::*;

use counting_alloc::{thread_allocs, thread_live};

fn import(f: poc_future) -> ForeignFuture {
    unsafe { ForeignFuture::from_raw(f) }.unwrap()
}

/// One round of every path; everything it allocates is freed before it returns.
fn round(db: u64, row: &CString, sql: &CString) {
    use futures::executor::block_on;
    // Finished: OK and ERROR.
    assert_eq!(block_on(examples::fetch_user_ffi(1)).unwrap().id, 1);
    assert!(matches!(block_on(examples::fetch_user_ffi(5)), Err(CallError::Error { code: 404, .. })));
    // Pending, then dropped: cancel + release, the owed wake reclaims its reference.
    let mut f = examples::fetch_user_ffi(2);
    let waker = futures::task::noop_waker();
    assert!(std::pin::Pin::new(&mut f).poll(&mut Context::from_waker(&waker)).is_pending());
    drop(f);
    // Cancelled before the first poll.
    let f = examples::fetch_user_ffi(3);
    f.cancel();
    assert_eq!(block_on(f), Err(CallError::Cancelled));
    // Never polled.
    drop(examples::fetch_user_ffi(4));
    // Exported directly, released unpolled.
    let raw = export_future(async { Ok(Message::new(1, vec![1, 2, 3])) }).unwrap();
    assert_eq!(unsafe { (*raw.vtable).release.unwrap()(raw.handle) }, ffi::POC_OK);
    // Database: an insert and a query.
    let mut out = poc_future { handle: 0, vtable: std::ptr::null() };
    assert_eq!(unsafe { poc_rust_database_insert(db, row.as_ptr(), &mut out) }, ffi::POC_OK);
    assert!(block_on(import(out)).is_ok());
    assert_eq!(unsafe { poc_rust_database_query(db, sql.as_ptr(), &mut out) }, ffi::POC_OK);
    assert!(block_on(import(out)).is_ok());
}

#[test]
fn async_calls_free_everything_they_allocate() {
    let url = CString::new("mem://leaks").unwrap();
    let (row, sql) = (CString::new("r").unwrap(), CString::new("SELECT").unwrap());
    let mut db = 0;
    assert_eq!(unsafe { poc_rust_database_connect(url.as_ptr(), &mut db) }, ffi::POC_OK);
    // Warm-up: the handle tables reach their steady size (a fresh database per measured round,
    // since a database's rows grow).
    for _ in 0..50 {
        round(db, &row, &sql);
    }
    assert_eq!(poc_rust_database_free(db), ffi::POC_OK);
    let before = thread_live();
    for _ in 0..200 {
        let mut db = 0;
        assert_eq!(unsafe { poc_rust_database_connect(url.as_ptr(), &mut db) }, ffi::POC_OK);
        round(db, &row, &sql);
        assert_eq!(poc_rust_database_free(db), ffi::POC_OK);
    }
    assert_eq!(thread_live() - before, 0, "allocations minus frees over 200 rounds");
}

/// One round of lent-function paths (all pure: no runtime, this thread only).
fn lent_round() {
    use futures::executor::block_on;
    // square READY: made, called (value and error), a call cancelled, released.
    let square = unsafe { AsyncFn::from_raw(square_fn(None, SquareMode::Ready, 0).unwrap()) }.unwrap();
    assert_eq!(block_on(square.call(&Message::new(5, Vec::new())).unwrap()).unwrap().id, 25);
    assert!(block_on(square.call(&Message::new(1 << 32, Vec::new())).unwrap()).is_err());
    let f = square.call(&Message::new(6, Vec::new())).unwrap();
    f.cancel();
    assert_eq!(block_on(f), Err(CallError::Cancelled));
    // sum_calls over it (takes it over).
    assert_eq!(block_on(sum_calls(square, 1, 3)).unwrap().id, 14);
    // A lent closure that yields, through the C ABI's sum_calls; one dropped unpolled; NULL out.
    let echo = || lend(|m: Message| async move {
        examples::yield_now().await;
        Ok(m)
    });
    let mut out = poc_future { handle: 0, vtable: std::ptr::null() };
    assert_eq!(unsafe { poc_rust_sum_calls(echo(), 2, 2, &mut out) }, ffi::POC_OK);
    assert_eq!(block_on(import(out)).unwrap().id, 5);
    assert_eq!(unsafe { poc_rust_sum_calls(echo(), 2, 2, &mut out) }, ffi::POC_OK);
    drop(import(out));
    assert_eq!(unsafe { poc_rust_sum_calls(echo(), 2, 2, std::ptr::null_mut()) }, ffi::POC_INVALID);
}

#[test]
fn lent_calls_free_everything_they_allocate() {
    for _ in 0..50 {
        lent_round();
    }
    let before = thread_live();
    for _ in 0..200 {
        lent_round();
    }
    assert_eq!(thread_live() - before, 0, "allocations minus frees over 200 rounds");
    assert_eq!(lend::live_lent_fns(), 0);
}

static WAKES: AtomicUsize = AtomicUsize::new(0);
static DELIVERED: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" fn count_wake(_: *mut c_void) {
    WAKES.fetch_add(1, Ordering::SeqCst);
}

unsafe extern "C" fn keep_id(_: *mut c_void, _: ffi::poc_status, msg: *const ffi::poc_message_view) {
    DELIVERED.store(unsafe { (*msg).id }, Ordering::SeqCst);
}

/// One raw poll (the callbacks allocate nothing); returns its status and this thread's
/// allocations during the poll.
fn poll_counting(f: &poc_future) -> (Status, usize) {
    let before = thread_allocs();
    let st = unsafe { (*f.vtable).poll.unwrap()(f.handle, Some(count_wake), Some(keep_id), std::ptr::null_mut()) };
    (Status(st), thread_allocs() - before)
}

fn release_raw(f: &poc_future) {
    assert_eq!(unsafe { (*f.vtable).release.unwrap()(f.handle) }, ffi::POC_OK);
}

#[test]
fn the_first_poll_of_a_ready_future_allocates_nothing_and_takes_no_wake() {
    let square = square_fn(None, SquareMode::Ready, 0).unwrap();
    let lent_call = |x: u64| {
        let view = Message::new(x, Vec::new()).view();
        let mut out = poc_future { handle: 0, vtable: std::ptr::null() };
        assert_eq!(unsafe { square.call.unwrap()(square.context, &view, &mut out) }, ffi::POC_OK);
        out
    };
    let cases: Vec<(&str, poc_future, Status, u64)> = vec![
        ("export_ready OK", export_ready(Ok(Message::new(49, Vec::new()))).unwrap(), Status::OK, 49),
        ("export_ready ERROR", export_ready(Err(CallError::error(400, "overflow"))).unwrap(), Status::ERROR, 400),
        ("async block ready at once", export_future(async { Ok(Message::new(7, Vec::new())) }).unwrap(), Status::OK, 7),
        ("lent square READY", lent_call(12), Status::OK, 144),
        ("lent square READY, overflow", lent_call(1 << 40), Status::ERROR, 400),
    ];
    for (what, f, status, id) in cases {
        let wakes = WAKES.load(Ordering::SeqCst);
        assert_eq!(poll_counting(&f), (status, 0), "{what}: first poll (status, allocations)");
        assert_eq!(DELIVERED.load(Ordering::SeqCst), id, "{what}");
        release_raw(&f);
        assert_eq!(WAKES.load(Ordering::SeqCst), wakes, "{what}: no wake");
    }
    unsafe { square.release.unwrap()(square.context) };

    // The count is not blind: a poll that answers PENDING makes the cell that owes its wake.
    let mut first = true;
    let f = export_future(futures::future::poll_fn(move |_| {
        if std::mem::take(&mut first) {
            Poll::Pending
        } else {
            Poll::Ready(Ok(Message::new(1, Vec::new())))
        }
    }))
    .unwrap();
    let (st, allocs) = poll_counting(&f);
    assert_eq!(st, Status::PENDING);
    assert!(allocs > 0, "a PENDING poll allocates its wake cell");
    release_raw(&f); // fires the owed wake
}
