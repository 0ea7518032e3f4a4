//! Stable 64-bit hashes: the same in every process, never dependent on a per-process seed, so
//! de-duplication state and event order do not differ between workers or runs.
//!
//! Event ids and content fingerprints use foldhash's fixed-seed quality hasher (fast on the short
//! keys every event carries); names keep SipHash-1-3, whose order the changes topic's readers share.
//! A foldhash release may hash differently: `probe` hashes fixed inputs, and the checkpoint layout
//! (`state::layout`) includes it, so a build whose hashes differ refuses an older checkpoint (its
//! de-duplication state) instead of misreading it.

use foldhash::quality::FixedState;
use siphasher::sip::SipHasher13;
use std::hash::{BuildHasher, Hasher};

const ID_SEED: u64 = 0x6672_6175_6467_0001;
const CONTENT_SEED: u64 = 0x6672_6175_6467_0002;

pub fn id_hash(event_id: &str) -> u64 {
    FixedState::with_seed(ID_SEED).hash_one(event_id.as_bytes())
}

const NAME_KEY: (u64, u64) = (0x6672_6175_6467_7261, 0x7068_2d6e_616d_0003);

/// The canonical order of account and entity names between the stages (same in every process).
pub fn name_hash(name: &[u8]) -> u64 {
    let mut h = SipHasher13::new_with_keys(NAME_KEY.0, NAME_KEY.1);
    h.write(name);
    h.finish()
}

/// The hashes of fixed inputs: differs between builds whose stored hashes would differ.
pub fn probe() -> u64 {
    let mut c = ContentHasher::new(64);
    c.field(Some(b"probe"));
    c.number(Some(7));
    c.field(None);
    id_hash("fraudgraph-probe") ^ (c.finish32() as u64).rotate_left(17) ^ name_hash(b"probe").rotate_left(41)
}

/// Fingerprint of an event's whole content (fields separated so "ab"+"c" != "a"+"bc", and absent
/// != empty). The fields are gathered in one buffer, sized up front, and hashed in one call.
pub struct ContentHasher(Vec<u8>);

impl ContentHasher {
    /// `capacity`: the bytes the fields will take (`field_size` each), so the buffer never grows.
    pub fn new(capacity: usize) -> Self {
        ContentHasher(Vec::with_capacity(capacity))
    }
    /// The bytes `field(value)` adds (a number takes 9).
    #[inline]
    pub fn field_size(value: Option<&[u8]>) -> usize {
        value.map_or(1, |b| 9 + b.len())
    }
    #[inline]
    pub fn field(&mut self, value: Option<&[u8]>) {
        match value {
            None => self.0.push(0),
            Some(b) => {
                self.0.push(1);
                self.0.extend_from_slice(&(b.len() as u64).to_le_bytes());
                self.0.extend_from_slice(b);
            }
        }
    }
    #[inline]
    pub fn number(&mut self, value: Option<u64>) {
        match value {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(2);
                self.0.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    pub fn finish32(self) -> u32 {
        let v = FixedState::with_seed(CONTENT_SEED).hash_one(&self.0[..]);
        (v ^ (v >> 32)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(fields: &[Option<&[u8]>], numbers: &[Option<u64>]) -> u32 {
        let mut h = ContentHasher::new(0); // grows if it must: the size hint is only a hint
        fields.iter().for_each(|f| h.field(*f));
        numbers.iter().for_each(|n| h.number(*n));
        h.finish32()
    }

    #[test]
    fn fields_are_separated() {
        assert_ne!(fingerprint(&[Some(b"ab"), Some(b"c")], &[]), fingerprint(&[Some(b"a"), Some(b"bc")], &[]));
        assert_ne!(fingerprint(&[None], &[]), fingerprint(&[Some(b"")], &[]));
        assert_ne!(fingerprint(&[], &[None]), fingerprint(&[], &[Some(0)]));
        let long = vec![b'x'; 1000];
        assert_eq!(fingerprint(&[Some(&long), None], &[Some(3)]), fingerprint(&[Some(&long), None], &[Some(3)]));
        assert_ne!(id_hash("e1"), id_hash("e2"));
    }

    #[test]
    fn sizes_match_what_fields_add() {
        let mut h = ContentHasher::new(0);
        let values: [Option<&[u8]>; 3] = [None, Some(b""), Some(b"abc")];
        let mut want = 0;
        for v in values {
            h.field(v);
            want += ContentHasher::field_size(v);
            assert_eq!(h.0.len(), want);
        }
    }

    /// The hashes are fixed by the build, not by the process (no per-process seed).
    #[test]
    fn probe_is_stable_within_a_build() {
        assert_eq!(probe(), probe());
        assert_eq!(id_hash("fraudgraph-probe"), FixedState::with_seed(ID_SEED).hash_one(&b"fraudgraph-probe"[..]));
    }
}
