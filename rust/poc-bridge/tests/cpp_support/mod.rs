//! Helpers of the cross-runtime tests (Rust ↔ C++): the C++ runtime of `native-cpp/` as an RAII
//! value, C++ channels as raw ports or imported as `PortSender` / `PortReceiver`, and a recorder
//! of agent reports that works for C++ agents (a C `done` callback) and Rust agents (a closure).
//!
//! Linking: `use poc_cpp_sys as _` below is what links `libpoc_cpp.a` (and libstdc++) into the
//! test binaries that include this module; the C++ functions are declared in
//! `poc_bridge::ffi::cpp`. Only the cross-runtime test files include it, so the Rust-only
//! suites stay free of the C++ library.
#![allow(dead_code)]

use poc_cpp_sys as _;

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use poc_bridge::ffi::{self, cpp, poc_agent_report, poc_cpp_runtime, poc_receiver, poc_sender};
use poc_bridge::{AgentReport, PortReceiver, PortSender, Status};

use crate::common::LIMIT;

/// A C++ runtime (`poc_cpp_runtime_new`), freed on drop (`poc_cpp_runtime_free`, which shuts it
/// down first if needed). Ports it handed out stay safe to release afterwards.
pub struct CppRuntime(*mut poc_cpp_runtime);

// SAFETY: every poc_cpp_* function may be called from any thread (bridge.h); the pointer is only
// freed by Drop.
unsafe impl Send for CppRuntime {}
unsafe impl Sync for CppRuntime {}

impl CppRuntime {
    pub fn new(threads: u32) -> CppRuntime {
        let mut rt = std::ptr::null_mut();
        let st = Status(unsafe { cpp::poc_cpp_runtime_new(threads, &mut rt) });
        assert_eq!(st, Status::OK, "poc_cpp_runtime_new({threads})");
        assert!(!rt.is_null());
        CppRuntime(rt)
    }

    pub fn raw(&self) -> *mut poc_cpp_runtime {
        self.0
    }

    /// A C++ concurrent_channel as raw ports (the caller releases each exactly once).
    /// `max_payload` 0 = the default limit.
    pub fn channel_ports(&self, capacity: usize, max_payload: usize) -> (poc_sender, poc_receiver) {
        let mut tx = poc_sender { handle: 0, vtable: std::ptr::null() };
        let mut rx = poc_receiver { handle: 0, vtable: std::ptr::null() };
        let st = Status(unsafe { cpp::poc_cpp_channel_new_ex(self.0, capacity, max_payload, &mut tx, &mut rx) });
        assert_eq!(st, Status::OK, "poc_cpp_channel_new_ex({capacity}, {max_payload})");
        (tx, rx)
    }

    /// A C++ channel imported into Rust: every op goes through the C++ exporter's vtables.
    pub fn channel(&self, capacity: usize) -> (PortSender, PortReceiver) {
        let (tx, rx) = self.channel_ports(capacity, 0);
        unsafe {
            (
                PortSender::from_raw(tx).expect("C++ sender vtable"),
                PortReceiver::from_raw(rx).expect("C++ receiver vtable"),
            )
        }
    }

    /// `poc_cpp_runtime_shutdown` (bounded by the C++ side: it stops the io_context after its
    /// own timeout rather than hang).
    pub fn shutdown(&self) -> Status {
        Status(unsafe { cpp::poc_cpp_runtime_shutdown(self.0) })
    }

    pub fn start_producer(&self, tx: poc_sender, stream: u64, count: u64, len: usize, r: &Arc<Reports>) -> u64 {
        let mut id = 0;
        let st = Status(unsafe {
            cpp::poc_cpp_producer_start(self.0, tx, stream, count, len, Some(Reports::on_done), r.user(), &mut id)
        });
        assert_eq!(st, Status::OK, "poc_cpp_producer_start");
        r.started.fetch_add(1, Ordering::SeqCst);
        id
    }

    pub fn start_consumer(&self, rx: poc_receiver, r: &Arc<Reports>) -> u64 {
        let mut id = 0;
        let st = Status(unsafe { cpp::poc_cpp_consumer_start(self.0, rx, Some(Reports::on_done), r.user(), &mut id) });
        assert_eq!(st, Status::OK, "poc_cpp_consumer_start");
        r.started.fetch_add(1, Ordering::SeqCst);
        id
    }

    pub fn start_echo(&self, rx: poc_receiver, tx: poc_sender, r: &Arc<Reports>) -> u64 {
        let mut id = 0;
        let st = Status(unsafe { cpp::poc_cpp_echo_start(self.0, rx, tx, Some(Reports::on_done), r.user(), &mut id) });
        assert_eq!(st, Status::OK, "poc_cpp_echo_start");
        r.started.fetch_add(1, Ordering::SeqCst);
        id
    }

    pub fn start_timer(&self, tx: poc_sender, interval_ms: u32, max_count: u64, r: &Arc<Reports>) -> u64 {
        let mut id = 0;
        let st = Status(unsafe {
            cpp::poc_cpp_timer_start(self.0, tx, interval_ms, max_count, Some(Reports::on_done), r.user(), &mut id)
        });
        assert_eq!(st, Status::OK, "poc_cpp_timer_start");
        r.started.fetch_add(1, Ordering::SeqCst);
        id
    }

    pub fn cancel(&self, agent: u64) {
        assert_eq!(Status(unsafe { cpp::poc_cpp_agent_cancel(self.0, agent) }), Status::OK);
    }
}

impl Drop for CppRuntime {
    fn drop(&mut self) {
        unsafe { cpp::poc_cpp_runtime_free(self.0) };
    }
}

/// Agent reports, from C++ agents (`Reports::on_done` + `user()`) or Rust agents
/// (`Reports::closure`). Counts every call so that "exactly once" can be asserted after the
/// runtimes are gone. Keep the `Arc` alive until then.
pub struct Reports {
    pub calls: AtomicUsize,
    pub started: AtomicUsize,
    tx: Mutex<mpsc::Sender<poc_agent_report>>,
    rx: Mutex<mpsc::Receiver<poc_agent_report>>,
}

impl Reports {
    pub fn new() -> Arc<Reports> {
        let (tx, rx) = mpsc::channel();
        Arc::new(Reports { calls: 0.into(), started: 0.into(), tx: tx.into(), rx: rx.into() })
    }

    pub fn user(self: &Arc<Self>) -> *mut c_void {
        Arc::as_ptr(self) as *mut c_void
    }

    /// The `poc_agent_done_fn` for C++ (and C-ABI Rust) agents; `user` is `&Reports`.
    pub unsafe extern "C" fn on_done(user: *mut c_void, report: *const poc_agent_report) {
        let r = unsafe { &*(user as *const Reports) };
        r.record(unsafe { *report });
    }

    /// The done closure for `poc_bridge::Runtime::start_*` agents.
    pub fn closure(self: &Arc<Self>) -> impl FnOnce(&AgentReport) + Send + 'static {
        self.started.fetch_add(1, Ordering::SeqCst);
        let me = Arc::clone(self);
        move |r: &AgentReport| me.record(r.to_ffi())
    }

    fn record(&self, r: poc_agent_report) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let _ = self.tx.lock().unwrap().send(r);
    }

    /// The next report, waiting at most [`LIMIT`].
    pub fn wait(&self, what: &str) -> poc_agent_report {
        self.rx
            .lock()
            .unwrap()
            .recv_timeout(LIMIT)
            .unwrap_or_else(|_| panic!("timed out after {LIMIT:?} waiting for an agent to end: {what}"))
    }

    /// Every `done` ran exactly once: call after the runtimes that run the agents are gone.
    pub fn assert_exactly_once(&self, what: &str) {
        let (started, calls) = (self.started.load(Ordering::SeqCst), self.calls.load(Ordering::SeqCst));
        assert_eq!(calls, started, "{what}: {started} agents started, done called {calls} times");
    }
}

pub fn status(r: &poc_agent_report) -> Status {
    Status(r.status)
}

/// The C++ checksum of a Rust message (`poc_message_checksum`).
pub fn cpp_checksum(m: &poc_bridge::Message) -> u64 {
    let v = m.view();
    unsafe { cpp::poc_message_checksum(&v) }
}

/// The C++ name of a status (`poc_status_str`).
pub fn cpp_status_str(s: ffi::poc_status) -> String {
    let p = unsafe { cpp::poc_status_str(s) };
    assert!(!p.is_null(), "poc_status_str({s}) returned NULL");
    unsafe { std::ffi::CStr::from_ptr(p) }.to_str().expect("ASCII").to_string()
}
