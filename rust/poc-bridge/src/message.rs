//! [`Message`]: the Rust-native message, the checksum and the agents' message convention
//! (docs/contract.md, "Messages").

use crate::ffi;

/// One message: a 64-bit id and an owned byte payload.
///
/// At the C ABI a message travels as a borrowed [`ffi::poc_message_view`]; whoever keeps it
/// copies it into a `Message` ([`Message::from_view`]), and a `Message` lends itself out with
/// [`Message::view`].
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Message {
    /// The id (mayon's `count`; agents use `stream << 48 | seq`).
    pub id: u64,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("id", &format_args!("{:#x}", self.id))
            .field("len", &self.payload.len())
            .finish()
    }
}

/// Bits of an agent id that hold the sequence number; the stream is above them.
pub const SEQ_BITS: u32 = 48;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;

/// The producer id convention: `(stream << 48) | seq` (seq from 0, 48 bits).
pub const fn producer_id(stream: u64, seq: u64) -> u64 {
    (stream << SEQ_BITS) | (seq & SEQ_MASK)
}

/// The stream of an id made by [`producer_id`].
pub const fn stream_of(id: u64) -> u64 {
    id >> SEQ_BITS
}

/// The sequence number of an id made by [`producer_id`].
pub const fn seq_of(id: u64) -> u64 {
    id & SEQ_MASK
}

/// splitmix64, the mixing step of the checksum (docs/contract.md). `splitmix64(0)` is
/// `0xE220A8397B1DCDAF`.
pub const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The checksum of one message: `splitmix64(id) + splitmix64(len) + Σ payload as little-endian
/// u64 words (last word zero-padded)`, all wrapping. Same as the C++ `poc_message_checksum`.
/// A set of messages is summarised by the wrapping sum of their checksums.
pub fn checksum(id: u64, payload: &[u8]) -> u64 {
    let mut sum = splitmix64(id).wrapping_add(splitmix64(payload.len() as u64));
    let mut words = payload.chunks_exact(8);
    for w in &mut words {
        sum = sum.wrapping_add(u64::from_le_bytes(w.try_into().expect("chunk of 8")));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        sum = sum.wrapping_add(u64::from_le_bytes(last));
    }
    sum
}

/// Fills `out` with the agents' payload pattern: byte `i` is `(id + i) as u8`.
pub fn fill_pattern(id: u64, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        *b = id.wrapping_add(i as u64) as u8;
    }
}

/// `true` when `bytes` follow the pattern of [`fill_pattern`] for `id`.
pub fn check_pattern(id: u64, bytes: &[u8]) -> bool {
    bytes.iter().enumerate().all(|(i, &b)| b == id.wrapping_add(i as u64) as u8)
}

impl Message {
    /// A message with the given id and payload.
    pub fn new(id: u64, payload: impl Into<Vec<u8>>) -> Self {
        Message { id, payload: payload.into() }
    }

    /// A message of the agents' convention: id `id`, `len` bytes of [`fill_pattern`].
    ///
    /// # Panics
    ///
    /// If `len` exceeds `isize::MAX` ("capacity overflow"); agents contain that panic.
    pub fn with_pattern(id: u64, len: usize) -> Self {
        let mut payload = vec![0u8; len];
        fill_pattern(id, &mut payload);
        Message { id, payload }
    }

    /// This message's [`checksum`].
    pub fn checksum(&self) -> u64 {
        checksum(self.id, &self.payload)
    }

    /// `true` when the payload follows the agents' pattern for this id.
    pub fn has_pattern(&self) -> bool {
        check_pattern(self.id, &self.payload)
    }

    /// Lends this message out as a C view, valid while `self` is borrowed.
    pub fn view(&self) -> ffi::poc_message_view {
        ffi::poc_message_view { id: self.id, data: self.payload.as_ptr(), len: self.payload.len() }
    }

    /// Copies a borrowed C view into an owned message.
    ///
    /// # Safety
    ///
    /// `view.data` must point to `view.len` readable bytes for the duration of the call, or be
    /// NULL (then `len` is ignored and the payload is empty).
    pub unsafe fn from_view(view: &ffi::poc_message_view) -> Self {
        // SAFETY: forwarded to the caller.
        Message { id: view.id, payload: unsafe { view_bytes(view) }.to_vec() }
    }
}

/// The payload bytes of a view (empty for NULL data).
///
/// # Safety
///
/// As [`Message::from_view`]; the slice must not outlive the view's validity.
pub(crate) unsafe fn view_bytes<'a>(view: &ffi::poc_message_view) -> &'a [u8] {
    if view.data.is_null() || view.len == 0 {
        &[]
    } else {
        // SAFETY: non-NULL, `len` readable bytes (the caller's promise).
        unsafe { std::slice::from_raw_parts(view.data, view.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_value() {
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn checksum_pads_the_last_word() {
        let m = Message::new(7, vec![1u8, 2, 3]);
        let expected = splitmix64(7)
            .wrapping_add(splitmix64(3))
            .wrapping_add(u64::from_le_bytes([1, 2, 3, 0, 0, 0, 0, 0]));
        assert_eq!(m.checksum(), expected);
        assert_eq!(Message::new(0, vec![]).checksum(), splitmix64(0).wrapping_mul(2));
    }

    #[test]
    fn producer_ids_and_pattern() {
        let id = producer_id(3, 5);
        assert_eq!((stream_of(id), seq_of(id)), (3, 5));
        let m = Message::with_pattern(id, 300);
        assert!(m.has_pattern());
        assert_eq!(m.payload[1], (id + 1) as u8);
        let mut bad = m.clone();
        bad.payload[299] ^= 1;
        assert!(!bad.has_pattern());
    }
}
