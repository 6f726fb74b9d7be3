//! [`PortReceiver`]: the receiving end of any bridge.h channel, as async Rust.

use std::ffi::c_void;
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;

use super::slot::{recv_complete, recv_deliver, try_deliver, RecvSlot, TrySlot};
use crate::error::{ImportError, RecvError, TryRecvError};
use crate::ffi;
use crate::{Message, Status};

/// The receiving end of a channel exported by any runtime, imported as async Rust.
///
/// Owns the port: dropping the `PortReceiver` releases it (which closes the channel, bridge.h
/// rule 7). Receiving takes `&mut self`, so there is at most one receive in flight per
/// `PortReceiver`; that op's slot lives in the `PortReceiver` itself, which is what makes
/// [`recv`](Self::recv) cancel-safe (see there).
///
/// Per message on the fast path (a message is queued) a receive makes one port call and copies
/// the payload once (the exporter's view into a new `Vec`); the op slot is reused, so there is no
/// other allocation. A pending receive reuses the same slot unless a previous completion still
/// holds it.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use poc_bridge::{Message, Runtime};
///
/// let rt = Runtime::new(1).unwrap();
/// let (tx, rx) = rt.channel(8).unwrap();
/// for i in 0..3 {
///     tx.try_send(Message::new(i, vec![])).unwrap();
/// }
/// drop(tx); // the last sender: the channel closes, the stream ends after draining
/// let ids: Vec<u64> = futures::executor::block_on(rx.map(|m| m.id).collect());
/// assert_eq!(ids, [0, 1, 2]);
/// ```
pub struct PortReceiver {
    port: ffi::poc_receiver,
    vt: &'static ffi::poc_receiver_vtable,
    /// A slot ready for the next op (reused when no completion holds it any more).
    spare: Option<Arc<RecvSlot>>,
    /// The op handed to the port and not consumed yet: pending, or completed and waiting to be
    /// returned (the stash of a receive whose future was dropped).
    inflight: Option<Inflight>,
}

// SAFETY: port functions are callable from any thread (bridge.h); the vtable is static. All
// mutation goes through `&mut self`; `close` only calls the port.
unsafe impl Send for PortReceiver {}
unsafe impl Sync for PortReceiver {}

impl fmt::Debug for PortReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortReceiver")
            .field("handle", &format_args!("{:#x}", self.port.handle))
            .field("inflight", &self.inflight.is_some())
            .finish()
    }
}

struct Inflight {
    slot: Arc<RecvSlot>,
    op: ffi::poc_op_id,
    cancel_requested: bool,
}

/// Checks an imported receiver vtable (as for senders).
pub(crate) fn check_receiver_vtable(
    port: &ffi::poc_receiver,
) -> Result<&'static ffi::poc_receiver_vtable, ImportError> {
    if port.vtable.is_null() {
        return Err(ImportError { reason: "NULL vtable" });
    }
    // SAFETY: non-NULL; the caller of `from_raw` promises a vtable that lives forever.
    let vt: &'static ffi::poc_receiver_vtable = unsafe { &*port.vtable };
    if vt.abi_version != ffi::POC_ABI_VERSION {
        return Err(ImportError { reason: "vtable has another ABI version" });
    }
    if (vt.size as usize) < std::mem::size_of::<ffi::poc_receiver_vtable>() {
        return Err(ImportError { reason: "vtable is smaller than poc_receiver_vtable" });
    }
    if vt.try_recv.is_none() || vt.recv.is_none() || vt.cancel.is_none() || vt.close.is_none() || vt.release.is_none() {
        return Err(ImportError { reason: "vtable has a NULL function" });
    }
    Ok(vt)
}

impl PortReceiver {
    /// Imports a receiver port, taking ownership of it.
    ///
    /// Checks the vtable as [`PortSender::from_raw`](super::PortSender::from_raw) does; on error
    /// the port is **not** taken and the caller still owns it.
    ///
    /// # Safety
    ///
    /// `port` must be a receiver port the caller owns (not yet released), with a vtable that
    /// stays valid for the life of the process and functions that keep bridge.h's contract.
    pub unsafe fn from_raw(port: ffi::poc_receiver) -> Result<Self, ImportError> {
        let vt = check_receiver_vtable(&port)?;
        Ok(PortReceiver { port, vt, spare: None, inflight: None })
    }

    /// Gives the port back without releasing it. A pending receive is cancelled first; a message
    /// it may still bring is then lost with it, so drain (or drop) the receiver instead if that
    /// matters.
    pub fn into_raw(self) -> ffi::poc_receiver {
        let mut this = ManuallyDrop::new(self);
        this.request_cancel();
        let port = this.port;
        // SAFETY: fields dropped exactly once; `Drop` (which would release) is skipped.
        unsafe {
            std::ptr::drop_in_place(&mut this.spare);
            std::ptr::drop_in_place(&mut this.inflight);
        }
        port
    }

    /// The port this receiver wraps (still owned by the `PortReceiver`).
    pub fn as_raw(&self) -> ffi::poc_receiver {
        self.port
    }

    /// Receives the next message, waiting for one.
    ///
    /// An `async fn` in effect (`async fn recv(&mut self) -> Result<Message, RecvError>`) that
    /// returns a named future. Resolves to the message, or to [`RecvError::Closed`] once the
    /// channel is closed and drained, [`RecvError::Shutdown`] when the exporting runtime shut
    /// down, or [`RecvError::Failed`]. Result-based rather than tokio's `Option`, because a
    /// bridged channel can end in more ways than "closed".
    ///
    /// # Cancel safety
    ///
    /// This method is cancel-safe: if the future is dropped before it resolves (in
    /// `select!`, on a timeout, when its task is cancelled), no message is lost. The drop asks
    /// the port to cancel the op. If the op won the race and brought a message anyway, the
    /// message stays in this `PortReceiver` (the stash) and the next `recv`, `try_recv` or
    /// stream poll returns it first, before asking the port again — so order is kept too.
    ///
    /// # Examples
    ///
    /// ```
    /// # use poc_bridge::{Message, RecvError, Runtime};
    /// let rt = Runtime::new(1).unwrap();
    /// let (tx, mut rx) = rt.channel(4).unwrap();
    /// tx.try_send(Message::new(5, vec![9])).unwrap();
    /// tx.close();
    /// futures::executor::block_on(async {
    ///     assert_eq!(rx.recv().await.unwrap().id, 5); // drains what is queued
    ///     assert_eq!(rx.recv().await.unwrap_err(), RecvError::Closed);
    /// });
    /// ```
    pub fn recv(&mut self) -> RecvFuture<'_> {
        RecvFuture { rx: self }
    }

    /// Receives a message now if one is queued; never waits.
    ///
    /// A message stashed by a dropped [`recv`](Self::recv) future comes first. While such a
    /// dropped receive is still being cancelled by the port, this returns
    /// [`TryRecvError::Empty`] (asking the port now could overtake the message it may bring).
    pub fn try_recv(&mut self) -> Result<Message, TryRecvError> {
        match self.take_inflight() {
            Some(Ok(m)) => return Ok(m),
            Some(Err(e)) => return Err(TryRecvError::from_status(e.status())),
            None if self.inflight.is_some() => return Err(TryRecvError::Empty),
            None => {}
        }
        let mut slot = TrySlot { delivered: None };
        // SAFETY: checked at import; `slot` is borrowed for the call only (try_recv's deliver is
        // synchronous and nothing is called after it returns).
        let st = Status(unsafe {
            (self.vt.try_recv.unwrap_unchecked())(
                self.port.handle,
                Some(try_deliver),
                &mut slot as *mut TrySlot as *mut c_void,
            )
        });
        match (st, slot.delivered) {
            (Status::OK, Some(Ok(m))) => Ok(m),
            (Status::OK, Some(Err(s))) => Err(TryRecvError::Failed(s)),
            (Status::OK, None) => Err(TryRecvError::Failed(Status::INVALID)),
            (s, _) => Err(TryRecvError::from_status(s)),
        }
    }

    /// Closes the channel from the receiving side: pending and later sends fail with `CLOSED`,
    /// queued messages are dropped, a pending receive completes with `CLOSED`. Idempotent.
    /// Returns the port's status. The port is still released on drop.
    pub fn close(&self) -> Status {
        // SAFETY: checked at import.
        Status(unsafe { (self.vt.close.unwrap_unchecked())(self.port.handle) })
    }

    /// `true` when a receive is in flight or a stashed message waits (for tests and metrics).
    pub fn has_inflight(&self) -> bool {
        self.inflight.is_some()
    }

    /// The heart of `recv` and `Stream::poll_next`.
    ///
    /// Also usable directly from hand-written futures. Dropping the caller between polls leaves
    /// the op in flight (not cancelled); the next call resumes it.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, RecvError>> {
        loop {
            if let Some(inflight) = &self.inflight {
                if !inflight.slot.is_done() {
                    inflight.slot.waker.register(cx.waker());
                    if !inflight.slot.is_done() {
                        return Poll::Pending;
                    }
                }
                match self.take_inflight() {
                    Some(r) => return Poll::Ready(r),
                    None => continue, // cancelled at our request, no effect: ask again
                }
            }
            return match self.start() {
                Ok(Some(m)) => Poll::Ready(Ok(m)),
                Ok(None) => continue, // pending: register the waker above
                Err(e) => Poll::Ready(Err(e)),
            };
        }
    }

    /// Consumes a completed in-flight op. `None` when there is none, it is still pending, or it
    /// ended `CANCELLED` at our request (then it is cleared: nothing was dequeued).
    fn take_inflight(&mut self) -> Option<Result<Message, RecvError>> {
        let inflight = self.inflight.as_ref()?;
        // SAFETY: we are the slot's only reader; `take` returns None until the completion has
        // published, after which the completer never touches the slot again.
        let (status, msg) = unsafe { inflight.slot.take() }?;
        let inflight = self.inflight.take().expect("checked above");
        self.recycle(inflight.slot);
        match status {
            Status::OK => Some(msg.ok_or(RecvError::Failed(Status::INVALID))),
            Status::CANCELLED if inflight.cancel_requested => None,
            s => Some(Err(RecvError::from_status(s))),
        }
    }

    /// Issues one `recv` on the port: `Ok(Some)` on the fast path, `Ok(None)` when pending.
    fn start(&mut self) -> Result<Option<Message>, RecvError> {
        let slot = match self.spare.take() {
            Some(s) => s,
            None => Arc::new(RecvSlot::new()),
        };
        let user = Arc::into_raw(slot.clone()) as *mut c_void;
        let mut op: ffi::poc_op_id = 0;
        // SAFETY: checked at import. `user` is borrowed by `recv_deliver` during the call and
        // reclaimed by `recv_complete` if and only if the call returns PENDING.
        let st = Status(unsafe {
            (self.vt.recv.unwrap_unchecked())(
                self.port.handle,
                Some(recv_deliver),
                Some(recv_complete),
                user,
                &mut op,
            )
        });
        if st == Status::PENDING {
            self.inflight = Some(Inflight { slot, op, cancel_requested: false });
            return Ok(None);
        }
        // SAFETY: no completion will run; the reference is ours to take back.
        drop(unsafe { Arc::from_raw(user as *const RecvSlot) });
        // SAFETY: nothing else reads the slot; the deliver function (if called) already returned.
        let taken = unsafe { slot.take() };
        self.recycle(slot);
        match (st, taken) {
            (Status::OK, Some((Status::OK, Some(m)))) => Ok(Some(m)),
            (Status::OK, Some((s, _))) if s != Status::OK => Err(RecvError::Failed(s)),
            (Status::OK, _) => Err(RecvError::Failed(Status::INVALID)),
            (s, _) => Err(RecvError::from_status(s)),
        }
    }

    fn recycle(&mut self, mut slot: Arc<RecvSlot>) {
        if let Some(s) = Arc::get_mut(&mut slot) {
            s.reset();
            self.spare = Some(slot);
        }
    }

    /// Asks the port to cancel the in-flight op, once. Called when a `RecvFuture` is dropped.
    fn request_cancel(&mut self) {
        if let Some(inflight) = &mut self.inflight {
            if !inflight.cancel_requested && !inflight.slot.is_done() {
                inflight.cancel_requested = true;
                // SAFETY: checked at import. The status is ignored: the op completes exactly
                // once whatever cancel answers.
                unsafe { (self.vt.cancel.unwrap_unchecked())(self.port.handle, inflight.op) };
            }
        }
    }
}

impl Drop for PortReceiver {
    fn drop(&mut self) {
        self.request_cancel();
        // SAFETY: checked at import; we own the port and give it back exactly once. A pending
        // op keeps its slot alive through the reference its completion holds.
        unsafe { (self.vt.release.unwrap_unchecked())(self.port.handle) };
    }
}

/// Future of [`PortReceiver::recv`]. Dropping it while pending cancels the op; a message that
/// still arrives is kept for the next receive (see `recv`'s cancel safety).
#[must_use = "futures do nothing unless polled"]
pub struct RecvFuture<'a> {
    rx: &'a mut PortReceiver,
}

impl fmt::Debug for RecvFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvFuture").finish_non_exhaustive()
    }
}

impl Future for RecvFuture<'_> {
    type Output = Result<Message, RecvError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for RecvFuture<'_> {
    fn drop(&mut self) {
        self.rx.request_cancel();
    }
}

/// `Stream<Item = Message>`: yields messages until the channel reports `CLOSED` (or any other
/// error — use [`PortReceiver::recv`] to tell them apart), then `None`. Dropping a `next()`
/// future does not cancel the port op: it stays in flight and the next poll resumes it.
impl Stream for PortReceiver {
    type Item = Message;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.get_mut().poll_recv(cx).map(Result::ok)
    }
}
