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
//! do; `yield_now` gives the CPU to any runnable thread. Foreign entries pay one atomic load of
//! the spinner count while no worker spins, and one atomic increment while one does.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
#[cfg(test)]
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Spin length when `POC_IDLE_SPIN_US` is not set.
pub const DEFAULT_SPIN_US: u64 = 50;

/// Upper bound accepted from `POC_IDLE_SPIN_US` (a larger value is clamped: spinning longer than
/// this would only burn CPU).
const MAX_SPIN_US: u64 = 10_000;

/// The spin state: how many workers spin now, and the foreign entries counted while one did.
/// One process-wide instance ([`IDLE`]); tests make their own.
struct Idle {
    spinners: AtomicUsize,
    events: AtomicU64,
}

static IDLE: Idle = Idle::new();

/// Why a spin ended.
#[derive(Debug, PartialEq, Eq)]
enum SpinEnd {
    /// A foreign entry was noted during the spin.
    Event,
    /// The spin length passed without one.
    Timeout,
}

impl Idle {
    const fn new() -> Idle {
        Idle { spinners: AtomicUsize::new(0), events: AtomicU64::new(0) }
    }

    #[inline]
    fn note(&self) {
        if self.spinners.load(Ordering::SeqCst) != 0 {
            self.events.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn spin(&self, spin: Duration) -> SpinEnd {
        self.spinners.fetch_add(1, Ordering::SeqCst);
        let seen = self.events.load(Ordering::SeqCst);
        let start = Instant::now();
        let end = 'spin: loop {
            for _ in 0..16 {
                if self.events.load(Ordering::Relaxed) != seen {
                    break 'spin SpinEnd::Event;
                }
                std::hint::spin_loop();
            }
            if start.elapsed() >= spin {
                break SpinEnd::Timeout;
            }
            std::thread::yield_now();
        };
        self.spinners.fetch_sub(1, Ordering::SeqCst);
        end
    }
}

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
    IDLE.note();
}

/// tokio's `on_thread_park` hook: spin up to [`spin_length`] unless a foreign entry happens.
pub(crate) fn before_park() {
    let spin = spin_length();
    if !spin.is_zero() {
        IDLE.spin(spin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_event_ends_the_spin_and_nothing_is_counted_without_spinners() {
        // Its own instance: the process-wide one is shared with every runtime other tests start.
        let idle = Arc::new(Idle::new());
        idle.note();
        assert_eq!(idle.events.load(Ordering::SeqCst), 0, "an event was counted with no spinner");
        // A spinner far longer than the test: only the event can end it.
        let spinner = {
            let idle = idle.clone();
            std::thread::spawn(move || idle.spin(Duration::from_secs(3600)))
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while idle.spinners.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the spinner never started within 30 s");
            std::thread::yield_now();
        }
        idle.note();
        assert_eq!(spinner.join().expect("spinner panicked"), SpinEnd::Event);
        assert_eq!(idle.events.load(Ordering::SeqCst), 1);
        assert_eq!(idle.spinners.load(Ordering::SeqCst), 0, "the spinner was left registered");
    }
}
