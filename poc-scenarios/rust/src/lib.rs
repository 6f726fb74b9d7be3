//! Shared pieces of the Rust scenario executables (`mayon-timer`, `mayon-sender`): the demo
//! style of `poc-scenarios/cpp/cpp_demos.cpp` — print what happens, `[ ok ]` / `[FAIL]` checks,
//! exit 1 when an invariant broke, 2 for bad arguments, every wait bounded — plus the C++
//! runtime as an RAII value and a collector of agent reports.
//!
//! The C++ side is linked through `poc-cpp-sys` (`use poc_cpp_sys as _` below): the executables
//! need `libpoc_cpp.a` from the CMake build (see that crate for where it is looked for).

use poc_cpp_sys as _;

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use poc_bridge::ffi::{self, cpp, poc_agent_report, poc_cpp_runtime, poc_receiver, poc_sender};
use poc_bridge::Status;

/// The bound of every wait: a broken bridge fails the scenario instead of hanging it.
pub const LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Checks and exit codes
// ---------------------------------------------------------------------------------------------

/// Counts failed checks; prints each check as `  [ ok ] …` or `  [FAIL] …`.
#[derive(Default)]
pub struct Checks {
    failures: AtomicUsize,
}

impl Checks {
    pub fn new() -> Checks {
        Checks::default()
    }

    /// Prints the check; returns `ok` so that a caller can stop early.
    pub fn check(&self, ok: bool, what: impl AsRef<str>) -> bool {
        println!("  [{}] {}", if ok { " ok " } else { "FAIL" }, what.as_ref());
        if !ok {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    pub fn failures(&self) -> usize {
        self.failures.load(Ordering::Relaxed)
    }

    /// Prints `NAME: PASS|FAIL` and returns the exit code (0 or 1).
    pub fn finish(&self, name: &str) -> i32 {
        let ok = self.failures() == 0;
        println!("{name}: {}", if ok { "PASS" } else { "FAIL" });
        if ok {
            0
        } else {
            1
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/// `--messages N`, `--capacity C`, `--payload B`; each scenario says which it accepts.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub messages: u64,
    pub capacity: usize,
    pub payload: usize,
}

/// Parses `args` (without the program name). `accepted` lists the options that mean something
/// for the scenario. On a bad argument prints the reason and the usage to stderr and returns
/// `Err(2)`, the exit code for bad arguments; `--help` prints the usage and returns `Err(0)`.
pub fn parse_options(
    defaults: Options,
    accepted: &[&str],
    usage: &str,
    args: impl IntoIterator<Item = String>,
) -> Result<Options, i32> {
    let mut o = defaults;
    let mut args = args.into_iter();
    let bad = |why: String| {
        eprintln!("{why}");
        eprintln!("{usage}");
        Err(2)
    };
    while let Some(a) = args.next() {
        if a == "--help" || a == "-h" {
            println!("{usage}");
            return Err(0);
        }
        if !accepted.contains(&a.as_str()) {
            return bad(if ["--messages", "--capacity", "--payload"].contains(&a.as_str()) {
                format!("option {a} does not apply to this scenario")
            } else {
                format!("unknown option {a}")
            });
        }
        let Some(v) = args.next() else { return bad(format!("missing value for {a}")) };
        let Ok(n) = v.parse::<u64>() else { return bad(format!("bad value for {a}: {v:?} (a non-negative integer)")) };
        match a.as_str() {
            "--messages" => o.messages = n,
            "--capacity" if n >= 1 => o.capacity = n as usize,
            "--capacity" => return bad("--capacity must be at least 1".to_string()),
            "--payload" if n as usize <= ffi::POC_DEFAULT_MAX_PAYLOAD => o.payload = n as usize,
            "--payload" => return bad(format!("--payload must be at most {} bytes", ffi::POC_DEFAULT_MAX_PAYLOAD)),
            _ => unreachable!("checked against `accepted`"),
        }
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// The C++ runtime and its agents
// ---------------------------------------------------------------------------------------------

/// A C++ runtime (`poc_cpp_runtime_new`): an io_context and its threads. Freed on drop
/// (`poc_cpp_runtime_free` shuts it down first if needed, bounded by the C++ side).
pub struct CppRuntime(*mut poc_cpp_runtime);

// SAFETY: every poc_cpp_* function may be called from any thread (bridge.h); the pointer is
// freed only by Drop.
unsafe impl Send for CppRuntime {}
unsafe impl Sync for CppRuntime {}

impl CppRuntime {
    pub fn new(threads: u32) -> Result<CppRuntime, Status> {
        let mut rt = std::ptr::null_mut();
        // SAFETY: `rt` is a valid place for the result.
        match Status(unsafe { cpp::poc_cpp_runtime_new(threads, &mut rt) }) {
            Status::OK => Ok(CppRuntime(rt)),
            s => Err(s),
        }
    }

    pub fn raw(&self) -> *mut poc_cpp_runtime {
        self.0
    }

    /// A C++ `concurrent_channel` exported as raw ports (the caller owns both).
    pub fn channel(&self, capacity: usize) -> Result<(poc_sender, poc_receiver), Status> {
        let mut tx = poc_sender { handle: 0, vtable: std::ptr::null() };
        let mut rx = poc_receiver { handle: 0, vtable: std::ptr::null() };
        // SAFETY: a live runtime and valid out-pointers.
        match Status(unsafe { cpp::poc_cpp_channel_new(self.0, capacity, &mut tx, &mut rx) }) {
            Status::OK => Ok((tx, rx)),
            s => Err(s),
        }
    }

    /// `poc_cpp_timer_start`: the mayon timer task, taking `tx`. Returns the agent id.
    pub fn start_timer(
        &self,
        tx: poc_sender,
        interval_ms: u32,
        max_count: u64,
        done: &Arc<Reports>,
    ) -> Result<u64, Status> {
        let mut id = 0;
        // SAFETY: `done.user()` stays valid: the caller keeps the Arc until the runtime is gone.
        let st = Status(unsafe {
            cpp::poc_cpp_timer_start(self.0, tx, interval_ms, max_count, Some(Reports::on_done), done.user(), &mut id)
        });
        done.started(st).map(|()| id)
    }

    /// `poc_cpp_consumer_start`, taking `rx`. Returns the agent id.
    pub fn start_consumer(&self, rx: poc_receiver, done: &Arc<Reports>) -> Result<u64, Status> {
        let mut id = 0;
        // SAFETY: as for start_timer.
        let st =
            Status(unsafe { cpp::poc_cpp_consumer_start(self.0, rx, Some(Reports::on_done), done.user(), &mut id) });
        done.started(st).map(|()| id)
    }

    /// `poc_cpp_agent_cancel` (a request; never blocks).
    pub fn cancel(&self, agent: u64) -> Status {
        // SAFETY: a live runtime.
        Status(unsafe { cpp::poc_cpp_agent_cancel(self.0, agent) })
    }

    /// `poc_cpp_runtime_shutdown`.
    pub fn shutdown(&self) -> Status {
        // SAFETY: a live runtime; main is not one of its threads.
        Status(unsafe { cpp::poc_cpp_runtime_shutdown(self.0) })
    }
}

impl Drop for CppRuntime {
    fn drop(&mut self) {
        // SAFETY: from poc_cpp_runtime_new, freed once.
        unsafe { cpp::poc_cpp_runtime_free(self.0) };
    }
}

/// Collects the reports of C++ agents (`done` callbacks, on C++ threads). Keep the `Arc` alive
/// until the runtime that runs the agents is gone; then [`Reports::calls`] is final.
pub struct Reports {
    calls: AtomicU64,
    started: AtomicU64,
    tx: Mutex<mpsc::Sender<poc_agent_report>>,
    rx: Mutex<mpsc::Receiver<poc_agent_report>>,
}

impl Reports {
    pub fn new() -> Arc<Reports> {
        let (tx, rx) = mpsc::channel();
        Arc::new(Reports { calls: 0.into(), started: 0.into(), tx: tx.into(), rx: rx.into() })
    }

    fn user(self: &Arc<Self>) -> *mut c_void {
        Arc::as_ptr(self) as *mut c_void
    }

    fn started(&self, st: Status) -> Result<(), Status> {
        if st == Status::OK {
            self.started.fetch_add(1, Ordering::SeqCst);
            Ok(())
        } else {
            Err(st)
        }
    }

    unsafe extern "C" fn on_done(user: *mut c_void, report: *const poc_agent_report) {
        // SAFETY: `user` is the `&Reports` given at start; `report` is valid for the call.
        let (me, r) = unsafe { (&*(user as *const Reports), *report) };
        me.calls.fetch_add(1, Ordering::SeqCst);
        let _ = me.tx.lock().map(|tx| tx.send(r));
    }

    /// The next report, waiting at most [`LIMIT`] (`None` on timeout).
    pub fn wait(&self) -> Option<poc_agent_report> {
        self.rx.lock().ok()?.recv_timeout(LIMIT).ok()
    }

    /// How many times `done` ran, and how many agents were started.
    pub fn calls(&self) -> (u64, u64) {
        (self.calls.load(Ordering::SeqCst), self.started.load(Ordering::SeqCst))
    }
}

/// One line describing an agent report.
pub fn describe(r: &poc_agent_report) -> String {
    format!(
        "{} messages, checksum {:016x}, {} order errors, ended {}",
        r.messages,
        r.checksum,
        r.order_errors,
        Status(r.status)
    )
}

/// The text of a payload, for printing.
pub fn text(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload).into_owned()
}
