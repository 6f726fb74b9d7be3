//! [`Status`]: the `poc_status` of bridge.h as a Rust type.

use std::fmt;

use crate::ffi;

/// A `poc_status` value.
///
/// A newtype over `i32` rather than an `enum`: statuses come from foreign code, and an
/// out-of-range value must stay a value (named `"UNKNOWN"`), never undefined behaviour.
/// `#[repr(transparent)]`, so it can be passed where C expects a `poc_status`.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Status(pub ffi::poc_status);

impl Status {
    /// Done now.
    pub const OK: Status = Status(ffi::POC_OK);
    /// Will complete later, exactly once.
    pub const PENDING: Status = Status(ffi::POC_PENDING);
    /// try_send: the channel is at capacity.
    pub const FULL: Status = Status(ffi::POC_FULL);
    /// try_recv: nothing is queued.
    pub const EMPTY: Status = Status(ffi::POC_EMPTY);
    /// The channel is closed for this operation.
    pub const CLOSED: Status = Status(ffi::POC_CLOSED);
    /// The op was cancelled before it had any effect.
    pub const CANCELLED: Status = Status(ffi::POC_CANCELLED);
    /// The owning runtime is shutting down or has shut down.
    pub const SHUTDOWN: Status = Status(ffi::POC_SHUTDOWN);
    /// Futures only: an application error.
    pub const ERROR: Status = Status(ffi::POC_ERROR);
    /// Misuse: NULL pointer, bad handle, oversized payload, zero capacity, wrong state.
    pub const INVALID: Status = Status(ffi::POC_INVALID);
    /// The callee's code panicked / threw and it was contained.
    pub const PANIC: Status = Status(ffi::POC_PANIC);

    /// The raw `poc_status`.
    pub const fn raw(self) -> ffi::poc_status {
        self.0
    }

    /// `true` for [`Status::OK`].
    pub const fn is_ok(self) -> bool {
        self.0 == ffi::POC_OK
    }

    /// The same static names as the C++ `poc_status_str` ("OK", …, "PANIC", "UNKNOWN").
    pub const fn as_str(self) -> &'static str {
        match self.0 {
            ffi::POC_OK => "OK",
            ffi::POC_PENDING => "PENDING",
            ffi::POC_FULL => "FULL",
            ffi::POC_EMPTY => "EMPTY",
            ffi::POC_CLOSED => "CLOSED",
            ffi::POC_CANCELLED => "CANCELLED",
            ffi::POC_SHUTDOWN => "SHUTDOWN",
            ffi::POC_ERROR => "ERROR",
            ffi::POC_INVALID => "INVALID",
            ffi::POC_PANIC => "PANIC",
            _ => "UNKNOWN",
        }
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            "UNKNOWN" => write!(f, "UNKNOWN({})", self.0),
            name => f.write_str(name),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl From<ffi::poc_status> for Status {
    fn from(raw: ffi::poc_status) -> Self {
        Status(raw)
    }
}

impl From<Status> for ffi::poc_status {
    fn from(s: Status) -> Self {
        s.0
    }
}
