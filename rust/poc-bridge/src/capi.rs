//! The `poc_rust_*` exports of bridge.h ("Rust runtime" section): thin wrappers over
//! [`Runtime`]. Each catches panics at the boundary (`POC_PANIC`) and checks its pointers
//! (`POC_INVALID`). A `poc_rust_runtime*` is a `Box<Runtime>`.

use std::ffi::c_void;

use crate::agents::{self, AgentReport};
use crate::export::ffi_guard;
use crate::ffi::{self, poc_agent_done_fn, poc_receiver, poc_rust_runtime, poc_sender, poc_status};
use crate::import::{PortReceiver, PortSender};
use crate::{Runtime, Status};

fn runtime<'a>(rt: *mut poc_rust_runtime) -> Option<&'a Runtime> {
    // SAFETY: the caller of each export promises `rt` is NULL or from poc_rust_runtime_new and
    // not freed.
    unsafe { (rt as *const Runtime).as_ref() }
}

/// `user` of a C done callback, sent to the runtime thread that calls it.
struct SendPtr(*mut c_void);
// SAFETY: the C caller agreed that `done(user, …)` runs on a runtime thread.
unsafe impl Send for SendPtr {}

fn c_done(done: unsafe extern "C" fn(*mut c_void, *const ffi::poc_agent_report), user: *mut c_void) -> agents::DoneFn {
    let user = SendPtr(user);
    Box::new(move |report: &AgentReport| {
        let user = user;
        let r = report.to_ffi();
        // SAFETY: the C caller gave us `done` and `user` for exactly this one call.
        unsafe { done(user.0, &r) }
    })
}

/// Starts a runtime with `worker_threads` workers (1..64) into `*out`.
/// `POC_OK`, `POC_INVALID` (bad count, NULL out), `POC_PANIC`.
///
/// # Safety
///
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn poc_rust_runtime_new(worker_threads: u32, out: *mut *mut poc_rust_runtime) -> poc_status {
    ffi_guard(|| {
        // SAFETY: `out` NULL or writable (the caller's promise).
        let Some(out) = (unsafe { out.as_mut() }) else { return Status::INVALID };
        match Runtime::new(worker_threads) {
            Ok(rt) => {
                *out = Box::into_raw(Box::new(rt)) as *mut poc_rust_runtime;
                Status::OK
            }
            Err(e) => e.0,
        }
    })
}

/// Shuts the runtime down (docs/contract.md "Shutdown"): later port calls return `SHUTDOWN`,
/// pending ops complete with `SHUTDOWN`, agents and in-flight imports are cancelled, threads are
/// stopped with a bounded wait. Idempotent. `POC_INVALID` for NULL or when called on one of the
/// runtime's own threads.
///
/// # Safety
///
/// `rt` is NULL or a live runtime from `poc_rust_runtime_new`.
#[no_mangle]
pub unsafe extern "C" fn poc_rust_runtime_shutdown(rt: *mut poc_rust_runtime) -> poc_status {
    ffi_guard(|| match runtime(rt) {
        Some(rt) => match rt.shutdown() {
            Ok(()) => Status::OK,
            Err(e) => e.0,
        },
        None => Status::INVALID,
    })
}

/// Shuts down if needed and frees. NULL is ignored. Ports handed out stay safe to release.
/// On one of the runtime's own threads it cannot wait: it completes and stops everything and
/// lets tokio wind down in the background.
///
/// # Safety
///
/// `rt` is NULL or a live runtime from `poc_rust_runtime_new`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn poc_rust_runtime_free(rt: *mut poc_rust_runtime) {
    if rt.is_null() {
        return;
    }
    ffi_guard(|| {
        // SAFETY: `rt` came from `poc_rust_runtime_new` (Box::into_raw) and is freed once.
        drop(unsafe { Box::from_raw(rt as *mut Runtime) });
        Status::OK
    });
}

/// A bounded tokio channel of `capacity` (>= 1) messages exported as ports, with the default
/// payload limit. `POC_OK`, `POC_INVALID` (NULL arguments, capacity 0), `POC_SHUTDOWN`.
///
/// # Safety
///
/// `rt` NULL or live; `tx`/`rx` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn poc_rust_channel_new(
    rt: *mut poc_rust_runtime,
    capacity: usize,
    tx: *mut poc_sender,
    rx: *mut poc_receiver,
) -> poc_status {
    // SAFETY: same contract.
    unsafe { poc_rust_channel_new_ex(rt, capacity, 0, tx, rx) }
}

/// As `poc_rust_channel_new` with a payload limit of `max_payload` bytes (0 = the default).
///
/// # Safety
///
/// As `poc_rust_channel_new`.
#[no_mangle]
pub unsafe extern "C" fn poc_rust_channel_new_ex(
    rt: *mut poc_rust_runtime,
    capacity: usize,
    max_payload: usize,
    tx: *mut poc_sender,
    rx: *mut poc_receiver,
) -> poc_status {
    ffi_guard(|| {
        // SAFETY: `tx`/`rx` NULL or writable (the caller's promise).
        let (Some(rt), Some(tx), Some(rx)) = (runtime(rt), unsafe { tx.as_mut() }, unsafe { rx.as_mut() }) else {
            return Status::INVALID;
        };
        match rt.channel_ports(capacity, max_payload) {
            Ok((s, r)) => {
                *tx = s;
                *rx = r;
                Status::OK
            }
            Err(e) => e.0,
        }
    })
}

/// Starts a producer agent on the Rust runtime (same semantics as `poc_cpp_producer_start`):
/// takes `tx` (released when the agent ends), writes its id to `*out` (may be NULL), calls
/// `done` exactly once on a runtime thread. `POC_INVALID` (NULL rt/done, bad vtable) or
/// `POC_SHUTDOWN`: then the port was not taken and `done` is not called.
///
/// # Safety
///
/// `rt` NULL or live; `tx` a sender port the caller owns; `out` NULL or writable;
/// `done(user, …)` callable from a runtime thread.
#[no_mangle]
pub unsafe extern "C" fn poc_rust_producer_start(
    rt: *mut poc_rust_runtime,
    tx: poc_sender,
    stream: u64,
    count: u64,
    payload_len: usize,
    done: poc_agent_done_fn,
    user: *mut c_void,
    out: *mut ffi::poc_agent_id,
) -> poc_status {
    ffi_guard(|| {
        let (Some(rt), Some(done)) = (runtime(rt), done) else { return Status::INVALID };
        if crate::import::check_sender(&tx).is_err() {
            return Status::INVALID;
        }
        let make = move |agent| -> agents::Body {
            // SAFETY: checked above; ownership passes to the agent only now.
            let tx = unsafe { PortSender::from_raw(tx) }.expect("vtable checked");
            Box::pin(agents::producer(tx, stream, count, payload_len, agent))
        };
        // SAFETY: `out` NULL or writable (the caller's promise).
        match rt.start_agent(make, c_done(done, user), unsafe { out.as_mut() }) {
            Ok(_) => Status::OK,
            Err(e) => e.0,
        }
    })
}

/// Starts a consumer agent: receives until `CLOSED`, checking per-stream order and payloads.
/// Ownership and errors as `poc_rust_producer_start`.
///
/// # Safety
///
/// As `poc_rust_producer_start`, with a receiver port.
#[no_mangle]
pub unsafe extern "C" fn poc_rust_consumer_start(
    rt: *mut poc_rust_runtime,
    rx: poc_receiver,
    done: poc_agent_done_fn,
    user: *mut c_void,
    out: *mut ffi::poc_agent_id,
) -> poc_status {
    ffi_guard(|| {
        let (Some(rt), Some(done)) = (runtime(rt), done) else { return Status::INVALID };
        if crate::import::check_receiver(&rx).is_err() {
            return Status::INVALID;
        }
        let make = move |agent| -> agents::Body {
            // SAFETY: checked above; ownership passes to the agent only now.
            let rx = unsafe { PortReceiver::from_raw(rx) }.expect("vtable checked");
            Box::pin(agents::consumer(rx, agent))
        };
        // SAFETY: `out` NULL or writable (the caller's promise).
        match rt.start_agent(make, c_done(done, user), unsafe { out.as_mut() }) {
            Ok(_) => Status::OK,
            Err(e) => e.0,
        }
    })
}

/// Starts an echo agent: sends every message of `rx` back to `tx` until `rx` reports `CLOSED`.
/// Takes both ports. Ownership and errors as `poc_rust_producer_start`.
///
/// # Safety
///
/// As `poc_rust_producer_start`, with both ports.
#[no_mangle]
pub unsafe extern "C" fn poc_rust_echo_start(
    rt: *mut poc_rust_runtime,
    rx: poc_receiver,
    tx: poc_sender,
    done: poc_agent_done_fn,
    user: *mut c_void,
    out: *mut ffi::poc_agent_id,
) -> poc_status {
    ffi_guard(|| {
        let (Some(rt), Some(done)) = (runtime(rt), done) else { return Status::INVALID };
        if crate::import::check_receiver(&rx).is_err() || crate::import::check_sender(&tx).is_err() {
            return Status::INVALID;
        }
        let make = move |agent| -> agents::Body {
            // SAFETY: checked above; ownership passes to the agent only now.
            let (rx, tx) = (
                unsafe { PortReceiver::from_raw(rx) }.expect("vtable checked"),
                unsafe { PortSender::from_raw(tx) }.expect("vtable checked"),
            );
            Box::pin(agents::echo(rx, tx, agent))
        };
        // SAFETY: `out` NULL or writable (the caller's promise).
        match rt.start_agent(make, c_done(done, user), unsafe { out.as_mut() }) {
            Ok(_) => Status::OK,
            Err(e) => e.0,
        }
    })
}

/// Asks an agent to stop; it ends with `POC_CANCELLED` unless it already ended. Never blocks.
/// `POC_OK` (also for an unknown or finished agent) or `POC_INVALID` (NULL rt).
///
/// # Safety
///
/// `rt` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn poc_rust_agent_cancel(rt: *mut poc_rust_runtime, agent: ffi::poc_agent_id) -> poc_status {
    ffi_guard(|| match runtime(rt) {
        Some(rt) => {
            rt.cancel_agent(agent);
            Status::OK
        }
        None => Status::INVALID,
    })
}
