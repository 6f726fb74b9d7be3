//! Allocations per message on the Rust import path (`PortSender::send(..).await`,
//! `PortReceiver::recv().await`) against channels owned by C++ (bench/native/README.md,
//! "allocations").
//!
//! The program's `#[global_allocator]` is [`Counting`]: it wraps `System` and, while counting is
//! switched on, adds every allocation (`alloc`, `alloc_zeroed`, and `realloc`, which counts as one
//! allocation of its new size) to two **process-wide** relaxed atomic counters — so allocations
//! made on any thread (the task's runtime worker, the thread that runs a completion callback, the
//! waker's wake-up) are counted. Counting is off for every other figure of the program: then the
//! allocator costs one relaxed load of a flag nobody writes, in front of `System`.
//!
//! What is *not* counted: the C++ exporter (its `operator new` goes to `malloc`, not to Rust's
//! global allocator), which is what "the Rust import path" means here — the exporter is another
//! runtime's.
//!
//! Each op is bracketed by two counter snapshots taken by the task itself, right before the
//! future is created and right after it resolved: that is the **adapter** figure (everything the
//! import path allocated for the op on any thread while it was in flight, including, for a
//! receive, the copy of the payload into the new `Message` — one `Vec` per message by design when
//! the payload is not empty). The **total** figure counts the whole loop: also the `Message` the
//! test makes per message (a `Vec` of `payload` bytes; none for payload 0), its checks and the drop
//! of what it received. Payload 0 makes no `Vec` at all, so its adapter figure is the adapter's
//! own allocations and nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

/// The counting global allocator (see the module docs).
pub struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

#[inline]
fn count(size: usize) {
    if ON.load(Ordering::Relaxed) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to `System` unchanged; counting touches only atomics and never
// allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size());
        // SAFETY: forwarded (same contract).
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        count(l.size());
        // SAFETY: forwarded.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: forwarded.
        unsafe { System.realloc(p, l, new_size) }
    }
}

/// Switches counting on or off (process-wide).
pub fn set_counting(on: bool) {
    ON.store(on, Ordering::SeqCst);
}

/// The counters so far: (allocations, bytes).
#[derive(Clone, Copy, Default)]
pub struct Snap {
    pub allocs: u64,
    pub bytes: u64,
}

pub fn snap() -> Snap {
    Snap { allocs: ALLOCS.load(Ordering::SeqCst), bytes: BYTES.load(Ordering::SeqCst) }
}

impl std::ops::Sub for Snap {
    type Output = Snap;
    fn sub(self, o: Snap) -> Snap {
        Snap { allocs: self.allocs - o.allocs, bytes: self.bytes - o.bytes }
    }
}

/// Allocations of one class of ops (e.g. "send, went pending"): sums and the number of ops.
#[derive(Clone, Copy, Default)]
pub struct Tally {
    pub ops: u64,
    pub allocs: u64,
    pub bytes: u64,
}

impl Tally {
    pub fn add(&mut self, d: Snap) {
        self.ops += 1;
        self.allocs += d.allocs;
        self.bytes += d.bytes;
    }
    pub fn allocs_per_op(&self) -> f64 {
        if self.ops == 0 {
            0.0
        } else {
            self.allocs as f64 / self.ops as f64
        }
    }
    pub fn bytes_per_op(&self) -> f64 {
        if self.ops == 0 {
            0.0
        } else {
            self.bytes as f64 / self.ops as f64
        }
    }
}

/// Wraps an `Unpin` future and tells, with its output, whether any poll returned `Pending`
/// (for a port op: it went PENDING and completed through the callback, rather than on the fast
/// path). An op whose port call returned PENDING but whose completion was already published when
/// the first poll checked the slot reads as not pending — the wake machinery then was not used.
pub struct Pended<F> {
    f: F,
    pended: bool,
}

pub fn pended<F: Future + Unpin>(f: F) -> Pended<F> {
    Pended { f, pended: false }
}

impl<F: Future + Unpin> Future for Pended<F> {
    type Output = (F::Output, bool);
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match Pin::new(&mut this.f).poll(cx) {
            Poll::Ready(v) => Poll::Ready((v, this.pended)),
            Poll::Pending => {
                this.pended = true;
                Poll::Pending
            }
        }
    }
}
