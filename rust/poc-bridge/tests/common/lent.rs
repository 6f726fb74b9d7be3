//! Helpers of the lent-function tests (`lent_calls.rs`, `lent_calls_cpp.rs`): a serial lock for
//! tests that assert the process-wide live counts, a raw caller of `poc_async_fn` / `poc_future`
//! that counts wakes and deliveries (what a C++ or C# caller does with the vtables), a counting
//! wrapper around any `poc_async_fn` (every call, every future's poll/cancel/release in order,
//! the release of the function), and a way to hold the only worker of a Rust runtime still.

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use poc_bridge::ffi::{self, poc_async_fn, poc_future, poc_message_view};
use poc_bridge::future::{lend, live_futures};
use poc_bridge::{Message, Runtime, Status};

use super::LIMIT;

static SERIAL: Mutex<()> = Mutex::new(());

/// Tests that assert the process-wide counts ([`assert_quiet`]) run one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits (bounded) until `cond` holds, re-checking as the other threads progress.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < LIMIT, "waited {LIMIT:?} for {what}");
        std::thread::yield_now();
    }
}

/// Nothing of the Rust side is left: every exported future and every lent function released,
/// every square task ended (tasks end asynchronously after an abort: bounded wait).
pub fn assert_quiet(what: &str) {
    wait_until(&format!("{what}: square tasks ended ({} alive)", lend::square_tasks_alive()), || {
        lend::square_tasks_alive() == 0
    });
    assert_eq!(live_futures(), 0, "{what}: Rust futures not released");
    assert_eq!(lend::live_lent_fns(), 0, "{what}: Rust lent functions not released");
}

pub fn no_future() -> poc_future {
    poc_future { handle: 0, vtable: std::ptr::null() }
}

pub fn no_fn() -> poc_async_fn {
    poc_async_fn { call: None, release: None, context: std::ptr::null_mut() }
}

// ---------------------------------------------------------------------------------------------
// A raw caller
// ---------------------------------------------------------------------------------------------

/// The `user` of raw polls: counts wakes (with the thread they ran on), records deliveries.
#[derive(Default)]
pub struct Probe {
    wakes: Mutex<Vec<String>>,
    woken: Condvar,
    delivered: Mutex<Vec<(Status, u64, Vec<u8>)>>,
}

unsafe extern "C" fn probe_wake(user: *mut c_void) {
    let p = unsafe { &*(user as *const Probe) };
    let name = std::thread::current().name().unwrap_or("?").to_string();
    p.wakes.lock().unwrap().push(name);
    p.woken.notify_all();
}

unsafe extern "C" fn probe_deliver(user: *mut c_void, status: ffi::poc_status, msg: *const poc_message_view) {
    let p = unsafe { &*(user as *const Probe) };
    let v = unsafe { &*msg };
    let bytes = if v.len == 0 { Vec::new() } else { unsafe { std::slice::from_raw_parts(v.data, v.len) }.to_vec() };
    p.delivered.lock().unwrap().push((Status(status), v.id, bytes));
}

impl Probe {
    pub fn new() -> Arc<Probe> {
        Arc::new(Probe::default())
    }
    pub fn wakes(&self) -> usize {
        self.wakes.lock().unwrap().len()
    }
    /// The names of the threads the wakes ran on.
    pub fn wake_threads(&self) -> Vec<String> {
        self.wakes.lock().unwrap().clone()
    }
    pub fn wait_wakes(&self, n: usize, what: &str) {
        let g = self.wakes.lock().unwrap();
        let (g, t) = self.woken.wait_timeout_while(g, LIMIT, |w| w.len() < n).unwrap();
        assert!(!t.timed_out(), "{what}: waited {LIMIT:?} for {n} wakes, saw {}", g.len());
    }
    pub fn delivered(&self) -> Vec<(Status, u64, Vec<u8>)> {
        self.delivered.lock().unwrap().clone()
    }
}

/// `call(context, {id = x}, &out)` through the raw function pointer.
pub fn raw_call(f: &poc_async_fn, x: u64) -> (Status, poc_future) {
    let arg = Message::new(x, Vec::new());
    let view = arg.view();
    let mut out = no_future();
    let st = Status(unsafe { f.call.unwrap()(f.context, &view, &mut out) });
    (st, out)
}

pub fn raw_release_fn(f: poc_async_fn) {
    unsafe { f.release.unwrap()(f.context) }
}

fn vt(f: &poc_future) -> &'static ffi::poc_future_vtable {
    unsafe { &*f.vtable }
}

/// `poll` with the probe as `user`; the probe must outlive every owed wake.
pub fn raw_poll(f: &poc_future, p: &Arc<Probe>) -> Status {
    let user = Arc::as_ptr(p) as *mut c_void;
    Status(unsafe { vt(f).poll.unwrap()(f.handle, Some(probe_wake), Some(probe_deliver), user) })
}

pub fn raw_cancel(f: &poc_future) -> Status {
    Status(unsafe { vt(f).cancel.unwrap()(f.handle) })
}

pub fn raw_release(f: &poc_future) -> Status {
    Status(unsafe { vt(f).release.unwrap()(f.handle) })
}

/// Polls until not PENDING, waiting (bounded) for each wake. Returns the final status.
pub fn raw_drive(f: &poc_future, p: &Arc<Probe>, what: &str) -> Status {
    loop {
        let before = p.wakes();
        let s = raw_poll(f, p);
        if s != Status::PENDING {
            return s;
        }
        p.wait_wakes(before + 1, what);
    }
}

// ---------------------------------------------------------------------------------------------
// A counting wrapper around a lent function
// ---------------------------------------------------------------------------------------------

/// What a [`counted`] wrapper saw.
#[derive(Default)]
pub struct Counts {
    /// `call`s that reached the wrapper.
    pub calls: AtomicUsize,
    /// `release`s of the function (must end at exactly 1).
    pub fn_releases: AtomicUsize,
    /// Every vtable call on a future of the function, in order: `poll <i>`, `cancel <i>`,
    /// `release <i>` (`i` = the call's number, from 0).
    pub log: Mutex<Vec<String>>,
}

impl Counts {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    pub fn fn_releases(&self) -> usize {
        self.fn_releases.load(Ordering::SeqCst)
    }
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    /// The log entries of call `i`.
    pub fn of_call(&self, i: usize) -> Vec<String> {
        let suffix = format!(" {i}");
        self.log().into_iter().filter(|e| e.ends_with(&suffix)).map(|e| e[..e.len() - suffix.len()].to_string()).collect()
    }
    /// How many futures were released.
    pub fn future_releases(&self) -> usize {
        self.log().iter().filter(|e| e.starts_with("release ")).count()
    }
    fn push(&self, e: String) {
        self.log.lock().unwrap().push(e);
    }
}

struct Wrapper {
    inner: poc_async_fn,
    counts: Arc<Counts>,
}

/// One future handed out by the wrapper: the inner future and the call's number.
struct WrappedFuture {
    inner: poc_future,
    index: usize,
    counts: Arc<Counts>,
}

static WRAPPED_VTABLE: ffi::poc_future_vtable = ffi::poc_future_vtable {
    abi_version: ffi::POC_ABI_VERSION,
    size: std::mem::size_of::<ffi::poc_future_vtable>() as u32,
    poll: Some(wrapped_poll),
    cancel: Some(wrapped_cancel),
    release: Some(wrapped_release),
};

unsafe extern "C" fn wrapped_poll(
    handle: u64,
    wake: ffi::poc_wake_fn,
    deliver: ffi::poc_recv_complete_fn,
    user: *mut c_void,
) -> ffi::poc_status {
    let w = unsafe { &*(handle as *const WrappedFuture) };
    w.counts.push(format!("poll {}", w.index));
    unsafe { vt(&w.inner).poll.unwrap()(w.inner.handle, wake, deliver, user) }
}

unsafe extern "C" fn wrapped_cancel(handle: u64) -> ffi::poc_status {
    let w = unsafe { &*(handle as *const WrappedFuture) };
    w.counts.push(format!("cancel {}", w.index));
    unsafe { vt(&w.inner).cancel.unwrap()(w.inner.handle) }
}

unsafe extern "C" fn wrapped_release(handle: u64) -> ffi::poc_status {
    let w = unsafe { Box::from_raw(handle as *mut WrappedFuture) };
    w.counts.push(format!("release {}", w.index));
    unsafe { vt(&w.inner).release.unwrap()(w.inner.handle) }
}

unsafe extern "C" fn wrapper_call(context: *mut c_void, arg: *const poc_message_view, out: *mut poc_future) -> ffi::poc_status {
    let w = unsafe { &*(context as *const Wrapper) };
    let index = w.counts.calls.fetch_add(1, Ordering::SeqCst);
    let mut inner = no_future();
    let st = unsafe { w.inner.call.unwrap()(w.inner.context, arg, &mut inner) };
    if st == ffi::POC_OK {
        let wrapped = Box::new(WrappedFuture { inner, index, counts: Arc::clone(&w.counts) });
        unsafe { *out = poc_future { handle: Box::into_raw(wrapped) as u64, vtable: &WRAPPED_VTABLE } };
    }
    st
}

unsafe extern "C" fn wrapper_release(context: *mut c_void) {
    let w = unsafe { Box::from_raw(context as *mut Wrapper) };
    w.counts.fn_releases.fetch_add(1, Ordering::SeqCst);
    raw_release_fn(w.inner);
}

/// Wraps `inner` (taken over): the result forwards everything and counts it.
pub fn counted(inner: poc_async_fn) -> (poc_async_fn, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let w = Box::new(Wrapper { inner, counts: Arc::clone(&counts) });
    let f = poc_async_fn { call: Some(wrapper_call), release: Some(wrapper_release), context: Box::into_raw(w) as *mut c_void };
    (f, counts)
}

// ---------------------------------------------------------------------------------------------
// Holding a Rust runtime still
// ---------------------------------------------------------------------------------------------

/// Occupies the only worker of a one-worker [`Runtime`] (a task that blocks its thread) until
/// dropped: tasks spawned meanwhile cannot run and its timer is not driven, so a call that
/// needs the runtime is deterministically still pending at its first poll.
pub struct Hold(Option<mpsc::Sender<()>>);

impl Hold {
    pub fn worker_of(rt: &Runtime) -> Hold {
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        drop(rt.handle().spawn(async move {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(LIMIT); // blocks the worker thread on purpose
        }));
        started_rx.recv_timeout(LIMIT).expect("the holding task started on the worker");
        Hold(Some(release_tx))
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let _ = self.0.take().unwrap().send(());
    }
}
