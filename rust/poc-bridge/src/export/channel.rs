//! [`Chan`]: one bounded `tokio::sync::mpsc` channel and the bridge.h semantics around it.
//!
//! The messages live in the tokio channel. What bridge.h asks for beyond it — op ids, exact
//! cancellation, completions that never run under a lock, close from either side, shutdown —
//! lives in two small pieces of state, each behind its own mutex:
//!
//! * the **send side**: a FIFO of pending sends (op id, issuing port, message, completion), the
//!   number of live sender ports, and the closed flag;
//! * the **receive side**: the tokio `Receiver`, a FIFO of pending receives, and the closed flag.
//!
//! A pending op is served by a **pump**, a tokio task spawned when the first op of a side goes
//! pending and ending when its FIFO is empty:
//!
//! * the send pump awaits `Sender::reserve()` (a permit = room for one message), then, under the
//!   send lock, pops the head op and sends its message with the permit;
//! * the receive pump polls `Receiver::poll_recv` under the receive lock and, on a message, pops
//!   the head op.
//!
//! Either way "pop the op" and "its effect" happen together under the lock, so `cancel` (which
//! removes the op under the same lock) is exact: an op it finds had no effect and completes
//! `CANCELLED`; an op it does not find has completed (or its completion is about to run) with its
//! real outcome. Every completion is taken out under the lock and run after the guard is dropped
//! — on the pump's runtime thread, or, for cancel/close/release/shutdown, in a task spawned on the
//! runtime ([`RtCore::defer`]) — never under a lock, never inline in the importer's call.
//!
//! Issue order: the fast paths (`try_send`/`send`/`try_recv`/`recv` completing at once) only run
//! when the side's FIFO is empty, so a new op never overtakes a pending one; concurrent receives
//! are served in the order they were issued.
//!
//! Why the tokio channel needs our own "closed for sends" flag: a tokio channel closes when every
//! `Sender` is dropped or the receiver closes it. A bridge.h sender `close` must close it for all
//! sender ports at once while the queue drains, so the send side keeps `closed` and the receive
//! side reads the `no_more_sends` atomic (set under the send lock after the last enqueue) *before*
//! polling the queue: queue empty + flag seen ⇒ closed and drained.
//!
//! Allocations per message: the exporter copies the importer's view into a `Message` (one `Vec`,
//! none for an empty payload); tokio's queue allocates a block per 32 messages. A pending op adds
//! a FIFO entry (amortised) and, when its side has no pump yet, one task spawn.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::sync::mpsc;
use tokio::sync::Notify;

use super::completion::Completion;
use super::handles::SenderPort;
use crate::ffi;
use crate::runtime::RtCore;
use crate::{Message, Status};

/// How many messages a receive pump hands out per poll before yielding to other tasks.
const PUMP_BATCH: usize = 64;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct SendWaiter {
    op: ffi::poc_op_id,
    port: u64,
    msg: Message,
    done: Completion,
}

struct SendSide {
    waiters: VecDeque<SendWaiter>,
    pump_running: bool,
    sender_ports: usize,
    /// Closed for sends: by a sender's `close`, the last sender's release, or the receiver.
    closed: bool,
}

struct RecvWaiter {
    op: ffi::poc_op_id,
    done: Completion,
}

struct RecvSide {
    rx: mpsc::Receiver<Message>,
    waiters: VecDeque<RecvWaiter>,
    pump_running: bool,
    /// The pump's waker while it is parked in `poll_recv`. Fast-path polls register *this*
    /// waker (not a no-op one), so they never steal the pump's wake-up.
    pump_waker: Option<Waker>,
    /// Closed or released from the receiving side.
    rx_closed: bool,
}

/// One exported channel. Shared (`Arc`) by its ports (through the handle table) and its pumps.
pub(crate) struct Chan {
    pub(crate) rt: Arc<RtCore>,
    pub(crate) id: u64,
    max_payload: usize,
    tx: mpsc::Sender<Message>,
    send: Mutex<SendSide>,
    recv: Mutex<RecvSide>,
    /// No message will be enqueued any more (set under the send lock, after the last enqueue).
    no_more_sends: AtomicBool,
    send_pump_wake: Notify,
}

/// A `poc_recv_complete_fn` that is not NULL.
pub(crate) type RecvFn = unsafe extern "C" fn(*mut std::ffi::c_void, ffi::poc_status, *const ffi::poc_message_view);
/// A `poc_send_complete_fn` that is not NULL.
pub(crate) type SendFn = unsafe extern "C" fn(*mut std::ffi::c_void, ffi::poc_status);

/// Polls the queue once, outside tokio's cooperative budget (a budget-induced `Pending` would
/// look like an empty queue).
///
/// Never `Receiver::try_recv`: in tokio 1.24 it *parks the calling thread* while a concurrent
/// send is half-written ("busy" slot) — a wait for another thread that bridge.h rule 1 forbids.
/// `poll_recv` just answers `Pending` and wakes the registered waker when the send finishes.
fn poll_queue(rx: &mut mpsc::Receiver<Message>, waker: &Waker) -> Poll<Option<Message>> {
    let mut cx = Context::from_waker(waker);
    let mut fut = tokio::task::unconstrained(poll_fn(|cx| rx.poll_recv(cx)));
    Pin::new(&mut fut).poll(&mut cx)
}

impl Chan {
    pub(crate) fn new(rt: Arc<RtCore>, id: u64, capacity: usize, max_payload: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        Chan {
            rt,
            id,
            max_payload,
            tx,
            send: Mutex::new(SendSide { waiters: VecDeque::new(), pump_running: false, sender_ports: 1, closed: false }),
            recv: Mutex::new(RecvSide {
                rx,
                waiters: VecDeque::new(),
                pump_running: false,
                pump_waker: None,
                rx_closed: false,
            }),
            no_more_sends: AtomicBool::new(false),
            send_pump_wake: Notify::new(),
        }
    }

    fn stopping(&self) -> bool {
        self.rt.is_stopping()
    }

    /// `SHUTDOWN` once the runtime is stopping, else `status`: for ops completed by a close, a
    /// release or a pump that found the channel closed. Shutdown step 2 (docs/contract.md): an op
    /// pending when the runtime began to stop completes with `SHUTDOWN`; the shutdown sweep takes
    /// the channels one after another, so a release on a channel not swept yet must not complete
    /// its pending ops with `CLOSED` or `CANCELLED` first (found by scripts/stress in the C++ and
    /// .NET exporters, phase shutdown-load; the same window exists here).
    fn unless_stopping(&self, status: Status) -> Status {
        if self.stopping() {
            Status::SHUTDOWN
        } else {
            status
        }
    }

    /// Copies an importer's view, checking it (`INVALID` for a bad pointer or an oversized payload).
    ///
    /// # Safety
    ///
    /// `view.data` points to `view.len` readable bytes (or is NULL with `len == 0`).
    unsafe fn copy_view(&self, view: &ffi::poc_message_view) -> Result<Message, Status> {
        if view.len > self.max_payload || (view.data.is_null() && view.len != 0) {
            return Err(Status::INVALID);
        }
        // SAFETY: the view's bytes are readable (the caller's promise), and `data` is NULL only
        // with `len == 0` (checked).
        Ok(unsafe { Message::from_view(view) })
    }

    // ------------------------------------------------------------------------------------------
    // Send side
    // ------------------------------------------------------------------------------------------

    /// `try_send` of a sender port.
    ///
    /// # Safety
    ///
    /// As [`copy_view`](Self::copy_view).
    pub(crate) unsafe fn try_send(&self, port: &SenderPort, view: &ffi::poc_message_view) -> Status {
        // SAFETY: forwarded to our caller.
        let msg = match unsafe { self.copy_view(view) } {
            Ok(m) => m,
            Err(s) => return s,
        };
        let st = lock(&self.send);
        if port.released.load(Ordering::Relaxed) {
            return Status::INVALID;
        }
        if self.stopping() {
            return Status::SHUTDOWN;
        }
        if st.closed {
            return Status::CLOSED;
        }
        if !st.waiters.is_empty() {
            return Status::FULL; // pending sends go first
        }
        match self.tx.try_send(msg) {
            Ok(()) => Status::OK,
            Err(mpsc::error::TrySendError::Full(_)) => Status::FULL,
            Err(mpsc::error::TrySendError::Closed(_)) => Status::CLOSED,
        }
    }

    /// `send` of a sender port: enqueue now (`OK`) or register a pending op (`PENDING`).
    ///
    /// # Safety
    ///
    /// As [`copy_view`](Self::copy_view); `on_complete`/`user` as bridge.h's `send`.
    pub(crate) unsafe fn send(
        self: &Arc<Self>,
        port: &SenderPort,
        view: &ffi::poc_message_view,
        on_complete: SendFn,
        user: *mut std::ffi::c_void,
        op_out: &mut ffi::poc_op_id,
    ) -> Status {
        // SAFETY: forwarded to our caller.
        let mut msg = match unsafe { self.copy_view(view) } {
            Ok(m) => m,
            Err(s) => return s,
        };
        let mut st = lock(&self.send);
        if port.released.load(Ordering::Relaxed) {
            return Status::INVALID;
        }
        if self.stopping() {
            return Status::SHUTDOWN;
        }
        if st.closed {
            return Status::CLOSED;
        }
        if st.waiters.is_empty() {
            match self.tx.try_send(msg) {
                Ok(()) => return Status::OK,
                Err(mpsc::error::TrySendError::Full(m)) => msg = m,
                Err(mpsc::error::TrySendError::Closed(_)) => return Status::CLOSED,
            }
        }
        let op = self.rt.next_op_id();
        *op_out = op; // written before the op can complete: it is not in the FIFO yet
        st.waiters.push_back(SendWaiter { op, port: port.handle, msg, done: Completion::send(on_complete, user) });
        let spawn = !st.pump_running;
        st.pump_running = true;
        drop(st);
        if spawn {
            self.rt.spawn(Arc::clone(self).send_pump());
        }
        Status::PENDING
    }

    /// Serves pending sends in FIFO order as room appears. Ends when the FIFO is empty, the
    /// channel closed or the runtime is stopping (whoever closed/stopped took the FIFO).
    async fn send_pump(self: Arc<Self>) {
        loop {
            {
                let mut st = lock(&self.send);
                if st.waiters.is_empty() || st.closed || self.stopping() {
                    st.pump_running = false;
                    return;
                }
            }
            let permit = {
                let mut woken = pin!(self.send_pump_wake.notified());
                let mut reserve = pin!(self.tx.reserve());
                poll_fn(|cx| {
                    if woken.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(None);
                    }
                    reserve.as_mut().poll(cx).map(Some)
                })
                .await
            };
            match permit {
                None => continue, // woken by cancel/close/shutdown: re-check
                Some(Ok(permit)) => {
                    let mut st = lock(&self.send);
                    if st.closed || self.stopping() {
                        continue;
                    }
                    if let Some(w) = st.waiters.pop_front() {
                        permit.send(w.msg);
                        drop(st);
                        w.done.complete(Status::OK, None);
                    }
                }
                Some(Err(_)) => {
                    // The tokio channel was closed by the receiving side: fail what is pending.
                    let waiters = {
                        let mut st = lock(&self.send);
                        st.closed = true;
                        self.no_more_sends.store(true, Ordering::Release);
                        st.pump_running = false;
                        std::mem::take(&mut st.waiters)
                    };
                    let status = self.unless_stopping(Status::CLOSED);
                    for w in waiters {
                        w.done.complete(status, None);
                    }
                    return;
                }
            }
        }
    }

    /// `cancel` of a sender port.
    pub(crate) fn cancel_send(&self, port: &SenderPort, op: ffi::poc_op_id) -> Status {
        let mut st = lock(&self.send);
        if port.released.load(Ordering::Relaxed) {
            return Status::INVALID;
        }
        if self.stopping() {
            return Status::SHUTDOWN;
        }
        let Some(pos) = st.waiters.iter().position(|w| w.op == op && w.port == port.handle) else {
            return Status::OK; // completed already, or unknown: cancel is a request
        };
        let w = st.waiters.remove(pos).expect("position is in range");
        let now_empty = st.waiters.is_empty();
        drop(st);
        if now_empty {
            self.send_pump_wake.notify_one();
        }
        drop(w.msg);
        self.rt.defer(vec![(w.done, Status::CANCELLED)]);
        Status::OK
    }

    /// Closes the channel for sends (a sender's `close`, or the last sender's release).
    /// Pending sends complete `CLOSED`; receivers drain, then see `CLOSED`.
    fn close_for_sends(&self, st: &mut SendSide, out: &mut Vec<(Completion, Status)>) {
        if !st.closed {
            st.closed = true;
            self.no_more_sends.store(true, Ordering::Release);
        }
        let status = self.unless_stopping(Status::CLOSED);
        out.extend(st.waiters.drain(..).map(|w| (w.done, status)));
    }

    /// `close` of a sender port.
    pub(crate) fn close_sender(&self, port: &SenderPort) -> Status {
        let mut out = Vec::new();
        {
            let mut st = lock(&self.send);
            if port.released.load(Ordering::Relaxed) {
                return Status::INVALID;
            }
            if self.stopping() {
                return Status::SHUTDOWN;
            }
            self.close_for_sends(&mut st, &mut out);
        }
        self.send_pump_wake.notify_one();
        self.wake_recv_pump();
        self.rt.defer(out);
        Status::OK
    }

    /// `clone` of a sender port: counts one more sender (the caller registers the handle).
    pub(crate) fn add_sender(&self, port: &SenderPort) -> Status {
        let mut st = lock(&self.send);
        if port.released.load(Ordering::Relaxed) {
            return Status::INVALID;
        }
        if self.stopping() {
            return Status::SHUTDOWN;
        }
        st.sender_ports += 1;
        Status::OK
    }

    /// Undoes [`add_sender`](Self::add_sender) when the new handle could not be registered.
    pub(crate) fn forget_sender(&self) {
        lock(&self.send).sender_ports -= 1;
    }

    /// `release` of a sender port (its handle is already unregistered). Its pending sends
    /// complete `CANCELLED`; the last sender closes the channel. Valid after shutdown.
    pub(crate) fn release_sender(&self, port: &SenderPort) {
        let mut out = Vec::new();
        let last = {
            let mut st = lock(&self.send);
            port.released.store(true, Ordering::Relaxed);
            st.sender_ports -= 1;
            let mut i = 0;
            while i < st.waiters.len() {
                if st.waiters[i].port == port.handle {
                    let w = st.waiters.remove(i).expect("index is in range");
                    out.push((w.done, self.unless_stopping(Status::CANCELLED)));
                } else {
                    i += 1;
                }
            }
            let last = st.sender_ports == 0;
            if last {
                self.close_for_sends(&mut st, &mut out);
            }
            last
        };
        self.send_pump_wake.notify_one();
        if last {
            self.wake_recv_pump();
        }
        self.rt.defer(out);
    }

    // ------------------------------------------------------------------------------------------
    // Receive side
    // ------------------------------------------------------------------------------------------

    /// A message now, if one is queued. Caller holds the receive lock and has checked that no
    /// receive is pending. `Err(CLOSED)` when closed and drained.
    fn take_now(&self, st: &mut RecvSide) -> Result<Option<Message>, Status> {
        // Read the flag *before* polling: if it is set, every enqueue happened before it.
        let no_more = self.no_more_sends.load(Ordering::Acquire);
        let RecvSide { rx, pump_waker, .. } = st;
        let waker = pump_waker.as_ref().unwrap_or_else(|| futures::task::noop_waker_ref());
        match poll_queue(rx, waker) {
            Poll::Ready(Some(m)) => Ok(Some(m)),
            Poll::Ready(None) => Err(Status::CLOSED),
            Poll::Pending if no_more => Err(Status::CLOSED),
            Poll::Pending => Ok(None),
        }
    }

    /// `try_recv` of the receiver port. `deliver` runs after the receive lock is released.
    ///
    /// # Safety
    ///
    /// `deliver`/`user` as bridge.h's `try_recv`.
    pub(crate) unsafe fn try_recv(&self, deliver: RecvFn, user: *mut std::ffi::c_void) -> Status {
        let msg = {
            let mut st = lock(&self.recv);
            if self.stopping() {
                return Status::SHUTDOWN;
            }
            if st.rx_closed {
                return Status::CLOSED;
            }
            if !st.waiters.is_empty() {
                return Status::EMPTY; // pending receives go first
            }
            match self.take_now(&mut st) {
                Ok(Some(m)) => m,
                Ok(None) => return Status::EMPTY,
                Err(s) => return s,
            }
        };
        let view = msg.view();
        // SAFETY: the importer's deliver function and `user`, called synchronously on its thread
        // with no lock of ours held; `view` borrows `msg` for the call.
        unsafe { deliver(user, ffi::POC_OK, &view) };
        Status::OK
    }

    /// `recv` of the receiver port.
    ///
    /// # Safety
    ///
    /// `deliver`/`on_complete`/`user` as bridge.h's `recv`.
    pub(crate) unsafe fn recv(
        self: &Arc<Self>,
        deliver: RecvFn,
        on_complete: RecvFn,
        user: *mut std::ffi::c_void,
        op_out: &mut ffi::poc_op_id,
    ) -> Status {
        let mut st = lock(&self.recv);
        if self.stopping() {
            return Status::SHUTDOWN;
        }
        if st.rx_closed {
            return Status::CLOSED;
        }
        if st.waiters.is_empty() {
            match self.take_now(&mut st) {
                Ok(Some(msg)) => {
                    drop(st);
                    let view = msg.view();
                    // SAFETY: as in `try_recv`: synchronous, no lock held, view borrowed.
                    unsafe { deliver(user, ffi::POC_OK, &view) };
                    return Status::OK;
                }
                Ok(None) => {}
                Err(s) => return s,
            }
        }
        let op = self.rt.next_op_id();
        *op_out = op; // before the op is visible to the pump
        st.waiters.push_back(RecvWaiter { op, done: Completion::recv(on_complete, user) });
        let spawn = !st.pump_running;
        st.pump_running = true;
        drop(st);
        if spawn {
            let chan = Arc::clone(self);
            self.rt.spawn(async move { poll_fn(|cx| chan.pump_recv(cx)).await });
        }
        Status::PENDING
    }

    /// One poll of the receive pump: hands queued messages to pending receives in issue order.
    fn pump_recv(&self, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..PUMP_BATCH {
            let mut st = lock(&self.recv);
            if st.waiters.is_empty() || st.rx_closed || self.stopping() {
                st.pump_running = false;
                st.pump_waker = None;
                return Poll::Ready(());
            }
            let no_more = self.no_more_sends.load(Ordering::Acquire);
            match poll_queue(&mut st.rx, cx.waker()) {
                Poll::Ready(Some(msg)) => {
                    let w = st.waiters.pop_front().expect("checked non-empty");
                    drop(st);
                    w.done.complete(Status::OK, Some(&msg));
                }
                Poll::Pending if !no_more => {
                    if !st.pump_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        st.pump_waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                // Closed and drained (`Ready(None)` cannot happen while we hold a `Sender`
                // and the receive side is open; treated the same).
                Poll::Pending | Poll::Ready(None) => {
                    let waiters = std::mem::take(&mut st.waiters);
                    st.pump_running = false;
                    st.pump_waker = None;
                    drop(st);
                    let status = self.unless_stopping(Status::CLOSED);
                    for w in waiters {
                        w.done.complete(status, None);
                    }
                    return Poll::Ready(());
                }
            }
        }
        cx.waker().wake_by_ref(); // batch done: yield to other tasks, then continue
        Poll::Pending
    }

    fn wake_recv_pump(&self) {
        let waker = lock(&self.recv).pump_waker.take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// `cancel` of the receiver port.
    pub(crate) fn cancel_recv(&self, op: ffi::poc_op_id) -> Status {
        let (w, waker) = {
            let mut st = lock(&self.recv);
            if self.stopping() {
                return Status::SHUTDOWN;
            }
            let Some(pos) = st.waiters.iter().position(|w| w.op == op) else {
                return Status::OK;
            };
            let w = st.waiters.remove(pos).expect("position is in range");
            let waker = if st.waiters.is_empty() { st.pump_waker.take() } else { None };
            (w, waker)
        };
        if let Some(waker) = waker {
            waker.wake(); // let an idle pump end
        }
        self.rt.defer(vec![(w.done, Status::CANCELLED)]);
        Status::OK
    }

    /// `close` (and `release`) of the receiver port: pending and later sends fail `CLOSED`,
    /// queued messages are dropped, pending receives complete `CLOSED`. Idempotent.
    pub(crate) fn close_receiver(&self, check_stopping: bool) -> Status {
        let mut out = Vec::new();
        let (dropped, waker) = {
            let mut st = lock(&self.recv);
            if check_stopping && self.stopping() {
                return Status::SHUTDOWN;
            }
            st.rx_closed = true;
            st.rx.close();
            let mut dropped = Vec::new();
            while let Poll::Ready(Some(m)) = poll_queue(&mut st.rx, futures::task::noop_waker_ref()) {
                dropped.push(m);
            }
            let status = self.unless_stopping(Status::CLOSED);
            out.extend(st.waiters.drain(..).map(|w| (w.done, status)));
            (dropped, st.pump_waker.take())
        };
        drop(dropped);
        {
            let mut st = lock(&self.send);
            self.close_for_sends(&mut st, &mut out);
        }
        self.send_pump_wake.notify_one();
        if let Some(w) = waker {
            w.wake();
        }
        self.rt.defer(out);
        Status::OK
    }

    // ------------------------------------------------------------------------------------------
    // Shutdown
    // ------------------------------------------------------------------------------------------

    /// Takes every pending op (the runtime is already marked stopping) for completion with
    /// `SHUTDOWN`, and wakes the pumps so they end.
    pub(crate) fn take_all_for_shutdown(&self, out: &mut Vec<(Completion, Status)>) {
        {
            let mut st = lock(&self.send);
            out.extend(st.waiters.drain(..).map(|w| (w.done, Status::SHUTDOWN)));
        }
        self.send_pump_wake.notify_one();
        let waker = {
            let mut st = lock(&self.recv);
            out.extend(st.waiters.drain(..).map(|w| (w.done, Status::SHUTDOWN)));
            st.pump_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Drop for Chan {
    fn drop(&mut self) {
        self.rt.forget_channel(self.id);
    }
}
