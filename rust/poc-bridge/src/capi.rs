//! The `poc_rust_*` exports of bridge.h ("Rust runtime" section): thin wrappers over
//! [`Runtime`]. Each catches panics at the boundary (`POC_PANIC`) and checks its pointers
//! (`POC_INVALID`). A `poc_rust_runtime*` is a `Box<Runtime>`.

use std::ffi::{c_char, c_void, CStr};

use crate::agents::{self, AgentReport};
use crate::export::ffi_guard;
use crate::ffi::{self, poc_agent_done_fn, poc_async_fn, poc_future, poc_receiver, poc_rust_runtime, poc_sender, poc_status};
use crate::future::lend::{self, AsyncFn, SquareMode};
use crate::future::{examples, export_future, export_future_with_progress, sync_progress, CallError};
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

// ---------------------------------------------------------------------------------------------
// Async calls exported by Rust (bridge.h "Section - Async calls exported by Rust")
// ---------------------------------------------------------------------------------------------

/// A NUL-terminated UTF-8 string argument; `None` for NULL or invalid UTF-8.
fn utf8_arg(s: *const c_char) -> Option<String> {
    if s.is_null() {
        return None;
    }
    // SAFETY: the caller promises a NUL-terminated string, readable for the call.
    unsafe { CStr::from_ptr(s) }.to_str().ok().map(str::to_owned)
}

/// Exports `fut` into `*out` (checked writable by the caller).
fn put_future(
    out: &mut poc_future,
    fut: impl std::future::Future<Output = Result<crate::Message, CallError>> + Send + 'static,
) -> Status {
    match export_future(fut) {
        Ok(f) => {
            *out = f;
            Status::OK
        }
        Err(s) => s,
    }
}

/// `fetch_user(id)` as a future into `*out`: value `{id, UTF-8 name}`; `POC_ERROR` 404 for an
/// unknown id; `POC_PANIC` for a negative id. Pure: runs on the poller's thread.
/// Returns `POC_OK` or `POC_INVALID` (NULL out).
///
/// # Safety
///
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn poc_rust_fetch_user(id: i32, out: *mut poc_future) -> poc_status {
    ffi_guard(|| {
        // SAFETY: NULL or writable (the caller's promise).
        let Some(out) = (unsafe { out.as_mut() }) else { return Status::INVALID };
        put_future(out, examples::fetch_user(id))
    })
}

/// `load_config(path)` as a future: a synthetic config (nothing is read from disk), `POC_ERROR`
/// 400 for an empty path. `POC_INVALID` for NULL or non-UTF-8 `path`, NULL `out`.
///
/// # Safety
///
/// `path` NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn poc_rust_load_config(path: *const c_char, out: *mut poc_future) -> poc_status {
    ffi_guard(|| {
        // SAFETY: NULL or writable (the caller's promise).
        let (Some(path), Some(out)) = (utf8_arg(path), unsafe { out.as_mut() }) else { return Status::INVALID };
        put_future(out, examples::load_config(path))
    })
}

/// `Database::connect(url)` into `*db` (a handle; free it with `poc_rust_database_free`).
/// `POC_OK`; `POC_INVALID` for NULL/non-UTF-8/empty url or NULL db.
///
/// # Safety
///
/// `url` NULL or NUL-terminated; `db` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn poc_rust_database_connect(url: *const c_char, db: *mut u64) -> poc_status {
    ffi_guard(|| {
        // SAFETY: NULL or writable (the caller's promise).
        let (Some(url), Some(db)) = (utf8_arg(url), unsafe { db.as_mut() }) else { return Status::INVALID };
        let Ok(d) = examples::Database::connect(&url) else { return Status::INVALID };
        match examples::DATABASES.insert(d) {
            Some(h) => {
                *db = h;
                Status::OK
            }
            None => Status::INVALID,
        }
    })
}

/// `Database::query(&self, sql)` as a future. `POC_INVALID` for a stale db, NULL/non-UTF-8 sql,
/// NULL out. The future keeps the database alive.
///
/// # Safety
///
/// `sql` NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn poc_rust_database_query(db: u64, sql: *const c_char, out: *mut poc_future) -> poc_status {
    ffi_guard(|| {
        // SAFETY: NULL or writable (the caller's promise).
        let (Some(d), Some(sql), Some(out)) = (examples::DATABASES.get(db), utf8_arg(sql), unsafe { out.as_mut() })
        else {
            return Status::INVALID;
        };
        put_future(out, d.query(sql))
    })
}

/// `Database::insert(&mut self, row)` as a future (inserts are serialised). `POC_INVALID` as
/// for query.
///
/// # Safety
///
/// `row` NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn poc_rust_database_insert(db: u64, row: *const c_char, out: *mut poc_future) -> poc_status {
    ffi_guard(|| {
        // SAFETY: NULL or writable (the caller's promise).
        let (Some(d), Some(row), Some(out)) = (examples::DATABASES.get(db), utf8_arg(row), unsafe { out.as_mut() })
        else {
            return Status::INVALID;
        };
        put_future(out, d.insert(row))
    })
}

/// Frees a database handle (futures already made keep the object alive). `POC_OK`, or
/// `POC_INVALID` for a stale handle.
#[no_mangle]
pub extern "C" fn poc_rust_database_free(db: u64) -> poc_status {
    ffi_guard(|| match examples::DATABASES.remove(db) {
        Some(d) => {
            drop(d);
            Status::OK
        }
        None => Status::INVALID,
    })
}

/// `sync_all()` spawned on the Rust runtime: `steps` steps of `step_ms` ms (tokio timer); the
/// future awaits the task, cancel/release aborts it. `POC_OK`, `POC_INVALID` (NULL rt/out),
/// `POC_SHUTDOWN`.
///
/// # Safety
///
/// `rt` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn poc_rust_sync_all(
    rt: *mut poc_rust_runtime,
    steps: u32,
    step_ms: u32,
    out: *mut poc_future,
) -> poc_status {
    ffi_guard(|| {
        // SAFETY: NULL or writable (the caller's promise).
        let (Some(rt), Some(out)) = (runtime(rt), unsafe { out.as_mut() }) else { return Status::INVALID };
        match examples::sync_all(rt, steps, step_ms) {
            Ok((fut, progress)) => match export_future_with_progress(fut, progress) {
                Ok(f) => {
                    *out = f;
                    Status::OK
                }
                Err(s) => s,
            },
            Err(e) => e.status(),
        }
    })
}

/// Progress of the `sync_all` future `future` (its handle, until released): steps done into
/// `*steps_done`, and into `*running` (may be NULL) 1 while its task is alive, 0 once it ended
/// (finished, aborted by cancel, or stopped by shutdown: `steps_done` then never changes).
/// `POC_OK`; `POC_INVALID` for a stale handle, a future that is not a sync_all, NULL steps_done.
///
/// # Safety
///
/// `steps_done` NULL or writable; `running` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn poc_rust_sync_progress(future: u64, steps_done: *mut u64, running: *mut u32) -> poc_status {
    ffi_guard(|| {
        // SAFETY: NULL or writable (the caller's promise).
        let (Some(p), Some(steps_done)) = (sync_progress(future), unsafe { steps_done.as_mut() }) else {
            return Status::INVALID;
        };
        // Read `running` first: if it says 0, the count read after it is final.
        let r = p.running();
        *steps_done = p.steps_done();
        // SAFETY: NULL or writable (the caller's promise).
        if let Some(running) = unsafe { running.as_mut() } {
            *running = r as u32;
        }
        Status::OK
    })
}

/// The Rust "square" lent function (bridge.h `POC_SQUARE_*`; [`lend::square_fn`]) into `*out`.
/// `READY` needs no runtime (`rt` may be NULL); `POSTED` and `TIMER` run a task on `rt`. The
/// function keeps `rt`'s shared state, so it may outlive `rt`: later calls answer `POC_SHUTDOWN`.
/// `POC_OK`, `POC_INVALID` (unknown mode, NULL rt for POSTED/TIMER, NULL out), `POC_SHUTDOWN`.
///
/// # Safety
///
/// `rt` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn poc_rust_square_fn(
    rt: *mut poc_rust_runtime,
    mode: u32,
    delay_ms: u32,
    out: *mut poc_async_fn,
) -> poc_status {
    ffi_guard(|| {
        // SAFETY: NULL or writable (the caller's promise).
        let (Some(mode), Some(out)) = (SquareMode::from_raw(mode), unsafe { out.as_mut() }) else {
            return Status::INVALID;
        };
        match lend::square_fn(runtime(rt), mode, delay_ms) {
            Ok(f) => {
                *out = f;
                Status::OK
            }
            Err(e) => e.status(),
        }
    })
}

/// `sum_calls(f, first, count)` ([`lend::sum_calls`]) as a future into `*out`: awaits
/// `f({id = first + i})` one after the other and sums the values' ids. Pure: runs on the
/// poller's thread. Takes `f` over whatever it returns: released when the future finished or
/// was released, or before returning if this fails (a NULL `f.release` cannot be called).
/// `POC_OK` or `POC_INVALID` (NULL f.call/f.release, NULL out).
///
/// # Safety
///
/// `f` a live lent function the caller owns (following bridge.h); `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn poc_rust_sum_calls(f: poc_async_fn, first: u64, count: u32, out: *mut poc_future) -> poc_status {
    ffi_guard(|| {
        // SAFETY: the caller hands `f` over (its promise); on error it is not taken.
        let f = match unsafe { AsyncFn::from_raw(f) } {
            Ok(f) => f,
            Err(_) => {
                if let Some(release) = f.release {
                    // SAFETY: taken over: released once, here (its call is NULL).
                    unsafe { release(f.context) };
                }
                return Status::INVALID;
            }
        };
        // SAFETY: NULL or writable (the caller's promise). On INVALID, dropping `f` releases it.
        let Some(out) = (unsafe { out.as_mut() }) else { return Status::INVALID };
        put_future(out, lend::sum_calls(f, first, count))
    })
}
