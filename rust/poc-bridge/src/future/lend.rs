//! Lent functions: async calls in the other direction (bridge.h `poc_async_fn`, docs/contract.md
//! "Lent functions").
//!
//! A runtime that wants another one to *call it* lends a `poc_async_fn {call, release, context}`:
//! a callback interface with one async method. The borrower calls `call(context, &arg, &f)` as
//! often as it likes, awaits each future `f`, and calls `release(context)` exactly once when it
//! makes no more calls (futures already started stay valid).
//!
//! * **import** ([`AsyncFn`]): any `poc_async_fn` — Rust's, C++'s, C#'s — owned by a Rust value;
//!   [`AsyncFn::call`] starts a call and gives its [`ForeignFuture`]; `Drop` releases it once.
//! * **export** ([`lend`], [`lend_with`]): a Rust async closure as a `poc_async_fn`. The context
//!   is a `Box` holding the closure; `call` exports each call's future with
//!   [`export_future`] (so it runs on whoever polls it), `release` frees the
//!   box. Every `extern "C"` entry catches panics (`POC_PANIC`).
//! * **examples**: [`sum_calls`] (awaits a lent function `count` times, `poc_rust_sum_calls`) and
//!   the "square" lent function of bridge.h ([`square_fn`], `poc_rust_square_fn`) in its three
//!   [`SquareMode`]s.
//! * **diagnostics**: [`live_lent_fns`] (lent contexts not yet released) and
//!   [`square_tasks_alive`] (runtime tasks of square calls not yet ended), next to
//!   [`live_futures`](super::live_futures), so tests can assert that nothing leaked.

use std::ffi::c_void;
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::export::{export_future, export_ready, panic_message};
use super::{CallError, ForeignFuture};
use crate::error::ImportError;
use crate::export::ffi_guard;
use crate::runtime::RtCore;
use crate::{ffi, Message, Runtime, Status};

// ---------------------------------------------------------------------------------------------
// Import: AsyncFn
// ---------------------------------------------------------------------------------------------

type CallFn = unsafe extern "C" fn(*mut c_void, *const ffi::poc_message_view, *mut ffi::poc_future) -> ffi::poc_status;
type ReleaseFn = unsafe extern "C" fn(*mut c_void);

/// A lent function (`poc_async_fn`) owned by Rust: each [`call`](Self::call) starts one async
/// call and gives its future; dropping it calls the lender's `release` exactly once (futures
/// already started stay valid and are released on their own).
///
/// `Send + Sync`: bridge.h lets `call` run on any thread, concurrently, so one `AsyncFn` may be
/// shared by many tasks.
///
/// ```
/// use poc_bridge::future::lend::{sum_calls, AsyncFn};
/// use poc_bridge::Message;
///
/// let double = AsyncFn::new(|m: Message| async move { Ok(Message::new(2 * m.id, Vec::new())) });
/// let v = futures::executor::block_on(double.call(&Message::new(21, Vec::new())).unwrap()).unwrap();
/// assert_eq!(v.id, 42);
/// let sum = futures::executor::block_on(sum_calls(double, 1, 3)).unwrap(); // 2 + 4 + 6
/// assert_eq!((sum.id, &sum.payload[..]), (12, &b"summed 3 calls"[..]));
/// ```
pub struct AsyncFn {
    raw: ffi::poc_async_fn,
    call: CallFn,
    release: ReleaseFn,
}

impl fmt::Debug for AsyncFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncFn").field("context", &self.raw.context).finish()
    }
}

impl AsyncFn {
    /// Takes ownership of a lent function (it is released when this is dropped). On an error
    /// nothing was taken: the caller still owns `f` (and must release it if it can).
    ///
    /// # Safety
    ///
    /// `f` is a live lent function the caller owns, whose `call` and `release` follow bridge.h
    /// for its `context`.
    pub unsafe fn from_raw(f: ffi::poc_async_fn) -> Result<AsyncFn, ImportError> {
        let Some(call) = f.call else { return Err(ImportError { reason: "poc_async_fn has a NULL call" }) };
        let Some(release) = f.release else { return Err(ImportError { reason: "poc_async_fn has a NULL release" }) };
        Ok(AsyncFn { raw: f, call, release })
    }

    /// Lends the Rust async closure `f` ([`lend`]) and owns the result: the all-Rust path
    /// through the C ABI (every call goes through `call`, every future through its vtable).
    pub fn new<F, Fut>(f: F) -> AsyncFn
    where
        F: Fn(Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Message, CallError>> + Send + 'static,
    {
        // SAFETY: a fresh lent function with this crate's own entry points.
        unsafe { AsyncFn::from_raw(lend(f)) }.expect("lend gives non-NULL functions")
    }

    /// Starts one call with `arg` (borrowed for the call only) and imports its future.
    ///
    /// A call that did not start maps `call`'s status: `SHUTDOWN` → [`CallError::Shutdown`],
    /// `PANIC` → [`CallError::Panic`], `CANCELLED` → [`CallError::Cancelled`], anything else
    /// (`INVALID`, a status bridge.h does not allow here) → [`CallError::Invalid`]. A lender
    /// that answers `OK` with an unusable future vtable also gives `Invalid`; that future cannot
    /// be released and is leaked.
    pub fn call(&self, arg: &Message) -> Result<ForeignFuture, CallError> {
        let view = arg.view();
        let mut out = ffi::poc_future { handle: 0, vtable: std::ptr::null() };
        // SAFETY: a live lent function we own; `view` and `out` are valid for the call.
        let status = Status(unsafe { (self.call)(self.raw.context, &view, &mut out) });
        match status {
            Status::OK => {
                // SAFETY: on OK the lender handed us this future; it is ours now.
                unsafe { ForeignFuture::from_raw(out) }.map_err(|_| CallError::Invalid(Status::INVALID))
            }
            Status::SHUTDOWN => Err(CallError::Shutdown),
            Status::PANIC => Err(CallError::Panic("the lent function failed to start the call".into())),
            Status::CANCELLED => Err(CallError::Cancelled),
            s => Err(CallError::Invalid(s)),
        }
    }

    /// Gives the lent function back as a raw value without releasing it (to hand it on, e.g. to
    /// a function that takes a `poc_async_fn` over). The caller owns it from now on.
    pub fn into_raw(self) -> ffi::poc_async_fn {
        ManuallyDrop::new(self).raw
    }
}

impl Drop for AsyncFn {
    fn drop(&mut self) {
        // SAFETY: a live lent function we own; released exactly once, here.
        unsafe { (self.release)(self.raw.context) };
    }
}

// ---------------------------------------------------------------------------------------------
// Export: lend
// ---------------------------------------------------------------------------------------------

/// Lent contexts made by [`lend`] & co. and not yet released.
static LIVE_LENT: AtomicUsize = AtomicUsize::new(0);

/// How many functions this crate lent (as `poc_async_fn`) that have not been released yet: a
/// diagnostic for tests and leak checks ("every lent function was given back"). Process-wide.
pub fn live_lent_fns() -> usize {
    LIVE_LENT.load(Ordering::SeqCst)
}

/// Counts one lent context while it lives.
struct LiveLent;

impl LiveLent {
    fn new() -> LiveLent {
        LIVE_LENT.fetch_add(1, Ordering::SeqCst);
        LiveLent
    }
}

impl Drop for LiveLent {
    fn drop(&mut self) {
        LIVE_LENT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The context behind a `poc_async_fn` this crate lends: `start` turns one call's argument into
/// an exported future, or into the status `call` answers when no call starts.
struct Lent<S> {
    start: S,
    _live: LiveLent,
}

fn lend_raw<S>(start: S) -> ffi::poc_async_fn
where
    S: Fn(Message) -> Result<ffi::poc_future, Status> + Send + Sync + 'static,
{
    let context = Box::into_raw(Box::new(Lent { start, _live: LiveLent::new() }));
    ffi::poc_async_fn { call: Some(lent_call::<S>), release: Some(lent_release::<S>), context: context as *mut c_void }
}

/// `poc_async_fn::call` of a Rust lent function: copies the argument, starts the call, writes
/// its future. `INVALID` for NULL context/arg/out or a view with NULL data and a length;
/// `PANIC` if `start` panicked.
///
/// # Safety
///
/// `context` from [`lend_raw`] with the same `S`, not released; `arg` NULL or a valid view;
/// `out` NULL or writable.
unsafe extern "C" fn lent_call<S>(
    context: *mut c_void,
    arg: *const ffi::poc_message_view,
    out: *mut ffi::poc_future,
) -> ffi::poc_status
where
    S: Fn(Message) -> Result<ffi::poc_future, Status> + Send + Sync + 'static,
{
    ffi_guard(|| {
        // SAFETY: NULL or valid (the caller's promise).
        let (Some(arg), Some(out)) = (unsafe { arg.as_ref() }, unsafe { out.as_mut() }) else {
            return Status::INVALID;
        };
        if arg.data.is_null() && arg.len != 0 {
            return Status::INVALID;
        }
        // SAFETY: NULL or our live context (the caller's promise).
        let Some(lent) = (unsafe { (context as *const Lent<S>).as_ref() }) else { return Status::INVALID };
        // SAFETY: a view valid for this call; copied before anything else runs.
        let arg = unsafe { Message::from_view(arg) };
        match (lent.start)(arg) {
            Ok(f) => {
                *out = f;
                Status::OK
            }
            Err(s) => s,
        }
    })
}

/// `poc_async_fn::release` of a Rust lent function: frees the context (a panic in the closure's
/// drop is contained). NULL is ignored.
///
/// # Safety
///
/// `context` from [`lend_raw`] with the same `S`, released exactly once.
unsafe extern "C" fn lent_release<S>(context: *mut c_void)
where
    S: Fn(Message) -> Result<ffi::poc_future, Status> + Send + Sync + 'static,
{
    if context.is_null() {
        return;
    }
    ffi_guard(|| {
        // SAFETY: our context (Box::into_raw in lend_raw), released once (the caller's promise).
        drop(unsafe { Box::from_raw(context as *mut Lent<S>) });
        Status::OK
    });
}

/// Lends the async closure `f` as a `poc_async_fn`: each `call(context, &arg, &out)` copies the
/// argument, runs `f(arg)` and exports the future it returns (`out`; the future runs on whoever
/// polls it, like every future of [`export_future`]). `release` drops
/// `f`. Panics in `f` or in the future are contained (`POC_PANIC`).
///
/// The caller owns the result: hand it to a borrower (which releases it exactly once), or wrap
/// it in an [`AsyncFn`] ([`AsyncFn::new`] does both).
pub fn lend<F, Fut>(f: F) -> ffi::poc_async_fn
where
    F: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Message, CallError>> + Send + 'static,
{
    lend_raw(move |arg| export_future(f(arg)))
}

/// As [`lend`], for a closure that may refuse to start a call: `Err(e)` makes `call` answer
/// without a future — `POC_SHUTDOWN` for [`CallError::Shutdown`], `POC_PANIC` for
/// [`CallError::Panic`], `POC_INVALID` for anything else (bridge.h allows only those three).
pub fn lend_with<F, Fut>(f: F) -> ffi::poc_async_fn
where
    F: Fn(Message) -> Result<Fut, CallError> + Send + Sync + 'static,
    Fut: Future<Output = Result<Message, CallError>> + Send + 'static,
{
    lend_raw(move |arg| match f(arg) {
        Ok(fut) => export_future(fut),
        Err(e) => Err(start_status(&e)),
    })
}

/// The status `call` answers for a call that did not start.
fn start_status(e: &CallError) -> Status {
    match e {
        CallError::Shutdown => Status::SHUTDOWN,
        CallError::Panic(_) => Status::PANIC,
        _ => Status::INVALID,
    }
}

// ---------------------------------------------------------------------------------------------
// sum_calls
// ---------------------------------------------------------------------------------------------

/// `sum_calls(f, first, count)` (bridge.h `poc_rust_sum_calls`): awaits `f({id = first + i})`
/// for `i` in `0..count`, one call after the other, and adds up the values' ids (wrapping; the
/// arguments wrap too). Value: id = the sum, data = `summed <count> calls`.
///
/// The first call that gives no value ends it, naming its argument `x`:
/// * `ERROR` and `PANIC` pass through with the callee's code, the message prefixed `call <x>: `;
///   `SHUTDOWN` passes through ([`CallError::Shutdown`] carries no message);
/// * a call that could not start → `Error 502 "call <x>: could not start (<STATUS>)"`;
/// * a call that answered `CANCELLED` or `INVALID` (or a status bridge.h does not allow) →
///   `Error 502 "call <x>: answered <STATUS>"`.
///
/// It needs no runtime: each call's future is awaited as a [`ForeignFuture`] on whoever polls
/// this one. Dropping it drops the call in flight (cancelled, then released). `f` is released
/// when this future finished or was dropped.
pub async fn sum_calls(f: AsyncFn, first: u64, count: u32) -> Result<Message, CallError> {
    let mut sum = 0u64;
    for i in 0..count {
        let x = first.wrapping_add(u64::from(i));
        let call = f.call(&Message::new(x, Vec::new())).map_err(|e| {
            let status = match e {
                CallError::Invalid(s) => s,
                e => e.status(),
            };
            CallError::error(502, format!("call {x}: could not start ({status:?})"))
        })?;
        match call.await {
            Ok(v) => sum = sum.wrapping_add(v.id),
            Err(CallError::Error { code, message }) => return Err(CallError::error(code, format!("call {x}: {message}"))),
            Err(CallError::Panic(m)) => return Err(CallError::Panic(format!("call {x}: {m}"))),
            Err(CallError::Shutdown) => return Err(CallError::Shutdown),
            Err(CallError::Cancelled) => return Err(CallError::error(502, format!("call {x}: answered CANCELLED"))),
            Err(CallError::Invalid(s)) => return Err(CallError::error(502, format!("call {x}: answered {s:?}"))),
        }
    }
    Ok(Message::new(sum, format!("summed {count} calls").into_bytes()))
}

// ---------------------------------------------------------------------------------------------
// square
// ---------------------------------------------------------------------------------------------

/// How a call of the "square" lent function finishes (bridge.h `POC_SQUARE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SquareMode {
    /// `POC_SQUARE_READY`: computed inside `call` and exported already finished: the first
    /// poll answers (OK, ERROR or PANIC) with no wake, no waker and no thread hop.
    Ready,
    /// `POC_SQUARE_POSTED`: a task spawned on the runtime computes it; the future awaits the
    /// task, so the first poll usually answers PENDING and the wake comes from a runtime thread.
    Posted,
    /// `POC_SQUARE_TIMER`: a task on the runtime sleeps `delay_ms` (tokio's timer), then computes.
    Timer,
}

impl SquareMode {
    /// The mode of a `POC_SQUARE_*` value; `None` for anything else.
    pub fn from_raw(mode: u32) -> Option<SquareMode> {
        match mode {
            ffi::POC_SQUARE_READY => Some(SquareMode::Ready),
            ffi::POC_SQUARE_POSTED => Some(SquareMode::Posted),
            ffi::POC_SQUARE_TIMER => Some(SquareMode::Timer),
            _ => None,
        }
    }

    /// The `POC_SQUARE_*` value.
    pub fn raw(self) -> u32 {
        match self {
            SquareMode::Ready => ffi::POC_SQUARE_READY,
            SquareMode::Posted => ffi::POC_SQUARE_POSTED,
            SquareMode::Timer => ffi::POC_SQUARE_TIMER,
        }
    }
}

/// The message of the deliberate panic of `square(2^64 - 1)`.
pub const SQUARE_PANIC_MESSAGE: &str = "square: 18446744073709551615 is the failure case (a deliberate panic)";

/// `square(x)` as bridge.h defines it: `x <= 2^32 - 1` → value `{id = x * x, data empty}`;
/// `x == 2^64 - 1` → **panics** with [`SQUARE_PANIC_MESSAGE`] (to demonstrate containment);
/// otherwise `Error 400 "overflow"`.
///
/// The deliberate panic unwinds with [`std::panic::resume_unwind`]: the same unwinding that
/// `panic!` does (the bridge's `catch_unwind` turns it into `POC_PANIC`), without running the panic
/// hook, so scenarios and tests that trigger it on purpose print no backtrace.
pub fn square(x: u64) -> Result<Message, CallError> {
    if x == u64::MAX {
        std::panic::resume_unwind(Box::new(SQUARE_PANIC_MESSAGE));
    }
    if x <= u64::from(u32::MAX) {
        Ok(Message::new(x * x, Vec::new()))
    } else {
        Err(CallError::error(400, "overflow"))
    }
}

/// Square tasks (POSTED/TIMER calls) whose body has not been dropped yet.
static SQUARE_TASKS: AtomicUsize = AtomicUsize::new(0);

/// How many runtime tasks of square calls (modes POSTED and TIMER) are alive — spawned and not
/// yet ended (finished, aborted by cancel/release of their future, or dropped by the runtime's
/// shutdown): a diagnostic for tests ("cancelling the call stopped its work"). Process-wide.
pub fn square_tasks_alive() -> usize {
    SQUARE_TASKS.load(Ordering::SeqCst)
}

/// Counts one square task from before it is spawned until its body is dropped (also unrun).
struct TaskAlive;

impl TaskAlive {
    fn new() -> TaskAlive {
        SQUARE_TASKS.fetch_add(1, Ordering::SeqCst);
        TaskAlive
    }
}

impl Drop for TaskAlive {
    fn drop(&mut self) {
        SQUARE_TASKS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Aborts the task when the future awaiting it is dropped (cancelled or released).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One square call on the runtime: a task computes it (after `delay` if any); the returned
/// future awaits the task and aborts it when dropped.
fn square_task(
    core: &RtCore,
    x: u64,
    delay: Option<Duration>,
) -> impl Future<Output = Result<Message, CallError>> + Send + 'static {
    let alive = TaskAlive::new();
    let task = core.spawn_task(async move {
        let _alive = alive;
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        square(x)
    });
    let mut task = AbortOnDrop(task);
    async move {
        match (&mut task.0).await {
            Ok(res) => res,
            Err(e) if e.is_panic() => Err(CallError::Panic(panic_message(&*e.into_panic()))),
            // Only the runtime's shutdown ends the task unobserved (our abort drops this future).
            Err(_) => Err(CallError::Shutdown),
        }
    }
}

/// The "square" lent function of bridge.h (`poc_rust_square_fn`): each call squares its
/// argument's id ([`square`]) and finishes as `mode` says. The caller owns the result (release
/// it exactly once, e.g. by wrapping it in an [`AsyncFn`]).
///
/// `POSTED` and `TIMER` run a task on `rt` and need it (`Err(Invalid)` for `None`); `READY`
/// needs none. When `rt` is given the function keeps a reference to its shared state, not to
/// the [`Runtime`] object, so it may outlive it: calls made after `rt` began shutting down (or
/// was dropped) fail to start with `POC_SHUTDOWN`, and calls in flight answer `POC_SHUTDOWN`
/// when the runtime drops their task. `Err(Shutdown)` if `rt` is already stopping.
///
/// In `READY` mode the square (and the panic of `2^64 - 1`, caught there) is computed inside
/// `call` and exported already finished ([`export_ready`]).
pub fn square_fn(rt: Option<&Runtime>, mode: SquareMode, delay_ms: u32) -> Result<ffi::poc_async_fn, CallError> {
    let core: Option<Arc<RtCore>> = rt.map(|rt| Arc::clone(rt.core()));
    if core.is_none() && mode != SquareMode::Ready {
        return Err(CallError::Invalid(Status::INVALID));
    }
    if core.as_ref().is_some_and(|c| c.is_stopping()) {
        return Err(CallError::Shutdown);
    }
    let delay = Duration::from_millis(u64::from(delay_ms));
    Ok(lend_raw(move |arg: Message| {
        let x = arg.id;
        if core.as_ref().is_some_and(|c| c.is_stopping()) {
            return Err(Status::SHUTDOWN);
        }
        match (mode, &core) {
            (SquareMode::Ready, _) => {
                let res = std::panic::catch_unwind(|| square(x))
                    .unwrap_or_else(|payload| Err(CallError::Panic(panic_message(&*payload))));
                export_ready(res)
            }
            (SquareMode::Posted, Some(core)) => export_future(square_task(core, x, None)),
            (SquareMode::Timer, Some(core)) => export_future(square_task(core, x, Some(delay))),
            (_, None) => Err(Status::INVALID), // checked when the function was made
        }
    }))
}
