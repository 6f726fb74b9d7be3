//! Spinning briefly before a runtime worker parks.
//!
//! A Rust task that waits for another runtime (a send into a C++ channel that is full, a receive
//! from a .NET channel, a C++ future) is woken by a callback on that runtime's thread. If the tokio
//! worker has parked by then, the wake has to unpark it: a futex wake of a sleeping thread, and on
//! a virtual machine often the wake-up of a halted virtual CPU — measured on the benchmark VM at
//! about 40 µs per hop, which made a Rust ↔ C++ round trip cost 85 µs (docs/benchmarks.md).
//!
//! So a worker about to park first spins for a short, bounded time (`POC_IDLE_SPIN_US`
//! microseconds, default [`DEFAULT_SPIN_US`]; `0` turns it off), yielding the CPU between
//! checks, and stops as soon as a foreign thread has entered the bridge — an exporter call
//! ([`crate::export::ffi_guard`]) or an import completion — because that is what may have
//! queued work for it. Then tokio parks as usual: work queued during the spin is found by tokio's
//! own last check before parking (so nothing is lost), and the thread never sleeps through it.
//!
//! Cost: at most one spin of that length per transition to idle, on a thread that had nothing to
//! do; `yield_now` gives the CPU to any runnable thread. Foreign entries pay one relaxed load of
//! [`SPINNERS`] while no worker spins, and one atomic increment while one does.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Spin length when `POC_IDLE_SPIN_US` is not set.
pub const DEFAULT_SPIN_US: u64 = 50;

/// Upper bound accepted from `POC_IDLE_SPIN_US` (a larger value is clamped: spinning longer than
/// this would only burn CPU).
const MAX_SPIN_US: u64 = 10_000;

/// Workers spinning right now.
static SPINNERS: AtomicUsize = AtomicUsize::new(0);
/// Foreign entries seen while at least one worker spun.
static EVENTS: AtomicU64 = AtomicU64::new(0);

/// The spin length (read once from `POC_IDLE_SPIN_US`; unparsable → the default, with a note on
/// stderr).
pub(crate) fn spin_length() -> Duration {
    static SPIN: OnceLock<Duration> = OnceLock::new();
    *SPIN.get_or_init(|| {
        let us = match std::env::var("POC_IDLE_SPIN_US") {
            Ok(v) => match v.trim().parse::<u64>() {
                Ok(n) => n.min(MAX_SPIN_US),
                Err(_) => {
                    eprintln!("poc: POC_IDLE_SPIN_US={v:?} is not a number of microseconds; using {DEFAULT_SPIN_US}");
                    DEFAULT_SPIN_US
                }
            },
            Err(_) => DEFAULT_SPIN_US,
        };
        Duration::from_micros(us)
    })
}

/// A foreign thread did something that may have queued work for a Rust worker (called after it).
#[inline]
pub(crate) fn note_foreign_event() {
    if SPINNERS.load(Ordering::SeqCst) != 0 {
        EVENTS.fetch_add(1, Ordering::SeqCst);
    }
}

/// tokio's `on_thread_park` hook: spin up to [`spin_length`] unless a foreign entry happens.
pub(crate) fn before_park() {
    let spin = spin_length();
    if spin.is_zero() {
        return;
    }
    SPINNERS.fetch_add(1, Ordering::SeqCst);
    let seen = EVENTS.load(Ordering::SeqCst);
    let start = Instant::now();
    'spin: loop {
        for _ in 0..16 {
            if EVENTS.load(Ordering::Relaxed) != seen {
                break 'spin;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= spin {
            break;
        }
        std::thread::yield_now();
    }
    SPINNERS.fetch_sub(1, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_event_ends_the_spin_and_nothing_is_counted_without_spinners() {
        // No spinner: nothing is counted.
        let before = EVENTS.load(Ordering::SeqCst);
        note_foreign_event();
        assert_eq!(EVENTS.load(Ordering::SeqCst), before, "an event was counted with no spinner");
        // A spinner that is told about an event stops (bounded wait: the spin itself is bounded).
        let t = std::thread::spawn(before_park);
        let deadline = Instant::now() + Duration::from_secs(10);
        while SPINNERS.load(Ordering::SeqCst) == 0 && !t.is_finished() {
            assert!(Instant::now() < deadline, "the spinner never started");
            std::thread::yield_now();
        }
        note_foreign_event();
        t.join().expect("spinner panicked");
        assert_eq!(SPINNERS.load(Ordering::SeqCst), 0, "a spinner was left registered");
    }
}
