//! Compile-time checks (tokio's `tests/async_send_sync.rs` style): the public types are `Send`
//! / `Sync` where a user needs them — shared across tasks and threads — and the futures can be
//! spawned on multi-threaded executors. A regression fails to *compile*.

use poc_bridge::error::*;
use poc_bridge::ffi;
use poc_bridge::*;
use static_assertions::{assert_impl_all, assert_not_impl_any};

// Import adapter: ports can move between threads and be shared (`send(&self)` from many tasks).
assert_impl_all!(PortSender: Send, Sync, Unpin, futures::Sink<Message>);
assert_impl_all!(PortReceiver: Send, Sync, Unpin, futures::Stream<Item = Message>);
assert_impl_all!(SendFuture<'static>: Send, Sync, Unpin);
assert_impl_all!(RecvFuture<'static>: Send, Sync, Unpin);
// The cancel-aware send is as Send/Sync/Unpin as its signal (a !Unpin signal is pinned in place).
assert_impl_all!(SendWithCancel<'static, futures::future::Ready<()>>: Send, Sync, Unpin);
assert_impl_all!(SendWithCancel<'static, std::future::Pending<()>>: Send, Sync, Unpin);
assert_not_impl_any!(SendWithCancel<'static, std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>>: Send, Sync);
assert_not_impl_any!(SendWithCancel<'static, std::marker::PhantomPinned>: Unpin);

// Errors are plain data and real errors.
assert_impl_all!(SendError<Message>: Send, Sync, std::error::Error);
assert_impl_all!(TrySendError<Message>: Send, Sync, std::error::Error);
assert_impl_all!(RecvError: Send, Sync, Copy, std::error::Error);
assert_impl_all!(TryRecvError: Send, Sync, Copy, std::error::Error);
assert_impl_all!(ImportError: Send, Sync, std::error::Error);
assert_impl_all!(RuntimeError: Send, Sync, std::error::Error);

// Values.
assert_impl_all!(Message: Send, Sync, Clone);
assert_impl_all!(Status: Send, Sync, Copy);
assert_impl_all!(AgentReport: Send, Sync, Copy);
assert_impl_all!(Runtime: Send, Sync);

// Async calls: a future can be awaited in any task; a lent function is called from many.
assert_impl_all!(ForeignFuture: Send, Sync, Unpin);
assert_impl_all!(AsyncFn: Send, Sync);
assert_impl_all!(CallError: Send, Sync, Clone, std::error::Error);

// Raw ports move across threads like in C; a borrowed view must not outlive its call.
assert_impl_all!(ffi::poc_async_fn: Send, Sync, Copy);
assert_impl_all!(ffi::poc_sender: Send, Sync, Copy);
assert_impl_all!(ffi::poc_receiver: Send, Sync, Copy);
assert_not_impl_any!(ffi::poc_message_view: Send, Sync);

#[test]
fn compile_time_checks_above_hold() {}
