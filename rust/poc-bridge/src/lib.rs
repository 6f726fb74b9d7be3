//! # poc-bridge — the Rust side of Poc
//!
//! Poc lets C++ Asio, Rust tokio and C# tasks exchange messages through each other's async
//! channels, bridged by one small C ABI of completion callbacks:
//! `native-cpp/include/poc/bridge.h` (the contract; every rule is a doc comment there). The
//! handoffs are explained as numbered steps in `docs/contract.md`; this crate follows them and
//! links there from each module.
//!
//! The crate has two jobs, like every runtime in Poc:
//!
//! * **export** ([`export`], [`Runtime`]): a tokio multi-thread runtime owned by the Rust side,
//!   whose bounded `tokio::sync::mpsc` channels are handed out as bridge.h *ports*
//!   (`poc_rust_channel_new`, [`Runtime::channel_ports`]): a generation-checked handle plus a
//!   static vtable. Pending ops complete exactly once, on a runtime thread, never under a lock.
//! * **import** ([`import`]): [`PortSender`] / [`PortReceiver`] wrap *any* port — Rust's own,
//!   C++'s, C#'s — as async Rust (`send`/`recv` futures, `try_*`, `Sink`/`Stream`) through a
//!   wake-up adapter that turns the C completion callback into `Waker::wake`. No tokio in there:
//!   the futures run on any executor, `futures::executor::block_on` included.
//!
//! On top of both, [`agents`] (producer, consumer, echo) run on the Rust runtime against any
//! port; they are exported as `poc_rust_producer_start` & co. for scenarios and tests.
//!
//! ## Map
//!
//! | module | what |
//! | --- | --- |
//! | [`ffi`] | hand-written `#[repr(C)]` declarations of bridge.h, checked against the header by a test |
//! | [`Status`], [`Message`] | statuses; the message, its checksum and the agents' id/payload convention |
//! | [`error`] | `SendError<T>` / `TrySendError<T>` (give the message back), `RecvError`, … |
//! | [`import`] | the wake-up adapter: `PortSender`, `PortReceiver` |
//! | [`export`] | the tokio channel exporter: handle table, vtables, channel state |
//! | [`Runtime`] | the runtime, channel creation, shutdown, agents |
//! | [`future`] | async calls: Rust futures exported as `poc_future`, [`ForeignFuture`] over any `poc_future`, lent functions (`poc_async_fn`: [`AsyncFn`], `lend`), the BoltFFI examples |
//! | `capi` | the `#[no_mangle] poc_rust_*` functions of bridge.h |
//!
//! ## Example: a tokio channel, exported and imported again
//!
//! Every operation below goes through the C vtables, exactly as a C++ or C# importer's would.
//!
//! ```
//! use poc_bridge::{Message, RecvError, Runtime};
//!
//! let rt = Runtime::new(2).unwrap();
//! let (tx, mut rx) = rt.channel(16).unwrap();
//! let producer = rt.handle().spawn(async move {
//!     for i in 0..100 {
//!         tx.send(Message::with_pattern(i, 32)).await.unwrap();
//!     }
//!     // dropping `tx` releases the last sender port: the channel closes
//! });
//! let n = futures::executor::block_on(async {
//!     let mut n = 0;
//!     loop {
//!         match rx.recv().await {
//!             Ok(m) => { assert!(m.has_pattern()); n += 1 }
//!             Err(RecvError::Closed) => break n,
//!             Err(e) => panic!("{e}"),
//!         }
//!     }
//! });
//! assert_eq!(n, 100);
//! futures::executor::block_on(producer).unwrap();
//! ```
//!
//! ## Linking
//!
//! The crate builds as an `rlib` and a `staticlib`; the staticlib is linked whole-archive into
//! `libpoc_native.so` next to the C++ library. It does **not** define `poc_status_str`,
//! `poc_abi_version` or `poc_message_checksum` (the C++ library does); [`Status::as_str`] and
//! [`Message::checksum`] are the Rust equivalents. The C++ exports are declared in [`ffi::cpp`];
//! Rust tests and executables that call them link the C++ side through the `poc-cpp-sys` crate
//! (a dev-dependency here: as a normal dependency it would bundle the C++ objects into the
//! staticlib and duplicate them in `libpoc_native.so`).
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod agents;
mod capi;
pub mod error;
pub mod export;
pub mod ffi;
mod idle;
pub mod future;
pub mod import;
pub mod message;
mod runtime;
mod status;

pub use agents::AgentReport;
pub use error::{ImportError, RecvError, RuntimeError, SendError, TryRecvError, TrySendError};
pub use import::{PortReceiver, PortSender, RecvFuture, SendFuture, SendWithCancel};
pub use message::Message;
pub use runtime::{Runtime, SHUTDOWN_BOUND};
pub use status::Status;

pub use capi::{
    poc_rust_agent_cancel, poc_rust_channel_new, poc_rust_channel_new_ex, poc_rust_consumer_start,
    poc_rust_echo_start, poc_rust_producer_start, poc_rust_runtime_free, poc_rust_runtime_new,
    poc_rust_runtime_shutdown,
};
pub use capi::{
    poc_rust_database_connect, poc_rust_database_free, poc_rust_database_insert, poc_rust_database_query,
    poc_rust_fetch_user, poc_rust_load_config, poc_rust_sync_all, poc_rust_sync_progress,
};
pub use capi::{poc_rust_square_fn, poc_rust_sum_calls};
pub use future::{AsyncFn, CallError, ForeignFuture};
