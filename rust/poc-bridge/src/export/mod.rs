//! The exporter: tokio channels handed out as bridge.h ports.
//!
//! `poc_rust_channel_new` (or [`Runtime::channel_ports`](crate::Runtime::channel_ports)) makes a
//! bounded `tokio::sync::mpsc` channel (`export/channel.rs` explains the semantics built around
//! it) and registers one sender and one receiver port in the process-wide handle table
//! (`export/handles.rs`).
//! Importers reach them through the two static vtables below; every function:
//!
//! * resolves the handle first — 0, stale, released, forged, foreign or wrong-kind → `INVALID`,
//!   never undefined behaviour;
//! * checks its pointers (`INVALID` for NULL) and, for sends, the payload size (`INVALID` over
//!   the channel's limit) — before anything happens;
//! * never blocks and never waits for another thread; completions run exactly once, on a thread
//!   of the runtime, never under one of our locks; deliver functions run on the calling thread
//!   after our locks are released;
//! * catches panics at the boundary: a panic becomes `POC_PANIC` (bridge.h rule 9).
//!
//! The handoff steps are in docs/contract.md ("Send", "Receive", "Cancel", "Close and release",
//! "Shutdown").
//!
//! Why tokio's mpsc rather than `async-channel`: bridge.h gives each channel exactly one receiver
//! port, whose concurrent receives must be served in issue order — an order we keep ourselves
//! (the receive FIFO), so async-channel's MPMC buys nothing; tokio's `reserve()` permit lets the
//! send pump dequeue an op and enqueue its message atomically under our lock, which is what makes
//! `cancel` exact; and it is the runtime's native channel (ARCHITECTURE.md §1).

pub(crate) mod channel;
pub(crate) mod completion;
pub(crate) mod handles;

use std::ffi::c_void;

use crate::ffi;
use crate::import::slot::contain;
use crate::Status;

#[cfg(test)]
thread_local! {
    /// Unit tests: make the next exported call on this thread panic inside its guard.
    pub(crate) static FAULT_PANIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs the body of an exported function: a panic becomes `POC_PANIC` (bridge.h rule 9).
pub(crate) fn ffi_guard(f: impl FnOnce() -> Status) -> ffi::poc_status {
    let status = contain(|| {
        #[cfg(test)]
        if FAULT_PANIC.with(|f| f.replace(false)) {
            panic!("injected fault (expected by the test)");
        }
        f()
    })
    .unwrap_or(Status::PANIC);
    // A foreign thread was here: a Rust worker spinning before it parks may have work now.
    crate::idle::note_foreign_event();
    status.0
}

/// The vtable of every sender port this crate exports.
pub static SENDER_VTABLE: ffi::poc_sender_vtable = ffi::poc_sender_vtable {
    abi_version: ffi::POC_ABI_VERSION,
    size: std::mem::size_of::<ffi::poc_sender_vtable>() as u32,
    try_send: Some(sender_try_send),
    send: Some(sender_send),
    cancel: Some(sender_cancel),
    close: Some(sender_close),
    clone: Some(sender_clone),
    release: Some(sender_release),
};

/// The vtable of every receiver port this crate exports.
pub static RECEIVER_VTABLE: ffi::poc_receiver_vtable = ffi::poc_receiver_vtable {
    abi_version: ffi::POC_ABI_VERSION,
    size: std::mem::size_of::<ffi::poc_receiver_vtable>() as u32,
    try_recv: Some(receiver_try_recv),
    recv: Some(receiver_recv),
    cancel: Some(receiver_cancel),
    close: Some(receiver_close),
    release: Some(receiver_release),
};

// ---------------------------------------------------------------------------------------------
// Sender vtable
// ---------------------------------------------------------------------------------------------

/// `poc_sender_vtable::try_send`.
///
/// # Safety
///
/// `msg` is NULL or points to a valid view whose bytes are readable for the call.
unsafe extern "C" fn sender_try_send(handle: u64, msg: *const ffi::poc_message_view) -> ffi::poc_status {
    ffi_guard(|| {
        let Some(port) = handles::sender(handle) else { return Status::INVALID };
        // SAFETY: `msg` is NULL or a valid view (the caller's promise).
        let Some(view) = (unsafe { msg.as_ref() }) else { return Status::INVALID };
        // SAFETY: the view's bytes are readable for the call.
        unsafe { port.chan.try_send(&port, view) }
    })
}

/// `poc_sender_vtable::send`: `OK` (enqueued, no completion), `PENDING` (`*op` written first;
/// `on_complete` then runs exactly once, on a runtime thread, never under a lock), or an error.
///
/// # Safety
///
/// `msg` as for `try_send`; `op` NULL or writable; `on_complete(user, …)` callable from any
/// runtime thread until it has run.
unsafe extern "C" fn sender_send(
    handle: u64,
    msg: *const ffi::poc_message_view,
    on_complete: ffi::poc_send_complete_fn,
    user: *mut c_void,
    op: *mut ffi::poc_op_id,
) -> ffi::poc_status {
    ffi_guard(|| {
        let Some(port) = handles::sender(handle) else { return Status::INVALID };
        // SAFETY: `msg` NULL or valid, `op` NULL or writable (the caller's promise).
        let (Some(view), Some(on_complete), Some(op)) = (unsafe { msg.as_ref() }, on_complete, unsafe { op.as_mut() })
        else {
            return Status::INVALID;
        };
        // SAFETY: forwarded: readable view; `on_complete(user, …)` callable from our threads.
        unsafe { port.chan.send(&port, view, on_complete, user, op) }
    })
}

/// `poc_sender_vtable::cancel`: a request; `OK` also for a completed or unknown op.
///
/// # Safety
///
/// None beyond bridge.h: any `handle` value is answered (`INVALID` when it names no live port).
unsafe extern "C" fn sender_cancel(handle: u64, op: ffi::poc_op_id) -> ffi::poc_status {
    ffi_guard(|| match handles::sender(handle) {
        Some(port) => port.chan.cancel_send(&port, op),
        None => Status::INVALID,
    })
}

/// `poc_sender_vtable::close`: closes the channel for every sender. Idempotent.
///
/// # Safety
///
/// None beyond bridge.h: any `handle` value is answered (`INVALID` when it names no live port).
unsafe extern "C" fn sender_close(handle: u64) -> ffi::poc_status {
    ffi_guard(|| match handles::sender(handle) {
        Some(port) => port.chan.close_sender(&port),
        None => Status::INVALID,
    })
}

/// `poc_sender_vtable::clone`: another sender port for the same channel into `*out`.
///
/// # Safety
///
/// `out` NULL or writable.
unsafe extern "C" fn sender_clone(handle: u64, out: *mut ffi::poc_sender) -> ffi::poc_status {
    ffi_guard(|| {
        let Some(port) = handles::sender(handle) else { return Status::INVALID };
        // SAFETY: `out` NULL or writable (the caller's promise).
        let Some(out) = (unsafe { out.as_mut() }) else { return Status::INVALID };
        let st = port.chan.add_sender(&port);
        if st != Status::OK {
            return st;
        }
        match handles::insert_sender(port.chan.clone()) {
            Some(h) => {
                *out = ffi::poc_sender { handle: h, vtable: &SENDER_VTABLE };
                Status::OK
            }
            None => {
                port.chan.forget_sender();
                Status::INVALID
            }
        }
    })
}

/// `poc_sender_vtable::release`: gives the port back (valid after shutdown). Its pending sends
/// complete `CANCELLED`; the last sender closes the channel. A second release is `INVALID`.
///
/// # Safety
///
/// None beyond bridge.h: any `handle` value is answered (`INVALID` when it names no live port).
unsafe extern "C" fn sender_release(handle: u64) -> ffi::poc_status {
    ffi_guard(|| match handles::remove_sender(handle) {
        Some(port) => {
            port.chan.release_sender(&port);
            Status::OK
        }
        None => Status::INVALID,
    })
}

// ---------------------------------------------------------------------------------------------
// Receiver vtable
// ---------------------------------------------------------------------------------------------

/// `poc_receiver_vtable::try_recv`: `deliver(user, OK, &msg)` runs on this thread, after our
/// locks are released, before `OK` is returned.
///
/// # Safety
///
/// `deliver(user, …)` callable on this thread during the call.
unsafe extern "C" fn receiver_try_recv(
    handle: u64,
    deliver: ffi::poc_recv_complete_fn,
    user: *mut c_void,
) -> ffi::poc_status {
    ffi_guard(|| {
        let Some(chan) = handles::receiver(handle) else { return Status::INVALID };
        let Some(deliver) = deliver else { return Status::INVALID };
        // SAFETY: `deliver(user, …)` is callable on this thread during the call.
        unsafe { chan.try_recv(deliver, user) }
    })
}

/// `poc_receiver_vtable::recv`: `OK` after `deliver` ran synchronously (no completion),
/// `PENDING` (`*op` written first; `on_complete` runs exactly once, on a runtime thread, never
/// under a lock), `CLOSED`, `SHUTDOWN` or `INVALID`.
///
/// # Safety
///
/// As `try_recv`; `op` NULL or writable; `on_complete(user, …)` callable from any runtime thread
/// until it has run.
unsafe extern "C" fn receiver_recv(
    handle: u64,
    deliver: ffi::poc_recv_complete_fn,
    on_complete: ffi::poc_recv_complete_fn,
    user: *mut c_void,
    op: *mut ffi::poc_op_id,
) -> ffi::poc_status {
    ffi_guard(|| {
        let Some(chan) = handles::receiver(handle) else { return Status::INVALID };
        // SAFETY: `op` NULL or writable (the caller's promise).
        let (Some(deliver), Some(on_complete), Some(op)) = (deliver, on_complete, unsafe { op.as_mut() }) else {
            return Status::INVALID;
        };
        // SAFETY: forwarded: deliver on this thread, on_complete from our threads, with `user`.
        unsafe { chan.recv(deliver, on_complete, user, op) }
    })
}

/// `poc_receiver_vtable::cancel`: a request; `OK` also for a completed or unknown op.
///
/// # Safety
///
/// None beyond bridge.h: any `handle` value is answered (`INVALID` when it names no live port).
unsafe extern "C" fn receiver_cancel(handle: u64, op: ffi::poc_op_id) -> ffi::poc_status {
    ffi_guard(|| match handles::receiver(handle) {
        Some(chan) => chan.cancel_recv(op),
        None => Status::INVALID,
    })
}

/// `poc_receiver_vtable::close`: closes from the receiving side. Idempotent.
///
/// # Safety
///
/// None beyond bridge.h: any `handle` value is answered (`INVALID` when it names no live port).
unsafe extern "C" fn receiver_close(handle: u64) -> ffi::poc_status {
    ffi_guard(|| match handles::receiver(handle) {
        Some(chan) => chan.close_receiver(true),
        None => Status::INVALID,
    })
}

/// `poc_receiver_vtable::release`: implies close; valid after shutdown; a second release is
/// `INVALID`.
///
/// # Safety
///
/// None beyond bridge.h: any `handle` value is answered (`INVALID` when it names no live port).
unsafe extern "C" fn receiver_release(handle: u64) -> ffi::poc_status {
    ffi_guard(|| match handles::remove_receiver(handle) {
        Some(chan) => {
            chan.close_receiver(false);
            Status::OK
        }
        None => Status::INVALID,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Runtime;

    /// A panic inside an exported function is contained and reported as `POC_PANIC`; the port
    /// and the channel stay usable afterwards.
    #[test]
    fn a_panic_inside_an_exported_function_becomes_poc_panic() {
        let rt = Runtime::new(1).unwrap();
        let (tx, rx) = rt.channel_ports(1, 0).unwrap();
        let view = crate::Message::new(1, vec![1]).view();
        let try_send = SENDER_VTABLE.try_send.unwrap();
        FAULT_PANIC.with(|f| f.set(true));
        assert_eq!(unsafe { try_send(tx.handle, &view) }, ffi::POC_PANIC);
        assert_eq!(unsafe { try_send(tx.handle, &view) }, ffi::POC_OK, "still usable");
        let mut out = std::ptr::null_mut();
        FAULT_PANIC.with(|f| f.set(true));
        assert_eq!(unsafe { crate::poc_rust_runtime_new(1, &mut out) }, ffi::POC_PANIC);
        assert!(out.is_null());
        FAULT_PANIC.with(|f| f.set(true));
        assert_eq!(unsafe { (RECEIVER_VTABLE.close.unwrap())(rx.handle) }, ffi::POC_PANIC);
        unsafe {
            assert_eq!((SENDER_VTABLE.release.unwrap())(tx.handle), ffi::POC_OK);
            assert_eq!((RECEIVER_VTABLE.release.unwrap())(rx.handle), ffi::POC_OK);
        }
        rt.shutdown().unwrap();
    }
}
