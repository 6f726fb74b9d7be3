//! A generation-checked handle table, the pattern of `export/handles.rs` made generic so that
//! futures (tag `0x46`, "F") and example objects such as `Database` (tag `0x44`, "D") each get
//! their own: `tag (8 bits) | slot index (24 bits) | generation (32 bits)`. A stale, released,
//! forged or foreign handle (another tag) fails the lookup; 0 is never valid. Lookups clone an
//! `Arc` under a read lock; nothing else ever runs under the lock.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

const TAG_SHIFT: u32 = 56;
const INDEX_SHIFT: u32 = 32;
const INDEX_LIMIT: usize = 1 << 24;

struct Slot<T> {
    generation: u32,
    entry: Option<Arc<T>>,
}

struct Inner<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

/// A process-wide table of `Arc<T>` named by `u64` handles carrying `tag`.
pub(crate) struct Table<T> {
    tag: u64,
    inner: RwLock<Inner<T>>,
}

impl<T> Table<T> {
    pub(crate) const fn new(tag: u8) -> Self {
        Table { tag: tag as u64, inner: RwLock::new(Inner { slots: Vec::new(), free: Vec::new() }) }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner<T>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner<T>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn split(&self, handle: u64) -> Option<(usize, u32)> {
        if handle >> TAG_SHIFT != self.tag {
            return None;
        }
        let index = ((handle >> INDEX_SHIFT) as usize) & (INDEX_LIMIT - 1);
        let generation = handle as u32;
        (generation != 0).then_some((index, generation))
    }

    /// Registers `value`; `None` if the table is full.
    pub(crate) fn insert(&self, value: Arc<T>) -> Option<u64> {
        let mut t = self.write();
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
        slot.entry = Some(value);
        Some((self.tag << TAG_SHIFT) | ((index as u64) << INDEX_SHIFT) | slot.generation as u64)
    }

    /// The live entry named by `handle`.
    pub(crate) fn get(&self, handle: u64) -> Option<Arc<T>> {
        let (index, generation) = self.split(handle)?;
        let t = self.read();
        let slot = t.slots.get(index)?;
        if slot.generation != generation {
            return None;
        }
        slot.entry.clone()
    }

    /// Unregisters the entry (its handle becomes stale) and returns it. The caller drops it
    /// after the table lock is released (this function returns first).
    pub(crate) fn remove(&self, handle: u64) -> Option<Arc<T>> {
        let (index, generation) = self.split(handle)?;
        let mut t = self.write();
        let slot = t.slots.get_mut(index)?;
        if slot.generation != generation || slot.entry.is_none() {
            return None;
        }
        let entry = slot.entry.take();
        slot.generation = slot.generation.wrapping_add(1).max(1);
        t.free.push(index as u32);
        entry
    }
}
