//! Stable 64-bit hashes (SipHash-1-3 with fixed keys): the same in every process and release, so
//! de-duplication state and event order never depend on a per-process seed.

use siphasher::sip::SipHasher13;
use std::hash::Hasher;

const ID_KEY: (u64, u64) = (0x6672_6175_6467_7261, 0x7068_2d69_6473_0001);
const CONTENT_KEY: (u64, u64) = (0x6672_6175_6467_7261, 0x7068_2d63_6f6e_0002);

pub fn id_hash(event_id: &str) -> u64 {
    let mut h = SipHasher13::new_with_keys(ID_KEY.0, ID_KEY.1);
    h.write(event_id.as_bytes());
    h.finish()
}

const NAME_KEY: (u64, u64) = (0x6672_6175_6467_7261, 0x7068_2d6e_616d_0003);

/// The canonical order of account and entity names between the stages (same in every process).
pub fn name_hash(name: &[u8]) -> u64 {
    let mut h = SipHasher13::new_with_keys(NAME_KEY.0, NAME_KEY.1);
    h.write(name);
    h.finish()
}

/// Fingerprint of an event's whole content (fields separated so "ab"+"c" != "a"+"bc").
pub struct ContentHasher(SipHasher13);

impl ContentHasher {
    pub fn new() -> Self {
        ContentHasher(SipHasher13::new_with_keys(CONTENT_KEY.0, CONTENT_KEY.1))
    }
    pub fn field(&mut self, value: Option<&[u8]>) {
        match value {
            None => self.0.write_u8(0),
            Some(b) => {
                self.0.write_u8(1);
                self.0.write_u64(b.len() as u64);
                self.0.write(b);
            }
        }
    }
    pub fn number(&mut self, value: Option<u64>) {
        match value {
            None => self.0.write_u8(0),
            Some(v) => {
                self.0.write_u8(2);
                self.0.write_u64(v);
            }
        }
    }
    pub fn finish32(self) -> u32 {
        let v = self.0.finish();
        (v ^ (v >> 32)) as u32
    }
}
