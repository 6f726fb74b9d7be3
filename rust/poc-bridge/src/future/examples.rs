//! The async calls of the BoltFFI async page, written as plain Rust `async` code and exported
//! as `poc_rust_*` in bridge.h ("Async calls exported by Rust"). Value encodings (a future's
//! value is message-shaped: `{id, bytes}`):
//!
//! | call | value (`POC_OK`) | errors (`POC_ERROR`: id = code, data = UTF-8 message) |
//! | --- | --- | --- |
//! | [`fetch_user`] | id = user id, data = UTF-8 name | 404 `user N not found`; id < 0 panics (→ `POC_PANIC`) |
//! | [`load_config`] | id = 1 (config version), data = UTF-8 `key=value` lines | 400 `empty path` |
//! | [`Database::query`] | id = row count, data = rows joined by `\n` | 400 unsupported sql |
//! | [`Database::insert`] | id = row count after the insert, data = the row | 400 empty row or row with `\n` |
//! | [`sync_all`] | id = steps done, data = `synced N items` | `POC_SHUTDOWN` if the runtime stops |
//!
//! `fetch_user`, `load_config` and the `Database` methods are pure computation, a yield and an
//! async lock: they run on whoever polls them, no runtime needed. `sync_all` needs tokio's timer:
//! it is spawned on a [`Runtime`] and its exported future awaits the task; dropping (cancelling)
//! that future aborts the task.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::{CallError, ForeignFuture};
use crate::{Message, Runtime};

/// Returns `Pending` once (waking itself during that poll), then `Ready`: the smallest "await
/// point" that needs no runtime. (Also exercises the exporter's wake-during-poll path.)
pub fn yield_now() -> impl Future<Output = ()> + Send {
    struct YieldNow(bool);
    impl Future for YieldNow {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
    YieldNow(false)
}

const USERS: [(i32, &str); 3] = [(1, "alice"), (2, "bob"), (42, "ada")];

/// `fetch_user(id) -> Result<User, DbError>`: a User is `{id, name}`. Unknown ids give
/// `Error {code: 404}`; a negative id panics inside the future (to demonstrate containment).
pub async fn fetch_user(id: i32) -> Result<Message, CallError> {
    yield_now().await;
    if id < 0 {
        panic!("fetch_user: negative id {id}");
    }
    match USERS.iter().find(|(i, _)| *i == id) {
        Some((i, name)) => Ok(Message::new(*i as u64, name.as_bytes())),
        None => Err(CallError::error(404, format!("user {id} not found"))),
    }
}

/// `fetch_user` through the C ABI and back: `poc_rust_fetch_user` imported as a
/// [`ForeignFuture`] (what a C++ or C# caller sees, in Rust).
pub fn fetch_user_ffi(id: i32) -> ForeignFuture {
    let mut out = crate::ffi::poc_future { handle: 0, vtable: std::ptr::null() };
    // SAFETY: `out` is writable.
    let s = unsafe { crate::capi::poc_rust_fetch_user(id, &mut out) };
    assert_eq!(s, crate::ffi::POC_OK, "poc_rust_fetch_user");
    // SAFETY: a fresh future we own, with our static vtable.
    unsafe { ForeignFuture::from_raw(out) }.expect("own vtable")
}

/// `load_config(path) -> Result<Config, Error>`: reads nothing from disk; returns the
/// synthetic config `path=<path>\nversion=1\nworkers=4\n` (id = 1, the config version), or
/// `Error {code: 400, "empty path"}`.
pub async fn load_config(path: String) -> Result<Message, CallError> {
    yield_now().await;
    if path.is_empty() {
        return Err(CallError::error(400, "empty path"));
    }
    Ok(Message::new(1, format!("path={path}\nversion=1\nworkers=4\n").into_bytes()))
}

/// The `Database` of the BoltFFI async page's examples: `connect` (sync), `query(&self)` and `insert(&mut self)`
/// (async). In-memory rows behind a `tokio::sync::RwLock` — an async lock that needs no
/// runtime: queries share it, inserts hold it exclusively (the `&mut self` method is
/// serialised), also across their await point. Cancelling an insert drops its guard.
#[derive(Debug)]
pub struct Database {
    url: String,
    rows: tokio::sync::RwLock<Vec<String>>,
}

impl Database {
    /// Connects (synchronously; nothing is opened). `Err(Error 400)` for an empty url.
    pub fn connect(url: &str) -> Result<Arc<Database>, CallError> {
        if url.is_empty() {
            return Err(CallError::error(400, "empty url"));
        }
        Ok(Arc::new(Database { url: url.to_string(), rows: tokio::sync::RwLock::new(Vec::new()) }))
    }

    /// The url it was connected with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `query(&self, sql)`: any statement starting with `SELECT` (case-insensitive) returns
    /// every row: id = row count, data = rows joined by `\n`. Anything else: `Error 400`.
    pub async fn query(self: Arc<Self>, sql: String) -> Result<Message, CallError> {
        if !sql.trim_start().to_ascii_lowercase().starts_with("select") {
            return Err(CallError::error(400, format!("unsupported sql: {sql}")));
        }
        let rows = self.rows.read().await;
        yield_now().await;
        Ok(Message::new(rows.len() as u64, rows.join("\n").into_bytes()))
    }

    /// `insert(&mut self, row)`: takes the lock exclusively, yields once while holding it, then
    /// appends. Value: id = row count after the insert, data = the row. `Error 400` for an empty
    /// row or one containing `\n` (rows are `\n`-separated in query results).
    pub async fn insert(self: Arc<Self>, row: String) -> Result<Message, CallError> {
        if row.is_empty() || row.contains('\n') {
            return Err(CallError::error(400, "a row must be non-empty and contain no newline"));
        }
        let mut rows = self.rows.write().await;
        yield_now().await; // an await point while holding the lock
        rows.push(row.clone());
        Ok(Message::new(rows.len() as u64, row.into_bytes()))
    }
}

/// How far a [`sync_all`] got: steps completed, and whether its task is still alive.
#[derive(Debug, Default)]
pub struct SyncProgress {
    steps_done: AtomicU64,
    ended: AtomicBool,
}

impl SyncProgress {
    /// Steps completed so far.
    pub fn steps_done(&self) -> u64 {
        self.steps_done.load(Ordering::SeqCst)
    }

    /// `true` until the task's body has been dropped (finished, aborted or shut down); once it
    /// is `false`, `steps_done` never changes again.
    pub fn running(&self) -> bool {
        !self.ended.load(Ordering::SeqCst)
    }
}

struct EndGuard(Arc<SyncProgress>);
impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0.ended.store(true, Ordering::SeqCst);
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<Message>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `sync_all()`: `steps` steps of `step_ms` ms each (tokio's timer), spawned on `rt`. Returns
/// the future that awaits the task (dropping it aborts the task) and the progress tracker.
/// Value: id = steps done, data = `synced N items`. `Err(Shutdown)` when `rt` is stopping, or
/// from the future when the runtime stopped the task.
pub fn sync_all(
    rt: &Runtime,
    steps: u32,
    step_ms: u32,
) -> Result<(impl Future<Output = Result<Message, CallError>> + Send + 'static, Arc<SyncProgress>), CallError> {
    if rt.is_stopping() {
        return Err(CallError::Shutdown);
    }
    let progress = Arc::new(SyncProgress::default());
    let guard = EndGuard(Arc::clone(&progress));
    let task = rt.handle().spawn(async move {
        let guard = guard;
        for _ in 0..steps {
            tokio::time::sleep(Duration::from_millis(step_ms as u64)).await;
            guard.0.steps_done.fetch_add(1, Ordering::SeqCst);
        }
        Message::new(steps as u64, format!("synced {steps} items").into_bytes())
    });
    let mut task = AbortOnDrop(task);
    let fut = async move {
        match (&mut task.0).await {
            Ok(m) => Ok(m),
            Err(e) if e.is_panic() => Err(CallError::Panic("sync_all task panicked".into())),
            Err(_) => Err(CallError::Shutdown), // only the runtime's shutdown cancels it unobserved
        }
    };
    Ok((fut, progress))
}

/// Live `Database` objects exported by `poc_rust_database_connect` (tag `0x44`, "D").
pub(crate) static DATABASES: super::table::Table<Database> = super::table::Table::new(0x44);
