//! `List<T>`: a growable list of plain values in 16 bytes (a `Vec` takes 24), for the lists every
//! account has: its links in the window and in the graph, its usage. Per account that is 8 bytes a
//! list, with tens of millions of accounts in view. Lengths and capacities are 32-bit.

use std::alloc::{alloc, dealloc, handle_alloc_error, realloc, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

pub struct List<T: Copy> {
    ptr: NonNull<T>,
    len: u32,
    cap: u32,
}

// A List owns its buffer like a Vec does.
unsafe impl<T: Copy + Send> Send for List<T> {}
unsafe impl<T: Copy + Sync> Sync for List<T> {}

impl<T: Copy> Default for List<T> {
    fn default() -> Self {
        List { ptr: NonNull::dangling(), len: 0, cap: 0 }
    }
}

impl<T: Copy> List<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(cap: usize) -> Self {
        let mut list = Self::new();
        list.set_capacity(cap);
        list
    }

    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    fn layout(cap: usize) -> Layout {
        Layout::array::<T>(cap).expect("list size")
    }

    /// Reallocate to exactly `cap` (at least the length).
    fn set_capacity(&mut self, cap: usize) {
        assert!(cap >= self.len as usize && cap <= u32::MAX as usize, "list capacity {cap}");
        if cap == self.cap as usize || std::mem::size_of::<T>() == 0 {
            return;
        }
        let new = Self::layout(cap);
        let ptr = unsafe {
            if cap == 0 {
                dealloc(self.ptr.as_ptr() as *mut u8, Self::layout(self.cap as usize));
                NonNull::dangling().as_ptr()
            } else if self.cap == 0 {
                alloc(new) as *mut T
            } else {
                realloc(self.ptr.as_ptr() as *mut u8, Self::layout(self.cap as usize), new.size()) as *mut T
            }
        };
        self.ptr = NonNull::new(ptr).unwrap_or_else(|| handle_alloc_error(new));
        self.cap = cap as u32;
    }

    /// Room for `more` values beyond the length, exactly (`Vec::reserve_exact`).
    pub fn reserve_exact(&mut self, more: usize) {
        let want = self.len as usize + more;
        if want > self.cap as usize {
            self.set_capacity(want);
        }
    }

    fn grow(&mut self) {
        if self.len == self.cap {
            self.set_capacity((self.cap as usize * 2).max(4));
        }
    }

    pub fn push(&mut self, value: T) {
        self.grow();
        unsafe { self.ptr.as_ptr().add(self.len as usize).write(value) };
        self.len += 1;
    }

    pub fn insert(&mut self, at: usize, value: T) {
        let n = self.len as usize;
        assert!(at <= n, "insert at {at} of {n}");
        self.grow();
        unsafe {
            let p = self.ptr.as_ptr().add(at);
            std::ptr::copy(p, p.add(1), n - at);
            p.write(value);
        }
        self.len += 1;
    }

    /// Removes the value at `at`, the last one taking its place (`Vec::swap_remove`).
    pub fn swap_remove(&mut self, at: usize) -> T {
        let n = self.len as usize;
        assert!(at < n, "swap_remove at {at} of {n}");
        let s = self.as_mut_slice();
        let value = s[at];
        s[at] = s[n - 1];
        self.len -= 1;
        value
    }

    /// Removes the first `count` values (`Vec::drain(..count)`).
    pub fn remove_front(&mut self, count: usize) {
        let n = self.len as usize;
        assert!(count <= n, "remove {count} of {n}");
        unsafe { std::ptr::copy(self.ptr.as_ptr().add(count), self.ptr.as_ptr(), n - count) };
        self.len -= count as u32;
    }

    pub fn as_slice(&self) -> &[T] {
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len as usize) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len as usize) }
    }
}

impl<T: Copy> Drop for List<T> {
    fn drop(&mut self) {
        if self.cap > 0 && std::mem::size_of::<T>() > 0 {
            unsafe { dealloc(self.ptr.as_ptr() as *mut u8, Self::layout(self.cap as usize)) };
        }
    }
}

impl<T: Copy> Deref for List<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Copy> DerefMut for List<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<'a, T: Copy> IntoIterator for &'a List<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl<T: Copy> Clone for List<T> {
    fn clone(&self) -> Self {
        let mut list = Self::with_capacity(self.len as usize);
        for &v in self.iter() {
            list.push(v);
        }
        list
    }
}

impl<T: Copy> FromIterator<T> for List<T> {
    fn from_iter<I: IntoIterator<Item = T>>(values: I) -> Self {
        let values = values.into_iter();
        let mut list = Self::with_capacity(values.size_hint().0);
        for v in values {
            list.push(v);
        }
        list
    }
}

impl<T: Copy + std::fmt::Debug> std::fmt::Debug for List<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

// Stored as a plain sequence (the checkpoint's format for a Vec).
impl<T: Copy + serde::Serialize> serde::Serialize for List<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de, T: Copy + serde::Deserialize<'de>> serde::Deserialize<'de> for List<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<T>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_behaves_like_a_vec() {
        assert_eq!(std::mem::size_of::<List<(u32, u32, u32)>>(), 16);
        let mut list: List<(u32, u64)> = List::new();
        let mut reference: Vec<(u32, u64)> = Vec::new();
        for i in 0..200u32 {
            match i % 7 {
                0 | 1 | 2 => {
                    list.push((i, i as u64 * 3));
                    reference.push((i, i as u64 * 3));
                }
                3 => {
                    let at = (i as usize * 13) % (reference.len() + 1);
                    list.insert(at, (i, 0));
                    reference.insert(at, (i, 0));
                }
                4 if !reference.is_empty() => {
                    let at = (i as usize * 5) % reference.len();
                    assert_eq!(list.swap_remove(at), reference.swap_remove(at));
                }
                5 if reference.len() > 3 => {
                    list.remove_front(2);
                    reference.drain(..2);
                }
                _ => list.reserve_exact(3),
            }
            assert_eq!(list.as_slice(), reference.as_slice());
            assert!(list.capacity() >= list.len());
        }
        let copy = list.clone();
        assert_eq!(copy.as_slice(), reference.as_slice());
        let taken = std::mem::take(&mut list);
        assert!(list.is_empty() && list.capacity() == 0);
        assert_eq!(taken.iter().copied().collect::<List<_>>().as_slice(), reference.as_slice());
    }
}
