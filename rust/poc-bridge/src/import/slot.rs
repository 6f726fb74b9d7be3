//! The shared state of one pending import op and the `extern "C"` callbacks that complete it.
//!
//! A slot lives in an `Arc`. While an op is pending there are two references: the future's (or
//! the [`PortReceiver`](super::PortReceiver)'s) and the exporter's, handed over as the `user`
//! pointer with `Arc::into_raw` and reclaimed with `Arc::from_raw` by the completion callback —
//! exactly once, because the exporter calls the completion exactly once (bridge.h rule 3). The
//! slot therefore stays valid until the callback has run, however early the future is dropped.
//!
//! Publication protocol (one writer, one reader): the writer (the deliver function or the
//! completion) stores the message into `msg`, then the status into `result` with `Release`; the
//! reader sees a status other than [`NOT_DONE`] with `Acquire` and only then touches `msg`.
//! The writer never touches the slot after publishing except to wake and drop its reference.

use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};
use std::sync::Arc;

use futures::task::AtomicWaker;

use crate::ffi;
use crate::{Message, Status};

/// `result` of a slot whose op has not completed (statuses are all >= 0).
pub(crate) const NOT_DONE: i32 = i32::MIN;

/// Runs `f`, containing a panic (bridge.h rule 9): nothing unwinds into the exporter's frames.
/// Returns `None` if `f` panicked. The panic payload is dropped inside the guard as well.
pub(crate) fn contain<R>(f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(payload) => {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            None
        }
    }
}

fn published(status: ffi::poc_status) -> i32 {
    if status == NOT_DONE {
        ffi::POC_INVALID
    } else {
        status
    }
}

// ---------------------------------------------------------------------------------------------
// Send
// ---------------------------------------------------------------------------------------------

/// State of one pending send: the outcome and the waker of the task awaiting it.
pub(crate) struct SendSlot {
    result: AtomicI32,
    pub(crate) waker: AtomicWaker,
}

impl SendSlot {
    pub(crate) fn new() -> Self {
        SendSlot { result: AtomicI32::new(NOT_DONE), waker: AtomicWaker::new() }
    }

    /// The outcome, once the completion has published it.
    pub(crate) fn result(&self) -> Option<Status> {
        match self.result.load(Ordering::Acquire) {
            NOT_DONE => None,
            s => Some(Status(s)),
        }
    }

    fn reset(&mut self) {
        *self.result.get_mut() = NOT_DONE;
        drop(self.waker.take());
    }
}

/// `poc_send_complete_fn` of the import adapter.
///
/// Called by the exporter exactly once per `POC_PENDING` send, on one of its threads, never
/// under an exporter lock (bridge.h rule 3). Reclaims the `Arc` handed over as `user`, publishes
/// the status and wakes the awaiting task (which then runs on its own executor — the exporter's
/// thread never resumes it inline). A panic (e.g. in a foreign `Waker`) is contained; the
/// reference is dropped either way.
///
/// # Safety
///
/// `user` must come from `Arc::into_raw` of a `SendSlot` handed to exactly one `send` that
/// returned `POC_PENDING`, and this must be its one completion.
pub(crate) unsafe extern "C" fn send_complete(user: *mut c_void, status: ffi::poc_status) {
    if user.is_null() {
        return;
    }
    // SAFETY: `user` is the reference handed over by `send` (the caller's promise).
    let slot = unsafe { Arc::from_raw(user as *const SendSlot) };
    let waker = contain(|| {
        slot.result.store(published(status), Ordering::Release);
        slot.waker.take()
    })
    .flatten();
    wake_after_drop(slot, waker);
}

/// The end of a completion: drops the completion's reference to the slot, *then* wakes the task.
/// In the other order the woken task often runs (on another thread) while this reference still
/// exists, finds the slot shared and cannot reuse it, so the next op allocates a new one — one
/// allocation per pending op (measured by rust/poc-bench: ~1 per message on a pending path).
/// `AtomicWaker::take` then `wake` is what `AtomicWaker::wake` does; a registration racing with
/// the take is woken by `register` itself, so no wake is lost. Panics are contained.
pub(crate) fn wake_after_drop<T>(slot: Arc<T>, waker: Option<std::task::Waker>) {
    contain(move || drop(slot));
    if let Some(w) = waker {
        contain(move || w.wake());
    }
    crate::idle::note_foreign_event();
}

/// A one-entry cache of `SendSlot`s, so that a sender whose sends complete on the fast path
/// allocates no slot per message. Lock-free: `take` swaps the pointer out, `put` swaps it in.
pub(crate) struct SlotCache {
    spare: AtomicPtr<SendSlot>,
}

impl SlotCache {
    pub(crate) const fn new() -> Self {
        SlotCache { spare: AtomicPtr::new(ptr::null_mut()) }
    }

    /// A clean slot: the cached one if any, else a new allocation.
    pub(crate) fn take(&self) -> Arc<SendSlot> {
        let p = self.spare.swap(ptr::null_mut(), Ordering::Acquire);
        if p.is_null() {
            Arc::new(SendSlot::new())
        } else {
            // SAFETY: `p` came from `Arc::into_raw` in `put`, and the swap made us its only owner.
            unsafe { Arc::from_raw(p) }
        }
    }

    /// Gives a slot back; it is kept only if nobody else holds it (its op is over).
    pub(crate) fn put(&self, mut slot: Arc<SendSlot>) {
        if let Some(s) = Arc::get_mut(&mut slot) {
            s.reset();
            let p = Arc::into_raw(slot) as *mut SendSlot;
            if self.spare.compare_exchange(ptr::null_mut(), p, Ordering::Release, Ordering::Relaxed).is_err() {
                // SAFETY: `p` is the reference we just leaked; nobody else saw it.
                drop(unsafe { Arc::from_raw(p) });
            }
        }
    }
}

impl Drop for SlotCache {
    fn drop(&mut self) {
        let p = *self.spare.get_mut();
        if !p.is_null() {
            // SAFETY: as in `take`.
            drop(unsafe { Arc::from_raw(p) });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Receive
// ---------------------------------------------------------------------------------------------

/// State of one receive: the outcome, the message it brought, and the awaiting task's waker.
pub(crate) struct RecvSlot {
    result: AtomicI32,
    msg: UnsafeCell<Option<Message>>,
    pub(crate) waker: AtomicWaker,
}

// SAFETY: `msg` is written by exactly one writer before `result` is published (Release) and read
// by exactly one reader after it observed the publication (Acquire); see the module docs.
unsafe impl Sync for RecvSlot {}

impl RecvSlot {
    pub(crate) fn new() -> Self {
        RecvSlot { result: AtomicI32::new(NOT_DONE), msg: UnsafeCell::new(None), waker: AtomicWaker::new() }
    }

    /// `true` once the op's outcome is published.
    pub(crate) fn is_done(&self) -> bool {
        self.result.load(Ordering::Acquire) != NOT_DONE
    }

    /// Publishes an outcome. A second publication (a contract breach by the exporter) is ignored.
    ///
    /// # Safety
    ///
    /// Only the op's single completer calls this; `msg` as in the deliver/completion contract.
    unsafe fn publish(&self, status: ffi::poc_status, msg: *const ffi::poc_message_view) {
        if self.result.load(Ordering::Acquire) != NOT_DONE {
            return;
        }
        let mut status = published(status);
        if status == ffi::POC_OK {
            if msg.is_null() {
                status = ffi::POC_INVALID; // OK without a message: the exporter broke the contract
            } else {
                // SAFETY: non-NULL and valid for this call (bridge.h: the view is borrowed).
                match contain(|| unsafe { Message::from_view(&*msg) }) {
                    // SAFETY: we are the single completer and have not published yet.
                    Some(m) => unsafe { *self.msg.get() = Some(m) },
                    None => status = ffi::POC_PANIC,
                }
            }
        }
        self.result.store(status, Ordering::Release);
    }

    /// Takes the outcome. `None` if nothing was published.
    ///
    /// # Safety
    ///
    /// Only the slot's single reader calls this (the `PortReceiver` that owns it, through
    /// `&mut`), and no completer may still publish into it (it published already, or the port
    /// call that was given it returned without `POC_PENDING`).
    pub(crate) unsafe fn take(&self) -> Option<(Status, Option<Message>)> {
        match self.result.load(Ordering::Acquire) {
            NOT_DONE => None,
            // SAFETY: published (Acquire above) and we are the single reader.
            s => Some((Status(s), unsafe { (*self.msg.get()).take() })),
        }
    }

    /// Makes a slot nobody else holds ready for the next op.
    pub(crate) fn reset(&mut self) {
        *self.result.get_mut() = NOT_DONE;
        *self.msg.get_mut() = None;
        drop(self.waker.take());
    }
}

/// The *deliver* function of the import adapter (`poc_recv_complete_fn` used synchronously).
///
/// Called by the exporter on the calling thread, inside `recv`/`try_recv`, before it returns
/// `POC_OK`, never under an exporter lock. Borrows `user` (no reference changes hands): the
/// caller reclaims its `Arc` when `recv` returns. Copies the view; panics are contained.
///
/// # Safety
///
/// `user` must point to a live `RecvSlot` that has not been published yet; `msg` valid for the call.
pub(crate) unsafe extern "C" fn recv_deliver(
    user: *mut c_void,
    status: ffi::poc_status,
    msg: *const ffi::poc_message_view,
) {
    if user.is_null() {
        return;
    }
    // SAFETY: `user` points to a live, unpublished slot (the caller's promise).
    let slot = unsafe { &*(user as *const RecvSlot) };
    // SAFETY: this deliver call is the slot's one completer.
    contain(|| unsafe { slot.publish(status, msg) });
}

/// The *completion* of a receive that returned `POC_PENDING`.
///
/// Called exactly once, on an exporter thread, never under an exporter lock. Reclaims the `Arc`
/// handed over as `user`, copies the message (if any) into the slot, publishes and wakes. The
/// slot outlives a dropped future: a message that arrives after the awaiting task was cancelled
/// stays in the slot for the `PortReceiver`'s next receive. Panics are contained.
///
/// # Safety
///
/// `user` must come from `Arc::into_raw` of a `RecvSlot` handed to exactly one `recv` that
/// returned `POC_PENDING`, and this must be its one completion.
pub(crate) unsafe extern "C" fn recv_complete(
    user: *mut c_void,
    status: ffi::poc_status,
    msg: *const ffi::poc_message_view,
) {
    if user.is_null() {
        return;
    }
    // SAFETY: `user` is the reference handed over by `recv` (the caller's promise).
    let slot = unsafe { Arc::from_raw(user as *const RecvSlot) };
    let waker = contain(|| {
        // SAFETY: this completion is the slot's one completer.
        unsafe { slot.publish(status, msg) };
        slot.waker.take()
    })
    .flatten();
    wake_after_drop(slot, waker);
}

/// Where a `try_recv` delivers: a stack slot borrowed for the duration of the call.
pub(crate) struct TrySlot {
    pub(crate) delivered: Option<Result<Message, Status>>,
}

/// Deliver function of `try_recv` (`user` is a `*mut TrySlot`).
///
/// Called synchronously on the calling thread, at most once, before `try_recv` returns `POC_OK`,
/// never under an exporter lock; it is never a completion, so nothing is reclaimed.
///
/// # Safety
///
/// `user` must point to a live `TrySlot` that nothing else accesses during the call.
pub(crate) unsafe extern "C" fn try_deliver(
    user: *mut c_void,
    status: ffi::poc_status,
    msg: *const ffi::poc_message_view,
) {
    if user.is_null() {
        return;
    }
    // SAFETY: `user` is the caller's live TrySlot, used by nothing else during the call.
    let slot = unsafe { &mut *(user as *mut TrySlot) };
    if slot.delivered.is_some() {
        return;
    }
    let out = if status == ffi::POC_OK && !msg.is_null() {
        // SAFETY: non-NULL and valid for this call.
        contain(|| unsafe { Message::from_view(&*msg) }).ok_or(Status::PANIC)
    } else {
        Err(Status(published(status)))
    };
    slot.delivered = Some(out);
}
