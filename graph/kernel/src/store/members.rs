//! An entity's member list (`graph::EntB::members`) in 16 bytes: up to three account ids inline,
//! more on the heap.
//!
//! Most entities are used by one to three accounts (an own phone, a home line, a household's
//! router); their slot is the graph's largest part per live link, so the list's own header counts:
//! a `Vec` takes 24 bytes and a heap block for even one id, smallvec's union 24 bytes for four inline.
//! Here the length (its top bit: on the heap) and three 4-byte words: the ids themselves, or the heap
//! block's address (two words) and capacity. A list that shrinks to two ids comes back inline.

use std::alloc::{alloc, dealloc, handle_alloc_error, realloc, Layout};
use std::ops::{Deref, DerefMut};

const INLINE: usize = 3;
const SPILLED: u32 = 1 << 31;
const FIRST_HEAP: usize = 8;

pub struct Members {
    len: u32,       // the top bit: the ids are on the heap
    data: [u32; 3], // the ids; on the heap: the address's low and high words, the capacity
}

// A Members owns its heap block like a Vec owns its buffer.
unsafe impl Send for Members {}
unsafe impl Sync for Members {}

impl Default for Members {
    fn default() -> Self {
        Members { len: 0, data: [0; 3] }
    }
}

impl Members {
    #[inline]
    pub fn spilled(&self) -> bool {
        self.len & SPILLED != 0
    }

    #[inline]
    fn count(&self) -> usize {
        (self.len & !SPILLED) as usize
    }

    #[inline]
    fn ptr(&self) -> *mut u32 {
        ((self.data[1] as u64) << 32 | self.data[0] as u64) as usize as *mut u32
    }

    pub fn capacity(&self) -> usize {
        if self.spilled() { self.data[2] as usize } else { INLINE }
    }

    fn layout(cap: usize) -> Layout {
        Layout::array::<u32>(cap).expect("member list size")
    }

    fn set_heap(&mut self, ptr: *mut u32, cap: usize) {
        let addr = ptr as usize as u64;
        self.data = [addr as u32, (addr >> 32) as u32, cap as u32];
    }

    pub fn push(&mut self, id: u32) {
        let n = self.count();
        if !self.spilled() {
            if n < INLINE {
                self.data[n] = id;
                self.len += 1;
                return;
            }
            let layout = Self::layout(FIRST_HEAP);
            let ptr = unsafe { alloc(layout) } as *mut u32;
            if ptr.is_null() {
                handle_alloc_error(layout);
            }
            unsafe { std::ptr::copy_nonoverlapping(self.data.as_ptr(), ptr, n) };
            self.set_heap(ptr, FIRST_HEAP);
            self.len |= SPILLED;
        } else if n == self.capacity() {
            let (old, new) = (Self::layout(n), Self::layout(n * 2));
            let ptr = unsafe { realloc(self.ptr() as *mut u8, old, new.size()) } as *mut u32;
            if ptr.is_null() {
                handle_alloc_error(new);
            }
            self.set_heap(ptr, n * 2);
        }
        unsafe { *self.ptr().add(n) = id };
        self.len += 1;
    }

    /// Removes the id at `i`, the last one taking its place (`Vec::swap_remove`).
    pub fn swap_remove(&mut self, i: usize) -> u32 {
        let n = self.count();
        assert!(i < n, "swap_remove index {i} of {n} members");
        let s = self.as_mut_slice();
        let id = s[i];
        s[i] = s[n - 1];
        self.len -= 1;
        if self.spilled() && n - 1 < INLINE {
            let (ptr, cap) = (self.ptr(), self.capacity());
            let mut inline = [0u32; 3];
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, inline.as_mut_ptr(), n - 1);
                dealloc(ptr as *mut u8, Self::layout(cap));
            }
            self.data = inline;
            self.len = (n - 1) as u32;
        }
        id
    }

    pub fn as_slice(&self) -> &[u32] {
        if self.spilled() {
            unsafe { std::slice::from_raw_parts(self.ptr(), self.count()) }
        } else {
            &self.data[..self.count()]
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u32] {
        let n = self.count();
        if self.spilled() {
            unsafe { std::slice::from_raw_parts_mut(self.ptr(), n) }
        } else {
            &mut self.data[..n]
        }
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        if self.spilled() {
            unsafe { dealloc(self.ptr() as *mut u8, Self::layout(self.capacity())) };
        }
    }
}

impl Deref for Members {
    type Target = [u32];
    fn deref(&self) -> &[u32] {
        self.as_slice()
    }
}

impl DerefMut for Members {
    fn deref_mut(&mut self) -> &mut [u32] {
        self.as_mut_slice()
    }
}

impl<'a> IntoIterator for &'a Members {
    type Item = &'a u32;
    type IntoIter = std::slice::Iter<'a, u32>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl Clone for Members {
    fn clone(&self) -> Self {
        self.iter().copied().collect()
    }
}

impl FromIterator<u32> for Members {
    fn from_iter<I: IntoIterator<Item = u32>>(ids: I) -> Self {
        let mut m = Members::default();
        for id in ids {
            m.push(id);
        }
        m
    }
}

impl std::fmt::Debug for Members {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

// Stored as a plain sequence of ids (the checkpoint's format for a list).
impl serde::Serialize for Members {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<u32>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_spill_grow_and_come_back_inline() {
        assert_eq!(std::mem::size_of::<Members>(), 16);
        let mut m = Members::default();
        let mut reference: Vec<u32> = Vec::new();
        for round in 0..3u32 {
            for id in 0..40u32 {
                m.push(id * 10 + round);
                reference.push(id * 10 + round);
                assert_eq!(m.as_slice(), reference.as_slice());
            }
            assert!(m.spilled() && m.capacity() >= 40);
            let copy = m.clone();
            assert_eq!(copy.as_slice(), reference.as_slice());
            for i in [5usize, 0, 17, 3] {
                assert_eq!(m.swap_remove(i), reference.swap_remove(i));
            }
            while m.len() > 1 {
                assert_eq!(m.swap_remove(m.len() / 2), reference.swap_remove(reference.len() / 2));
                assert_eq!(m.as_slice(), reference.as_slice());
                assert_eq!(m.spilled(), m.len() >= INLINE, "back inline under three");
            }
            m.swap_remove(0);
            reference.clear();
            assert!(m.is_empty() && !m.spilled());
        }
    }
}
