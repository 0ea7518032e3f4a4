//! String interning with reference counts: every account and entity becomes a dense `u32` id.
//!
//! Strings live in one byte arena; an id whose reference count drops to zero is freed and its id
//! reused, so memory follows the live window rather than history. The arena is compacted (ids kept)
//! once dead bytes outnumber live ones. Id assignment depends only on the order of `intern`/`release`
//! calls, never on hashing, so the same call sequence gives the same ids in any process. The index
//! from a name's hash to its id is `index.rs` (one array a batch can prefetch: `Interner::prefetch`).

use crate::store::index::{prefetch, Index};
use std::hash::{BuildHasher, Hasher};

pub use crate::store::index::NONE;

/// Grow a per-id table to hold `index`, by a quarter at a time rather than doubling: these tables
/// are the bulk of the state, and doubling leaves up to half of them empty.
pub fn grow_to<T: Clone>(v: &mut Vec<T>, index: usize, fill: T) {
    if index < v.len() {
        return;
    }
    if index >= v.capacity() {
        let want = (index + 1).max(v.capacity() + v.capacity() / 4).max(1024);
        v.reserve_exact(want - v.len());
    }
    v.resize(index + 1, fill);
}

/// The heap bytes of a hashbrown table of `capacity` entries of `size` bytes: its buckets (a power
/// of two, at most 7/8 full) and a control byte each.
pub fn table_bytes(capacity: usize, size: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 { (capacity + 1).next_power_of_two() } else { (capacity * 8 / 7).next_power_of_two() };
    buckets * (size + 1) + 16
}

/// The hash of `prefix` + `value`, computed over the concatenation (so a key interned in parts is
/// found whole): short keys are joined on the stack.
fn hash_bytes(hasher: &hashbrown::DefaultHashBuilder, prefix: &[u8], value: &[u8]) -> u64 {
    let mut h = hasher.build_hasher();
    let n = prefix.len() + value.len();
    if prefix.is_empty() {
        h.write(value);
    } else if n <= 128 {
        let mut buf = [0u8; 128];
        buf[..prefix.len()].copy_from_slice(prefix);
        buf[prefix.len()..n].copy_from_slice(value);
        h.write(&buf[..n]);
    } else {
        let mut joined = Vec::with_capacity(n);
        joined.extend_from_slice(prefix);
        joined.extend_from_slice(value);
        h.write(&joined);
    }
    h.finish()
}

/// The bytes of interned id `id`.
#[inline]
fn stored<'a>(arena: &'a [u8], slots: &[Slot], id: u32) -> &'a [u8] {
    let slot = &slots[id as usize];
    let s = slot.start as usize;
    &arena[s..s + slot.len as usize]
}

#[derive(Clone, Copy, Default)]
#[derive(serde::Serialize, serde::Deserialize)]
struct Slot {
    start: u32,
    len: u32, // NONE marks a free id
    refs: u32,
}

#[derive(Default)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Interner {
    arena: Vec<u8>,
    /// per id, together so that a lookup's comparison reads one place (then the arena)
    slots: Vec<Slot>,
    #[serde(skip)] // rebuilt on restore (`rebuild_index`): the hasher is seeded per process
    table: Index,
    #[serde(skip)]
    hasher: hashbrown::DefaultHashBuilder,
    free: Vec<u32>,
    dead_bytes: usize,
    live: usize,
}

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    fn hash(&self, s: &[u8]) -> u64 {
        hash_bytes(&self.hasher, b"", s)
    }

    /// After a restore: index every live id again under this process's hasher.
    pub fn rebuild_index(&mut self) {
        let mut table = Index::with_capacity(self.live);
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.len == NONE {
                continue;
            }
            table.insert(self.hash(self.bytes(i as u32)), i as u32);
        }
        self.table = table;
    }

    /// The hash `intern_hashed` takes for `prefix` + `value`.
    #[inline]
    pub fn hash_parts(&self, prefix: &[u8], value: &[u8]) -> u64 {
        hash_bytes(&self.hasher, prefix, value)
    }

    /// Hint to load id `id`'s slot (`level` 0) or, its slot asked for earlier, its bytes (1).
    #[inline]
    pub fn prefetch_id(&self, id: u32, level: u8) {
        let Some(slot) = self.slots.get(id as usize) else { return };
        if level == 0 {
            prefetch(slot);
        } else if slot.len != NONE && (slot.start as usize) < self.arena.len() {
            prefetch(&self.arena[slot.start as usize]);
        }
    }

    /// Prefetch for a coming `intern_hashed(h, ..)`, in three passes over a batch's hashes so each
    /// finds the line the previous one asked for: `level` 0 the index entry, 1 the candidate id's
    /// slot, 2 its bytes. Hints only: nothing here changes state or results.
    #[inline]
    pub fn prefetch(&self, h: u64, level: u8) {
        match level {
            0 => self.table.prefetch(h),
            _ => {
                if let Some(id) = self.table.candidate(h) {
                    self.prefetch_id(id, level - 1);
                }
            }
        }
    }

    #[inline]
    pub fn bytes(&self, id: u32) -> &[u8] {
        stored(&self.arena, &self.slots, id)
    }

    #[inline]
    pub fn get_str(&self, id: u32) -> &str {
        // Only valid UTF-8 enters (from Python str or from batches built from it).
        unsafe { std::str::from_utf8_unchecked(self.bytes(id)) }
    }

    /// The id of `s`, if interned.
    pub fn lookup(&self, s: &str) -> Option<u32> {
        let b = s.as_bytes();
        let h = self.hash(b);
        self.table.find(h, |id| self.bytes(id) == b)
    }

    /// The id of `s`, adding it with no references if new. Returns (id, was_new).
    pub fn intern(&mut self, s: &str) -> (u32, bool) {
        self.intern_parts(b"", s.as_bytes())
    }

    /// The id of `prefix` + `value` (an entity key such as `d:` + device id), without building it.
    pub fn intern_parts(&mut self, prefix: &[u8], value: &[u8]) -> (u32, bool) {
        self.intern_hashed(self.hash_parts(prefix, value), prefix, value)
    }

    /// `intern_parts` with the hash already computed (`hash_parts`).
    pub fn intern_hashed(&mut self, h: u64, prefix: &[u8], value: &[u8]) -> (u32, bool) {
        debug_assert_eq!(h, self.hash_parts(prefix, value));
        let plen = prefix.len();
        if let Some(id) = self.table.find(h, |id| {
            let stored = stored(&self.arena, &self.slots, id);
            stored.len() == plen + value.len() && &stored[..plen] == prefix && &stored[plen..] == value
        }) {
            return (id, false);
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                let id = self.slots.len();
                grow_to(&mut self.slots, id, Slot { start: 0, len: NONE, refs: 0 });
                id as u32
            }
        };
        let n = plen + value.len();
        if self.arena.len() + n > self.arena.capacity() {
            // a quarter more at a time (not doubling): the arena is most of the names' memory
            self.arena.reserve_exact(n.max(4096).max(self.arena.capacity() / 4));
        }
        self.slots[id as usize] = Slot { start: self.arena.len() as u32, len: n as u32, refs: 0 };
        self.arena.extend_from_slice(prefix);
        self.arena.extend_from_slice(value);
        self.live += 1;
        self.table.insert(h, id);
        (id, true)
    }

    #[inline]
    pub fn retain(&mut self, id: u32) {
        self.slots[id as usize].refs += 1;
    }

    /// Drop one reference; returns true when the id was freed.
    pub fn release(&mut self, id: u32) -> bool {
        let slot = &mut self.slots[id as usize];
        debug_assert!(slot.refs > 0, "release of an id with no references");
        slot.refs -= 1;
        if slot.refs == 0 {
            self.free_id(id);
            return true;
        }
        false
    }

    /// Free an id that holds no references (e.g. interned but never kept).
    pub fn free_if_unused(&mut self, id: u32) -> bool {
        let slot = self.slots[id as usize];
        if slot.refs == 0 && slot.len != NONE {
            self.free_id(id);
            return true;
        }
        false
    }

    fn free_id(&mut self, id: u32) {
        let b_len = self.slots[id as usize].len as usize;
        let h = self.hash(self.bytes(id));
        self.table.remove(h, id);
        self.slots[id as usize].len = NONE;
        self.dead_bytes += b_len;
        self.live -= 1;
        self.free.push(id);
        if self.dead_bytes > 4096 && self.dead_bytes > self.arena.len() / 2 {
            self.compact();
        }
    }

    fn compact(&mut self) {
        let mut arena = Vec::with_capacity(self.arena.len() - self.dead_bytes + 64);
        for slot in self.slots.iter_mut() {
            if slot.len == NONE {
                continue;
            }
            let s = slot.start as usize;
            slot.start = arena.len() as u32;
            arena.extend_from_slice(&self.arena[s..s + slot.len as usize]);
        }
        self.arena = arena;
        self.dead_bytes = 0;
    }

    pub fn refs(&self, id: u32) -> u32 {
        self.slots[id as usize].refs
    }

    pub fn is_live(&self, id: u32) -> bool {
        (id as usize) < self.slots.len() && self.slots[id as usize].len != NONE
    }

    /// One past the largest id ever handed out (size per-id side tables with this).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn live(&self) -> usize {
        self.live
    }

    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity() + self.slots.capacity() * std::mem::size_of::<Slot>() + self.table.heap_bytes() + self.free.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_reused_and_strings_survive_compaction() {
        let mut i = Interner::new();
        let (a, _) = i.intern("alpha");
        i.retain(a);
        let (b, _) = i.intern("beta");
        i.retain(b);
        assert_eq!(i.lookup("alpha"), Some(a));
        assert!(i.release(a));
        assert_eq!(i.lookup("alpha"), None);
        let (c, new) = i.intern("gamma");
        assert!(new);
        assert_eq!(c, a, "a freed id is reused");
        for n in 0..10_000 {
            let (x, _) = i.intern(&format!("tmp{n}"));
            i.retain(x);
            i.release(x);
        }
        assert_eq!(i.get_str(b), "beta");
        assert_eq!(i.get_str(c), "gamma");
        assert_eq!(i.lookup("beta"), Some(b));
    }
}

/// The names a stage uses. One process running both stages shares one (graph/kernel/src/lib.rs), so
/// a name is stored once and the batches between the stages carry ids only.
#[derive(Default)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Names {
    pub accounts: Interner,
    pub entities: Interner,
    pub domains: Interner,
}

impl Names {
    pub fn rebuild_index(&mut self) {
        self.accounts.rebuild_index();
        self.entities.rebuild_index();
        self.domains.rebuild_index();
    }
    pub fn heap_bytes(&self) -> usize {
        self.accounts.heap_bytes() + self.entities.heap_bytes() + self.domains.heap_bytes()
    }
}

/// The graph's ids for one kind of name. On its own (names sent between processes) the graph's ids
/// are its interner's. Sharing a window's names (one process), the graph still allocates its own
/// dense ids — in its canonical order, so every tie-break stays independent of how events arrived
/// at the window — and maps them to the window's ids (8 bytes a name instead of a second copy).
#[derive(Default)]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Space {
    pub shared: bool,
    b2a: Vec<u32>,
    a2b: Vec<u32>,
    refs: Vec<u32>,
    free: Vec<u32>,
    live: usize,
}

impl Space {
    #[inline]
    pub fn to_names(&self, b: u32) -> u32 {
        if self.shared { self.b2a[b as usize] } else { b }
    }

    /// The graph's id for the window's id `a` (shared names only), mapping it if new.
    pub fn map(&mut self, names: &mut Interner, a: u32) -> (u32, bool) {
        debug_assert!(self.shared);
        if let Some(&b) = self.a2b.get(a as usize) {
            if b != NONE {
                return (b, false);
            }
        }
        let b = match self.free.pop() {
            Some(b) => b,
            None => {
                let b = self.b2a.len();
                grow_to(&mut self.b2a, b, NONE);
                grow_to(&mut self.refs, b, 0);
                b as u32
            }
        };
        grow_to(&mut self.a2b, a as usize, NONE);
        self.a2b[a as usize] = b;
        self.b2a[b as usize] = a;
        self.refs[b as usize] = 0;
        self.live += 1;
        names.retain(a); // the graph holds the name while it maps it
        (b, true)
    }

    /// Hint to load where `mapped(a)` reads.
    #[inline]
    pub fn prefetch(&self, a: u32) {
        if let Some(x) = self.a2b.get(a as usize) {
            crate::store::index::prefetch(x);
        }
    }

    pub fn mapped(&self, a: u32) -> Option<u32> {
        self.a2b.get(a as usize).copied().filter(|&b| b != NONE)
    }

    pub fn intern(&mut self, names: &mut Interner, s: &str) -> (u32, bool) {
        let (a, new) = names.intern(s);
        if self.shared { self.map(names, a) } else { (a, new) }
    }

    pub fn lookup(&self, names: &Interner, s: &str) -> Option<u32> {
        let a = names.lookup(s)?;
        if self.shared { self.mapped(a) } else { Some(a) }
    }

    pub fn retain(&mut self, names: &mut Interner, b: u32) {
        if self.shared {
            self.refs[b as usize] += 1;
        } else {
            names.retain(b);
        }
    }

    /// Drop one of the graph's references; true when the graph's id was freed.
    pub fn release(&mut self, names: &mut Interner, b: u32) -> bool {
        if !self.shared {
            return names.release(b);
        }
        let r = &mut self.refs[b as usize];
        debug_assert!(*r > 0);
        *r -= 1;
        if *r > 0 {
            return false;
        }
        let a = self.b2a[b as usize];
        self.a2b[a as usize] = NONE;
        self.b2a[b as usize] = NONE;
        self.free.push(b);
        self.live -= 1;
        names.release(a);
        true
    }

    pub fn is_live(&self, names: &Interner, b: u32) -> bool {
        if self.shared { (b as usize) < self.b2a.len() && self.b2a[b as usize] != NONE } else { names.is_live(b) }
    }

    pub fn count(&self, names: &Interner) -> usize {
        if self.shared { self.live } else { names.live() }
    }

    pub fn heap_bytes(&self) -> usize {
        (self.b2a.capacity() + self.a2b.capacity() + self.refs.capacity() + self.free.capacity()) * 4
    }
}
