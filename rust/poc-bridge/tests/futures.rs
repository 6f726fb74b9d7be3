//! Async calls: Rust futures exported as `poc_future` (driven here through the raw vtable, as a
//! C++ or C# caller would), the BoltFFI examples of bridge.h "Async calls exported by Rust", and
//! `ForeignFuture` over them with `futures::executor::block_on` and inside tokio.
//!
//! Every wait is bounded (`common::LIMIT`); nothing sleeps to synchronise; wakes, deliveries and
//! drops are counted exactly.

mod common;

use std::ffi::{c_void, CString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::Poll;
use std::time::Instant;

use common::{block_on, LIMIT};
use poc_bridge::ffi::{self, poc_future};
use poc_bridge::future::{examples, export_future, CallError, ForeignFuture};
use poc_bridge::*;

// ---------------------------------------------------------------------------------------------
// Raw harness: what a foreign caller does with the vtable
// ---------------------------------------------------------------------------------------------

/// The `user` of raw polls: counts wakes, records deliveries.
#[derive(Default)]
struct Probe {
    wakes: Mutex<usize>,
    woken: Condvar,
    delivered: Mutex<Vec<(Status, u64, Vec<u8>)>>,
}

unsafe extern "C" fn probe_wake(user: *mut c_void) {
    let p = unsafe { &*(user as *const Probe) };
    *p.wakes.lock().unwrap() += 1;
    p.woken.notify_all();
}

unsafe extern "C" fn probe_deliver(user: *mut c_void, status: ffi::poc_status, msg: *const ffi::poc_message_view) {
    let p = unsafe { &*(user as *const Probe) };
    let v = unsafe { &*msg };
    let bytes = unsafe { std::slice::from_raw_parts(v.data, v.len) }.to_vec();
    p.delivered.lock().unwrap().push((Status(status), v.id, bytes));
}

impl Probe {
    fn new() -> Arc<Probe> {
        Arc::new(Probe::default())
    }
    fn wakes(&self) -> usize {
        *self.wakes.lock().unwrap()
    }
    fn wait_wakes(&self, n: usize) {
        let g = self.wakes.lock().unwrap();
        let (g, t) = self.woken.wait_timeout_while(g, LIMIT, |w| *w < n).unwrap();
        assert!(!t.timed_out(), "waited {LIMIT:?} for {n} wakes, saw {}", *g);
    }
    fn delivered(&self) -> Vec<(Status, u64, Vec<u8>)> {
        self.delivered.lock().unwrap().clone()
    }
}

fn vt(f: &poc_future) -> &'static ffi::poc_future_vtable {
    unsafe { &*f.vtable }
}
/// `poll` with the probe as `user`. The probe outlives every wake: tests keep it alive until
/// their owed wakes were counted.
fn poll(f: &poc_future, p: &Arc<Probe>) -> Status {
    Status(unsafe { vt(f).poll.unwrap()(f.handle, Some(probe_wake), Some(probe_deliver), Arc::as_ptr(p) as *mut c_void) })
}
fn cancel(f: &poc_future) -> Status {
    Status(unsafe { vt(f).cancel.unwrap()(f.handle) })
}
fn release(f: &poc_future) -> Status {
    Status(unsafe { vt(f).release.unwrap()(f.handle) })
}
/// Polls until not PENDING, waiting for each wake (bounded). Returns the final status.
fn drive(f: &poc_future, p: &Arc<Probe>) -> Status {
    loop {
        let before = p.wakes();
        let s = poll(f, p);
        if s != Status::PENDING {
            return s;
        }
        p.wait_wakes(before + 1);
    }
}
/// Waits (bounded) until `cond` holds, re-checking as the other threads progress.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < LIMIT, "waited {LIMIT:?} for {what}");
        std::thread::yield_now();
    }
}

/// Counts drops of what a future holds.
struct DropCount(Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn new_future() -> poc_future {
    poc_future { handle: 0, vtable: std::ptr::null() }
}
fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The exporter, through the raw vtable
// ---------------------------------------------------------------------------------------------

#[test]
fn ready_future_delivers_once_and_never_wakes() {
    let f = export_future(async { Ok(Message::new(7, b"seven".to_vec())) }).unwrap();
    let p = Probe::new();
    assert_eq!(poll(&f, &p), Status::OK);
    assert_eq!(p.delivered(), vec![(Status::OK, 7, b"seven".to_vec())]);
    assert_eq!(p.wakes(), 0);
    assert_eq!(poll(&f, &p), Status::INVALID, "poll after finish");
    assert_eq!(cancel(&f), Status::OK, "cancel after finish is a harmless request");
    assert_eq!(release(&f), Status::OK);
    assert_eq!(release(&f), Status::INVALID, "second release");
    assert_eq!(poll(&f, &p), Status::INVALID, "stale handle");
    assert_eq!(cancel(&f), Status::INVALID, "stale handle");
    assert_eq!(p.delivered().len(), 1);
    assert_eq!(p.wakes(), 0);
}

#[test]
fn forged_and_null_arguments_are_invalid() {
    let f = export_future(async { Ok(Message::default()) }).unwrap();
    let v = vt(&f);
    let p = Probe::new();
    let user = Arc::as_ptr(&p) as *mut c_void;
    unsafe {
        assert_eq!(Status((v.poll.unwrap())(0, Some(probe_wake), Some(probe_deliver), user)), Status::INVALID);
        assert_eq!(Status((v.poll.unwrap())(f.handle ^ 0xFF00_0000_0000_0000, Some(probe_wake), Some(probe_deliver), user)), Status::INVALID);
        assert_eq!(Status((v.poll.unwrap())(f.handle, None, Some(probe_deliver), user)), Status::INVALID);
        assert_eq!(Status((v.poll.unwrap())(f.handle, Some(probe_wake), None, user)), Status::INVALID);
        assert_eq!(Status(poc_rust_fetch_user(1, std::ptr::null_mut())), Status::INVALID);
        assert_eq!(Status(poc_rust_load_config(std::ptr::null(), &mut new_future())), Status::INVALID);
        let bad = [0xFFu8, 0xFE, 0];
        assert_eq!(Status(poc_rust_load_config(bad.as_ptr().cast(), &mut new_future())), Status::INVALID);
    }
    assert_eq!(poll(&f, &p), Status::OK, "the invalid calls did nothing");
    assert_eq!(release(&f), Status::OK);
}

#[test]
fn pending_then_woken_from_another_thread_wakes_exactly_once() {
    let (tx, rx) = futures::channel::oneshot::channel::<u64>();
    let f = export_future(async move {
        let v = rx.await.map_err(|_| CallError::error(1, "sender dropped"))?;
        Ok(Message::new(v, b"from another thread".to_vec()))
    })
    .unwrap();
    let p = Probe::new();
    assert_eq!(poll(&f, &p), Status::PENDING);
    assert_eq!(p.wakes(), 0);
    std::thread::spawn(move || tx.send(99).unwrap()).join().unwrap();
    p.wait_wakes(1);
    assert_eq!(poll(&f, &p), Status::OK);
    assert_eq!(p.delivered(), vec![(Status::OK, 99, b"from another thread".to_vec())]);
    assert_eq!(p.wakes(), 1);
    assert_eq!(release(&f), Status::OK);
    assert_eq!(p.wakes(), 1);
}

#[test]
fn a_wake_during_poll_is_not_lost() {
    // Woken from another thread while poll runs (the thread is joined before poll returns).
    let mut first = true;
    let f = export_future(futures::future::poll_fn(move |cx| {
        if std::mem::take(&mut first) {
            let w = cx.waker().clone();
            std::thread::spawn(move || w.wake()).join().unwrap();
            return Poll::Pending;
        }
        Poll::Ready(Ok(Message::new(1, Vec::new())))
    }))
    .unwrap();
    let p = Probe::new();
    assert_eq!(poll(&f, &p), Status::PENDING);
    assert_eq!(p.wakes(), 1, "the wake that came during poll ran before poll returned");
    assert_eq!(poll(&f, &p), Status::OK);
    assert_eq!(p.wakes(), 1);
    assert_eq!(release(&f), Status::OK);

    // fetch_user yields once: it wakes itself on the polling thread, during poll.
    let mut f = new_future();
    assert_eq!(Status(unsafe { poc_rust_fetch_user(1, &mut f) }), Status::OK);
    let p = Probe::new();
    assert_eq!(poll(&f, &p), Status::PENDING);
    assert_eq!(p.wakes(), 1);
    assert_eq!(poll(&f, &p), Status::OK);
    assert_eq!(p.delivered(), vec![(Status::OK, 1, b"alice".to_vec())]);
    assert_eq!(p.wakes(), 1);
    assert_eq!(release(&f), Status::OK);
}

#[test]
fn the_poll_waker_by_reference_from_another_thread_and_a_waker_never_kept() {
    // The waker the exporter passes is woken by reference (not cloned) from another thread
    // while poll runs: the wake still runs exactly once, before poll returns.
    let mut first = true;
    let f = export_future(futures::future::poll_fn(move |cx| {
        if std::mem::take(&mut first) {
            let waker = cx.waker(); // `&Waker` is Send: wakers are thread-safe
            std::thread::scope(|s| {
                s.spawn(|| waker.wake_by_ref());
            });
            return Poll::Pending;
        }
        Poll::Ready(Ok(Message::new(2, Vec::new())))
    }))
    .unwrap();
    let p = Probe::new();
    assert_eq!(poll(&f, &p), Status::PENDING);
    assert_eq!(p.wakes(), 1);
    assert_eq!(poll(&f, &p), Status::OK);
    assert_eq!(p.wakes(), 1);
    assert_eq!(release(&f), Status::OK);

    // PENDING without keeping the waker: nothing can wake it but cancel, which still owes (and
    // fires) exactly one wake; a re-poll fires the superseded one.
    let f = export_future(std::future::pending::<Result<Message, CallError>>()).unwrap();
    let p = Probe::new();
    assert_eq!(poll(&f, &p), Status::PENDING);
    assert_eq!(poll(&f, &p), Status::PENDING);
    assert_eq!(p.wakes(), 1, "the first PENDING's wake ran when it was superseded");
    assert_eq!(cancel(&f), Status::OK);
    assert_eq!(p.wakes(), 2);
    assert_eq!(poll(&f, &p), Status::CANCELLED);
    assert_eq!(release(&f), Status::OK);
    assert_eq!(p.wakes(), 2);
}

#[test]
fn polling_again_before_the_wake_still_wakes_once_per_pending() {
    let (tx, rx) = futures::channel::oneshot::channel::<u64>();
    let f = export_future(async move { Ok(Message::new(rx.await.unwrap(), Vec::new())) }).unwrap();
    let p = Probe::new();
    assert_eq!(poll(&f, &p), Status::PENDING);
    assert_eq!(poll(&f, &p), Status::PENDING, "a spurious re-poll");
    assert_eq!(p.wakes(), 1, "the first PENDING's wake ran when it was superseded");
    tx.send(3).unwrap();
    p.wait_wakes(2);
    assert_eq!(poll(&f, &p), Status::OK);
    assert_eq!(p.wakes(), 2, "one wake per PENDING");
    assert_eq!(release(&f), Status::OK);
}

#[test]
fn error_and_panic_are_delivered_with_their_message() {
    let mut f = new_future();
    assert_eq!(Status(unsafe { poc_rust_fetch_user(7, &mut f) }), Status::OK);
    let p = Probe::new();
    assert_eq!(drive(&f, &p), Status::ERROR);
    assert_eq!(p.delivered(), vec![(Status::ERROR, 404, b"user 7 not found".to_vec())]);
    assert_eq!(poll(&f, &p), Status::INVALID, "poll after finish");
    assert_eq!(release(&f), Status::OK);

    let mut f = new_future();
    assert_eq!(Status(unsafe { poc_rust_fetch_user(-5, &mut f) }), Status::OK);
    let p = Probe::new();
    assert_eq!(drive(&f, &p), Status::PANIC);
    let d = p.delivered();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].0, Status::PANIC);
    assert!(String::from_utf8_lossy(&d[0].2).contains("negative id -5"), "{d:?}");
    assert_eq!(poll(&f, &p), Status::INVALID);
    assert_eq!(release(&f), Status::OK);

    // A panic on the very first poll, with a String payload, and the future's drop counted.
    let drops = Arc::new(AtomicUsize::new(0));
    let held = DropCount(drops.clone());
    let f = export_future(async move {
        let _held = held;
        panic!("{}", String::from("boom"));
    })
    .unwrap();
    let p = Probe::new();
    assert_eq!(poll(&f, &p), Status::PANIC);
    assert_eq!(p.delivered(), vec![(Status::PANIC, 0, b"boom".to_vec())]);
    assert_eq!(drops.load(Ordering::SeqCst), 1, "the panicked future was dropped");
    assert_eq!(release(&f), Status::OK);
    assert_eq!(p.wakes(), 0);
}

#[test]
fn cancel_before_the_first_poll() {
    let drops = Arc::new(AtomicUsize::new(0));
    let held = DropCount(drops.clone());
    let f = export_future(async move {
        let _held = held;
        Ok(Message::default())
    })
    .unwrap();
    assert_eq!(cancel(&f), Status::OK);
    assert_eq!(drops.load(Ordering::SeqCst), 1, "cancel dropped the future");
    let p = Probe::new();
    assert_eq!(poll(&f, &p), Status::CANCELLED);
    assert_eq!(poll(&f, &p), Status::CANCELLED, "cancelled stays cancelled");
    assert!(p.delivered().is_empty());
    assert_eq!(p.wakes(), 0);
    assert_eq!(release(&f), Status::OK);
}

#[test]
fn cancel_while_pending_fires_the_owed_wake_once_and_releases_what_it_holds() {
    let (tx, rx) = futures::channel::oneshot::channel::<u64>();
    let drops = Arc::new(AtomicUsize::new(0));
    let held = DropCount(drops.clone());
    let f = export_future(async move {
        let _held = held;
        Ok(Message::new(rx.await.unwrap(), Vec::new()))
    })
    .unwrap();
    let p = Probe::new();
    assert_eq!(poll(&f, &p), Status::PENDING);
    assert_eq!(cancel(&f), Status::OK);
    assert_eq!(p.wakes(), 1, "the owed wake ran");
    assert_eq!(drops.load(Ordering::SeqCst), 1, "the future was dropped");
    assert!(tx.send(1).is_err(), "the receiver it held was released");
    assert_eq!(cancel(&f), Status::OK, "idempotent");
    assert_eq!(poll(&f, &p), Status::CANCELLED);
    assert_eq!(p.wakes(), 1);
    assert!(p.delivered().is_empty());
    assert_eq!(release(&f), Status::OK);
    assert_eq!(p.wakes(), 1);
}

#[test]
fn release_without_awaiting_drops_the_future() {
    // Never polled.
    let drops = Arc::new(AtomicUsize::new(0));
    let held = DropCount(drops.clone());
    let f = export_future(async move {
        let _held = held;
        Ok(Message::default())
    })
    .unwrap();
    assert_eq!(release(&f), Status::OK);
    assert_eq!(drops.load(Ordering::SeqCst), 1);

    // Pending: released with its wake owed — the wake runs exactly once, during release.
    let (_tx, rx) = futures::channel::oneshot::channel::<u64>();
    let held = DropCount(drops.clone());
    let f = export_future(async move {
        let _held = held;
        Ok(Message::new(rx.await.unwrap_or(0), Vec::new()))
    })
    .unwrap();
    let p = Probe::new();
    assert_eq!(poll(&f, &p), Status::PENDING);
    assert_eq!(release(&f), Status::OK);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    assert_eq!(p.wakes(), 1);
    assert_eq!(poll(&f, &p), Status::INVALID, "released");
    assert_eq!(p.wakes(), 1);
}

// ---------------------------------------------------------------------------------------------
// The examples
// ---------------------------------------------------------------------------------------------

#[test]
fn load_config_returns_a_synthetic_config_or_an_error() {
    let path = cstr("settings.json");
    let mut f = new_future();
    assert_eq!(Status(unsafe { poc_rust_load_config(path.as_ptr(), &mut f) }), Status::OK);
    let p = Probe::new();
    assert_eq!(drive(&f, &p), Status::OK);
    assert_eq!(p.delivered(), vec![(Status::OK, 1, b"path=settings.json\nversion=1\nworkers=4\n".to_vec())]);
    assert_eq!(release(&f), Status::OK);

    let empty = cstr("");
    let mut f = new_future();
    assert_eq!(Status(unsafe { poc_rust_load_config(empty.as_ptr(), &mut f) }), Status::OK);
    let got = block_on("load_config", unsafe { ForeignFuture::from_raw(f) }.unwrap());
    assert_eq!(got, Err(CallError::error(400, "empty path")));
}

fn db_connect(url: &str) -> u64 {
    let url = cstr(url);
    let mut db = 0;
    assert_eq!(Status(unsafe { poc_rust_database_connect(url.as_ptr(), &mut db) }), Status::OK);
    assert_ne!(db, 0);
    db
}
fn db_insert(db: u64, row: &str) -> poc_future {
    let row = cstr(row);
    let mut f = new_future();
    assert_eq!(Status(unsafe { poc_rust_database_insert(db, row.as_ptr(), &mut f) }), Status::OK);
    f
}
fn db_query(db: u64, sql: &str) -> poc_future {
    let sql = cstr(sql);
    let mut f = new_future();
    assert_eq!(Status(unsafe { poc_rust_database_query(db, sql.as_ptr(), &mut f) }), Status::OK);
    f
}
fn import(f: poc_future) -> ForeignFuture {
    unsafe { ForeignFuture::from_raw(f) }.unwrap()
}

#[test]
fn database_inserts_are_serialised() {
    let db = db_connect("mem://serial");
    let (a, b) = (db_insert(db, "a"), db_insert(db, "b"));
    let (pa, pb) = (Probe::new(), Probe::new());
    assert_eq!(poll(&a, &pa), Status::PENDING, "a holds the lock, yielding");
    assert_eq!(pa.wakes(), 1, "a woke itself (yield)");
    assert_eq!(poll(&b, &pb), Status::PENDING, "b waits for the lock");
    assert_eq!(pb.wakes(), 0, "b is not woken while a holds the lock");
    let q = db_query(db, "SELECT * FROM rows");
    let pq = Probe::new();
    assert_eq!(poll(&q, &pq), Status::PENDING, "a query (&self) waits for the insert (&mut self)");
    assert_eq!(poll(&a, &pa), Status::OK);
    assert_eq!(pa.delivered(), vec![(Status::OK, 1, b"a".to_vec())]);
    pb.wait_wakes(1);
    assert_eq!(drive(&b, &pb), Status::OK);
    assert_eq!(pb.delivered(), vec![(Status::OK, 2, b"b".to_vec())]);
    assert_eq!(drive(&q, &pq), Status::OK);
    let rows = pq.delivered();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].1 >= 1, "the query saw the inserts that finished before it got the lock: {rows:?}");
    for f in [a, b, q] {
        assert_eq!(release(&f), Status::OK);
    }

    // Many concurrent inserts through ForeignFuture on several threads: all land, in some order.
    let handles: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..25 {
                    let row = format!("t{t}-{i}");
                    let got = futures::executor::block_on(import(db_insert(db, &row))).unwrap();
                    assert_eq!(got.payload, row.as_bytes());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let all = block_on("query", import(db_query(db, "select *"))).unwrap();
    assert_eq!(all.id, 2 + 8 * 25);
    let text = String::from_utf8(all.payload).unwrap();
    assert_eq!(text.lines().count(), 2 + 8 * 25);
    assert!(text.starts_with("a\nb\n"));
    assert_eq!(Status(poc_rust_database_free(db)), Status::OK);
}

#[test]
fn cancelling_an_insert_releases_the_lock() {
    let db = db_connect("mem://cancel");
    let (a, b) = (db_insert(db, "a"), db_insert(db, "b"));
    let (pa, pb) = (Probe::new(), Probe::new());
    assert_eq!(poll(&a, &pa), Status::PENDING);
    assert_eq!(poll(&b, &pb), Status::PENDING);
    assert_eq!(cancel(&a), Status::OK);
    pb.wait_wakes(1); // a's guard was dropped: b got the lock
    assert_eq!(drive(&b, &pb), Status::OK);
    assert_eq!(pb.delivered(), vec![(Status::OK, 1, b"b".to_vec())], "a appended nothing");
    assert_eq!(poll(&a, &pa), Status::CANCELLED);
    assert_eq!(pa.wakes(), 1, "a's only wake was its yield");
    for f in [a, b] {
        assert_eq!(release(&f), Status::OK);
    }
    let all = block_on("query", import(db_query(db, "SELECT *"))).unwrap();
    assert_eq!((all.id, &all.payload[..]), (1, &b"b"[..]));
    assert_eq!(Status(poc_rust_database_free(db)), Status::OK);
}

#[test]
fn database_errors_and_stale_handles() {
    let db = db_connect("mem://errors");
    assert_eq!(block_on("bad sql", import(db_query(db, "DROP TABLE x"))), Err(CallError::error(400, "unsupported sql: DROP TABLE x")));
    assert!(matches!(block_on("bad row", import(db_insert(db, "two\nlines"))), Err(CallError::Error { code: 400, .. })));
    // A future keeps the database alive after free.
    let pending = import(db_insert(db, "kept"));
    assert_eq!(Status(poc_rust_database_free(db)), Status::OK);
    assert_eq!(block_on("insert after free", pending).unwrap().payload, b"kept");
    assert_eq!(Status(poc_rust_database_free(db)), Status::INVALID, "stale db");
    let sql = cstr("SELECT *");
    let mut f = new_future();
    assert_eq!(Status(unsafe { poc_rust_database_query(db, sql.as_ptr(), &mut f) }), Status::INVALID);
    assert_eq!(Status(unsafe { poc_rust_database_insert(db, sql.as_ptr(), &mut f) }), Status::INVALID);
    let empty = cstr("");
    let mut h = 0;
    assert_eq!(Status(unsafe { poc_rust_database_connect(empty.as_ptr(), &mut h) }), Status::INVALID);
    assert_eq!(Status(unsafe { poc_rust_database_connect(std::ptr::null(), &mut h) }), Status::INVALID);
}

fn rust_runtime(threads: u32) -> *mut ffi::poc_rust_runtime {
    let mut rt = std::ptr::null_mut();
    assert_eq!(Status(unsafe { poc_rust_runtime_new(threads, &mut rt) }), Status::OK);
    rt
}
fn progress(f: &poc_future) -> (u64, bool) {
    let (mut steps, mut running) = (0u64, 0u32);
    assert_eq!(Status(unsafe { poc_rust_sync_progress(f.handle, &mut steps, &mut running) }), Status::OK);
    (steps, running != 0)
}

#[test]
fn sync_all_finishes_in_the_runtime() {
    let rt = rust_runtime(1);
    let mut f = new_future();
    assert_eq!(Status(unsafe { poc_rust_sync_all(rt, 3, 1, &mut f) }), Status::OK);
    let p = Probe::new();
    assert_eq!(drive(&f, &p), Status::OK);
    assert_eq!(p.delivered(), vec![(Status::OK, 3, b"synced 3 items".to_vec())]);
    wait_until("the task to end", || !progress(&f).1);
    assert_eq!(progress(&f), (3, false));
    assert_eq!(release(&f), Status::OK);
    let (mut s, mut r) = (0u64, 0u32);
    assert_eq!(Status(unsafe { poc_rust_sync_progress(f.handle, &mut s, &mut r) }), Status::INVALID, "released");
    let mut other = new_future();
    assert_eq!(Status(unsafe { poc_rust_fetch_user(1, &mut other) }), Status::OK);
    assert_eq!(Status(unsafe { poc_rust_sync_progress(other.handle, &mut s, &mut r) }), Status::INVALID, "not a sync_all");
    assert_eq!(release(&other), Status::OK);
    unsafe { poc_rust_runtime_free(rt) };
}

#[test]
fn a_cancelled_sync_all_stops() {
    const STEPS: u32 = 1_000_000;
    let rt = rust_runtime(2);
    let mut f = new_future();
    assert_eq!(Status(unsafe { poc_rust_sync_all(rt, STEPS, 1, &mut f) }), Status::OK);
    let p = Probe::new();
    assert_eq!(poll(&f, &p), Status::PENDING);
    wait_until("two steps", || progress(&f).0 >= 2);
    assert_eq!(cancel(&f), Status::OK);
    assert_eq!(p.wakes(), 1, "cancel fired the owed wake");
    wait_until("the aborted task to end", || !progress(&f).1);
    let (done, running) = progress(&f);
    assert!(!running);
    assert!((2..u64::from(STEPS)).contains(&done), "stopped part-way: {done}");
    assert_eq!(poll(&f, &p), Status::CANCELLED);
    assert!(p.delivered().is_empty());
    assert_eq!(progress(&f), (done, false), "the count stopped growing");
    assert_eq!(release(&f), Status::OK);

    // Cancel before the first poll: the task is aborted at once.
    let mut f = new_future();
    assert_eq!(Status(unsafe { poc_rust_sync_all(rt, STEPS, 1, &mut f) }), Status::OK);
    assert_eq!(cancel(&f), Status::OK);
    wait_until("the aborted task to end", || !progress(&f).1);
    assert!(progress(&f).0 < u64::from(STEPS));
    assert_eq!(poll(&f, &p), Status::CANCELLED);
    assert_eq!(release(&f), Status::OK);
    unsafe { poc_rust_runtime_free(rt) };
}

#[test]
fn releasing_a_running_sync_all_aborts_it_and_shutdown_reports_shutdown() {
    let rt = Runtime::new(1).unwrap();
    let (fut, prog) = examples::sync_all(&rt, 1_000_000, 1).unwrap();
    let f = export_future(fut).unwrap();
    let p = Probe::new();
    assert_eq!(poll(&f, &p), Status::PENDING);
    assert_eq!(release(&f), Status::OK);
    assert_eq!(p.wakes(), 1);
    wait_until("the aborted task to end", || !prog.running());
    let done = prog.steps_done();
    assert!(done < 1_000_000);

    let (fut, prog) = examples::sync_all(&rt, 1_000_000, 1).unwrap();
    let f = export_future(fut).unwrap();
    let p = Probe::new();
    assert_eq!(poll(&f, &p), Status::PENDING);
    rt.shutdown().unwrap();
    assert!(!prog.running());
    assert_eq!(drive(&f, &p), Status::SHUTDOWN);
    assert_eq!(release(&f), Status::OK);
    assert!(matches!(examples::sync_all(&rt, 1, 1), Err(CallError::Shutdown)));
    let mut g = new_future();
    let raw = Box::into_raw(Box::new(rt)) as *mut ffi::poc_rust_runtime;
    assert_eq!(Status(unsafe { poc_rust_sync_all(raw, 1, 1, &mut g) }), Status::SHUTDOWN);
    assert_eq!(Status(unsafe { poc_rust_sync_all(std::ptr::null_mut(), 1, 1, &mut g) }), Status::INVALID);
    unsafe { poc_rust_runtime_free(raw) };
}

// ---------------------------------------------------------------------------------------------
// ForeignFuture over the Rust exports
// ---------------------------------------------------------------------------------------------

#[test]
fn foreign_future_with_block_on() {
    assert_eq!(block_on("fetch 42", examples::fetch_user_ffi(42)).unwrap(), Message::new(42, b"ada".to_vec()));
    assert_eq!(block_on("fetch 9", examples::fetch_user_ffi(9)), Err(CallError::error(404, "user 9 not found")));
    match block_on("fetch -1", examples::fetch_user_ffi(-1)) {
        Err(CallError::Panic(m)) => assert!(m.contains("negative id"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Cancel through the importer: the next poll resolves Cancelled.
    let f = examples::fetch_user_ffi(1);
    f.cancel();
    assert_eq!(block_on("cancelled", f), Err(CallError::Cancelled));
    // Polled again after it finished: Invalid, no call into the exporter.
    let mut f = examples::fetch_user_ffi(2);
    let v = futures::executor::block_on(&mut f).unwrap();
    assert_eq!(v.payload, b"bob");
    assert!(matches!(futures::executor::block_on(&mut f), Err(CallError::Invalid(_))));
    // Rejected vtables: nothing taken.
    let bad = poc_future { handle: 1, vtable: std::ptr::null() };
    assert!(unsafe { ForeignFuture::from_raw(bad) }.is_err());
}

#[test]
fn foreign_future_inside_tokio() {
    let rt = Runtime::new(2).unwrap();
    let mut s = new_future();
    let raw_rt = &rt as *const Runtime as *mut ffi::poc_rust_runtime;
    assert_eq!(Status(unsafe { poc_rust_sync_all(raw_rt, 4, 1, &mut s) }), Status::OK);
    let sync = import(s);
    let task = rt.handle().spawn(async move {
        let user = examples::fetch_user_ffi(2).await.unwrap();
        let db = db_connect("mem://tokio");
        let inserted = import(db_insert(db, "from tokio")).await.unwrap();
        let rows = import(db_query(db, "SELECT *")).await.unwrap();
        assert_eq!(Status(poc_rust_database_free(db)), Status::OK);
        let synced = sync.await.unwrap();
        (user, inserted.id, rows, synced)
    });
    let (user, n, rows, synced) = block_on("tokio task", task).unwrap();
    assert_eq!(user.payload, b"bob");
    assert_eq!(n, 1);
    assert_eq!(rows, Message::new(1, b"from tokio".to_vec()));
    assert_eq!(synced, Message::new(4, b"synced 4 items".to_vec()));
    // Dropping a pending ForeignFuture cancels and releases it (the task is aborted).
    let mut s = new_future();
    assert_eq!(Status(unsafe { poc_rust_sync_all(raw_rt, 1_000_000, 1, &mut s) }), Status::OK);
    let handle = s.handle;
    let mut sync = import(s);
    let (cw, waker) = common::counting_waker();
    assert!(common::poll_once(&mut sync, &waker).is_pending());
    drop(sync);
    let (mut d, mut r) = (0u64, 0u32);
    assert_eq!(Status(unsafe { poc_rust_sync_progress(handle, &mut d, &mut r) }), Status::INVALID, "released");
    let _ = cw;
    rt.shutdown().unwrap();
}
