//! [`Completion`]: an importer's completion callback that must run exactly once.

use std::ffi::c_void;

use crate::ffi;
use crate::{Message, Status};

#[derive(Clone, Copy)]
enum Callback {
    Send(unsafe extern "C" fn(*mut c_void, ffi::poc_status)),
    Recv(unsafe extern "C" fn(*mut c_void, ffi::poc_status, *const ffi::poc_message_view)),
}

/// The completion of one op that returned `POC_PENDING`: the importer's callback and `user`.
///
/// Exactly once: [`complete`](Self::complete) consumes it; if it is dropped without being
/// completed (only when its task is dropped by a runtime that is being torn down), `Drop` runs
/// the callback with the `fallback` status (`SHUTDOWN` unless set otherwise), so no op is ever
/// left without its completion.
///
/// Never under a lock: every caller of `complete` (and every place a `Completion` can be
/// dropped) holds none of the exporter's locks — completions are taken out of the channel state
/// under its lock and run after the guard is gone.
pub(crate) struct Completion {
    cb: Callback,
    user: *mut c_void,
    fallback: Status,
    done: bool,
}

// SAFETY: the importer agreed (bridge.h rule 3) that its callback runs on an exporter thread
// with `user`; the pointer is only passed back, never dereferenced here.
unsafe impl Send for Completion {}

impl Completion {
    pub(crate) fn send(f: unsafe extern "C" fn(*mut c_void, ffi::poc_status), user: *mut c_void) -> Self {
        Completion { cb: Callback::Send(f), user, fallback: Status::SHUTDOWN, done: false }
    }

    pub(crate) fn recv(
        f: unsafe extern "C" fn(*mut c_void, ffi::poc_status, *const ffi::poc_message_view),
        user: *mut c_void,
    ) -> Self {
        Completion { cb: Callback::Recv(f), user, fallback: Status::SHUTDOWN, done: false }
    }

    /// Sets the status `Drop` reports if this completion is dropped unrun.
    pub(crate) fn with_fallback(mut self, status: Status) -> Self {
        self.fallback = status;
        self
    }

    /// Runs the callback (exactly once, never under a lock of ours): `msg` is lent to it for
    /// the call (receives with `OK` only).
    pub(crate) fn complete(mut self, status: Status, msg: Option<&Message>) {
        self.done = true;
        self.call(status, msg);
    }

    fn call(&self, status: Status, msg: Option<&Message>) {
        match self.cb {
            // SAFETY: the importer gave us this callback and `user` for exactly this call.
            Callback::Send(f) => unsafe { f(self.user, status.0) },
            Callback::Recv(f) => {
                let view = msg.map(Message::view);
                let p = view.as_ref().map_or(std::ptr::null(), |v| v as *const ffi::poc_message_view);
                // SAFETY: as above; `view` borrows `msg`, alive for the call.
                unsafe { f(self.user, status.0, p) }
            }
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if !self.done {
            self.done = true;
            self.call(self.fallback, None);
        }
    }
}
