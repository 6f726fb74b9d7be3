//! Async calls: Rust futures exported as bridge.h `poc_future`s, and any `poc_future` imported as
//! a Rust future (ARCHITECTURE.md §2.4, docs/contract.md "Futures").
//!
//! * **export** ([`export_future`]): any `Future<Output = Result<Message, CallError>> + Send` is
//!   boxed and registered in a generation-checked handle table (tag `0x46`, "F") behind the
//!   static [`FUTURE_VTABLE`]. `poll` drives it **on the caller's thread** with a waker that
//!   calls the C `wake(user)` exactly once per `POC_PENDING` (a wake during poll is remembered
//!   and fired just after, before poll returns — the UniFFI lost-wake bug of ARCHITECTURE §6);
//!   `cancel` drops the future (releasing what it holds: locks, tasks) so the next poll answers
//!   `POC_CANCELLED`; `release` cancels and forgets the handle; an owed wake still runs once.
//! * **import** ([`ForeignFuture`]): a Rust future over *any* `poc_future` — Rust's, C++'s,
//!   C#'s. No tokio: it runs on `futures::executor::block_on` as well as in a tokio task.
//! * **examples** ([`examples`]): the async calls of the BoltFFI page — `fetch_user`,
//!   `load_config`, a `Database` with `query` (`&self`) and `insert` (`&mut self`, serialised by
//!   an async mutex), and a long `sync_all` — exported as `poc_rust_*` in bridge.h.
//! * **lent functions** ([`lend`]): the other direction — a runtime lends a `poc_async_fn` for
//!   another to call. [`AsyncFn`] owns any `poc_async_fn` and calls it; [`lend::lend`] lends a
//!   Rust async closure; [`lend::sum_calls`] and the "square" function ([`lend::square_fn`])
//!   are the bridge.h examples (`poc_rust_sum_calls`, `poc_rust_square_fn`).
//!
//! **Diagnostics.** [`live_futures`] (exported futures not yet released) and
//! [`lend::live_lent_fns`] (lent functions not yet released) return to their earlier values
//! when nothing leaked; tests assert that.
//!
//! **Where a future runs.** Futures that are pure computation or wait on channels/async locks
//! run on whoever polls them (no runtime needed). Futures that need tokio's reactor or timer
//! (`sync_all`) are spawned as a task of the Rust [`Runtime`](crate::Runtime); the exported
//! future only awaits that task's completion, and cancelling/releasing it aborts the task.

pub mod examples;
mod export;
mod import;
pub mod lend;
pub(crate) mod table;

use std::fmt;

use crate::Status;

pub use export::{export_future, export_ready, live_futures, FUTURE_VTABLE};
pub(crate) use export::{export_future_with_progress, sync_progress};
pub use import::ForeignFuture;
pub use lend::AsyncFn;

/// Why an async call did not produce a value. On the export side a future returns it as its
/// `Err`; on the import side [`ForeignFuture`] maps the status `poll` answered to it.
#[derive(Clone, PartialEq, Eq)]
pub enum CallError {
    /// `POC_ERROR`: an application error; the delivered value is `{id = code, data = message}`.
    Error {
        /// Application error code (e.g. 404 for an unknown user).
        code: u64,
        /// UTF-8 message (lossily decoded on import).
        message: String,
    },
    /// `POC_PANIC`: the callee's code failed (Rust panic, C++ exception, .NET exception); the
    /// message describes it.
    Panic(String),
    /// `POC_CANCELLED`: the future was cancelled before it finished.
    Cancelled,
    /// `POC_SHUTDOWN`: a runtime the future needs has stopped.
    Shutdown,
    /// `POC_INVALID` (stale handle, polled after it finished) or a status the contract does not
    /// allow from `poll`.
    Invalid(Status),
}

impl CallError {
    /// The `poc_status` this error is reported with.
    pub fn status(&self) -> Status {
        match self {
            CallError::Error { .. } => Status::ERROR,
            CallError::Panic(_) => Status::PANIC,
            CallError::Cancelled => Status::CANCELLED,
            CallError::Shutdown => Status::SHUTDOWN,
            CallError::Invalid(_) => Status::INVALID,
        }
    }

    /// Shorthand for [`CallError::Error`].
    pub fn error(code: u64, message: impl Into<String>) -> Self {
        CallError::Error { code, message: message.into() }
    }
}

impl fmt::Debug for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Error { code, message } => write!(f, "Error({code}: {message})"),
            CallError::Panic(m) => write!(f, "Panic({m})"),
            CallError::Cancelled => f.write_str("Cancelled"),
            CallError::Shutdown => f.write_str("Shutdown"),
            CallError::Invalid(s) => write!(f, "Invalid({s:?})"),
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Error { code, message } => write!(f, "async call failed with error {code}: {message}"),
            CallError::Panic(m) => write!(f, "async call panicked: {m}"),
            CallError::Cancelled => f.write_str("async call cancelled"),
            CallError::Shutdown => f.write_str("async call: the runtime it needs is shut down"),
            CallError::Invalid(s) => write!(f, "async call: invalid ({s:?})"),
        }
    }
}

impl std::error::Error for CallError {}
