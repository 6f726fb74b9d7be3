//! The Rust wake-up adapter: any bridge.h port as an async Rust channel end.
//!
//! [`PortSender`] and [`PortReceiver`] wrap a [`poc_sender`](crate::ffi::poc_sender) /
//! [`poc_receiver`](crate::ffi::poc_receiver) exported by *any* runtime — this crate's tokio
//! exporter, the C++ Asio exporter, the .NET exporter — and offer `async fn`-style `send` /
//! `recv`, `try_send` / `try_recv`, `close`, and the [`futures::Sink`] / [`futures::Stream`]
//! traits. Nothing here depends on tokio: the futures run on any executor, including
//! `futures::executor::block_on` on a thread that belongs to no runtime.
//!
//! # How a pending op wakes its task
//!
//! The handoffs are the numbered steps of `docs/contract.md` in the repository ("Send",
//! "Receive", "Cancel"); in Rust terms:
//!
//! 1. The first poll takes a slot (an `Arc` holding the result, the message and an
//!    [`AtomicWaker`](futures::task::AtomicWaker)), hands one reference to the exporter as the
//!    `user` pointer (`Arc::into_raw`) and calls the port's `send`/`recv` — once per op; later
//!    polls only re-register the waker.
//! 2. `POC_OK` finishes at once (for `recv`, the *deliver* function has already copied the
//!    message into the slot on this thread); the reference given away is reclaimed here, since
//!    the completion will not run.
//! 3. `POC_PENDING`: the op id was written first. The completion — exactly once, on an exporter
//!    thread, never under an exporter lock, possibly before `send`/`recv` returned — reclaims the
//!    reference (`Arc::from_raw`), publishes the outcome and calls `Waker::wake`. The task resumes
//!    on its own executor, never inline on the exporter's thread. A wake that arrives before the
//!    waker is registered is not lost: the future registers, then checks the result.
//! 4. Dropping a pending future calls the port's `cancel` (a request). The slot stays alive until
//!    the completion has run, whatever the order. A dropped send cannot report whether its
//!    message went out; [`SendFuture::cancel`] (or [`PortSender::send_with_cancel`]) requests the
//!    same cancel but keeps the future, which then resolves to the op's real outcome: `Ok` if
//!    the send won the race, [`SendError::Cancelled`](crate::SendError::Cancelled) (message
//!    back) if the cancel took effect.
//! 5. A receive that completes with a message after its future was dropped keeps the message in
//!    the `PortReceiver` (the *stash*); the next receive returns it before asking the port again,
//!    so a message is never lost to a cancel.
//!
//! All callbacks are `extern "C"` functions that never unwind: panics (e.g. from a foreign
//! `Waker`) are caught and contained (bridge.h rule 9).
//!
//! # Examples
//!
//! ```
//! use poc_bridge::{Message, Runtime};
//!
//! let rt = Runtime::new(1).unwrap();
//! let (tx, mut rx) = rt.channel(4).unwrap(); // a tokio channel, exported, then imported
//! futures::executor::block_on(async {
//!     tx.send(Message::new(1, b"hi".to_vec())).await.unwrap();
//!     assert_eq!(rx.recv().await.unwrap().payload, b"hi");
//! });
//! ```

mod receiver;
mod sender;
pub(crate) mod slot;

pub(crate) use receiver::check_receiver_vtable as check_receiver;
pub use receiver::{PortReceiver, RecvFuture};
pub(crate) use sender::check_sender_vtable as check_sender;
pub use sender::{PortSender, SendFuture, SendWithCancel};
