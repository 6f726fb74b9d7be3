//! [`PortSender`]: the sending end of any bridge.h channel, as async Rust.

use std::ffi::c_void;
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures::Sink;

use super::slot::{send_complete, SendSlot, SlotCache};
use crate::error::{ImportError, SendError, TrySendError};
use crate::ffi;
use crate::{Message, Status};

/// The sending end of a channel exported by any runtime, imported as async Rust.
///
/// Owns one port reference: dropping the `PortSender` releases the port (releasing the last
/// sender of a channel closes it, bridge.h rule 7). Sends may run concurrently from many tasks
/// through `&PortSender`; messages from one task that awaits each send arrive in order.
///
/// Per message on the fast path (room in the channel) a send makes one port call and no
/// allocation of its own: the op slot comes from a one-entry cache. A pending send uses one
/// slot (`Arc`) until its completion has run.
///
/// # Examples
///
/// ```
/// use poc_bridge::{Message, Runtime};
///
/// let rt = Runtime::new(1).unwrap();
/// let (tx, mut rx) = rt.channel(1).unwrap();
/// futures::executor::block_on(async {
///     tx.send(Message::new(1, vec![1, 2, 3])).await.unwrap();
///     assert!(tx.try_send(Message::new(2, vec![])).is_err()); // capacity 1: full
///     assert_eq!(rx.recv().await.unwrap().id, 1);
/// });
/// ```
pub struct PortSender {
    port: ffi::poc_sender,
    vt: &'static ffi::poc_sender_vtable,
    cache: SlotCache,
    /// The send started by `Sink::start_send`, until it completes.
    sink: Option<Inflight>,
}

// SAFETY: bridge.h makes every port function callable from any thread, concurrently (the
// exporter resolves the handle through its own thread-safe table); the raw pointer is to a
// static vtable. The remaining state is Send + Sync.
unsafe impl Send for PortSender {}
unsafe impl Sync for PortSender {}

impl fmt::Debug for PortSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortSender").field("handle", &format_args!("{:#x}", self.port.handle)).finish()
    }
}

/// Checks an imported sender vtable: present, our ABI version, large enough, no NULL entry.
pub(crate) fn check_sender_vtable(port: &ffi::poc_sender) -> Result<&'static ffi::poc_sender_vtable, ImportError> {
    if port.vtable.is_null() {
        return Err(ImportError { reason: "NULL vtable" });
    }
    // SAFETY: non-NULL; the caller of `from_raw` promises a vtable that lives forever.
    let vt: &'static ffi::poc_sender_vtable = unsafe { &*port.vtable };
    if vt.abi_version != ffi::POC_ABI_VERSION {
        return Err(ImportError { reason: "vtable has another ABI version" });
    }
    if (vt.size as usize) < std::mem::size_of::<ffi::poc_sender_vtable>() {
        return Err(ImportError { reason: "vtable is smaller than poc_sender_vtable" });
    }
    if vt.try_send.is_none()
        || vt.send.is_none()
        || vt.cancel.is_none()
        || vt.close.is_none()
        || vt.clone.is_none()
        || vt.release.is_none()
    {
        return Err(ImportError { reason: "vtable has a NULL function" });
    }
    Ok(vt)
}

impl PortSender {
    /// Imports a sender port, taking ownership of it.
    ///
    /// Checks the vtable (non-NULL, `abi_version == POC_ABI_VERSION`, `size` at least
    /// `sizeof(poc_sender_vtable)`, no NULL function); on error the port is **not** taken and
    /// the caller still owns it.
    ///
    /// # Safety
    ///
    /// `port` must be a sender port the caller owns (one reference, not yet released), whose
    /// vtable stays valid for the life of the process (bridge.h: vtables are static), and whose
    /// functions keep the contract of bridge.h.
    pub unsafe fn from_raw(port: ffi::poc_sender) -> Result<Self, ImportError> {
        let vt = check_sender_vtable(&port)?;
        Ok(PortSender { port, vt, cache: SlotCache::new(), sink: None })
    }

    /// Gives the port back without releasing it (the caller now owns that reference).
    /// A send started through `Sink::start_send` and still pending is cancelled first.
    pub fn into_raw(self) -> ffi::poc_sender {
        let mut this = ManuallyDrop::new(self);
        this.cancel_sink();
        let port = this.port;
        // SAFETY: fields are dropped exactly once here; `Drop` (which would release) is skipped.
        unsafe {
            std::ptr::drop_in_place(&mut this.cache);
            std::ptr::drop_in_place(&mut this.sink);
        }
        port
    }

    /// The port this sender wraps (still owned by the `PortSender`).
    pub fn as_raw(&self) -> ffi::poc_sender {
        self.port
    }

    /// Sends a message, waiting for room in the channel (backpressure; nothing is dropped).
    ///
    /// This is an `async fn` in effect (`async fn send(&self, msg: Message) -> Result<(),
    /// SendError<Message>>`) that returns a named future. The port copies the message during the
    /// first poll; the future keeps it only to give it back in a [`SendError`]. Resolves to
    /// `Ok(())` once the message is enqueued, or to the error with the unsent message:
    /// [`SendError::Closed`], [`SendError::Shutdown`], [`SendError::Cancelled`] (only if the
    /// exporter cancels it on its own, or after [`SendFuture::cancel`]), [`SendError::Failed`]
    /// (`INVALID` for an oversized payload, `PANIC`, …).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it resolved asks the port to cancel the op. The exporter then
    /// either cancels it (nothing was enqueued) or lets it win the race (the message *was*
    /// enqueued). Either way the message is not duplicated, but after a drop you cannot tell
    /// which happened: this method is not cancel-safe in the sense of tokio's `Sender::send`
    /// if you need to know whether the message went out.
    ///
    /// To cancel a send **and learn its outcome**, do not drop the future: call
    /// [`SendFuture::cancel`] and keep awaiting it, or use [`send_with_cancel`](Self::send_with_cancel),
    /// which does that when a cancel signal fires. Both resolve to `Ok(())` if the message was
    /// enqueued and to [`SendError::Cancelled`] (with the message) if the cancel took effect —
    /// the way to account for every message when a task is stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// # use poc_bridge::{Message, Runtime, SendError};
    /// let rt = Runtime::new(1).unwrap();
    /// let (tx, rx) = rt.channel(1).unwrap();
    /// drop(rx); // releasing the receiver closes the channel for sends
    /// let err = futures::executor::block_on(tx.send(Message::new(7, vec![]))).unwrap_err();
    /// assert!(matches!(err, SendError::Closed(_)));
    /// assert_eq!(err.into_inner().id, 7); // the unsent message comes back
    /// ```
    pub fn send(&self, msg: Message) -> SendFuture<'_> {
        SendFuture { tx: self, state: State::Start(msg) }
    }

    /// Sends a message unless `cancel` resolves first, and reports what really happened.
    ///
    /// An `async fn` in effect (`async fn send_with_cancel(&self, msg: Message, cancel: impl
    /// Future) -> Result<(), SendError<Message>>`): [`send`](Self::send) raced against a cancel
    /// signal (a stop flag, a timer, a shutdown token — any future; its output is ignored)
    /// without losing track of the message. The send is polled first once it has started, so
    /// an outcome already published wins over a signal that fired meanwhile:
    ///
    /// * `cancel` already resolved on the first poll: nothing is sent; resolves to
    ///   [`SendError::Cancelled`] with the message, without calling the port.
    /// * the send completes (fast path or later) before `cancel` resolves: its result, as
    ///   [`send`](Self::send)'s.
    /// * `cancel` resolves while the send is pending: the port's cancel is requested
    ///   ([`SendFuture::cancel`]) and the future keeps waiting for the op's one completion
    ///   (bridge.h rule 5): `Ok(())` if the send won the race — the message **was** enqueued —
    ///   or `Err(SendError::Cancelled(msg))` if the cancel took effect (or another error, e.g.
    ///   `Closed`, if the op ended that way: nothing was enqueued either). `cancel` is dropped
    ///   then and not polled again.
    ///
    /// It never blocks; after a cancel it resolves when the exporter completes the op, which it
    /// does at once for an op still waiting for room.
    ///
    /// # Cancel safety
    ///
    /// This is the cancel-aware form of `send`: when the cancellation comes through `cancel`,
    /// the result says exactly whether the message went out. Dropping the returned future
    /// itself behaves like dropping a [`SendFuture`] (cancel requested, outcome unknown).
    ///
    /// # Examples
    ///
    /// A producer that stops on a signal and counts exactly the messages that were enqueued:
    ///
    /// ```
    /// use futures::future::{pending, ready};
    /// use poc_bridge::{Message, Runtime, SendError};
    ///
    /// let rt = Runtime::new(1).unwrap();
    /// let (tx, mut rx) = rt.channel(1).unwrap();
    /// futures::executor::block_on(async {
    ///     // no stop yet: the message goes out
    ///     tx.send_with_cancel(Message::new(1, vec![]), pending::<()>()).await.unwrap();
    ///     // stopped before the send started: nothing is sent, the message comes back
    ///     let e = tx.send_with_cancel(Message::new(2, vec![]), ready(())).await.unwrap_err();
    ///     assert!(matches!(e, SendError::Cancelled(m) if m.id == 2));
    ///     assert_eq!(rx.recv().await.unwrap().id, 1);
    ///     assert!(rx.try_recv().is_err(), "message 2 was never enqueued");
    /// });
    /// ```
    pub fn send_with_cancel<C: Future>(&self, msg: Message, cancel: C) -> SendWithCancel<'_, C> {
        SendWithCancel { send: self.send(msg), cancel: Some(cancel) }
    }

    /// Enqueues a message now if there is room; never waits.
    ///
    /// Errors give the message back: [`TrySendError::Full`], [`TrySendError::Closed`],
    /// [`TrySendError::Shutdown`], [`TrySendError::Failed`].
    pub fn try_send(&self, msg: Message) -> Result<(), TrySendError<Message>> {
        let view = msg.view();
        // SAFETY: the function pointer was checked at import; `view` borrows `msg`, which
        // outlives the call (the port copies the view before returning).
        let st = unsafe { (self.vt.try_send.unwrap_unchecked())(self.port.handle, &view) };
        match Status(st) {
            Status::OK => Ok(()),
            s => Err(TrySendError::from_status(s, msg)),
        }
    }

    /// Closes the channel for new sends from every sender (bridge.h rule 7): pending sends that
    /// had not enqueued fail with `CLOSED`; receivers drain what is queued, then see `CLOSED`.
    /// Idempotent. Returns the port's status (`OK`, `SHUTDOWN`, `INVALID`). The port itself is
    /// still released on drop.
    pub fn close(&self) -> Status {
        // SAFETY: checked at import.
        Status(unsafe { (self.vt.close.unwrap_unchecked())(self.port.handle) })
    }

    /// Makes another sender for the same channel (the port's `clone`), released separately.
    pub fn try_clone(&self) -> Result<PortSender, Status> {
        let mut out = ffi::poc_sender { handle: 0, vtable: std::ptr::null() };
        // SAFETY: checked at import; `out` is a valid place to write.
        let st = Status(unsafe { (self.vt.clone.unwrap_unchecked())(self.port.handle, &mut out) });
        if st != Status::OK {
            return Err(st);
        }
        // SAFETY: the exporter handed us a fresh port reference.
        match unsafe { PortSender::from_raw(out) } {
            Ok(s) => Ok(s),
            Err(_) => {
                if let Some(release) = unsafe { out.vtable.as_ref() }.and_then(|v| v.release) {
                    // SAFETY: we own `out` and give it back.
                    unsafe { release(out.handle) };
                }
                Err(Status::INVALID)
            }
        }
    }

    /// Starts a send: `Ok(None)` when it completed at once, `Ok(Some)` when it is pending.
    fn start(&self, msg: Message) -> Result<Option<Inflight>, SendError<Message>> {
        let slot = self.cache.take();
        let view = msg.view();
        let user = Arc::into_raw(slot.clone()) as *mut c_void;
        let mut op: ffi::poc_op_id = 0;
        // SAFETY: checked at import; `view` borrows `msg` (copied by the port before it returns);
        // `user` is a reference the completion reclaims if and only if the call returns PENDING.
        let st = Status(unsafe {
            (self.vt.send.unwrap_unchecked())(self.port.handle, &view, Some(send_complete), user, &mut op)
        });
        if st == Status::PENDING {
            return Ok(Some(Inflight { slot, op, msg, cancel_requested: false }));
        }
        // No completion will run: take our reference back.
        // SAFETY: `user` came from `Arc::into_raw` above and nobody else reclaims it.
        drop(unsafe { Arc::from_raw(user as *const SendSlot) });
        self.cache.put(slot);
        match st {
            Status::OK => Ok(None),
            s => Err(SendError::from_status(s, msg)),
        }
    }

    /// Polls a pending send; on completion recycles its slot.
    fn poll_inflight(&self, inflight: &mut Option<Inflight>, cx: &mut Context<'_>) -> Poll<Result<(), SendError<Message>>> {
        let Some(op) = inflight.as_mut() else { return Poll::Ready(Ok(())) };
        let status = match op.slot.result() {
            Some(s) => s,
            None => {
                op.slot.waker.register(cx.waker());
                match op.slot.result() {
                    Some(s) => s,
                    None => return Poll::Pending,
                }
            }
        };
        let op = inflight.take().expect("checked above");
        self.cache.put(op.slot);
        Poll::Ready(match status {
            Status::OK => Ok(()),
            s => Err(SendError::from_status(s, op.msg)),
        })
    }

    /// Requests cancellation of a pending op (once).
    fn cancel(&self, op: &mut Inflight) {
        if !op.cancel_requested && op.slot.result().is_none() {
            op.cancel_requested = true;
            // SAFETY: checked at import. The status is ignored: cancel is a request, and the op
            // completes exactly once whatever it answers.
            unsafe { (self.vt.cancel.unwrap_unchecked())(self.port.handle, op.op) };
        }
    }

    fn cancel_sink(&mut self) {
        if let Some(mut op) = self.sink.take() {
            self.cancel(&mut op);
        }
    }
}

impl Drop for PortSender {
    fn drop(&mut self) {
        self.cancel_sink();
        // SAFETY: checked at import; we own one reference and give it back exactly once.
        unsafe { (self.vt.release.unwrap_unchecked())(self.port.handle) };
    }
}

/// One pending send: its slot, op id, and the message (kept to be given back on failure).
struct Inflight {
    slot: Arc<SendSlot>,
    op: ffi::poc_op_id,
    msg: Message,
    cancel_requested: bool,
}

enum State {
    /// Not polled yet: nothing was sent.
    Start(Message),
    /// Cancelled before the first poll: resolves to `Cancelled` without calling the port.
    Cancelled(Message),
    Pending(Option<Inflight>),
    Done,
}

/// Future of [`PortSender::send`].
///
/// Dropping it while pending asks the port to cancel the op, and the outcome is then unknown
/// (see `send`). To cancel and learn the outcome, call [`cancel`](Self::cancel) and keep
/// awaiting it.
#[must_use = "futures do nothing unless polled"]
pub struct SendFuture<'a> {
    tx: &'a PortSender,
    state: State,
}

impl SendFuture<'_> {
    /// Requests cancellation of this send; keep awaiting the future to learn its real outcome.
    ///
    /// Unlike dropping the future — which also asks the port to cancel but forgets the answer —
    /// the future stays alive and resolves to what actually happened (bridge.h rule 5: a
    /// cancelled op still completes exactly once, with `CANCELLED` if it had no effect or with
    /// its real outcome if it won the race):
    ///
    /// * `Ok(())` — the send won the race: the message **was** enqueued;
    /// * `Err(SendError::Cancelled(msg))` — the cancel took effect: nothing was enqueued, and the
    ///   message comes back;
    /// * another error (`Closed`, `Shutdown`, …) if the op ended that way: nothing was enqueued.
    ///
    /// States: before the first poll nothing has been sent, so the future resolves to
    /// `Cancelled` on its next poll without calling the port; while the op is pending the port's
    /// `cancel` is called (at most once per op, and not at all if the completion is already
    /// published); once the future has resolved this does nothing. Never blocks.
    ///
    /// # Cancel safety
    ///
    /// This is how to cancel a send without losing track of the message. Dropping the future
    /// after calling `cancel` (before it resolved) is allowed but brings back the uncertainty
    /// of a plain drop.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::Context;
    /// use futures::FutureExt;
    /// use poc_bridge::{Message, Runtime, SendError};
    ///
    /// let rt = Runtime::new(1).unwrap();
    /// let (tx, mut rx) = rt.channel(1).unwrap();
    /// tx.try_send(Message::new(1, vec![])).unwrap(); // capacity 1: full
    /// let mut send = tx.send(Message::new(2, vec![]));
    /// let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    /// assert!(send.poll_unpin(&mut cx).is_pending()); // waits for room
    /// send.cancel();
    /// // the cancel won: nothing was enqueued and the message comes back
    /// // (had the receiver made room first, this would be Ok(()) and message 2 would be queued)
    /// match futures::executor::block_on(send) {
    ///     Err(SendError::Cancelled(m)) => assert_eq!(m.id, 2),
    ///     other => panic!("{other:?}"),
    /// }
    /// assert_eq!(rx.try_recv().unwrap().id, 1);
    /// assert!(rx.try_recv().is_err());
    /// ```
    pub fn cancel(&mut self) {
        match &mut self.state {
            State::Start(_) => {
                let State::Start(msg) = std::mem::replace(&mut self.state, State::Done) else { unreachable!() };
                self.state = State::Cancelled(msg);
            }
            State::Pending(Some(op)) => self.tx.cancel(op),
            State::Cancelled(_) | State::Pending(None) | State::Done => {}
        }
    }

    /// `true` until the first poll issued the send (or a cancel made it moot).
    fn is_unstarted(&self) -> bool {
        matches!(self.state, State::Start(_))
    }
}

impl fmt::Debug for SendFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendFuture").finish_non_exhaustive()
    }
}

impl Future for SendFuture<'_> {
    type Output = Result<(), SendError<Message>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let State::Cancelled(_) = this.state {
            let State::Cancelled(msg) = std::mem::replace(&mut this.state, State::Done) else { unreachable!() };
            return Poll::Ready(Err(SendError::Cancelled(msg)));
        }
        if let State::Start(_) = this.state {
            let State::Start(msg) = std::mem::replace(&mut this.state, State::Done) else { unreachable!() };
            match this.tx.start(msg) {
                Ok(None) => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(e)),
                Ok(Some(op)) => this.state = State::Pending(Some(op)),
            }
        }
        match &mut this.state {
            State::Pending(op) => {
                let r = ready!(this.tx.poll_inflight(op, cx));
                this.state = State::Done;
                Poll::Ready(r)
            }
            State::Done => panic!("SendFuture polled after completion"),
            State::Start(_) | State::Cancelled(_) => unreachable!(),
        }
    }
}

impl Drop for SendFuture<'_> {
    /// A pending send is cancelled (a request; whether the message went out is then unknown —
    /// use [`SendFuture::cancel`] to learn it). The op's slot lives until its completion ran.
    fn drop(&mut self) {
        if let State::Pending(Some(op)) = &mut self.state {
            self.tx.cancel(op);
        }
    }
}

/// Future of [`PortSender::send_with_cancel`]: a send that is cancelled, with its real outcome
/// reported, when a cancel signal `C` resolves.
#[must_use = "futures do nothing unless polled"]
pub struct SendWithCancel<'a, C> {
    send: SendFuture<'a>,
    /// The signal, until it fired (then dropped, never polled again). Structurally pinned.
    cancel: Option<C>,
}

impl<C> fmt::Debug for SendWithCancel<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendWithCancel").field("cancel_fired", &self.cancel.is_none()).finish_non_exhaustive()
    }
}

impl<C: Future> Future for SendWithCancel<'_, C> {
    type Output = Result<(), SendError<Message>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: pin projection by hand. `cancel` is structurally pinned: it is never moved
        // out, only polled through `Pin` and dropped in place (`Pin::set(None)`); there is no
        // `Unpin` impl beyond the auto one (which requires `C: Unpin`) and no `Drop` impl.
        // `send` is `Unpin` and not structurally pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let mut cancel = unsafe { Pin::new_unchecked(&mut this.cancel) };
        let send = &mut this.send;
        // Not started and already cancelled: send nothing.
        if send.is_unstarted() && fired(&mut cancel, cx) {
            send.cancel();
        }
        // The send first: an outcome already published wins over a signal that fired since.
        if let Poll::Ready(r) = Pin::new(&mut *send).poll(cx) {
            return Poll::Ready(r);
        }
        if fired(&mut cancel, cx) {
            send.cancel();
            // It may have completed meanwhile; otherwise this registers the waker again.
            return Pin::new(send).poll(cx);
        }
        Poll::Pending
    }
}

/// Polls the cancel signal if it has not fired yet; `true` (and the signal dropped) when it
/// fires now.
fn fired<C: Future>(cancel: &mut Pin<&mut Option<C>>, cx: &mut Context<'_>) -> bool {
    let ready = match cancel.as_mut().as_pin_mut() {
        Some(c) => c.poll(cx).is_ready(),
        None => false,
    };
    if ready {
        cancel.set(None);
    }
    ready
}

/// `Sink<Message>`: one send in flight at a time. `poll_ready` / `poll_flush` wait for it;
/// `poll_close` flushes and then closes the channel (the port's `close`, which closes it for
/// every sender — the usual end of `stream.forward(sink)`); if that close itself fails
/// (`SHUTDOWN`, `INVALID`), the error carries an empty message, since nothing was left unsent.
/// Dropping the `PortSender` with a send still in flight cancels it.
impl Sink<Message> for PortSender {
    type Error = SendError<Message>;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        let mut sink = this.sink.take();
        let r = this.poll_inflight(&mut sink, cx);
        this.sink = sink;
        r
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        let this = self.get_mut();
        assert!(this.sink.is_none(), "start_send called without poll_ready");
        this.sink = this.start(item)?;
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_ready(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        ready!(self.as_mut().poll_ready(cx))?;
        match self.close() {
            Status::OK => Poll::Ready(Ok(())),
            s => Poll::Ready(Err(SendError::from_status(s, Message::default()))),
        }
    }
}
