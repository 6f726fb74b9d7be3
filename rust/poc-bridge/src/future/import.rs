//! [`ForeignFuture`]: any bridge.h `poc_future` as a Rust future.
//!
//! Each call of the vtable's `poll` hands one reference of an `Arc<Shared>` over as `user`
//! (`Arc::into_raw`): `deliver` only borrows it (it runs synchronously, on this thread, and
//! stores the value); when `poll` answers `PENDING` the exporter owns that reference until it
//! calls `wake(user)` — exactly once — which reclaims it (`Arc::from_raw`) and wakes the task's
//! `Waker`; for any other answer `wake` is not called and the reference is reclaimed here. The
//! task's waker is registered in an `AtomicWaker` *before* calling `poll`, so a wake that fires
//! during `poll` (or on another thread before `poll` returns) wakes the current task.
//! Dropping an unfinished `ForeignFuture` calls `cancel` then `release`; a finished one is only
//! released. Owed wakes keep their reference alive until they run, whatever the order.
//! No tokio: it runs on `futures::executor::block_on` or in a tokio task alike.
//!
//! Allocation: the `Shared` block is the only one an imported future needs. A dropped future whose
//! block nobody else holds (no wake owed) leaves it in a one-entry per-thread spare, which the
//! next `from_raw` on that thread takes — so a loop of awaited calls allocates nothing per call
//! in steady state (measured by rust/poc-bench's `call_allocations`). The wake gives its
//! reference up *before* it wakes the task, for the same reason as the port slots
//! (`import/slot.rs`, `wake_after_drop`).

use std::cell::RefCell;
use std::ffi::c_void;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;

use super::CallError;
use crate::error::ImportError;
use crate::import::slot::{contain, wake_after_drop};
use crate::{ffi, Message, Status};

struct Shared {
    waker: AtomicWaker,
    /// What `deliver` handed over during the current poll.
    value: Mutex<Option<(Status, Message)>>,
}

thread_local! {
    /// A `Shared` block nobody else holds, cleared, for the next future made on this thread.
    static SPARE: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
}

impl Shared {
    fn take_or_new() -> Arc<Shared> {
        SPARE
            .try_with(|s| s.borrow_mut().take())
            .ok()
            .flatten()
            .unwrap_or_else(|| Arc::new(Shared { waker: AtomicWaker::new(), value: Mutex::new(None) }))
    }

    /// Keeps `shared` as this thread's spare if nothing else holds it (no wake owed).
    fn recycle(mut shared: Arc<Shared>) {
        let Some(s) = Arc::get_mut(&mut shared) else { return };
        drop(s.waker.take());
        *s.value.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
        // During thread teardown the spare may be gone: then the block is simply freed.
        let _ = SPARE.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.is_none() {
                *spare = Some(shared);
            }
        });
    }
}

/// A Rust future over any `poc_future`; resolves to the value or a [`CallError`].
///
/// ```
/// use poc_bridge::future::{examples, CallError, ForeignFuture};
///
/// let user = futures::executor::block_on(examples::fetch_user_ffi(1)).unwrap();
/// assert_eq!((user.id, &user.payload[..]), (1, &b"alice"[..]));
/// let err = futures::executor::block_on(examples::fetch_user_ffi(7)).unwrap_err();
/// assert_eq!(err, CallError::error(404, "user 7 not found"));
/// # let _: Option<ForeignFuture> = None;
/// ```
pub struct ForeignFuture {
    fut: ffi::poc_future,
    vt: &'static ffi::poc_future_vtable,
    /// Handed to [`Shared::recycle`] by `Drop` (hence `ManuallyDrop`).
    shared: ManuallyDrop<Arc<Shared>>,
    finished: bool,
}

impl std::fmt::Debug for ForeignFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForeignFuture").field("handle", &self.fut.handle).field("finished", &self.finished).finish()
    }
}

fn check_vtable(fut: &ffi::poc_future) -> Result<&'static ffi::poc_future_vtable, ImportError> {
    if fut.vtable.is_null() {
        return Err(ImportError { reason: "NULL vtable" });
    }
    // SAFETY: non-NULL; the caller of `from_raw` promises a vtable that lives forever.
    let vt: &'static ffi::poc_future_vtable = unsafe { &*fut.vtable };
    if vt.abi_version != ffi::POC_ABI_VERSION {
        return Err(ImportError { reason: "vtable has another ABI version" });
    }
    if (vt.size as usize) < std::mem::size_of::<ffi::poc_future_vtable>() {
        return Err(ImportError { reason: "vtable is smaller than poc_future_vtable" });
    }
    if vt.poll.is_none() || vt.cancel.is_none() || vt.release.is_none() {
        return Err(ImportError { reason: "vtable has a NULL function" });
    }
    Ok(vt)
}

impl ForeignFuture {
    /// Imports a future, taking ownership of it (it is released when this is dropped). On an
    /// error nothing was taken: the caller still owns (and must release) `fut`.
    ///
    /// # Safety
    ///
    /// `fut` is a live future the caller owns, whose vtable lives forever and follows bridge.h.
    pub unsafe fn from_raw(fut: ffi::poc_future) -> Result<Self, ImportError> {
        let vt = check_vtable(&fut)?;
        Ok(ForeignFuture {
            fut,
            vt,
            shared: ManuallyDrop::new(Shared::take_or_new()),
            finished: false,
        })
    }

    /// Requests cancellation (a request: the future keeps running until polled; it then
    /// resolves to `Err(Cancelled)`, or to its real outcome if it finished first).
    pub fn cancel(&self) {
        if !self.finished {
            // SAFETY: a live future we own.
            unsafe { self.vt.cancel.expect("checked")(self.fut.handle) };
        }
    }

    /// The raw handle (for diagnostics and exporter-specific calls such as
    /// `poc_rust_sync_progress`).
    pub fn handle(&self) -> u64 {
        self.fut.handle
    }
}

unsafe extern "C" fn import_wake(user: *mut c_void) {
    // SAFETY: `user` is the reference handed over with a poll that answered PENDING; the
    // exporter calls wake exactly once for it.
    let shared = unsafe { Arc::from_raw(user as *const Shared) };
    // Give the reference up first, then wake: the woken task may finish (and recycle the block)
    // on another thread at once, which it can only do once this reference is gone.
    let waker = contain(|| shared.waker.take()).flatten();
    wake_after_drop(shared, waker);
}

unsafe extern "C" fn import_deliver(user: *mut c_void, status: ffi::poc_status, msg: *const ffi::poc_message_view) {
    contain(|| {
        // SAFETY: `user` is borrowed for this synchronous call (the poll's reference is alive).
        let shared = unsafe { &*(user as *const Shared) };
        // SAFETY: `msg` NULL or a valid view for the call.
        let m = unsafe { msg.as_ref() }.map(|v| {
            let bytes = if v.len == 0 { Vec::new() } else { unsafe { std::slice::from_raw_parts(v.data, v.len) }.to_vec() };
            Message::new(v.id, bytes)
        });
        *shared.value.lock().unwrap_or_else(|e| e.into_inner()) = Some((Status(status), m.unwrap_or_default()));
    });
}

impl Future for ForeignFuture {
    type Output = Result<Message, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(Err(CallError::Invalid(Status::INVALID)));
        }
        this.shared.waker.register(cx.waker());
        let user = Arc::into_raw(Arc::clone(&this.shared)) as *mut c_void;
        // SAFETY: a live future we own; the functions follow bridge.h.
        let status = Status(unsafe {
            this.vt.poll.expect("checked")(this.fut.handle, Some(import_wake), Some(import_deliver), user)
        });
        if status == Status::PENDING {
            return Poll::Pending; // the exporter owns `user` until its wake
        }
        // SAFETY: not PENDING: wake will not run, the reference is ours again.
        drop(unsafe { Arc::from_raw(user as *const Shared) });
        this.finished = true;
        let value = this.shared.value.lock().unwrap_or_else(|e| e.into_inner()).take();
        let text = |m: &Message| String::from_utf8_lossy(&m.payload).into_owned();
        Poll::Ready(match (status, value) {
            (Status::OK, Some((Status::OK, m))) => Ok(m),
            (Status::ERROR, Some((Status::ERROR, m))) => Err(CallError::Error { code: m.id, message: text(&m) }),
            (Status::PANIC, Some((Status::PANIC, m))) => Err(CallError::Panic(text(&m))),
            (Status::PANIC, None) => Err(CallError::Panic("the exporter's code failed".into())),
            (Status::CANCELLED, _) => Err(CallError::Cancelled),
            (Status::SHUTDOWN, _) => Err(CallError::Shutdown),
            (s, _) => Err(CallError::Invalid(s)),
        })
    }
}

impl Drop for ForeignFuture {
    fn drop(&mut self) {
        let h = self.fut.handle;
        // SAFETY: a live future we own; released exactly once, here.
        unsafe {
            if !self.finished {
                self.vt.cancel.expect("checked")(h);
            }
            self.vt.release.expect("checked")(h);
        }
        // SAFETY: taken once, here; the field is not used again.
        let shared = unsafe { ManuallyDrop::take(&mut self.shared) };
        Shared::recycle(shared);
    }
}
