//! Allocation accounting for async calls: a counting global allocator checks that exporting,
//! polling, finishing, cancelling and releasing futures — and importing them as
//! `ForeignFuture` — frees everything it allocated (UniFFI leaked per call when a handle was
//! borrowed instead of consumed: ARCHITECTURE §6).
//!
//! One `#[test]`, single-threaded: this thread's allocations and frees are counted exactly,
//! after a warm-up that lets the handle tables reach their steady size.

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use std::ffi::CString;
use std::future::Future;
use std::task::Context;

use poc_bridge::ffi::{self, poc_future};
use poc_bridge::future::{examples, export_future, CallError, ForeignFuture};
use poc_bridge::*;

use counting_alloc::thread_live;

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
