//! Hand-written declarations of `native-cpp/include/poc/bridge.h`, the C ABI contract.
//!
//! Names are the C names so that the header and this file can be read side by side. Layout is
//! checked three ways: the `const` assertions at the bottom of this file (LP64 targets), and the
//! `layout` integration test, which compares every `sizeof`/`alignof`/`offsetof` and every
//! `POC_*` constant with values computed by a C compiler from the header itself (see `build.rs`
//! and `csrc/layout.c`), and compares the parameter and return types of every `POC_API`
//! function of the header with the declarations in [`cpp`] and the definitions in `capi.rs` —
//! a drift between the header and this file fails `cargo test`.
//!
//! # Function pointers are `Option<unsafe extern "C" fn …>`
//!
//! A C function pointer may be NULL, and a NULL value in a Rust `fn` type is undefined behaviour.
//! Every function-pointer field and typedef is therefore declared as
//! `Option<unsafe extern "C" fn …>`, which has the same size and ABI as the C pointer (the niche
//! is NULL). The exporter answers a `None` callback with `POC_INVALID`; the importer rejects a
//! vtable with a `None` entry when the port is imported. `unsafe` because every one of them takes
//! raw pointers whose validity the caller promises.
//!
//! # Symbols defined elsewhere
//!
//! `poc_status_str`, `poc_abi_version` and `poc_message_checksum` are defined by the C++ library;
//! this crate does not define them (both libraries are linked into one `libpoc_native.so`) and
//! implements the same functions natively instead ([`crate::Status::as_str`],
//! [`crate::Message::checksum`]). They are declared in [`cpp`] for callers that link the C++ side:
//! Rust tests and executables do that through the `poc-cpp-sys` crate (`rust/poc-cpp-sys`), which
//! links `libpoc_cpp.a` and libstdc++ — never as a dependency of this crate's library, whose
//! staticlib is linked with the C++ library into `libpoc_native.so`.
#![allow(non_camel_case_types)]
// Fields and foreign functions mirror bridge.h one to one; their documentation is the header's.
#![allow(missing_docs)]

use std::ffi::{c_char, c_void};

// ---------------------------------------------------------------------------------------------
// Section - Statuses
// ---------------------------------------------------------------------------------------------

/// `#define POC_ABI_VERSION 1u` — every vtable starts with the version it was built for.
pub const POC_ABI_VERSION: u32 = 1;

/// Result of every call and every completion (`int32_t`).
pub type poc_status = i32;

/// Done now; for recv/try_recv the message was delivered synchronously.
pub const POC_OK: poc_status = 0;
/// Will complete later: the completion callback runs exactly once.
pub const POC_PENDING: poc_status = 1;
/// try_send only: the channel is at capacity.
pub const POC_FULL: poc_status = 2;
/// try_recv only: nothing is queued.
pub const POC_EMPTY: poc_status = 3;
/// The channel is closed for this operation.
pub const POC_CLOSED: poc_status = 4;
/// The op was cancelled before it had any effect.
pub const POC_CANCELLED: poc_status = 5;
/// The owning runtime is shutting down or has shut down.
pub const POC_SHUTDOWN: poc_status = 6;
/// Futures only: an application error.
pub const POC_ERROR: poc_status = 7;
/// Misuse: NULL pointer, bad handle, oversized payload, zero capacity, wrong state.
pub const POC_INVALID: poc_status = 8;
/// The callee's own code failed and the failure was contained.
pub const POC_PANIC: poc_status = 9;

// ---------------------------------------------------------------------------------------------
// Section - Messages
// ---------------------------------------------------------------------------------------------

/// `POC_DEFAULT_MAX_PAYLOAD`: 16 MiB.
pub const POC_DEFAULT_MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// A borrowed view of one message, valid only for the call or callback that carries it.
/// `data` may be NULL only when `len` is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct poc_message_view {
    pub id: u64,
    pub data: *const u8,
    pub len: usize,
}

// ---------------------------------------------------------------------------------------------
// Section - Ports
// ---------------------------------------------------------------------------------------------

/// Names one pending op of one port; 0 = none.
pub type poc_op_id = u64;

/// Completion of a send that returned `POC_PENDING`: exactly once, on an exporter thread, never
/// under an exporter lock.
pub type poc_send_complete_fn = Option<unsafe extern "C" fn(user: *mut c_void, status: poc_status)>;

/// Deliver function (synchronous, before `POC_OK` is returned) or receive completion (exactly
/// once after `POC_PENDING`, exporter thread, never under an exporter lock).
pub type poc_recv_complete_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, status: poc_status, msg: *const poc_message_view)>;

/// Functions of a sender port (static, shared by every port of one exporter).
#[repr(C)]
#[derive(Debug)]
pub struct poc_sender_vtable {
    pub abi_version: u32,
    pub size: u32,
    pub try_send: Option<unsafe extern "C" fn(handle: u64, msg: *const poc_message_view) -> poc_status>,
    pub send: Option<
        unsafe extern "C" fn(
            handle: u64,
            msg: *const poc_message_view,
            on_complete: poc_send_complete_fn,
            user: *mut c_void,
            op: *mut poc_op_id,
        ) -> poc_status,
    >,
    pub cancel: Option<unsafe extern "C" fn(handle: u64, op: poc_op_id) -> poc_status>,
    pub close: Option<unsafe extern "C" fn(handle: u64) -> poc_status>,
    pub clone: Option<unsafe extern "C" fn(handle: u64, out: *mut poc_sender) -> poc_status>,
    pub release: Option<unsafe extern "C" fn(handle: u64) -> poc_status>,
}

/// Functions of a receiver port (static).
#[repr(C)]
#[derive(Debug)]
pub struct poc_receiver_vtable {
    pub abi_version: u32,
    pub size: u32,
    pub try_recv: Option<
        unsafe extern "C" fn(handle: u64, deliver: poc_recv_complete_fn, user: *mut c_void) -> poc_status,
    >,
    pub recv: Option<
        unsafe extern "C" fn(
            handle: u64,
            deliver: poc_recv_complete_fn,
            on_complete: poc_recv_complete_fn,
            user: *mut c_void,
            op: *mut poc_op_id,
        ) -> poc_status,
    >,
    pub cancel: Option<unsafe extern "C" fn(handle: u64, op: poc_op_id) -> poc_status>,
    pub close: Option<unsafe extern "C" fn(handle: u64) -> poc_status>,
    pub release: Option<unsafe extern "C" fn(handle: u64) -> poc_status>,
}

/// A sender port, passed by value; whoever holds it releases it exactly once.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct poc_sender {
    pub handle: u64,
    pub vtable: *const poc_sender_vtable,
}

/// A receiver port, passed by value; owned like a sender port.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct poc_receiver {
    pub handle: u64,
    pub vtable: *const poc_receiver_vtable,
}

// SAFETY: a port is a number and a pointer to a static, immutable vtable; bridge.h makes every
// port function callable from any thread, so a port may be moved and shared across threads.
// (Ownership — releasing exactly once — is the holder's business, as in C.)
unsafe impl Send for poc_sender {}
unsafe impl Sync for poc_sender {}
unsafe impl Send for poc_receiver {}
unsafe impl Sync for poc_receiver {}

// ---------------------------------------------------------------------------------------------
// Section - Futures (exported and imported by src/future)
// ---------------------------------------------------------------------------------------------

/// Wake-up of a pending future: exactly once per `POC_PENDING`, any thread, never under a lock.
pub type poc_wake_fn = Option<unsafe extern "C" fn(user: *mut c_void)>;

/// Functions of an exported future (static).
#[repr(C)]
#[derive(Debug)]
pub struct poc_future_vtable {
    pub abi_version: u32,
    pub size: u32,
    pub poll: Option<
        unsafe extern "C" fn(
            handle: u64,
            wake: poc_wake_fn,
            deliver: poc_recv_complete_fn,
            user: *mut c_void,
        ) -> poc_status,
    >,
    pub cancel: Option<unsafe extern "C" fn(handle: u64) -> poc_status>,
    pub release: Option<unsafe extern "C" fn(handle: u64) -> poc_status>,
}

/// A future, passed by value, released exactly once by whoever holds it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct poc_future {
    pub handle: u64,
    pub vtable: *const poc_future_vtable,
}

// SAFETY: as for ports.
unsafe impl Send for poc_future {}
unsafe impl Sync for poc_future {}

/// An async function lent by one runtime to another (`call` starts a call and gives its future;
/// `release` gives the function back). Passed by value; whoever holds it calls `release(context)`
/// exactly once. Imported by [`crate::future::lend::AsyncFn`], made by
/// [`crate::future::lend::lend`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct poc_async_fn {
    pub call: Option<
        unsafe extern "C" fn(context: *mut c_void, arg: *const poc_message_view, out: *mut poc_future) -> poc_status,
    >,
    pub release: Option<unsafe extern "C" fn(context: *mut c_void)>,
    pub context: *mut c_void,
}

// SAFETY: bridge.h makes `call` callable from any thread, concurrently, and `release` is a
// one-time hand-back with no thread rule; the lender keeps `context` valid (and thread-safe)
// until released. (Ownership — releasing exactly once — is the holder's business, as in C.)
unsafe impl Send for poc_async_fn {}
unsafe impl Sync for poc_async_fn {}

/// `POC_SQUARE_READY`: the example "square" function computes inside `call`; the first poll
/// answers at once (no wake, no thread hop).
pub const POC_SQUARE_READY: u32 = 0;
/// `POC_SQUARE_POSTED`: finished by another thread of the lender's runtime as soon as it can.
pub const POC_SQUARE_POSTED: u32 = 1;
/// `POC_SQUARE_TIMER`: finished by the lender runtime's timer after `delay_ms`.
pub const POC_SQUARE_TIMER: u32 = 2;

// ---------------------------------------------------------------------------------------------
// Section - Agents
// ---------------------------------------------------------------------------------------------

/// Names one agent of one runtime.
pub type poc_agent_id = u64;

/// What an agent did, handed to its done callback (borrowed for the call).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct poc_agent_report {
    pub status: poc_status,
    pub reserved: u32,
    pub messages: u64,
    pub checksum: u64,
    pub order_errors: u64,
}

/// Called exactly once when an agent ends, on a thread of the agent's runtime, never under a lock.
pub type poc_agent_done_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, report: *const poc_agent_report)>;

// ---------------------------------------------------------------------------------------------
// Section - Runtimes (opaque)
// ---------------------------------------------------------------------------------------------

/// The C++ runtime (`poc_cpp_runtime`), opaque.
#[repr(C)]
pub struct poc_cpp_runtime {
    _private: [u8; 0],
}

/// The Rust runtime as C sees it. In this crate it *is* [`crate::Runtime`]; the pointer handed
/// to C is a `Box<Runtime>` cast to this opaque type.
#[repr(C)]
pub struct poc_rust_runtime {
    _private: [u8; 0],
}

/// Functions of bridge.h that the C++ library defines. Declared only: using them requires
/// linking the C++ side (`libpoc_native.so` or `libpoc_cpp.a`); this crate never calls them.
///
/// From Rust, depend on `poc-cpp-sys` (a dev-dependency for tests) and write
/// `use poc_cpp_sys as _;` in the crate that calls them — an unused dependency is not linked, and
/// the symbols would come out undefined. The cross-runtime tests (`tests/rust_cpp.rs`,
/// `tests/cpp_rust.rs`, `tests/cpp_abi.rs`) and `poc-scenarios/rust` call every one of them.
pub mod cpp {
    use super::*;

    extern "C" {
        pub fn poc_status_str(status: poc_status) -> *const c_char;
        pub fn poc_abi_version() -> u32;
        pub fn poc_message_checksum(msg: *const poc_message_view) -> u64;

        pub fn poc_cpp_runtime_new(threads: u32, out: *mut *mut poc_cpp_runtime) -> poc_status;
        pub fn poc_cpp_runtime_shutdown(rt: *mut poc_cpp_runtime) -> poc_status;
        pub fn poc_cpp_runtime_free(rt: *mut poc_cpp_runtime);
        pub fn poc_cpp_channel_new(
            rt: *mut poc_cpp_runtime,
            capacity: usize,
            tx: *mut poc_sender,
            rx: *mut poc_receiver,
        ) -> poc_status;
        pub fn poc_cpp_channel_new_ex(
            rt: *mut poc_cpp_runtime,
            capacity: usize,
            max_payload: usize,
            tx: *mut poc_sender,
            rx: *mut poc_receiver,
        ) -> poc_status;
        pub fn poc_cpp_producer_start(
            rt: *mut poc_cpp_runtime,
            tx: poc_sender,
            stream: u64,
            count: u64,
            payload_len: usize,
            done: poc_agent_done_fn,
            user: *mut c_void,
            out: *mut poc_agent_id,
        ) -> poc_status;
        pub fn poc_cpp_consumer_start(
            rt: *mut poc_cpp_runtime,
            rx: poc_receiver,
            done: poc_agent_done_fn,
            user: *mut c_void,
            out: *mut poc_agent_id,
        ) -> poc_status;
        pub fn poc_cpp_echo_start(
            rt: *mut poc_cpp_runtime,
            rx: poc_receiver,
            tx: poc_sender,
            done: poc_agent_done_fn,
            user: *mut c_void,
            out: *mut poc_agent_id,
        ) -> poc_status;
        pub fn poc_cpp_timer_start(
            rt: *mut poc_cpp_runtime,
            tx: poc_sender,
            interval_ms: u32,
            max_count: u64,
            done: poc_agent_done_fn,
            user: *mut c_void,
            out: *mut poc_agent_id,
        ) -> poc_status;
        pub fn poc_cpp_agent_cancel(rt: *mut poc_cpp_runtime, agent: poc_agent_id) -> poc_status;

        // Section - Async calls exported by C++
        pub fn poc_cpp_delayed_square(
            rt: *mut poc_cpp_runtime,
            x: u64,
            delay_ms: u32,
            out: *mut poc_future,
        ) -> poc_status;
        pub fn poc_cpp_square_fn(
            rt: *mut poc_cpp_runtime,
            mode: u32,
            delay_ms: u32,
            out: *mut poc_async_fn,
        ) -> poc_status;
        pub fn poc_cpp_sum_calls(
            rt: *mut poc_cpp_runtime,
            f: poc_async_fn,
            first: u64,
            count: u32,
            out: *mut poc_future,
        ) -> poc_status;
    }
}

// ---------------------------------------------------------------------------------------------
// Compile-time layout checks (LP64: x86_64 / aarch64 Linux, the targets Poc builds for). The
// `layout` test checks the same numbers against the C compiler's view of bridge.h.
// ---------------------------------------------------------------------------------------------

#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<poc_status>() == 4);
    assert!(size_of::<poc_message_view>() == 24 && align_of::<poc_message_view>() == 8);
    assert!(offset_of!(poc_message_view, data) == 8 && offset_of!(poc_message_view, len) == 16);
    assert!(size_of::<poc_sender_vtable>() == 8 + 6 * 8 && align_of::<poc_sender_vtable>() == 8);
    assert!(size_of::<poc_receiver_vtable>() == 8 + 5 * 8);
    assert!(size_of::<poc_future_vtable>() == 8 + 3 * 8);
    assert!(size_of::<poc_sender>() == 16 && size_of::<poc_receiver>() == 16);
    assert!(size_of::<poc_future>() == 16);
    assert!(size_of::<poc_async_fn>() == 3 * 8 && offset_of!(poc_async_fn, context) == 16);
    assert!(size_of::<poc_agent_report>() == 32 && align_of::<poc_agent_report>() == 8);
    // Option<fn> is exactly one nullable pointer.
    assert!(size_of::<poc_send_complete_fn>() == size_of::<*const ()>());
    assert!(size_of::<poc_recv_complete_fn>() == size_of::<*const ()>());
    assert!(size_of::<poc_agent_done_fn>() == size_of::<*const ()>());
};
