//! Criterion microbenchmarks of single operations of Poc's Rust import path, with native
//! baselines (bench/native/README.md, "micro-rust.json"). Run by bench/native/run:
//! `cargo bench -p poc-bench --bench micro` (`POC_MICRO_QUICK=1` for short settings); then
//! `poc-bench-native-rust --criterion-summary DIR --out micro-rust.json` summarises
//! criterion's estimates. Benchmark ids are the keys of the summariser's description table
//! (src/criterion_summary.rs): keep them in step.
//!
//! Everything runs on the bench thread; async ops are driven by `futures::executor::block_on`
//! (its own cost is the `block_on_ready` baseline). The C++ runtime (1 thread) owns the channels
//! and the C++ square function; every iteration checks its result (a wrong value panics).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use futures::executor::block_on;
use poc_bridge::ffi::{self, cpp};
use poc_bridge::{AsyncFn, Message, PortReceiver, PortSender, Status};
use poc_cpp_sys as _; // links libpoc_cpp.a

/// A C++ runtime with one thread, freed on drop.
struct CppRuntime(*mut ffi::poc_cpp_runtime);

impl CppRuntime {
    fn new() -> CppRuntime {
        let mut rt = std::ptr::null_mut();
        // SAFETY: valid out pointer.
        let st = Status(unsafe { cpp::poc_cpp_runtime_new(1, &mut rt) });
        assert!(st == Status::OK && !rt.is_null(), "poc_cpp_runtime_new: {st}");
        CppRuntime(rt)
    }

    /// A C++-owned channel of capacity 1024, both ends imported.
    fn channel(&self) -> (PortSender, PortReceiver) {
        let mut tx = ffi::poc_sender { handle: 0, vtable: std::ptr::null() };
        let mut rx = ffi::poc_receiver { handle: 0, vtable: std::ptr::null() };
        // SAFETY: live runtime, valid out pointers.
        let st = Status(unsafe { cpp::poc_cpp_channel_new(self.0, 1024, &mut tx, &mut rx) });
        assert_eq!(st, Status::OK, "poc_cpp_channel_new");
        // SAFETY: fresh ports we own.
        unsafe { (PortSender::from_raw(tx).expect("C++ sender"), PortReceiver::from_raw(rx).expect("C++ receiver")) }
    }

    /// The C++ square lent function in READY mode, imported.
    fn square_ready(&self) -> AsyncFn {
        let mut f = ffi::poc_async_fn { call: None, release: None, context: std::ptr::null_mut() };
        // SAFETY: live runtime, valid out pointer.
        let st = Status(unsafe { cpp::poc_cpp_square_fn(self.0, ffi::POC_SQUARE_READY, 0, &mut f) });
        assert_eq!(st, Status::OK, "poc_cpp_square_fn");
        // SAFETY: a fresh lent function we own.
        unsafe { AsyncFn::from_raw(f) }.expect("C++ square")
    }
}

impl Drop for CppRuntime {
    fn drop(&mut self) {
        // SAFETY: made by poc_cpp_runtime_new, freed once.
        unsafe { cpp::poc_cpp_runtime_free(self.0) }
    }
}

/// The Rust square lent function in READY mode through the C ABI (poc_rust_square_fn), imported.
fn rust_square_ready() -> AsyncFn {
    let mut f = ffi::poc_async_fn { call: None, release: None, context: std::ptr::null_mut() };
    // SAFETY: READY needs no runtime (NULL rt); valid out pointer.
    let st = Status(unsafe { poc_bridge::poc_rust_square_fn(std::ptr::null_mut(), ffi::POC_SQUARE_READY, 0, &mut f) });
    assert_eq!(st, Status::OK, "poc_rust_square_fn");
    // SAFETY: a fresh lent function we own.
    unsafe { AsyncFn::from_raw(f) }.expect("Rust square")
}

fn call_square(f: &AsyncFn, x: u64) -> u64 {
    let v = block_on(f.call(&Message::new(x, Vec::new())).expect("call")).expect("square value");
    assert_eq!(v.id, x * x);
    v.id
}

fn benches(c: &mut Criterion) {
    let cpp_rt = CppRuntime::new();

    {
        let (tx, mut rx) = cpp_rt.channel();
        let mut i = 0u64;
        c.bench_function("port_try_send_try_recv_cpp", |b| {
            b.iter(|| {
                i += 1;
                tx.try_send(Message::new(i, Vec::new())).expect("try_send");
                let m = rx.try_recv().expect("try_recv");
                assert_eq!(m.id, i);
                black_box(m)
            })
        });
    }

    {
        let (tx, mut rx) = cpp_rt.channel();
        let mut i = 0u64;
        c.bench_function("port_send_recv_await_cpp", |b| {
            b.iter(|| {
                i += 1;
                let m = block_on(async {
                    tx.send(Message::new(i, Vec::new())).await.expect("send");
                    rx.recv().await.expect("recv")
                });
                assert_eq!(m.id, i);
                black_box(m)
            })
        });
    }

    {
        let f = cpp_rt.square_ready();
        let mut x = 0u64;
        c.bench_function("call_cpp_square_ready", |b| {
            b.iter(|| {
                x = x % 1_000_000 + 1;
                call_square(&f, black_box(x))
            })
        });
    }

    {
        let f = rust_square_ready();
        let mut x = 0u64;
        c.bench_function("call_rust_square_ready_abi", |b| {
            b.iter(|| {
                x = x % 1_000_000 + 1;
                call_square(&f, black_box(x))
            })
        });
    }

    {
        struct NativeMsg {
            id: u64,
            payload: Vec<u8>,
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<NativeMsg>(1024);
        let mut i = 0u64;
        c.bench_function("tokio_mpsc_try_send_try_recv", |b| {
            b.iter(|| {
                i += 1;
                if tx.try_send(NativeMsg { id: i, payload: Vec::new() }).is_err() {
                    panic!("tokio try_send failed");
                }
                let m = rx.try_recv().expect("tokio try_recv");
                assert!(m.id == i && m.payload.is_empty());
                black_box(m.id)
            })
        });
    }

    c.bench_function("block_on_ready", |b| b.iter(|| block_on(std::future::ready(black_box(7u64)))));

    drop(cpp_rt);
}

/// Short settings (the whole run within ~20 s with POC_MICRO_QUICK=1, ~60 s without); the
/// summariser's `settings()` (src/criterion_summary.rs) describes the same numbers.
fn config() -> Criterion {
    let quick = std::env::var_os("POC_MICRO_QUICK").is_some_and(|v| v == "1");
    let (warm, measure, samples, resamples) = if quick { (500, 1_500, 20, 5_000) } else { (1_000, 5_000, 50, 20_000) };
    Criterion::default()
        .warm_up_time(Duration::from_millis(warm))
        .measurement_time(Duration::from_millis(measure))
        .sample_size(samples)
        // Bootstrap resamples (default 100 000): the analysis dominated the run time on 2 cores.
        .nresamples(resamples)
        .without_plots()
}

criterion_group! {
    name = micro;
    config = config();
    targets = benches
}
criterion_main!(micro);
