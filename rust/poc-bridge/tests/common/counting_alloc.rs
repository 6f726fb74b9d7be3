//! A counting global allocator for the leak tests (`leaks.rs`, `future_leaks.rs`). Including this
//! module installs it as the test binary's `#[global_allocator]`; it counts allocations minus
//! frees process-wide and per thread (a const-initialised thread local: counting allocates
//! nothing itself), and the allocations each thread made (to check that a path allocates
//! nothing). `realloc` moves a block, so it changes neither count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static THREAD_LIVE: Cell<isize> = const { Cell::new(0) };
    static THREAD_ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn count(d: isize) {
    LIVE.fetch_add(d, Ordering::SeqCst);
    let _ = THREAD_LIVE.try_with(|c| c.set(c.get() + d));
    if d > 0 {
        let _ = THREAD_ALLOCS.try_with(|c| c.set(c.get() + 1));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(1);
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        count(1);
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(-1);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Allocations minus frees in the whole process so far.
#[allow(dead_code)] // not every leak test counts process-wide
pub fn live() -> isize {
    LIVE.load(Ordering::SeqCst)
}

/// Allocations minus frees made by the calling thread so far.
pub fn thread_live() -> isize {
    THREAD_LIVE.with(Cell::get)
}

/// Allocations (not minus frees) made by the calling thread so far.
#[allow(dead_code)] // not every leak test counts allocations
pub fn thread_allocs() -> usize {
    THREAD_ALLOCS.with(Cell::get)
}
