//! Error types of the import adapter. Like tokio's `SendError<T>` / `TrySendError<T>`, a failed
//! send gives the unsent value back ([`SendError::into_inner`]).

use std::fmt;

use thiserror::Error;

use crate::Status;

/// Why an awaited send failed. The unsent value comes back in every variant.
#[derive(Error, Clone, PartialEq, Eq)]
pub enum SendError<T> {
    /// `POC_CLOSED`: the channel is closed for sends (a sender closed it, the last sender was
    /// released, or the receiver was closed or released). Nothing was enqueued.
    #[error("sending on a closed channel")]
    Closed(T),
    /// `POC_SHUTDOWN`: the runtime that exports the port is shutting down or has shut down.
    #[error("the runtime that exports the channel is shut down")]
    Shutdown(T),
    /// `POC_CANCELLED`: the send was cancelled before it had any effect. Nothing was enqueued.
    /// The outcome of [`SendFuture::cancel`](crate::SendFuture::cancel) and
    /// [`PortSender::send_with_cancel`](crate::PortSender::send_with_cancel) when the cancel
    /// won the race (or came before the send started); also what a send gets when the exporter
    /// cancels it on its own (e.g. its port was released while it waited).
    #[error("the send was cancelled before it enqueued")]
    Cancelled(T),
    /// Any other status: `POC_INVALID` (oversized payload, released port), `POC_PANIC`
    /// (the exporter's code failed), or a status the contract does not allow here.
    #[error("send failed: {status}")]
    Failed {
        /// What the port answered.
        status: Status,
        /// The unsent value.
        value: T,
    },
}

impl<T> SendError<T> {
    pub(crate) fn from_status(status: Status, value: T) -> Self {
        match status {
            Status::CLOSED => SendError::Closed(value),
            Status::SHUTDOWN => SendError::Shutdown(value),
            Status::CANCELLED => SendError::Cancelled(value),
            status => SendError::Failed { status, value },
        }
    }

    /// The unsent value.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Closed(v)
            | SendError::Shutdown(v)
            | SendError::Cancelled(v)
            | SendError::Failed { value: v, .. } => v,
        }
    }

    /// The `poc_status` the port answered.
    pub fn status(&self) -> Status {
        match self {
            SendError::Closed(_) => Status::CLOSED,
            SendError::Shutdown(_) => Status::SHUTDOWN,
            SendError::Cancelled(_) => Status::CANCELLED,
            SendError::Failed { status, .. } => *status,
        }
    }

    /// `true` for [`SendError::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, SendError::Closed(_))
    }

    /// `true` for [`SendError::Cancelled`]: the send had no effect because it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, SendError::Cancelled(_))
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SendError({:?}, ..)", self.status())
    }
}

/// Why a `try_send` did not enqueue. The unsent value comes back in every variant.
#[derive(Error, Clone, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// `POC_FULL`: the channel is at capacity right now.
    #[error("the channel is full")]
    Full(T),
    /// `POC_CLOSED`: the channel is closed for sends.
    #[error("sending on a closed channel")]
    Closed(T),
    /// `POC_SHUTDOWN`: the exporting runtime is shut down.
    #[error("the runtime that exports the channel is shut down")]
    Shutdown(T),
    /// Any other status (`POC_INVALID`, `POC_PANIC`, …).
    #[error("try_send failed: {status}")]
    Failed {
        /// What the port answered.
        status: Status,
        /// The unsent value.
        value: T,
    },
}

impl<T> TrySendError<T> {
    pub(crate) fn from_status(status: Status, value: T) -> Self {
        match status {
            Status::FULL => TrySendError::Full(value),
            Status::CLOSED => TrySendError::Closed(value),
            Status::SHUTDOWN => TrySendError::Shutdown(value),
            status => TrySendError::Failed { status, value },
        }
    }

    /// The unsent value.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v)
            | TrySendError::Closed(v)
            | TrySendError::Shutdown(v)
            | TrySendError::Failed { value: v, .. } => v,
        }
    }

    /// The `poc_status` the port answered.
    pub fn status(&self) -> Status {
        match self {
            TrySendError::Full(_) => Status::FULL,
            TrySendError::Closed(_) => Status::CLOSED,
            TrySendError::Shutdown(_) => Status::SHUTDOWN,
            TrySendError::Failed { status, .. } => *status,
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrySendError({:?}, ..)", self.status())
    }
}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(e: SendError<T>) -> Self {
        let status = e.status();
        TrySendError::from_status(status, e.into_inner())
    }
}

/// Why an awaited receive ended without a message.
#[derive(Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// `POC_CLOSED`: the channel is closed and drained (or the receiver was closed).
    #[error("the channel is closed and drained")]
    Closed,
    /// `POC_SHUTDOWN`: the exporting runtime is shut down.
    #[error("the runtime that exports the channel is shut down")]
    Shutdown,
    /// Any other status (`POC_INVALID`, `POC_PANIC`, an unexpected `POC_CANCELLED`, …).
    #[error("recv failed: {0}")]
    Failed(Status),
}

impl RecvError {
    pub(crate) fn from_status(status: Status) -> Self {
        match status {
            Status::CLOSED => RecvError::Closed,
            Status::SHUTDOWN => RecvError::Shutdown,
            s => RecvError::Failed(s),
        }
    }

    /// The `poc_status` the port answered.
    pub fn status(&self) -> Status {
        match self {
            RecvError::Closed => Status::CLOSED,
            RecvError::Shutdown => Status::SHUTDOWN,
            RecvError::Failed(s) => *s,
        }
    }
}

/// Why a `try_recv` returned no message.
#[derive(Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// `POC_EMPTY`: nothing is queued right now.
    #[error("the channel is empty")]
    Empty,
    /// `POC_CLOSED`: closed and drained.
    #[error("the channel is closed and drained")]
    Closed,
    /// `POC_SHUTDOWN`: the exporting runtime is shut down.
    #[error("the runtime that exports the channel is shut down")]
    Shutdown,
    /// Any other status.
    #[error("try_recv failed: {0}")]
    Failed(Status),
}

impl TryRecvError {
    pub(crate) fn from_status(status: Status) -> Self {
        match status {
            Status::EMPTY => TryRecvError::Empty,
            Status::CLOSED => TryRecvError::Closed,
            Status::SHUTDOWN => TryRecvError::Shutdown,
            s => TryRecvError::Failed(s),
        }
    }

    /// The `poc_status` the port answered.
    pub fn status(&self) -> Status {
        match self {
            TryRecvError::Empty => Status::EMPTY,
            TryRecvError::Closed => Status::CLOSED,
            TryRecvError::Shutdown => Status::SHUTDOWN,
            TryRecvError::Failed(s) => *s,
        }
    }
}

/// A port that cannot be imported: NULL or unusable vtable. The port was *not* taken: the caller
/// still owns it (and must release it).
#[derive(Error, Debug, Clone, Copy, PartialEq, Eq)]
#[error("cannot import port: {reason}")]
pub struct ImportError {
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A failure of the Rust runtime's own API ([`crate::Runtime`]): the `poc_status` it maps to.
#[derive(Error, Debug, Clone, Copy, PartialEq, Eq)]
#[error("runtime call failed: {0}")]
pub struct RuntimeError(pub Status);
