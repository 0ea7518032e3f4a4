//! Event-time policy of one input partition: drop re-deliveries, bound clock skew, hold events for
//! the allowed lateness and release them in `(ts, id hash)` order.
//!
//! * [`Dedupe`] remembers each event id as 48 bits of its fixed-seed hash (`hashing::id_hash`) with an 8-bit content fingerprint
//!   and an 8-bit generation, in generations of `retention / 8` of event time: the latest ids in a
//!   hash table (8 bytes an id), settled in batches into an array sorted in 65,536 buckets by their
//!   top 16 bits (the 32 bits below and the two tags: 6 bytes an id). An id is remembered for at
//!   least the retention (window + lateness) and at most 1/8 longer. The same
//!   id with the same content is a re-delivery; with other content, a conflict. A false duplicate
//!   needs a new id to share 48 bits with a remembered one: probability n / 2^48 per event with n ids
//!   remembered (3 million ids: 1.1e-8, about one event in 94 million wrongly dropped); a conflict
//!   passes for a re-delivery (dropped, not dead-lettered) when its content matches 8 bits (1 in 256).
//! * [`ClockGuard`] keeps an event dated far ahead of the stream (a forged or broken client clock)
//!   from moving the watermark; see `graph/DETECTION.md`.
//! * [`Reorder`] holds events until the watermark (newest event time - lateness) passes them.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    New,
    Duplicate,
    Conflict,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Dedupe {
    span: f64,
    retention: f64,
    /// ids admitted since the last settling: one u64 each (the id hash's top 48 bits, an 8-bit
    /// content fingerprint, an 8-bit generation) in a hash table
    #[serde(with = "id_table")]
    recent: hashbrown::HashTable<u64>,
    /// the rest, sorted and packed (6 bytes an id)
    #[serde(with = "settled_ids")]
    settled: Settled,
    oldest: i64, // generation of the oldest entry kept (i64::MIN: none yet)
    newest: i64,
    unstamped: bool, // entries admitted before there was a watermark (generation UNSTAMPED)
}

const UNSTAMPED: u64 = 0xFF;
const ID_BITS: u64 = !0 << 16;
/// Recent ids are settled once they are this many, or a sixteenth of the settled ones if more: a
/// settling moves every settled id once, so each admitted id is moved about 16 times in all.
const SETTLE_MIN: usize = 8192;

impl Dedupe {
    pub fn new(retention: f64) -> Self {
        let span = (retention / 8.0).max(1.0);
        Dedupe { span, retention, recent: hashbrown::HashTable::new(), settled: Settled::default(), oldest: i64::MIN,
                 newest: i64::MIN, unstamped: false }
    }

    fn gen_tag(g: i64) -> u64 {
        g.rem_euclid(255) as u64 // 0..254; 255 marks "unstamped"
    }

    /// The remembered entry of the id whose top 48 bits are `tag_id`.
    fn find(&self, tag_id: u64) -> Option<u64> {
        if let Some(&entry) = self.recent.find(rehash(tag_id), |&e| e & ID_BITS == tag_id) {
            return Some(entry);
        }
        self.settled.find(tag_id)
    }

    /// Hint to load what `admit(id, ..)` will read in the settled store (`Settled::prefetch`).
    #[inline]
    pub fn prefetch(&self, id: u64, level: u8) {
        self.settled.prefetch(id & ID_BITS, level);
    }

    pub fn admit(&mut self, id: u64, content: u32, watermark: f64) -> Admission {
        // Entries are matched on the id hash's top 48 bits: two ids are confused when they agree
        // on 48 bits, probability n / 2^48 per event with n ids remembered (3e6: 1.1e-8, about one
        // event in 94 million).
        let tag_id = id & ID_BITS;
        let content = ((content & 0xFF) as u64) << 8;
        if let Some(entry) = self.find(tag_id) {
            return if entry & 0xFF00 == content { Admission::Duplicate } else { Admission::Conflict };
        }
        let tag = if watermark == f64::NEG_INFINITY {
            self.unstamped = true;
            UNSTAMPED
        } else {
            let g = (watermark / self.span).floor() as i64;
            if self.oldest == i64::MIN {
                self.oldest = g;
            }
            self.newest = self.newest.max(g);
            if self.unstamped {
                // ids from before the first watermark count as admitted now
                let t = Self::gen_tag(g);
                for e in self.recent.iter_mut() {
                    if *e & 0xFF == UNSTAMPED {
                        *e = (*e & !0xFF) | t;
                    }
                }
                self.settled.retag(UNSTAMPED as u8, t as u8);
                self.unstamped = false;
            }
            Self::gen_tag(g)
        };
        self.recent.insert_unique(rehash(tag_id), tag_id | content | tag, |&e| rehash(e));
        if self.recent.len() >= SETTLE_MIN.max(self.settled.len() / 16) {
            let mut entries: Vec<u64> = self.recent.drain().collect();
            entries.sort_unstable();
            self.settled.merge(&entries);
        }
        Admission::New
    }

    /// Forget ids admitted before `cutoff` (whole generations only: kept up to one span longer).
    pub fn forget_before(&mut self, cutoff: f64) {
        let first_kept = (cutoff / self.span).floor() as i64;
        if self.oldest == i64::MIN || first_kept <= self.oldest {
            return;
        }
        let (oldest, newest) = (self.oldest, self.newest);
        // a tag names the generation in [oldest, newest] congruent to it (at most 9 are ever live)
        let keep: Vec<bool> = (0..256u64)
            .map(|t| t == UNSTAMPED || (oldest..=newest).any(|g| Self::gen_tag(g) == t && g >= first_kept))
            .collect();
        self.recent.retain(|e| keep[(*e & 0xFF) as usize]);
        self.settled.retain(|tag| keep[(tag & 0xFF) as usize]);
        self.oldest = first_kept.min(newest.max(first_kept));
    }

    pub fn len(&self) -> usize {
        self.recent.len() + self.settled.len()
    }

    pub fn heap_bytes(&self) -> usize {
        crate::store::intern::table_bytes(self.recent.capacity(), 8) + self.settled.heap_bytes()
    }

    pub fn retention(&self) -> f64 {
        self.retention
    }
}

/// Settled ids, sorted: an entry's top 16 id bits are its bucket (`dir[b]..dir[b + 1]` index the
/// bucket's entries), the next 32 bits are in `rest` and its content fingerprint and generation in
/// `tags` — 6 bytes an id, where a hash table of whole entries takes 9 to 18. A lookup is a binary
/// search within one bucket (3 million ids: 46 a bucket, 6 steps).
#[derive(Default)]
pub struct Settled {
    dir: Vec<u32>, // SETTLED_BUCKETS + 1 offsets once anything is settled
    rest: Vec<u32>,
    tags: Vec<u16>,
}

const SETTLED_BUCKETS: usize = 1 << 16;

impl Settled {
    pub fn len(&self) -> usize {
        self.rest.len()
    }

    /// Hint to load what `find(tag_id)` reads: at `level` 0 its directory entry, at 1 (the entry
    /// asked for earlier) its bucket.
    #[inline]
    fn prefetch(&self, tag_id: u64, level: u8) {
        if self.rest.is_empty() {
            return;
        }
        let b = (tag_id >> 48) as usize;
        if level == 0 {
            crate::store::index::prefetch(&self.dir[b]);
        } else {
            let range = self.bucket(b);
            crate::store::index::prefetch_slice(&self.rest[range]);
        }
    }

    fn bucket(&self, b: usize) -> std::ops::Range<usize> {
        self.dir[b] as usize..self.dir[b + 1] as usize
    }

    fn find(&self, tag_id: u64) -> Option<u64> {
        if self.rest.is_empty() {
            return None;
        }
        let range = self.bucket((tag_id >> 48) as usize);
        let at = self.rest[range.clone()].binary_search(&((tag_id >> 16) as u32)).ok()?;
        Some(tag_id | self.tags[range.start + at] as u64)
    }

    /// Every entry as `id bits | content | generation`, ascending.
    pub fn entries(&self) -> impl Iterator<Item = u64> + '_ {
        (0..if self.rest.is_empty() { 0 } else { SETTLED_BUCKETS }).flat_map(move |b| {
            self.bucket(b).map(move |i| (b as u64) << 48 | (self.rest[i] as u64) << 16 | self.tags[i] as u64)
        })
    }

    /// Add `new` (ascending, none already settled): merged in place from the back.
    pub fn merge(&mut self, new: &[u64]) {
        if new.is_empty() {
            return;
        }
        if self.dir.is_empty() {
            self.dir = vec![0; SETTLED_BUCKETS + 1];
        }
        let (n, r) = (self.rest.len(), new.len());
        if n + r > self.rest.capacity() {
            // an eighth more at a time, not doubling: this is most of the de-duplication's memory
            let more = r.max(n / 8);
            self.rest.reserve_exact(more);
            self.tags.reserve_exact(more);
        }
        self.rest.resize(n + r, 0);
        self.tags.resize(n + r, 0);
        let (mut i, mut j) = (n, r); // settled and new entries not yet placed: [..i], [..j]
        let mut b = SETTLED_BUCKETS - 1; // bucket of settled entry i - 1
        while j > 0 {
            let e = new[j - 1];
            let (eb, er) = ((e >> 48) as usize, (e >> 16) as u32);
            if i > 0 {
                while self.dir[b] as usize > i - 1 {
                    b -= 1;
                }
            }
            let w = i + j - 1;
            if i > 0 && (b, self.rest[i - 1]) > (eb, er) {
                self.rest[w] = self.rest[i - 1];
                self.tags[w] = self.tags[i - 1];
                i -= 1;
            } else {
                self.rest[w] = er;
                self.tags[w] = e as u16;
                j -= 1;
            }
        }
        // each bucket's start moves by the new entries in the buckets before it
        let mut k = 0;
        for (b, start) in self.dir.iter_mut().enumerate() {
            while k < r && ((new[k] >> 48) as usize) < b {
                k += 1;
            }
            *start += k as u32;
        }
    }

    /// Keep the entries whose tag (content << 8 | generation) passes `keep`.
    pub fn retain(&mut self, keep: impl Fn(u16) -> bool) {
        if self.rest.is_empty() {
            return;
        }
        let mut w = 0;
        for b in 0..SETTLED_BUCKETS {
            let range = self.bucket(b);
            self.dir[b] = w as u32;
            for i in range {
                if keep(self.tags[i]) {
                    self.rest[w] = self.rest[i];
                    self.tags[w] = self.tags[i];
                    w += 1;
                }
            }
        }
        self.dir[SETTLED_BUCKETS] = w as u32;
        self.rest.truncate(w);
        self.tags.truncate(w);
        if self.rest.capacity() > w + w / 4 + 1024 {
            self.rest.shrink_to(w + w / 8);
            self.tags.shrink_to(w + w / 8);
        }
    }

    fn retag(&mut self, from: u8, to: u8) {
        for t in self.tags.iter_mut() {
            if *t as u8 == from {
                *t = (*t & 0xFF00) | to as u16;
            }
        }
    }

    /// From entries as `entries` gives them (ascending).
    pub fn from_entries(entries: &[u64]) -> Self {
        let mut s = Settled::default();
        s.merge(entries);
        s
    }

    pub fn heap_bytes(&self) -> usize {
        self.dir.capacity() * 4 + self.rest.capacity() * 4 + self.tags.capacity() * 2
    }
}

/// The position hash of a recent entry (only its top 48 id bits survive): used when the table grows.
pub fn rehash(entry: u64) -> u64 {
    let top = entry & ID_BITS;
    top | ((top >> 16).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48)
}

/// Why the guard refused an event (the text goes to the dead-letter record).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SkewRejection {
    pub slot: u32,
    pub reason: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct ClockGuard {
    max_skew: f64,
    sample: usize,
    recent: VecDeque<f64>,
    arrivals: u64,
    held: VecDeque<(u64, u32, f64)>, // (arrival number, slot, ts), arrival order
}

impl ClockGuard {
    pub fn new(max_skew: f64, sample: usize) -> Self {
        ClockGuard { max_skew, sample, recent: VecDeque::with_capacity(sample), arrivals: 0, held: VecDeque::new() }
    }

    fn warm(&self) -> bool {
        self.arrivals >= self.sample as u64
    }

    /// The lower median of the last `sample` arrivals.
    pub fn stream_time(&self) -> f64 {
        if self.recent.is_empty() {
            return f64::NEG_INFINITY;
        }
        let mut v: Vec<f64> = self.recent.iter().copied().collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v[(v.len() - 1) / 2]
    }

    /// One arrival: pushes the slots to apply now (in order) and the rejected ones.
    pub fn check(&mut self, slot: u32, ts: f64, watermark: f64, wall: Option<f64>, ready: &mut Vec<u32>,
                 rejected: &mut Vec<SkewRejection>) {
        if let Some(w) = wall {
            if ts > w + self.max_skew {
                rejected.push(SkewRejection {
                    slot,
                    reason: format!("ts is {} s ahead of the wall clock (more than the {} s allowed skew)",
                                    thousands(ts - w), thousands(self.max_skew)),
                });
                return;
            }
        }
        self.arrivals += 1;
        if self.recent.len() == self.sample {
            self.recent.pop_front();
        }
        self.recent.push_back(ts);
        let mut limit = None;
        if !self.held.is_empty() {
            let l = watermark.max(self.stream_time()) + self.max_skew;
            self.release(l, false, ready, rejected);
            limit = Some(l);
        }
        if self.warm() && ts <= watermark + self.max_skew {
            ready.push(slot);
            return;
        }
        let limit = limit.unwrap_or_else(|| watermark.max(self.stream_time()) + self.max_skew);
        if self.warm() && ts <= limit {
            ready.push(slot);
        } else {
            self.held.push_back((self.arrivals, slot, ts));
        }
    }

    fn release(&mut self, limit: f64, last: bool, ready: &mut Vec<u32>, rejected: &mut Vec<SkewRejection>) {
        if !self.warm() && !last {
            return;
        }
        let mut keep = VecDeque::new();
        let stream = limit - self.max_skew;
        for (arrived, slot, ts) in self.held.drain(..) {
            if ts <= limit {
                ready.push(slot);
            } else if last || self.arrivals - arrived > 2 * self.sample as u64 {
                rejected.push(SkewRejection {
                    slot,
                    reason: format!("ts is {} s ahead of the stream's event time (more than the {} s allowed skew)",
                                    thousands(ts - stream), thousands(self.max_skew)),
                });
            } else {
                keep.push_back((arrived, slot, ts));
            }
        }
        self.held = keep;
    }

    /// End of input or idle input: release what the stream caught up with, reject the rest. With a
    /// wall clock (a live input), the wall clock bounds it too.
    pub fn drain(&mut self, watermark: f64, wall: Option<f64>, ready: &mut Vec<u32>, rejected: &mut Vec<SkewRejection>) {
        if self.held.is_empty() {
            return;
        }
        let mut limit = watermark.max(self.stream_time()) + self.max_skew;
        if let Some(w) = wall {
            limit = limit.max(w + self.max_skew);
        }
        self.release(limit, true, ready, rejected);
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.held.iter().map(|h| h.1)
    }
}

fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

#[derive(Clone, Copy)]
#[derive(serde::Serialize, serde::Deserialize)]
struct Key(f64, u64, u32);
impl PartialEq for Key {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Key {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1)).then(self.2.cmp(&o.2))
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Reorder {
    lateness: f64,
    pub max_ts: f64,
    heap: BinaryHeap<Reverse<Key>>,
    released_upto: f64,
    pub late_events: u64,
}

impl Reorder {
    pub fn new(lateness: f64) -> Self {
        Reorder { lateness, max_ts: f64::NEG_INFINITY, heap: BinaryHeap::new(), released_upto: f64::NEG_INFINITY, late_events: 0 }
    }

    pub fn watermark(&self) -> f64 {
        (self.max_ts - self.lateness).max(self.released_upto)
    }

    /// Add one event; pushes the slots released now, in `(ts, id hash)` order.
    pub fn push(&mut self, slot: u32, ts: f64, id: u64, out: &mut Vec<u32>) {
        if ts < self.watermark() {
            self.late_events += 1;
            out.push(slot);
            return;
        }
        if ts > self.max_ts {
            self.max_ts = ts;
        }
        self.heap.push(Reverse(Key(ts, id, slot)));
        let upto = self.watermark();
        self.release(upto, out);
    }

    fn release(&mut self, upto: f64, out: &mut Vec<u32>) {
        while let Some(Reverse(k)) = self.heap.peek() {
            if k.0 <= upto {
                out.push(k.2);
                self.heap.pop();
            } else {
                break;
            }
        }
    }

    /// Release everything held (end of input, or the input went idle).
    pub fn flush(&mut self, out: &mut Vec<u32>) {
        self.release(f64::INFINITY, out);
        self.released_upto = self.released_upto.max(self.max_ts);
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

/// The de-duplication table (`ordering::Dedupe`): its entries, sorted; re-inserted on restore.
pub mod id_table {
    use hashbrown::HashTable;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(table: &HashTable<u64>, s: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<u64> = table.iter().copied().collect();
        entries.sort_unstable();
        entries.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HashTable<u64>, D::Error> {
        let entries = Vec::<u64>::deserialize(d)?;
        let mut table = HashTable::with_capacity(entries.len());
        for e in entries {
            table.insert_unique(super::rehash(e), e, |&x| super::rehash(x));
        }
        Ok(table)
    }
}

/// The settled de-duplication entries (`ordering::Settled`): as whole entries, ascending.
pub mod settled_ids {
    use super::Settled;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(settled: &Settled, s: S) -> Result<S::Ok, S::Error> {
        settled.entries().collect::<Vec<u64>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Settled, D::Error> {
        let mut entries = Vec::<u64>::deserialize(d)?;
        entries.sort_unstable();
        entries.dedup_by_key(|e| *e & !0xFFFF);
        Ok(Settled::from_entries(&entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupe_tells_redeliveries_from_conflicts_and_forgets_after_retention() {
        let mut d = Dedupe::new(800.0);
        assert_eq!(d.admit(1, 7, 0.0), Admission::New);
        assert_eq!(d.admit(1, 7, 10.0), Admission::Duplicate);
        assert_eq!(d.admit(1, 8, 10.0), Admission::Conflict);
        d.forget_before(50.0);
        assert_eq!(d.admit(1, 7, 60.0), Admission::Duplicate, "kept for at least the retention");
        d.forget_before(200.0);
        assert_eq!(d.admit(1, 7, 210.0), Admission::New);
    }

    #[test]
    fn dedupe_remembers_every_id_across_settlings_and_forgets_whole_generations() {
        // enough ids to settle several times; ids spread over all buckets (a 64-bit hash's spread)
        let id = |n: u64| n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (n << 7);
        let mut d = Dedupe::new(800.0); // generations of 100 s
        for n in 0..40_000u64 {
            assert_eq!(d.admit(id(n), n as u32, (n / 1000) as f64), Admission::New);
        }
        assert!(d.settled.len() > 0 && d.len() == 40_000);
        for n in (0..40_000u64).step_by(7) {
            assert_eq!(d.admit(id(n), n as u32, 40.0), Admission::Duplicate);
            assert_eq!(d.admit(id(n), n as u32 + 1, 40.0), Admission::Conflict);
        }
        let entries: Vec<u64> = d.settled.entries().collect();
        assert!(entries.windows(2).all(|w| w[0] < w[1]), "settled entries stay sorted");
        let back = Settled::from_entries(&entries);
        assert_eq!(back.entries().collect::<Vec<_>>(), entries);
        // watermarks 0..39 are generation 0: nothing older than generation 1 survives a cutoff at 100
        for n in 40_000..41_000u64 {
            assert_eq!(d.admit(id(n), 0, 150.0), Admission::New);
        }
        d.forget_before(100.0);
        assert_eq!(d.len(), 1000);
        assert_eq!(d.admit(id(5), 5, 150.0), Admission::New, "forgotten with its generation");
        assert_eq!(d.admit(id(40_500), 0, 150.0), Admission::Duplicate);
    }

    #[test]
    fn reorder_releases_in_time_order_once_the_watermark_passes() {
        let mut r = Reorder::new(10.0);
        let mut out = vec![];
        r.push(0, 100.0, 1, &mut out);
        r.push(1, 95.0, 1, &mut out);
        assert!(out.is_empty());
        r.push(2, 120.0, 1, &mut out);
        assert_eq!(out, vec![1, 0]);
        out.clear();
        r.push(3, 50.0, 1, &mut out);
        assert_eq!(out, vec![3]);
        assert_eq!(r.late_events, 1);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(157_766_400.0), "157,766,400");
        assert_eq!(thousands(3600.0), "3,600");
    }
}
