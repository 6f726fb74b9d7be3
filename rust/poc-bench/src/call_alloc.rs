//! `call_allocations`: heap allocations per async call of the Rust import of a lent function
//! (`poc_async_fn` → [`AsyncFn`], each call's `poc_future` → `ForeignFuture`), calling the **C++**
//! "square" (`poc_cpp_square_fn`, modes READY and POSTED) from a Rust task, in steady state
//! (bench/native/README.md, "call_allocations"). Counted by the program's counting
//! `#[global_allocator]` (alloc.rs): Rust-side allocations only — the C++ lender's `operator new`
//! goes to `malloc` and is not counted.

use std::sync::mpsc as std_mpsc;

use poc_bridge::ffi::{self, cpp};
use poc_bridge::{AsyncFn, Message, Runtime, Status};

use crate::alloc;
use crate::{json_num_fine, json_str, wait, CppRuntime, Progress, Res, THREADS};

const WARMUP: u64 = 1_000;

/// Number of progress lines of this section.
pub const LINES: usize = 2;

/// The C++ square lent function in `mode`, imported.
fn cpp_square(cpp_rt: &CppRuntime, mode: u32) -> Res<AsyncFn> {
    let mut f = ffi::poc_async_fn { call: None, release: None, context: std::ptr::null_mut() };
    // SAFETY: live runtime, valid out pointer.
    let st = Status(unsafe { cpp::poc_cpp_square_fn(cpp_rt.0, mode, 0, &mut f) });
    if st != Status::OK {
        return Err(format!("poc_cpp_square_fn(mode {mode}): {st}"));
    }
    // SAFETY: a fresh lent function we own.
    unsafe { AsyncFn::from_raw(f) }.map_err(|e| format!("import C++ square: {e}"))
}

/// `WARMUP` uncounted calls, then `n` counted calls (args 1, 2, …), awaited one after the other
/// in a task of `rt`; checks every value.
fn count_calls(rt: &Runtime, f: AsyncFn, n: u64) -> Res<alloc::Tally> {
    let (tx, rx) = std_mpsc::channel();
    rt.handle().spawn(async move {
        let r = async {
            let mut t0 = alloc::Snap::default();
            for i in 0..WARMUP + n {
                if i == WARMUP {
                    alloc::set_counting(true);
                    t0 = alloc::snap();
                }
                let x = i + 1;
                let v = f.call(&Message::new(x, Vec::new())).map_err(|e| format!("call {x}: {e}"))?.await.map_err(|e| format!("call {x}: {e}"))?;
                if v.id != x * x || !v.payload.is_empty() {
                    return Err(format!("call {x}: value {} with {} bytes (expected {})", v.id, v.payload.len(), x * x));
                }
            }
            let d = alloc::snap() - t0;
            alloc::set_counting(false);
            Ok::<_, String>(alloc::Tally { ops: n, allocs: d.allocs, bytes: d.bytes })
        }
        .await;
        alloc::set_counting(false);
        drop(f); // releases the lent function (after its last call finished)
        let _ = tx.send(r);
    });
    wait(&rx, "call allocations")?
}

/// The `call_allocations` rows (JSON) and their progress lines.
pub fn call_allocations(n: u64, progress: &mut Progress) -> Res<Vec<String>> {
    let rt = Runtime::new(THREADS).map_err(|e| format!("poc Rust runtime: {e}"))?;
    let cpp_rt = CppRuntime::new(THREADS)?;
    let mut rows = Vec::new();
    for (mode, raw, how) in [
        ("ready", ffi::POC_SQUARE_READY, "POC_SQUARE_READY: the C++ lender computes x*x inside call and hands back a finished future, so the first poll answers OK (no wake, no thread hop)"),
        ("posted", ffi::POC_SQUARE_POSTED, "POC_SQUARE_POSTED: the C++ lender completes the call from an asio::post to its io_context (1 thread), so the first poll usually answers PENDING and the wake comes from the C++ thread"),
    ] {
        let t = count_calls(&rt, cpp_square(&cpp_rt, raw)?, n)?;
        progress.line(&format!(
            "call allocations Rust caller -> C++ square {mode}: {:.3} allocs/call, {:.1} B/call ({} calls)",
            t.allocs_per_op(), t.bytes_per_op(), t.ops
        ));
        let what = format!(
            "a Rust task on a poc_bridge::Runtime ({THREADS} worker) awaits the C++ \"square\" lent function (poc_cpp_square_fn on a poc_cpp_runtime with 1 thread) imported as poc_bridge::AsyncFn: per call AsyncFn::call(&Message{{id: x, empty payload}}) (the lender's call through the C ABI, its poc_future imported as a ForeignFuture) then .await, checking the value x*x; {how}; {WARMUP} warm-up calls, then {n} counted calls one after the other; counted process-wide on every thread by the program's counting #[global_allocator] (wrapping System) over the whole counted loop: Rust-side allocations only — the C++ lender's operator new goes to malloc and is not counted"
        );
        rows.push(format!(
            "    {{\"runtime\": \"Rust\", \"caller\": \"Rust\", \"callee\": \"C++\", \"mode\": {}, \"bytes_per_call\": {}, \"allocs_per_call\": {}, \"calls\": {}, \"allocs\": {}, \"bytes\": {}, \"what\": {}}}",
            json_str(mode), json_num_fine(t.bytes_per_op()), json_num_fine(t.allocs_per_op()), t.ops, t.allocs, t.bytes, json_str(&what)
        ));
    }
    drop(cpp_rt);
    rt.shutdown().map_err(|e| format!("poc Rust runtime shutdown: {e}"))?;
    Ok(rows)
}
