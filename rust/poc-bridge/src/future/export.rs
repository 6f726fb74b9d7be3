//! The exporter of futures: a boxed Rust future behind a `poc_future {handle, &FUTURE_VTABLE}`.
//!
//! Steps of `poll(handle, wake, deliver, user)` (docs/contract.md "Futures"):
//!
//! 1. Resolve the handle (stale, released, forged → `INVALID`). If an earlier `PENDING` still
//!    owes its wake (the caller polled again without being woken), fire it now: every `PENDING`
//!    gets exactly one wake, so an importer may hand a reference over as `user` each time.
//! 2. If cancel was requested: drop the future (if not yet dropped) and answer `CANCELLED`.
//! 3. Poll the future on this thread under the stage lock (a second, concurrent poll of the same
//!    handle is misuse and gets `INVALID`). Its waker is a [`PollWaker`] on this stack: it
//!    allocates nothing unless the future keeps (clones) it, which makes the poll's shared
//!    [`WakeCell`] — so a future that is ready at once costs no allocation and no wake. A future
//!    exported already finished ([`export_ready`]) is not polled at all: its outcome is handed to
//!    `deliver` as in step 4.
//! 4. `Ready`: the stage becomes `Done`, the lock is dropped, the future is dropped, then
//!    `deliver(user, status, &value)` runs on this thread and poll returns `OK`/`ERROR`/`PANIC`
//!    (or `CANCELLED`/`SHUTDOWN`/`INVALID` without a value). A panic inside the future's poll is
//!    caught: `PANIC` with the panic message. Later polls answer `INVALID`.
//! 5. `Pending`: the cell (made now if the future did not clone the waker) is remembered as the
//!    owed wake, the lock is dropped, then the cell is *armed*. A waker that fired during the
//!    poll only marked the cell (or the stack waker); arming sees the mark and calls `wake(user)`
//!    at once (before poll returns — allowed by bridge.h), so the wake is not lost. A waker that
//!    fires later calls `wake(user)` itself. Either way: exactly once (a CAS from `ARMED` to
//!    `FIRED`), never under one of our locks.
//!
//! `cancel` sets a flag, drops the future if no poll is running (otherwise the running poll sees
//! the flag right after it dropped the lock and drops it), and fires the owed wake so that the
//! caller polls and learns `CANCELLED`. Dropping the future releases what it holds (an async
//! mutex guard, a spawned task — ARCHITECTURE §6). `release` = unregister + cancel.

use std::ffi::c_void;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use super::examples::SyncProgress;
use super::table::Table;
use super::CallError;
use crate::import::slot::contain;
use crate::{ffi, Message, Status};
use crate::export::ffi_guard;

type BoxFut = Pin<Box<dyn Future<Output = Result<Message, CallError>> + Send + 'static>>;

/// The vtable of every future this crate exports.
pub static FUTURE_VTABLE: ffi::poc_future_vtable = ffi::poc_future_vtable {
    abi_version: ffi::POC_ABI_VERSION,
    size: std::mem::size_of::<ffi::poc_future_vtable>() as u32,
    poll: Some(future_poll),
    cancel: Some(future_cancel),
    release: Some(future_release),
};

static FUTURES: Table<Exported> = Table::new(0x46);

/// Futures registered in [`FUTURES`] and not yet released.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// How many futures this crate exported that have not been released yet (finished or not):
/// a diagnostic for tests and leak checks ("every future was released"). Process-wide.
pub fn live_futures() -> usize {
    LIVE.load(Ordering::SeqCst)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// The waker of one poll
// ---------------------------------------------------------------------------------------------

/// The poll is running; a wake only marks the cell.
const POLLING: u8 = 0;
/// Woken while the poll ran: arming fires at once.
const WOKEN: u8 = 1;
/// The poll returned `PENDING`: the next wake fires.
const ARMED: u8 = 2;
/// Fired, or the poll finished without `PENDING`: later wakes are ignored.
const FIRED: u8 = 3;

struct UserPtr(*mut c_void);
// SAFETY: bridge.h lets `wake(user)` run on any thread; the pointer is only handed back to it.
unsafe impl Send for UserPtr {}
unsafe impl Sync for UserPtr {}

/// The shared state behind the wakers of one poll that outlive it; calls the C `wake(user)` at
/// most once, and only after `PENDING`.
struct WakeCell {
    state: AtomicU8,
    wake: unsafe extern "C" fn(*mut c_void),
    user: UserPtr,
}

impl WakeCell {
    fn new(wake: unsafe extern "C" fn(*mut c_void), user: *mut c_void) -> Arc<WakeCell> {
        Arc::new(WakeCell { state: AtomicU8::new(POLLING), wake, user: UserPtr(user) })
    }

    fn fire(&self) {
        // SAFETY: the caller of poll gave `wake(user)` for exactly one call after PENDING; the
        // CAS to FIRED before every call site makes it exactly one.
        contain(|| unsafe { (self.wake)(self.user.0) });
    }

    /// The poll returned `PENDING`: arm, or fire now if a wake came during the poll.
    fn arm(&self) {
        if let Err(WOKEN) = self.state.compare_exchange(POLLING, ARMED, Ordering::AcqRel, Ordering::Acquire) {
            self.state.store(FIRED, Ordering::Release);
            self.fire();
        }
    }

    /// The poll finished: no wake is owed.
    fn disarm(&self) {
        self.state.store(FIRED, Ordering::Release);
    }

    /// Fires the wake if it is owed and has not run (cancel, release, re-poll).
    fn fire_if_armed(&self) {
        if self.state.compare_exchange(ARMED, FIRED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.fire();
        }
    }

    /// A wake of the future: marks the cell during the poll, fires once it is armed.
    fn wake_by_ref(&self) {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            let next = match s {
                POLLING => WOKEN,
                ARMED => FIRED,
                _ => return,
            };
            match self.state.compare_exchange(s, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        if s == ARMED {
            self.fire();
        }
    }
}

// The `Waker` of an `Arc<WakeCell>`: a hand-written vtable (the `Wake` trait would do, but the
// stack waker below must turn into one of these when cloned, which needs the raw form).
static CELL_WAKER: RawWakerVTable = RawWakerVTable::new(cell_clone, cell_wake, cell_wake_by_ref, cell_drop);

fn cell_raw_waker(cell: Arc<WakeCell>) -> RawWaker {
    RawWaker::new(Arc::into_raw(cell) as *const (), &CELL_WAKER)
}

unsafe fn cell_clone(p: *const ()) -> RawWaker {
    // SAFETY: `p` is a reference of an `Arc<WakeCell>` (cell_raw_waker); one more for the clone.
    unsafe { Arc::increment_strong_count(p as *const WakeCell) };
    RawWaker::new(p, &CELL_WAKER)
}

unsafe fn cell_wake(p: *const ()) {
    // SAFETY: the waker's own reference, consumed by `wake`.
    let cell = unsafe { Arc::from_raw(p as *const WakeCell) };
    cell.wake_by_ref();
}

unsafe fn cell_wake_by_ref(p: *const ()) {
    // SAFETY: the waker's reference is alive while it is borrowed.
    unsafe { &*(p as *const WakeCell) }.wake_by_ref();
}

unsafe fn cell_drop(p: *const ()) {
    // SAFETY: the waker's own reference, released once.
    drop(unsafe { Arc::from_raw(p as *const WakeCell) });
}

/// The waker handed to the future during one poll, on the poll's stack. Waking it by reference
/// only sets `woken` (or marks the cell if there is one); cloning it — the only way a waker can
/// outlive the poll — makes the poll's [`WakeCell`] once and hands out wakers of that. So a
/// future that finishes without keeping its waker allocates nothing here.
struct PollWaker {
    wake: unsafe extern "C" fn(*mut c_void),
    user: *mut c_void,
    woken: AtomicBool,
    cell: OnceLock<Arc<WakeCell>>,
}

impl PollWaker {
    fn cell(&self) -> &Arc<WakeCell> {
        self.cell.get_or_init(|| WakeCell::new(self.wake, self.user))
    }

    /// After a `Pending` poll (no waker of this one can run any more: it is borrowed by the poll
    /// only): the cell to arm, with a wake that came through the stack waker carried over.
    fn into_cell(self) -> Arc<WakeCell> {
        let woken = self.woken.load(Ordering::Acquire);
        let cell = match self.cell.into_inner() {
            Some(cell) => cell,
            None => WakeCell::new(self.wake, self.user),
        };
        if woken {
            let _ = cell.state.compare_exchange(POLLING, WOKEN, Ordering::AcqRel, Ordering::Acquire);
        }
        cell
    }
}

static POLL_WAKER: RawWakerVTable = RawWakerVTable::new(poll_clone, poll_wake_by_ref, poll_wake_by_ref, poll_drop);

unsafe fn poll_clone(p: *const ()) -> RawWaker {
    // SAFETY: `p` is the `PollWaker` on the stack of the running poll, which borrows the waker.
    let w = unsafe { &*(p as *const PollWaker) };
    cell_raw_waker(Arc::clone(w.cell()))
}

unsafe fn poll_wake_by_ref(p: *const ()) {
    // SAFETY: as in `poll_clone`. (`wake` by value lands here too: the stack waker owns nothing.)
    let w = unsafe { &*(p as *const PollWaker) };
    match w.cell.get() {
        Some(cell) => cell.wake_by_ref(),
        None => w.woken.store(true, Ordering::Release),
    }
}

unsafe fn poll_drop(_: *const ()) {}

// ---------------------------------------------------------------------------------------------
// One exported future
// ---------------------------------------------------------------------------------------------

enum Stage {
    Running(BoxFut),
    /// Exported already finished ([`export_ready`]): the first poll delivers it.
    Ready(Result<Message, CallError>),
    Done,
    Cancelled,
}

struct Exported {
    stage: Mutex<Stage>,
    cancelled: AtomicBool,
    /// The cell of the latest `PENDING` (its wake may still be owed).
    owed: Mutex<Option<Arc<WakeCell>>>,
    progress: Option<Arc<SyncProgress>>,
}

impl Exported {
    /// Cancel: drop the future unless a poll holds it (that poll then sees the flag), and fire
    /// the owed wake. Idempotent; never blocks; never runs anything under a lock.
    fn cancel_now(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        let old = match self.stage.try_lock() {
            Ok(mut g) => take_unfinished(&mut g),
            Err(TryLockError::Poisoned(e)) => take_unfinished(&mut e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        drop_contained(old);
        let owed = lock(&self.owed).clone();
        if let Some(cell) = owed {
            cell.fire_if_armed();
        }
    }
}

/// Marks an unfinished stage cancelled; returns what it held (a future or an undelivered
/// outcome), to be dropped outside the lock.
fn take_unfinished(stage: &mut Stage) -> Option<Stage> {
    match stage {
        Stage::Running(_) | Stage::Ready(_) => Some(std::mem::replace(stage, Stage::Cancelled)),
        Stage::Done | Stage::Cancelled => None,
    }
}

fn drop_contained<T>(v: T) {
    let _ = contain(move || drop(v));
}

/// Exports `fut` as a `poc_future` (the caller owns it and releases it exactly once).
/// `Err(INVALID)` only if the handle table is full.
///
/// The future is polled on whichever thread calls `poll`; it must therefore not need a tokio
/// context (spawn such work on a [`Runtime`](crate::Runtime) and export a future that awaits
/// the task, as `sync_all` does).
pub fn export_future<F>(fut: F) -> Result<ffi::poc_future, Status>
where
    F: Future<Output = Result<Message, CallError>> + Send + 'static,
{
    export_boxed(Box::pin(fut), None)
}

/// Exports an outcome that is already known as a finished `poc_future`: its first poll hands it
/// to `deliver` and answers `OK` / `ERROR` / `PANIC` (or `CANCELLED` / `SHUTDOWN` / `INVALID`
/// for those errors) — no wake, no waker, nothing polled. Cancel before that poll discards it.
/// `Err(INVALID)` only if the handle table is full.
pub fn export_ready(outcome: Result<Message, CallError>) -> Result<ffi::poc_future, Status> {
    export_stage(Stage::Ready(outcome), None)
}

pub(crate) fn export_future_with_progress<F>(fut: F, progress: Arc<SyncProgress>) -> Result<ffi::poc_future, Status>
where
    F: Future<Output = Result<Message, CallError>> + Send + 'static,
{
    export_boxed(Box::pin(fut), Some(progress))
}

fn export_boxed(fut: BoxFut, progress: Option<Arc<SyncProgress>>) -> Result<ffi::poc_future, Status> {
    export_stage(Stage::Running(fut), progress)
}

fn export_stage(stage: Stage, progress: Option<Arc<SyncProgress>>) -> Result<ffi::poc_future, Status> {
    let e = Arc::new(Exported {
        stage: Mutex::new(stage),
        cancelled: AtomicBool::new(false),
        owed: Mutex::new(None),
        progress,
    });
    // Counted before it can be released (release uncounts it).
    LIVE.fetch_add(1, Ordering::SeqCst);
    match FUTURES.insert(e) {
        Some(handle) => Ok(ffi::poc_future { handle, vtable: &FUTURE_VTABLE }),
        None => {
            LIVE.fetch_sub(1, Ordering::SeqCst);
            Err(Status::INVALID)
        }
    }
}

/// The progress tracker of a live (unreleased) `sync_all` future.
pub(crate) fn sync_progress(handle: u64) -> Option<Arc<SyncProgress>> {
    FUTURES.get(handle)?.progress.clone()
}

/// The text of a panic payload (`&str` or `String`; a fixed text for anything else).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Hands the outcome to `deliver` (on this thread, no lock held) and returns poll's status.
fn finish(res: Result<Message, CallError>, deliver: unsafe extern "C" fn(*mut c_void, ffi::poc_status, *const ffi::poc_message_view), user: *mut c_void) -> Status {
    let (status, id, data): (Status, u64, Vec<u8>) = match res {
        Ok(m) => (Status::OK, m.id, m.payload),
        Err(CallError::Error { code, message }) => (Status::ERROR, code, message.into_bytes()),
        Err(CallError::Panic(m)) => (Status::PANIC, 0, m.into_bytes()),
        Err(other) => return other.status(),
    };
    let view = ffi::poc_message_view { id, data: data.as_ptr(), len: data.len() };
    // SAFETY: the caller of poll gave `deliver(user, …)` for a synchronous call; the view is
    // valid for the call.
    contain(|| unsafe { deliver(user, status.0, &view) });
    status
}

// ---------------------------------------------------------------------------------------------
// The vtable
// ---------------------------------------------------------------------------------------------

/// `poc_future_vtable::poll` (see the module docs for the steps).
///
/// # Safety
///
/// `wake(user)` callable once from any thread, `deliver(user, …)` synchronously.
unsafe extern "C" fn future_poll(
    handle: u64,
    wake: ffi::poc_wake_fn,
    deliver: ffi::poc_recv_complete_fn,
    user: *mut c_void,
) -> ffi::poc_status {
    ffi_guard(|| {
        let Some(f) = FUTURES.get(handle) else { return Status::INVALID };
        let (Some(wake), Some(deliver)) = (wake, deliver) else { return Status::INVALID };
        let previous = lock(&f.owed).take();
        if let Some(cell) = previous {
            cell.fire_if_armed();
        }
        if f.cancelled.load(Ordering::SeqCst) {
            f.cancel_now();
        }
        let mut stage = match f.stage.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return Status::INVALID, // concurrent poll: misuse
        };
        if let Stage::Ready(_) = &*stage {
            // Exported finished: deliver without polling anything (no waker, no wake).
            let Stage::Ready(res) = std::mem::replace(&mut *stage, Stage::Done) else { unreachable!() };
            drop(stage);
            return finish(res, deliver, user);
        }
        let fut = match &mut *stage {
            Stage::Running(fut) => fut,
            Stage::Ready(_) | Stage::Done => return Status::INVALID,
            Stage::Cancelled => return Status::CANCELLED,
        };
        let pw = PollWaker { wake, user, woken: AtomicBool::new(false), cell: OnceLock::new() };
        // SAFETY: the vtable's functions treat the data pointer as `&PollWaker`, which outlives
        // the waker (dropped below, before `pw` is moved); clones are `Arc<WakeCell>` wakers.
        let waker = unsafe { Waker::from_raw(RawWaker::new(&pw as *const PollWaker as *const (), &POLL_WAKER)) };
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fut.as_mut().poll(&mut Context::from_waker(&waker))
        }));
        drop(waker);
        let res = match polled {
            Ok(Poll::Pending) => {
                let cell = pw.into_cell();
                *lock(&f.owed) = Some(Arc::clone(&cell));
                drop(stage);
                cell.arm();
                if f.cancelled.load(Ordering::SeqCst) {
                    f.cancel_now(); // a cancel raced with this poll: drop the future, fire the wake
                }
                return Status::PENDING;
            }
            Ok(Poll::Ready(res)) => res,
            Err(payload) => {
                let m = panic_message(&*payload);
                drop_contained(payload);
                Err(CallError::Panic(m))
            }
        };
        if let Some(cell) = pw.cell.get() {
            cell.disarm(); // wakers the future kept are ignored from now on
        }
        let old = std::mem::replace(&mut *stage, Stage::Done);
        drop(stage);
        drop_contained(old);
        finish(res, deliver, user)
    })
}

/// `poc_future_vtable::cancel`: `OK` (also after it finished) or `INVALID` (stale handle).
unsafe extern "C" fn future_cancel(handle: u64) -> ffi::poc_status {
    ffi_guard(|| match FUTURES.get(handle) {
        Some(f) => {
            f.cancel_now();
            Status::OK
        }
        None => Status::INVALID,
    })
}

/// `poc_future_vtable::release`: unregisters (the handle becomes stale) and cancels; the owed
/// wake, if any, runs now. `OK`, or `INVALID` if stale.
unsafe extern "C" fn future_release(handle: u64) -> ffi::poc_status {
    ffi_guard(|| match FUTURES.remove(handle) {
        Some(f) => {
            LIVE.fetch_sub(1, Ordering::SeqCst);
            f.cancel_now();
            drop_contained(f);
            Status::OK
        }
        None => Status::INVALID,
    })
}
