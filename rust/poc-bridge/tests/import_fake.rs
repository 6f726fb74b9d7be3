//! The import adapter against a fake port (tests/common/fake.rs) whose every move the test
//! controls: complete inline before `send`/`recv` returns, complete later from another thread,
//! count cancels and releases — each race of the wake-up adapter forced deterministically.
//! No tokio here.

mod common;

use std::ffi::c_void;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Poll, Wake, Waker};

use common::fake::*;
use common::*;
use futures::channel::oneshot;
use futures::{future, SinkExt, StreamExt};
use poc_bridge::ffi;
use poc_bridge::{ImportError, Message, PortReceiver, PortSender, RecvError, SendError, Status, TryRecvError, TrySendError};

fn m(id: u64) -> Message {
    Message::with_pattern(id, 11)
}

// --- send ---------------------------------------------------------------------------------------

#[test]
fn send_fast_path_resolves_on_first_poll() {
    let (tx, f) = fake_sender(Mode::Ok);
    let (wakes, waker) = counting_waker();
    let mut fut = tx.send(m(1));
    assert!(matches!(poll_once(&mut fut, &waker), Poll::Ready(Ok(()))));
    drop(fut);
    assert_eq!(f.sent.lock().unwrap()[0], m(1));
    assert_eq!(wakes.wakes.load(Ordering::SeqCst), 0);
    assert!(f.cancels.lock().unwrap().is_empty());
}

#[test]
fn send_completed_inside_the_call_resolves_without_a_wake() {
    let (tx, f) = fake_sender(Mode::InlineThenPending(Status::OK));
    let (_, waker) = counting_waker();
    let mut fut = tx.send(m(1));
    assert!(matches!(poll_once(&mut fut, &waker), Poll::Ready(Ok(()))), "completion before return is not lost");
    drop(fut);
    assert!(f.cancels.lock().unwrap().is_empty(), "a completed op is not cancelled");
    // the adapter keeps working afterwards (the slot was reclaimed and recycled)
    for i in 0..100 {
        assert!(matches!(poll_once(&mut tx.send(m(i)), &waker), Poll::Ready(Ok(()))));
    }
}

#[test]
fn pending_send_wakes_the_task_when_completed_from_another_thread() {
    let (tx, f) = fake_sender(Mode::Pending);
    let (wakes, waker) = counting_waker();
    let mut fut = tx.send(m(1));
    assert!(poll_once(&mut fut, &waker).is_pending());
    assert!(poll_once(&mut fut, &waker).is_pending(), "a second poll does not issue a second send");
    assert_eq!(f.sends.load(Ordering::SeqCst), 1);
    let op = f.pending()[0];
    let f2 = f.clone();
    within("complete from another thread", move || f2.complete_send(op, Status::OK));
    assert_eq!(wakes.wakes.load(Ordering::SeqCst), 1, "woken exactly once through the stored waker");
    assert!(matches!(poll_once(&mut fut, &waker), Poll::Ready(Ok(()))));
}

#[test]
fn send_errors_give_the_message_back() {
    let (tx, f) = fake_sender(Mode::Fail(Status::CLOSED));
    let e = futures::executor::block_on(tx.send(m(5))).unwrap_err();
    assert!(matches!(&e, SendError::Closed(msg) if *msg == m(5)));
    f.set_mode(Mode::Fail(Status::INVALID));
    let e = futures::executor::block_on(tx.send(m(6))).unwrap_err();
    assert_eq!(e.status(), Status::INVALID);
    assert_eq!(e.into_inner(), m(6));
    f.set_mode(Mode::Fail(Status::SHUTDOWN));
    assert!(matches!(tx.try_send(m(7)), Err(TrySendError::Shutdown(x)) if x == m(7)));
    f.set_mode(Mode::Pending);
    assert!(matches!(tx.try_send(m(8)), Err(TrySendError::Full(x)) if x == m(8)));
    // a pending send that completes CLOSED gives the message back too
    let (_, waker) = counting_waker();
    let mut fut = tx.send(m(9));
    assert!(poll_once(&mut fut, &waker).is_pending());
    f.complete_send(f.pending()[0], Status::CLOSED);
    match poll_once(&mut fut, &waker) {
        Poll::Ready(Err(SendError::Closed(x))) => assert_eq!(x, m(9)),
        other => panic!("expected Closed with the message, got {other:?}"),
    }
}

#[test]
fn dropping_a_pending_send_cancels_it_once() {
    let (tx, f) = fake_sender(Mode::Pending);
    let (_, waker) = counting_waker();
    let mut fut = tx.send(m(1));
    assert!(poll_once(&mut fut, &waker).is_pending());
    let op = f.pending()[0];
    drop(fut);
    assert_eq!(*f.cancels.lock().unwrap(), [op]);
    // the exporter completes the cancelled op later, from another thread: no crash, no wake
    // needed, the slot is freed by the completion
    let f2 = f.clone();
    within("complete cancelled send", move || f2.complete_send(op, Status::CANCELLED));
    // dropping an unpolled or finished future does not cancel
    drop(tx.send(m(2)));
    f.set_mode(Mode::Ok);
    futures::executor::block_on(tx.send(m(3))).unwrap();
    assert_eq!(f.cancels.lock().unwrap().len(), 1);
}

// --- cancel with a known outcome: SendFuture::cancel, PortSender::send_with_cancel --------------

/// The race a dropped send cannot report: the cancel reached the port, but the send won (the
/// exporter completes it OK — the message is enqueued). `cancel()` keeps the future, which says so.
#[test]
fn explicit_cancel_of_a_pending_send_that_won_the_race_resolves_ok() {
    let (tx, f) = fake_sender(Mode::Pending);
    let (wakes, waker) = counting_waker();
    let mut fut = tx.send(m(1));
    assert!(poll_once(&mut fut, &waker).is_pending());
    let op = f.pending()[0];
    fut.cancel();
    fut.cancel();
    assert_eq!(*f.cancels.lock().unwrap(), [op], "the port's cancel is requested once");
    assert!(poll_once(&mut fut, &waker).is_pending(), "the outcome is not known until the op completes");
    let f2 = f.clone();
    within("the cancelled send wins the race", move || f2.complete_send(op, Status::OK));
    assert_eq!(wakes.wakes.load(Ordering::SeqCst), 1, "the completion wakes the task");
    assert!(matches!(poll_once(&mut fut, &waker), Poll::Ready(Ok(()))), "enqueued: Ok");
    fut.cancel(); // resolved: nothing to do
    drop(fut);
    assert_eq!(f.cancels.lock().unwrap().len(), 1);
}

/// The other outcome of the same race: the cancel took effect (CANCELLED), nothing was enqueued,
/// and the message comes back.
#[test]
fn explicit_cancel_of_a_pending_send_that_had_no_effect_gives_the_message_back() {
    let (tx, f) = fake_sender(Mode::Pending);
    let (_, waker) = counting_waker();
    let mut fut = tx.send(m(1));
    assert!(poll_once(&mut fut, &waker).is_pending());
    let op = f.pending()[0];
    fut.cancel();
    assert_eq!(*f.cancels.lock().unwrap(), [op]);
    let f2 = f.clone();
    within("the cancel takes effect", move || f2.complete_send(op, Status::CANCELLED));
    match poll_once(&mut fut, &waker) {
        Poll::Ready(Err(e @ SendError::Cancelled(_))) => {
            assert!(e.is_cancelled());
            assert_eq!(e.status(), Status::CANCELLED);
            assert_eq!(e.into_inner(), m(1), "the unsent message comes back");
        }
        other => panic!("expected Cancelled with the message, got {other:?}"),
    }
    // any other real outcome is reported as is (here the channel closed meanwhile)
    let mut fut = tx.send(m(2));
    assert!(poll_once(&mut fut, &waker).is_pending());
    fut.cancel();
    f.complete_send(f.pending()[0], Status::CLOSED);
    assert!(matches!(poll_once(&mut fut, &waker), Poll::Ready(Err(SendError::Closed(x))) if x == m(2)));
}

#[test]
fn explicit_cancel_before_the_first_poll_sends_nothing() {
    let (tx, f) = fake_sender(Mode::Ok);
    let (_, waker) = counting_waker();
    let mut fut = tx.send(m(1));
    fut.cancel();
    assert!(matches!(poll_once(&mut fut, &waker), Poll::Ready(Err(SendError::Cancelled(x))) if x == m(1)));
    assert_eq!(f.sends.load(Ordering::SeqCst), 0, "the port was never called");
    assert!(f.cancels.lock().unwrap().is_empty() && f.sent.lock().unwrap().is_empty());
}

/// The completion was published before `cancel()` (the task had not polled yet): no cancel is
/// sent to the port and the future resolves with the published outcome.
#[test]
fn explicit_cancel_after_the_completion_was_published_does_not_ask_the_port() {
    let (tx, f) = fake_sender(Mode::Pending);
    let (_, waker) = counting_waker();
    let mut fut = tx.send(m(1));
    assert!(poll_once(&mut fut, &waker).is_pending());
    f.complete_send(f.pending()[0], Status::OK);
    fut.cancel();
    assert!(f.cancels.lock().unwrap().is_empty(), "a completed op is not cancelled");
    assert!(matches!(poll_once(&mut fut, &waker), Poll::Ready(Ok(()))));
}

#[test]
fn send_with_cancel_signalled_before_the_start_sends_nothing() {
    let (tx, f) = fake_sender(Mode::Ok);
    let e = block_on_local(tx.send_with_cancel(m(1), future::ready(()))).unwrap_err();
    assert!(matches!(&e, SendError::Cancelled(x) if *x == m(1)), "{e:?}");
    assert_eq!(f.sends.load(Ordering::SeqCst), 0, "the port was never called");
    // a signal that never fires: an ordinary send
    block_on_local(tx.send_with_cancel(m(2), future::pending::<()>())).unwrap();
    assert_eq!(*f.sent.lock().unwrap(), [m(2)]);
    assert!(f.cancels.lock().unwrap().is_empty());
}

#[test]
fn send_with_cancel_reports_a_send_that_won_the_race_as_ok() {
    let (tx, f) = fake_sender(Mode::Pending);
    let (stop, signal) = oneshot::channel::<()>();
    let (wakes, waker) = counting_waker();
    let mut fut = tx.send_with_cancel(m(1), signal);
    assert!(poll_once(&mut fut, &waker).is_pending());
    let op = f.pending()[0];
    stop.send(()).unwrap();
    assert_eq!(wakes.wakes.load(Ordering::SeqCst), 1, "the signal wakes the task");
    assert!(poll_once(&mut fut, &waker).is_pending(), "cancel requested; the outcome is not known yet");
    assert_eq!(*f.cancels.lock().unwrap(), [op]);
    let f2 = f.clone();
    within("the cancelled send wins the race", move || f2.complete_send(op, Status::OK));
    assert_eq!(wakes.wakes.load(Ordering::SeqCst), 2, "the completion wakes the task");
    assert!(matches!(poll_once(&mut fut, &waker), Poll::Ready(Ok(()))), "enqueued: Ok");
    assert_eq!(f.cancels.lock().unwrap().len(), 1);
}

#[test]
fn send_with_cancel_reports_a_cancel_that_took_effect_with_the_message() {
    let (tx, f) = fake_sender(Mode::Pending);
    let (stop, signal) = oneshot::channel::<()>();
    let (_, waker) = counting_waker();
    let mut fut = tx.send_with_cancel(m(1), signal);
    assert!(poll_once(&mut fut, &waker).is_pending());
    let op = f.pending()[0];
    stop.send(()).unwrap();
    assert!(poll_once(&mut fut, &waker).is_pending());
    assert_eq!(*f.cancels.lock().unwrap(), [op]);
    let f2 = f.clone();
    within("the cancel takes effect", move || f2.complete_send(op, Status::CANCELLED));
    assert!(matches!(poll_once(&mut fut, &waker), Poll::Ready(Err(SendError::Cancelled(x))) if x == m(1)));
}

/// Completion and signal both happened before the next poll: the published outcome wins, and
/// the port is not asked to cancel an op that is over.
#[test]
fn send_with_cancel_prefers_an_outcome_published_before_the_signal() {
    let (tx, f) = fake_sender(Mode::Pending);
    let (stop, signal) = oneshot::channel::<()>();
    let (_, waker) = counting_waker();
    let mut fut = tx.send_with_cancel(m(1), signal);
    assert!(poll_once(&mut fut, &waker).is_pending());
    f.complete_send(f.pending()[0], Status::OK);
    stop.send(()).unwrap();
    assert!(matches!(poll_once(&mut fut, &waker), Poll::Ready(Ok(()))));
    assert!(f.cancels.lock().unwrap().is_empty());
    // completed inside the call (before `send` returned): resolved on the first poll, signal or not
    f.set_mode(Mode::InlineThenPending(Status::OK));
    let (stop, signal) = oneshot::channel::<()>();
    let mut fut = tx.send_with_cancel(m(2), signal);
    assert!(matches!(poll_once(&mut fut, &waker), Poll::Ready(Ok(()))));
    drop(stop);
    assert!(f.cancels.lock().unwrap().is_empty());
}

/// Any future is a signal, including a `!Unpin` one (an `async` block, pinned in place by the
/// send): here it fires from another thread while the task is parked in `block_on`, the send
/// wins the race, and the task learns it.
#[test]
fn send_with_cancel_takes_any_signal_future() {
    let (tx, f) = fake_sender(Mode::Pending);
    let (stop, signal) = oneshot::channel::<()>();
    let f2 = f.clone();
    let exporter = std::thread::spawn(move || {
        let op = f2.wait_pending();
        stop.send(()).unwrap();
        f2.wait_cancel(op);
        f2.complete_send(op, Status::OK);
    });
    let r = block_on("send with an async-block signal", async move {
        let signal = async move {
            let _ = signal.await;
        };
        tx.send_with_cancel(m(1), signal).await
    });
    assert!(r.is_ok(), "the send won: Ok, got {r:?}");
    within("exporter thread", move || exporter.join().unwrap());
}

#[test]
fn sink_sends_in_order_and_close_closes_the_port() {
    let (mut tx, f) = fake_sender(Mode::Pending);
    let f2 = f.clone();
    // complete each pending send from another thread as it appears
    let completer = std::thread::spawn(move || {
        for _ in 0..3 {
            let op = f2.wait_pending();
            f2.complete_send(op, Status::OK);
        }
    });
    block_on_local(async {
        tx.feed(m(1)).await.unwrap();
        tx.feed(m(2)).await.unwrap();
        tx.send(m(3)).await.unwrap(); // SinkExt::send: feed + flush
        SinkExt::close(&mut tx).await.unwrap();
    });
    within("completer thread", move || completer.join().unwrap());
    assert_eq!(f.closes.load(Ordering::SeqCst), 1);
    assert_eq!(f.sends.load(Ordering::SeqCst), 3);
}

fn block_on_local<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

// --- recv ---------------------------------------------------------------------------------------

#[test]
fn recv_fast_path_delivers_synchronously() {
    let (mut rx, f) = fake_receiver(Mode::Pending);
    f.queue.lock().unwrap().push_back(m(1));
    let (wakes, waker) = counting_waker();
    let mut fut = rx.recv();
    match poll_once(&mut fut, &waker) {
        Poll::Ready(Ok(msg)) => assert_eq!(msg, m(1)),
        other => panic!("{other:?}"),
    }
    drop(fut);
    assert_eq!(wakes.wakes.load(Ordering::SeqCst), 0);
    assert!(f.cancels.lock().unwrap().is_empty());
    f.queue.lock().unwrap().push_back(m(2));
    assert_eq!(rx.try_recv().unwrap(), m(2));
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
}

#[test]
fn recv_completed_inside_the_call_resolves_on_the_same_poll() {
    let (mut rx, _f) = fake_receiver(Mode::InlineThenPending(Status::OK));
    let (_, waker) = counting_waker();
    let mut fut = rx.recv();
    match poll_once(&mut fut, &waker) {
        Poll::Ready(Ok(msg)) => assert_eq!(msg.payload, b"inline"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pending_recv_wakes_and_returns_the_message() {
    let (mut rx, f) = fake_receiver(Mode::Pending);
    let (wakes, waker) = counting_waker();
    let mut fut = rx.recv();
    assert!(poll_once(&mut fut, &waker).is_pending());
    let op = f.pending()[0];
    let f2 = f.clone();
    within("complete recv from another thread", move || f2.complete_recv(op, Status::OK, Some(&m(42))));
    assert_eq!(wakes.wakes.load(Ordering::SeqCst), 1);
    match poll_once(&mut fut, &waker) {
        Poll::Ready(Ok(msg)) => assert_eq!(msg, m(42)),
        other => panic!("{other:?}"),
    }
    drop(fut);
    // statuses map to errors
    let mut fut = rx.recv();
    assert!(poll_once(&mut fut, &waker).is_pending());
    f.complete_recv(f.pending()[0], Status::SHUTDOWN, None);
    assert!(matches!(poll_once(&mut fut, &waker), Poll::Ready(Err(RecvError::Shutdown))));
    drop(fut);
    f.set_mode(Mode::Fail(Status::CLOSED));
    assert_eq!(futures::executor::block_on(rx.recv()).unwrap_err(), RecvError::Closed);
}

#[test]
fn a_message_that_wins_the_cancel_race_is_stashed_for_the_next_recv() {
    let (mut rx, f) = fake_receiver(Mode::Pending);
    let (_, waker) = counting_waker();
    let mut fut = rx.recv();
    assert!(poll_once(&mut fut, &waker).is_pending());
    let op = f.pending()[0];
    drop(fut); // the awaiting task is cancelled
    assert_eq!(*f.cancels.lock().unwrap(), [op]);
    // ... but the op won the race: it completes with a message, on another thread
    let f2 = f.clone();
    within("completion after cancel", move || f2.complete_recv(op, Status::OK, Some(&m(7))));
    assert!(rx.has_inflight(), "the message waits in the stash");
    // the next recv returns it without asking the port again
    let got = futures::executor::block_on(rx.recv()).unwrap();
    assert_eq!(got, m(7));
    assert_eq!(f.recvs.load(Ordering::SeqCst), 1);
    assert!(!rx.has_inflight());
    // try_recv sees the stash too
    let mut fut = rx.recv();
    assert!(poll_once(&mut fut, &waker).is_pending());
    let op = f.pending()[0];
    drop(fut);
    f.complete_recv(op, Status::OK, Some(&m(8)));
    assert_eq!(rx.try_recv().unwrap(), m(8));
}

#[test]
fn a_cancelled_recv_is_reissued_and_the_new_recv_waits_for_the_cancel_to_resolve() {
    let (mut rx, f) = fake_receiver(Mode::Pending);
    let (_, waker) = counting_waker();
    let mut fut = rx.recv();
    assert!(poll_once(&mut fut, &waker).is_pending());
    let first = f.pending()[0];
    drop(fut);
    // the cancel has not resolved yet: a new recv must not overtake the old op
    let (wakes, waker2) = counting_waker();
    let mut fut = rx.recv();
    assert!(poll_once(&mut fut, &waker2).is_pending());
    assert_eq!(f.recvs.load(Ordering::SeqCst), 1, "no second recv while the first may still bring a message");
    drop(fut); // dropping again does not cancel twice
    assert_eq!(f.cancels.lock().unwrap().len(), 1);
    let mut fut = rx.recv();
    assert!(poll_once(&mut fut, &waker2).is_pending());
    assert_eq!(f.recvs.load(Ordering::SeqCst), 1);
    f.complete_recv(first, Status::CANCELLED, None);
    assert_eq!(wakes.wakes.load(Ordering::SeqCst), 1, "the new future is woken by the old op's completion");
    // now it issues a fresh op
    assert!(poll_once(&mut fut, &waker2).is_pending());
    assert_eq!(f.recvs.load(Ordering::SeqCst), 2);
    let second = f.pending()[0];
    assert_ne!(first, second);
    f.complete_recv(second, Status::OK, Some(&m(3)));
    assert!(matches!(poll_once(&mut fut, &waker2), Poll::Ready(Ok(x)) if x == m(3)));
}

#[test]
fn try_recv_does_not_overtake_an_unresolved_cancelled_recv() {
    let (mut rx, f) = fake_receiver(Mode::Pending);
    f.queue.lock().unwrap().push_back(m(99)); // would be the *next* message
    let (_, waker) = counting_waker();
    // make an op pending (the queue is consumed only by the fast path, so empty it first)
    let queued = f.queue.lock().unwrap().pop_front().unwrap();
    let mut fut = rx.recv();
    assert!(poll_once(&mut fut, &waker).is_pending());
    drop(fut);
    f.queue.lock().unwrap().push_back(queued);
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    assert_eq!(f.queue.lock().unwrap().len(), 1, "the port was not asked");
    let op = f.pending()[0];
    f.complete_recv(op, Status::CANCELLED, None);
    assert_eq!(rx.try_recv().unwrap(), m(99));
}

/// A waker that panics when woken: the C callback must contain the panic (an extern "C" fn
/// that unwinds would abort the process).
struct PanickingWaker;
impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("waker panicked (expected by the test)");
    }
}

#[test]
fn a_panicking_waker_is_contained_in_the_callback() {
    let (mut rx, f) = fake_receiver(Mode::Pending);
    let bad = Waker::from(Arc::new(PanickingWaker));
    let mut fut = rx.recv();
    assert!(poll_once(&mut fut, &bad).is_pending());
    let op = f.pending()[0];
    let f2 = f.clone();
    within("completion that hits a panicking waker", move || f2.complete_recv(op, Status::OK, Some(&m(1))));
    // the outcome was stored before the wake: a later poll finds it
    let (_, good) = counting_waker();
    assert!(matches!(poll_once(&mut fut, &good), Poll::Ready(Ok(x)) if x == m(1)));
    drop(fut);

    let (tx, f) = fake_sender(Mode::Pending);
    let mut fut = tx.send(m(2));
    assert!(poll_once(&mut fut, &bad).is_pending());
    let op = f.pending()[0];
    let f2 = f.clone();
    within("send completion with a panicking waker", move || f2.complete_send(op, Status::OK));
    assert!(matches!(poll_once(&mut fut, &good), Poll::Ready(Ok(()))));
}

#[test]
fn stream_yields_until_closed() {
    let (rx, f) = fake_receiver(Mode::Fail(Status::CLOSED));
    for i in 0..5 {
        f.queue.lock().unwrap().push_back(m(i));
    }
    let got: Vec<Message> = futures::executor::block_on(rx.collect());
    assert_eq!(got, (0..5).map(m).collect::<Vec<_>>());
    assert_eq!(f.releases.load(Ordering::SeqCst), 1, "collect consumed and dropped the receiver");
}

// --- ownership and validation ------------------------------------------------------------------

#[test]
fn ports_are_released_exactly_once_and_into_raw_gives_them_back() {
    let (tx, f) = fake_sender(Mode::Ok);
    drop(tx);
    assert_eq!(f.releases.load(Ordering::SeqCst), 1);
    let (tx, f) = fake_sender(Mode::Ok);
    let raw = tx.into_raw();
    assert_eq!(f.releases.load(Ordering::SeqCst), 0);
    let tx = unsafe { PortSender::from_raw(raw) }.unwrap();
    assert_eq!(tx.close(), Status::OK);
    drop(tx);
    assert_eq!(f.releases.load(Ordering::SeqCst), 1);

    let (mut rx, f) = fake_receiver(Mode::Pending);
    let (_, waker) = counting_waker();
    assert!(poll_once(&mut rx.recv(), &waker).is_pending()); // dropped at once: cancel requested
    let op = f.pending()[0];
    drop(rx); // release while the op is still pending
    assert_eq!(f.releases.load(Ordering::SeqCst), 1);
    assert_eq!(f.cancels.lock().unwrap().len(), 1, "cancel was requested once");
    // the exporter completes the op after the release: the slot is still valid
    within("completion after release", move || f.complete_recv(op, Status::CLOSED, None));
}

#[test]
fn unusable_vtables_are_rejected_and_the_port_is_not_taken() {
    let (h, f) = Fake::new(Mode::Ok);
    let null = ffi::poc_sender { handle: h, vtable: std::ptr::null() };
    assert_eq!(unsafe { PortSender::from_raw(null) }.unwrap_err(), ImportError { reason: "NULL vtable" });
    static OLD: ffi::poc_sender_vtable = ffi::poc_sender_vtable { abi_version: 0, ..SENDER_VT };
    static SMALL: ffi::poc_sender_vtable = ffi::poc_sender_vtable { size: 8, ..SENDER_VT };
    static HOLE: ffi::poc_sender_vtable = ffi::poc_sender_vtable { cancel: None, ..SENDER_VT };
    for vt in [&OLD, &SMALL, &HOLE] {
        assert!(unsafe { PortSender::from_raw(ffi::poc_sender { handle: h, vtable: vt }) }.is_err());
    }
    static RHOLE: ffi::poc_receiver_vtable = ffi::poc_receiver_vtable { recv: None, ..RECEIVER_VT };
    assert!(unsafe { PortReceiver::from_raw(ffi::poc_receiver { handle: h, vtable: &RHOLE }) }.is_err());
    assert_eq!(f.releases.load(Ordering::SeqCst), 0, "a rejected port is not released");
}

#[test]
fn callbacks_ignore_a_null_user() {
    // Defensive: an exporter that passes NULL must not crash the importer. Reach the adapter's
    // callbacks through a pending op, then complete it with the right pointer afterwards.
    let (tx, f) = fake_sender(Mode::Pending);
    let (_, waker) = counting_waker();
    let mut fut = tx.send(m(1));
    assert!(poll_once(&mut fut, &waker).is_pending());
    let op = f.take_op(f.pending()[0]);
    unsafe { (op.send_cb.unwrap())(std::ptr::null_mut(), ffi::POC_OK) };
    unsafe { (op.send_cb.unwrap())(op.user as *mut c_void, ffi::POC_OK) };
    assert!(matches!(poll_once(&mut fut, &waker), Poll::Ready(Ok(()))));
}
