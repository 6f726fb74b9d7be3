//! Helpers shared by the integration tests: bounded waits, counting C callbacks, poll helpers.
//!
//! Every wait in the tests is bounded by [`LIMIT`] and fails with a message saying what it was
//! waiting for; nothing sleeps to synchronise.
#![allow(dead_code)]

pub mod fake;
pub mod lent;

use std::ffi::c_void;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use poc_bridge::ffi;
use poc_bridge::{Message, Status};

/// The bound of every wait.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Runs `f` on its own thread and waits for it at most [`LIMIT`].
pub fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::Builder::new()
        .name(format!("test: {what}"))
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn test thread");
    match rx.recv_timeout(LIMIT) {
        Ok(v) => {
            t.join().expect("test thread");
            v
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("timed out after {LIMIT:?}: {what}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            match t.join() {
                Err(p) => std::panic::resume_unwind(p),
                Ok(()) => panic!("{what}: thread ended without a result"),
            }
        }
    }
}

/// `futures::executor::block_on` on a fresh thread (which belongs to no runtime), bounded.
pub fn block_on<F>(what: &str, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    within(what, move || futures::executor::block_on(fut))
}

/// Polls once with a waker that counts its wakes.
pub fn poll_once<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(waker))
}

/// A waker that counts wakes.
#[derive(Default)]
pub struct CountingWaker {
    pub wakes: AtomicUsize,
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
}

pub fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let c = Arc::new(CountingWaker::default());
    (c.clone(), Waker::from(c))
}

/// What a [`Recorder`] saw: one completion or delivery, with the thread it ran on.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: &'static str,
    pub status: Status,
    pub msg: Option<Message>,
    pub thread: String,
}

/// Counts C callbacks. `user` is `&Recorder`; keep the `Arc` alive until every callback ran.
pub struct Recorder {
    pub completions: AtomicUsize,
    pub delivers: AtomicUsize,
    tx: Mutex<mpsc::Sender<Event>>,
    rx: Mutex<mpsc::Receiver<Event>>,
    pub delivered: Mutex<Vec<Message>>,
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        let (tx, rx) = mpsc::channel();
        Arc::new(Recorder {
            completions: AtomicUsize::new(0),
            delivers: AtomicUsize::new(0),
            tx: Mutex::new(tx),
            rx: Mutex::new(rx),
            delivered: Mutex::new(Vec::new()),
        })
    }

    pub fn user(self: &Arc<Self>) -> *mut c_void {
        Arc::as_ptr(self) as *mut c_void
    }

    /// The next completion, waiting at most [`LIMIT`].
    pub fn next(&self, what: &str) -> Event {
        self.rx
            .lock()
            .unwrap()
            .recv_timeout(LIMIT)
            .unwrap_or_else(|_| panic!("timed out after {LIMIT:?} waiting for a completion: {what}"))
    }

    /// A completion that already arrived, if any (never waits).
    pub fn try_next(&self) -> Option<Event> {
        self.rx.lock().unwrap().try_recv().ok()
    }

    pub fn completions(&self) -> usize {
        self.completions.load(Ordering::SeqCst)
    }

    pub fn delivers(&self) -> usize {
        self.delivers.load(Ordering::SeqCst)
    }

    fn push(&self, kind: &'static str, status: Status, msg: Option<Message>) {
        let thread = std::thread::current().name().unwrap_or("?").to_string();
        let _ = self.tx.lock().unwrap().send(Event { kind, status, msg, thread });
    }
}

/// `poc_send_complete_fn` recording into a `Recorder`.
pub unsafe extern "C" fn rec_send_done(user: *mut c_void, status: ffi::poc_status) {
    let r = unsafe { &*(user as *const Recorder) };
    r.completions.fetch_add(1, Ordering::SeqCst);
    r.push("send", Status(status), None);
}

/// `poc_recv_complete_fn` (completion) recording into a `Recorder`.
pub unsafe extern "C" fn rec_recv_done(user: *mut c_void, status: ffi::poc_status, msg: *const ffi::poc_message_view) {
    let r = unsafe { &*(user as *const Recorder) };
    r.completions.fetch_add(1, Ordering::SeqCst);
    let m = unsafe { msg.as_ref() }.map(|v| unsafe { Message::from_view(v) });
    r.push("recv", Status(status), m);
}

/// `poc_recv_complete_fn` (deliver) recording into a `Recorder`.
pub unsafe extern "C" fn rec_deliver(user: *mut c_void, status: ffi::poc_status, msg: *const ffi::poc_message_view) {
    let r = unsafe { &*(user as *const Recorder) };
    r.delivers.fetch_add(1, Ordering::SeqCst);
    assert_eq!(status, ffi::POC_OK, "deliver is only called with OK");
    let m = unsafe { Message::from_view(&*msg) };
    r.delivered.lock().unwrap().push(m);
}

/// Asserts that a completion ran on one of the Rust runtime's threads.
pub fn assert_runtime_thread(e: &Event) {
    assert!(e.thread.starts_with("poc-rust-"), "completion ran on thread {:?}, not a runtime thread", e.thread);
}

/// A small deterministic PRNG (xorshift64*), so storms are random but reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A future that is pending `n` times (waking itself each time), then ready: used to drop a
/// `select`ed operation at a random point.
pub struct Yields(pub u64);

impl Future for Yields {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Raw send through a sender port's vtable.
pub fn raw_send(tx: ffi::poc_sender, msg: &Message, rec: &Arc<Recorder>, op: &mut u64) -> Status {
    let view = msg.view();
    let vt = unsafe { &*tx.vtable };
    Status(unsafe { (vt.send.unwrap())(tx.handle, &view, Some(rec_send_done), rec.user(), op) })
}

/// Raw try_send through a sender port's vtable.
pub fn raw_try_send(tx: ffi::poc_sender, msg: &Message) -> Status {
    let view = msg.view();
    let vt = unsafe { &*tx.vtable };
    Status(unsafe { (vt.try_send.unwrap())(tx.handle, &view) })
}

/// Raw recv through a receiver port's vtable.
pub fn raw_recv(rx: ffi::poc_receiver, rec: &Arc<Recorder>, op: &mut u64) -> Status {
    let vt = unsafe { &*rx.vtable };
    Status(unsafe { (vt.recv.unwrap())(rx.handle, Some(rec_deliver), Some(rec_recv_done), rec.user(), op) })
}

/// Raw try_recv through a receiver port's vtable.
pub fn raw_try_recv(rx: ffi::poc_receiver, rec: &Arc<Recorder>) -> Status {
    let vt = unsafe { &*rx.vtable };
    Status(unsafe { (vt.try_recv.unwrap())(rx.handle, Some(rec_deliver), rec.user()) })
}

pub fn raw_send_cancel(tx: ffi::poc_sender, op: u64) -> Status {
    Status(unsafe { ((*tx.vtable).cancel.unwrap())(tx.handle, op) })
}
pub fn raw_recv_cancel(rx: ffi::poc_receiver, op: u64) -> Status {
    Status(unsafe { ((*rx.vtable).cancel.unwrap())(rx.handle, op) })
}
pub fn raw_send_close(tx: ffi::poc_sender) -> Status {
    Status(unsafe { ((*tx.vtable).close.unwrap())(tx.handle) })
}
pub fn raw_recv_close(rx: ffi::poc_receiver) -> Status {
    Status(unsafe { ((*rx.vtable).close.unwrap())(rx.handle) })
}
pub fn raw_send_release(tx: ffi::poc_sender) -> Status {
    Status(unsafe { ((*tx.vtable).release.unwrap())(tx.handle) })
}
pub fn raw_recv_release(rx: ffi::poc_receiver) -> Status {
    Status(unsafe { ((*rx.vtable).release.unwrap())(rx.handle) })
}
pub fn raw_clone(tx: ffi::poc_sender) -> (Status, ffi::poc_sender) {
    let mut out = ffi::poc_sender { handle: 0, vtable: std::ptr::null() };
    let st = Status(unsafe { ((*tx.vtable).clone.unwrap())(tx.handle, &mut out) });
    (st, out)
}
