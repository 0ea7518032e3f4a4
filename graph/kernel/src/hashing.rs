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

/// Fingerprint of an event's whole content (fields separated so "ab"+"c" != "a"+"bc"). The fields are
/// gathered on the stack and hashed in one call: SipHash of the concatenation is what writing them one
/// by one gives (little-endian integers), only without a call per field.
pub struct ContentHasher(smallvec::SmallVec<[u8; 384]>);

impl ContentHasher {
    pub fn new() -> Self {
        ContentHasher(smallvec::SmallVec::new())
    }
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
        let mut h = SipHasher13::new_with_keys(CONTENT_KEY.0, CONTENT_KEY.1);
        h.write(&self.0);
        let v = h.finish();
        (v ^ (v >> 32)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fingerprint as it was computed before (one write per field): de-duplication state in a
    /// checkpoint keeps these values, so they must not change.
    fn streamed(fields: &[Option<&[u8]>], numbers: &[Option<u64>]) -> u32 {
        let mut h = SipHasher13::new_with_keys(CONTENT_KEY.0, CONTENT_KEY.1);
        for f in fields {
            match f {
                None => h.write_u8(0),
                Some(b) => {
                    h.write_u8(1);
                    h.write_u64(b.len() as u64);
                    h.write(b);
                }
            }
        }
        for n in numbers {
            match n {
                None => h.write_u8(0),
                Some(v) => {
                    h.write_u8(2);
                    h.write_u64(*v);
                }
            }
        }
        let v = h.finish();
        (v ^ (v >> 32)) as u32
    }

    #[test]
    fn one_write_gives_the_streamed_fingerprint() {
        let long = vec![b'x'; 1000];
        let cases: [(&[Option<&[u8]>], &[Option<u64>]); 3] = [
            (&[Some(b"e1"), None, Some(b"")], &[Some(7), None]),
            (&[Some(b"ab"), Some(b"c")], &[Some(u64::MAX)]),
            (&[Some(&long), None], &[None, Some(0)]),
        ];
        for (fields, numbers) in cases {
            let mut h = ContentHasher::new();
            fields.iter().for_each(|f| h.field(*f));
            numbers.iter().for_each(|n| h.number(*n));
            assert_eq!(h.finish32(), streamed(fields, numbers));
        }
    }
}
