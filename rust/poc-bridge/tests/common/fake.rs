//! A fake port whose every move a test controls: complete inline before `send`/`recv` returns,
//! complete later (from any thread), count cancels, closes and releases. Used to force each race
//! of the wake-up adapter deterministically, and by the leak check.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use poc_bridge::ffi::{self, poc_message_view, poc_op_id, poc_recv_complete_fn, poc_send_complete_fn};
use poc_bridge::{Message, PortReceiver, PortSender, Status};

use super::LIMIT;

/// How the fake answers the next `send`/`recv` (when it has nothing queued for a recv).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// send: enqueue (OK). recv: EMPTY/… is not used.
    Ok,
    /// Register the op and return PENDING; the test completes it later.
    Pending,
    /// Call the completion *inside* the call, then return PENDING.
    InlineThenPending(Status),
    /// Return this status; the callback is not called.
    Fail(Status),
}

pub struct Op {
    pub id: poc_op_id,
    pub user: usize,
    pub send_cb: poc_send_complete_fn,
    pub recv_cb: poc_recv_complete_fn,
}

pub struct Fake {
    pub mode: Mutex<Mode>,
    pub queue: Mutex<VecDeque<Message>>,
    pub ops: Mutex<Vec<Op>>,
    pub op_registered: Condvar,
    pub next_op: AtomicU64,
    pub sends: AtomicUsize,
    pub recvs: AtomicUsize,
    pub cancels: Mutex<Vec<poc_op_id>>,
    pub cancel_requested: Condvar,
    pub closes: AtomicUsize,
    pub releases: AtomicUsize,
    pub sent: Mutex<Vec<Message>>,
}

fn fakes() -> &'static Mutex<HashMap<u64, Arc<Fake>>> {
    static F: OnceLock<Mutex<HashMap<u64, Arc<Fake>>>> = OnceLock::new();
    F.get_or_init(Default::default)
}

fn fake(handle: u64) -> Arc<Fake> {
    fakes().lock().unwrap().get(&handle).cloned().expect("fake port")
}

impl Fake {
    pub fn new(mode: Mode) -> (u64, Arc<Fake>) {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let h = NEXT.fetch_add(1, Ordering::Relaxed);
        let f = Arc::new(Fake {
            mode: Mutex::new(mode),
            queue: Default::default(),
            ops: Default::default(),
            op_registered: Condvar::new(),
            next_op: AtomicU64::new(100),
            sends: Default::default(),
            recvs: Default::default(),
            cancels: Default::default(),
            cancel_requested: Condvar::new(),
            closes: Default::default(),
            releases: Default::default(),
            sent: Default::default(),
        });
        fakes().lock().unwrap().insert(h, f.clone());
        (h, f)
    }

    pub fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    pub fn pending(&self) -> Vec<poc_op_id> {
        self.ops.lock().unwrap().iter().map(|o| o.id).collect()
    }

    /// Waits (bounded) until an op is pending and returns its id.
    pub fn wait_pending(&self) -> poc_op_id {
        let ops = self.ops.lock().unwrap();
        let (ops, _) = self.op_registered.wait_timeout_while(ops, LIMIT, |ops| ops.is_empty()).unwrap();
        ops.first().unwrap_or_else(|| panic!("timed out after {LIMIT:?} waiting for a pending op")).id
    }

    /// Waits (bounded) until the adapter asked to cancel `op`.
    pub fn wait_cancel(&self, op: poc_op_id) {
        let cancels = self.cancels.lock().unwrap();
        let (cancels, _) =
            self.cancel_requested.wait_timeout_while(cancels, LIMIT, |c| !c.contains(&op)).unwrap();
        assert!(cancels.contains(&op), "timed out after {LIMIT:?} waiting for the cancel of op {op}");
    }

    pub fn register(&self, op: Op) {
        self.ops.lock().unwrap().push(op);
        self.op_registered.notify_all();
    }

    pub fn take_op(&self, id: poc_op_id) -> Op {
        let mut ops = self.ops.lock().unwrap();
        let i = ops.iter().position(|o| o.id == id).expect("pending op");
        ops.remove(i)
    }

    /// Completes a pending send (no lock held during the callback, as bridge.h requires).
    pub fn complete_send(&self, id: poc_op_id, status: Status) {
        let op = self.take_op(id);
        unsafe { (op.send_cb.unwrap())(op.user as *mut c_void, status.0) };
    }

    /// Completes a pending recv, with a message for OK.
    pub fn complete_recv(&self, id: poc_op_id, status: Status, msg: Option<&Message>) {
        let op = self.take_op(id);
        let view = msg.map(Message::view);
        let p = view.as_ref().map_or(std::ptr::null(), |v| v as *const poc_message_view);
        unsafe { (op.recv_cb.unwrap())(op.user as *mut c_void, status.0, p) };
    }
}

// --- the fake's vtables ------------------------------------------------------------------------

unsafe extern "C" fn f_try_send(h: u64, msg: *const poc_message_view) -> ffi::poc_status {
    let f = fake(h);
    let mode = *f.mode.lock().unwrap();
    match mode {
        Mode::Fail(s) => s.0,
        Mode::Ok => {
            f.sent.lock().unwrap().push(unsafe { Message::from_view(&*msg) });
            ffi::POC_OK
        }
        _ => ffi::POC_FULL,
    }
}

unsafe extern "C" fn f_send(
    h: u64,
    msg: *const poc_message_view,
    cb: poc_send_complete_fn,
    user: *mut c_void,
    op: *mut poc_op_id,
) -> ffi::poc_status {
    let f = fake(h);
    f.sends.fetch_add(1, Ordering::SeqCst);
    let m = unsafe { Message::from_view(&*msg) }; // copy before returning, as an exporter must
    let mode = *f.mode.lock().unwrap();
    match mode {
        Mode::Ok => {
            f.sent.lock().unwrap().push(m);
            ffi::POC_OK
        }
        Mode::Fail(s) => s.0,
        Mode::Pending | Mode::InlineThenPending(_) => {
            let id = f.next_op.fetch_add(1, Ordering::SeqCst);
            unsafe { *op = id };
            if let Mode::InlineThenPending(s) = mode {
                if s == Status::OK {
                    f.sent.lock().unwrap().push(m);
                }
                unsafe { (cb.unwrap())(user, s.0) }; // completes before send returns
            } else {
                f.register(Op { id, user: user as usize, send_cb: cb, recv_cb: None });
            }
            ffi::POC_PENDING
        }
    }
}

unsafe extern "C" fn f_cancel(h: u64, op: poc_op_id) -> ffi::poc_status {
    let f = fake(h);
    f.cancels.lock().unwrap().push(op);
    f.cancel_requested.notify_all();
    ffi::POC_OK // a request: the test decides how the op completes
}

unsafe extern "C" fn f_close(h: u64) -> ffi::poc_status {
    fake(h).closes.fetch_add(1, Ordering::SeqCst);
    ffi::POC_OK
}

unsafe extern "C" fn f_clone(_h: u64, _out: *mut ffi::poc_sender) -> ffi::poc_status {
    ffi::POC_INVALID
}

unsafe extern "C" fn f_release(h: u64) -> ffi::poc_status {
    fake(h).releases.fetch_add(1, Ordering::SeqCst);
    ffi::POC_OK
}

unsafe extern "C" fn f_try_recv(h: u64, deliver: poc_recv_complete_fn, user: *mut c_void) -> ffi::poc_status {
    let f = fake(h);
    let m = f.queue.lock().unwrap().pop_front();
    match m {
        Some(m) => {
            let v = m.view();
            unsafe { (deliver.unwrap())(user, ffi::POC_OK, &v) };
            ffi::POC_OK
        }
        None => {
            let mode = *f.mode.lock().unwrap();
            match mode {
                Mode::Fail(s) => s.0,
                _ => ffi::POC_EMPTY,
            }
        }
    }
}

unsafe extern "C" fn f_recv(
    h: u64,
    deliver: poc_recv_complete_fn,
    cb: poc_recv_complete_fn,
    user: *mut c_void,
    op: *mut poc_op_id,
) -> ffi::poc_status {
    let f = fake(h);
    f.recvs.fetch_add(1, Ordering::SeqCst);
    let queued = f.queue.lock().unwrap().pop_front();
    if let Some(m) = queued {
        let v = m.view();
        unsafe { (deliver.unwrap())(user, ffi::POC_OK, &v) }; // fast path: deliver, no completion
        return ffi::POC_OK;
    }
    let mode = *f.mode.lock().unwrap();
    match mode {
        Mode::Fail(s) => s.0,
        Mode::Ok | Mode::Pending => {
            let id = f.next_op.fetch_add(1, Ordering::SeqCst);
            unsafe { *op = id };
            f.register(Op { id, user: user as usize, send_cb: None, recv_cb: cb });
            ffi::POC_PENDING
        }
        Mode::InlineThenPending(s) => {
            let id = f.next_op.fetch_add(1, Ordering::SeqCst);
            unsafe { *op = id };
            let m = Message::new(id, b"inline".to_vec());
            let v = m.view();
            let p = if s == Status::OK { &v as *const _ } else { std::ptr::null() };
            unsafe { (cb.unwrap())(user, s.0, p) };
            ffi::POC_PENDING
        }
    }
}

pub static SENDER_VT: ffi::poc_sender_vtable = ffi::poc_sender_vtable {
    abi_version: ffi::POC_ABI_VERSION,
    size: std::mem::size_of::<ffi::poc_sender_vtable>() as u32,
    try_send: Some(f_try_send),
    send: Some(f_send),
    cancel: Some(f_cancel),
    close: Some(f_close),
    clone: Some(f_clone),
    release: Some(f_release),
};

pub static RECEIVER_VT: ffi::poc_receiver_vtable = ffi::poc_receiver_vtable {
    abi_version: ffi::POC_ABI_VERSION,
    size: std::mem::size_of::<ffi::poc_receiver_vtable>() as u32,
    try_recv: Some(f_try_recv),
    recv: Some(f_recv),
    cancel: Some(f_cancel),
    close: Some(f_close),
    release: Some(f_release),
};

pub fn fake_sender(mode: Mode) -> (PortSender, Arc<Fake>) {
    let (h, f) = Fake::new(mode);
    let tx = unsafe { PortSender::from_raw(ffi::poc_sender { handle: h, vtable: &SENDER_VT }) }.unwrap();
    (tx, f)
}

pub fn fake_receiver(mode: Mode) -> (PortReceiver, Arc<Fake>) {
    let (h, f) = Fake::new(mode);
    let rx = unsafe { PortReceiver::from_raw(ffi::poc_receiver { handle: h, vtable: &RECEIVER_VT }) }.unwrap();
    (rx, f)
}

