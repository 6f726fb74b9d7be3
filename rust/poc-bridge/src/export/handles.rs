//! The process-wide table of live ports exported by this crate.
//!
//! A handle packs `tag (8 bits) | slot index (24 bits) | generation (32 bits)`:
//!
//! * the generation of a slot starts at 1 and is bumped on every release (skipping 0), so a
//!   stale or doubly released handle no longer matches (`POC_INVALID`); a slot would have to be
//!   reused 2^32 times for a stale handle to match again;
//! * the tag (`0x52`, "R") makes a handle of another exporter (or a forged number) fail the
//!   lookup in almost every case instead of naming one of our slots by accident;
//! * 0 is never a valid handle (the generation is never 0).
//!
//! The table is process-wide rather than per runtime so that a port stays safe to release after
//! its runtime was shut down and freed (bridge.h rule 8). Lookups take a read lock and clone an
//! `Arc`; the lock is never held while anything else runs (no callback, no channel lock).

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use super::channel::Chan;

const TAG: u64 = 0x52;
const TAG_SHIFT: u32 = 56;
const INDEX_SHIFT: u32 = 32;
const INDEX_LIMIT: usize = 1 << 24;

/// What one sender port refers to.
pub(crate) struct SenderPort {
    pub(crate) chan: Arc<Chan>,
    pub(crate) handle: u64,
    /// Set under the channel's send lock when the port is released, so that an op racing with
    /// the release cannot register after the release cancelled the port's pending sends.
    pub(crate) released: AtomicBool,
}

#[derive(Clone)]
enum Entry {
    Sender(Arc<SenderPort>),
    Receiver(Arc<Chan>),
}

struct Slot {
    generation: u32,
    entry: Option<Entry>,
}

struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

static TABLE: RwLock<Table> = RwLock::new(Table { slots: Vec::new(), free: Vec::new() });

fn read() -> std::sync::RwLockReadGuard<'static, Table> {
    TABLE.read().unwrap_or_else(|e| e.into_inner())
}

fn write() -> std::sync::RwLockWriteGuard<'static, Table> {
    TABLE.write().unwrap_or_else(|e| e.into_inner())
}

fn split(handle: u64) -> Option<(usize, u32)> {
    if handle >> TAG_SHIFT != TAG {
        return None;
    }
    let index = ((handle >> INDEX_SHIFT) as usize) & (INDEX_LIMIT - 1);
    let generation = handle as u32;
    (generation != 0).then_some((index, generation))
}

fn insert(make: impl FnOnce(u64) -> Entry) -> Option<u64> {
    let mut t = write();
    let index = match t.free.pop() {
        Some(i) => i as usize,
        None => {
            if t.slots.len() >= INDEX_LIMIT {
                return None;
            }
            t.slots.push(Slot { generation: 1, entry: None });
            t.slots.len() - 1
        }
    };
    let slot = &mut t.slots[index];
    let handle = (TAG << TAG_SHIFT) | ((index as u64) << INDEX_SHIFT) | slot.generation as u64;
    slot.entry = Some(make(handle));
    Some(handle)
}

fn get(handle: u64) -> Option<Entry> {
    let (index, generation) = split(handle)?;
    let t = read();
    let slot = t.slots.get(index)?;
    if slot.generation != generation {
        return None;
    }
    slot.entry.clone()
}

fn remove(handle: u64, is_kind: impl Fn(&Entry) -> bool) -> Option<Entry> {
    let (index, generation) = split(handle)?;
    let mut t = write();
    let slot = t.slots.get_mut(index)?;
    if slot.generation != generation || !slot.entry.as_ref().is_some_and(&is_kind) {
        return None;
    }
    let entry = slot.entry.take();
    slot.generation = slot.generation.wrapping_add(1).max(1);
    t.free.push(index as u32);
    entry
}

/// Registers a new sender port of `chan`; `None` if the table is full.
pub(crate) fn insert_sender(chan: Arc<Chan>) -> Option<u64> {
    insert(|handle| Entry::Sender(Arc::new(SenderPort { chan, handle, released: AtomicBool::new(false) })))
}

/// Registers the receiver port of `chan`; `None` if the table is full.
pub(crate) fn insert_receiver(chan: Arc<Chan>) -> Option<u64> {
    insert(|_| Entry::Receiver(chan))
}

/// The live sender port named by `handle`, if any.
pub(crate) fn sender(handle: u64) -> Option<Arc<SenderPort>> {
    match get(handle)? {
        Entry::Sender(p) => Some(p),
        Entry::Receiver(_) => None,
    }
}

/// The channel of the live receiver port named by `handle`, if any.
pub(crate) fn receiver(handle: u64) -> Option<Arc<Chan>> {
    match get(handle)? {
        Entry::Receiver(c) => Some(c),
        Entry::Sender(_) => None,
    }
}

/// Unregisters a sender port (its handle becomes stale).
pub(crate) fn remove_sender(handle: u64) -> Option<Arc<SenderPort>> {
    match remove(handle, |e| matches!(e, Entry::Sender(_)))? {
        Entry::Sender(p) => Some(p),
        Entry::Receiver(_) => None,
    }
}

/// Unregisters a receiver port (its handle becomes stale).
pub(crate) fn remove_receiver(handle: u64) -> Option<Arc<Chan>> {
    match remove(handle, |e| matches!(e, Entry::Receiver(_)))? {
        Entry::Receiver(c) => Some(c),
        Entry::Sender(_) => None,
    }
}
