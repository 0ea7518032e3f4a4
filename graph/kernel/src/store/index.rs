//! The interner's index from a name's hash to its id: open addressing with linear probing over one
//! array of 8-byte entries, each the top 32 bits of the hash (the tag) and the id.
//!
//! A lookup reads the entry's cache line, then the id's slot and bytes (`intern.rs`) — one line
//! fewer than a table whose control bytes and buckets lie apart — and, since where a hash lands is
//! plain arithmetic, a batch of events can prefetch the lines its lookups will read before it looks
//! anything up (`Interner::prefetch`). An entry's home is its tag scaled to the size (`tag * size /
//! 2^32`), so growing and deleting (backward shift: no tombstones) never re-hash a name, and the size
//! need not be a power of two: it grows by half at a time and stays 54-81 % full.

/// No id: the empty slot of an index, the missing entity of a link.
pub const NONE: u32 = u32::MAX;

const EMPTY: u64 = u64::MAX; // id NONE: no id is NONE

#[derive(Default)]
pub struct Index {
    entries: Vec<u64>,
    len: usize,
}

#[inline]
fn tag(h: u64) -> u32 {
    (h >> 32) as u32
}

impl Index {
    pub fn with_capacity(n: usize) -> Self {
        let mut index = Index::default();
        index.entries = vec![EMPTY; Self::size_for(n)];
        index
    }

    /// Entries for `n` ids about 54 % full: at most 13/16 full after growing by half (at least 16).
    fn size_for(n: usize) -> usize {
        (n * 16 / 13 * 3 / 2).max(16)
    }

    /// Where a lookup of tag `t` starts.
    #[inline]
    fn home(&self, t: u32) -> usize {
        ((t as u64 * self.entries.len() as u64) >> 32) as usize
    }

    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.entries.len() { 0 } else { i + 1 }
    }

    /// The id whose hash is `h` and for which `eq` holds.
    #[inline]
    pub fn find(&self, h: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.entries.is_empty() {
            return None;
        }
        let t = tag(h);
        let mut i = self.home(t);
        loop {
            let e = self.entries[i];
            if e == EMPTY {
                return None;
            }
            if (e >> 32) as u32 == t && eq(e as u32) {
                return Some(e as u32);
            }
            i = self.next(i);
        }
    }

    /// The first id whose tag is `h`'s (a candidate, unverified): what a prefetch follows.
    #[inline]
    pub fn candidate(&self, h: u64) -> Option<u32> {
        self.find(h, |_| true)
    }

    /// Add `id` under `h` (not present).
    pub fn insert(&mut self, h: u64, id: u32) {
        debug_assert!(id != NONE);
        if (self.len + 1) * 16 > self.entries.len() * 13 {
            self.grow();
        }
        let mut i = self.home(tag(h));
        while self.entries[i] != EMPTY {
            i = self.next(i);
        }
        self.entries[i] = (tag(h) as u64) << 32 | id as u64;
        self.len += 1;
    }

    fn grow(&mut self) {
        let old = std::mem::replace(&mut self.entries, vec![EMPTY; Self::size_for(self.len + 1).max(16)]);
        for e in old.into_iter().filter(|&e| e != EMPTY) {
            let mut i = self.home((e >> 32) as u32);
            while self.entries[i] != EMPTY {
                i = self.next(i);
            }
            self.entries[i] = e;
        }
    }

    /// Remove `id`, indexed under `h`; later entries of its run shift back into the hole.
    pub fn remove(&mut self, h: u64, id: u32) {
        let size = self.entries.len();
        let mut i = self.home(tag(h));
        loop {
            let e = self.entries[i];
            assert!(e != EMPTY, "index: id {id} is not indexed under its hash");
            if e as u32 == id {
                break;
            }
            i = self.next(i);
        }
        // steps from `from` forward to `to`, around the end
        let dist = |from: usize, to: usize| if to >= from { to - from } else { to + size - from };
        let mut hole = i;
        let mut j = i;
        loop {
            j = self.next(j);
            let e = self.entries[j];
            if e == EMPTY {
                break;
            }
            // `e` may fill the hole if its home is not after the hole in its probe run
            if dist(self.home((e >> 32) as u32), j) >= dist(hole, j) {
                self.entries[hole] = e;
                hole = j;
            }
        }
        self.entries[hole] = EMPTY;
        self.len -= 1;
    }

    /// Ask the CPU for the cache line a lookup of `h` starts at (a hint: no effect on results).
    #[inline]
    pub fn prefetch(&self, h: u64) {
        if !self.entries.is_empty() {
            prefetch(&self.entries[self.home(tag(h))]);
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * 8
    }
}

/// A hint to load `x`'s cache line (x86-64; elsewhere nothing).
#[inline(always)]
pub fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(x as *const T as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// Hints to load the cache lines of `items` (at most the first four).
#[inline(always)]
pub fn prefetch_slice<T>(items: &[T]) {
    let bytes = std::mem::size_of_val(items).min(256);
    let base = items.as_ptr() as *const u8;
    let mut at = 0;
    while at < bytes {
        // SAFETY: in bounds of `items` (at < its size in bytes)
        prefetch(unsafe { &*base.add(at) });
        at += 64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Against a map, with hashes crowded into few homes (long runs that wrap around the end), through
    /// growth and deletions in every position of a run.
    #[test]
    fn matches_a_map() {
        let mut index = Index::default();
        let mut model: HashMap<u32, u64> = HashMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..6_000u32 {
            let r = next();
            if r % 3 != 0 || model.is_empty() {
                let h = ((r % 97) * (u32::MAX as u64 / 97)) << 32 | (r >> 32); // 97 tags: long runs that collide and wrap
                index.insert(h, round);
                model.insert(round, h);
            } else {
                let mut keys: Vec<u32> = model.keys().copied().collect();
                keys.sort_unstable();
                let id = keys[(r as usize / 7) % keys.len()];
                let h = model.remove(&id).unwrap();
                index.remove(h, id);
            }
            if round % 499 == 0 {
                for (&id, &h) in &model {
                    assert_eq!(index.find(h, |c| c == id), Some(id));
                }
                assert_eq!(index.len, model.len());
            }
        }
        for (&id, &h) in &model {
            assert_eq!(index.find(h, |c| c == id), Some(id));
        }
        assert_eq!(index.find(0x1234_5678_0000_0000, |_| false), None);
    }
}
