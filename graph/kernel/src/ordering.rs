//! Event-time policy of one input partition: drop re-deliveries, bound clock skew, hold events for
//! the allowed lateness and release them in `(ts, id hash)` order.
//!
//! * [`Dedupe`] remembers each event id as 48 bits of its SipHash with an 8-bit content fingerprint
//!   and an 8-bit generation (8 bytes an event), in generations of `retention / 8` of event time: an
//!   id is remembered for at least the retention (window + lateness) and at most 1/8 longer. The same
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
    /// one u64 per id: the id hash's top 48 bits, an 8-bit content fingerprint, an 8-bit generation
    #[serde(with = "crate::state::id_table")]
    table: hashbrown::HashTable<u64>,
    oldest: i64, // generation of the oldest entry kept (i64::MIN: none yet)
    newest: i64,
    unstamped: bool, // entries admitted before there was a watermark (generation UNSTAMPED)
}

const UNSTAMPED: u64 = 0xFF;
const ID_BITS: u64 = !0 << 16;

impl Dedupe {
    pub fn new(retention: f64) -> Self {
        let span = (retention / 8.0).max(1.0);
        Dedupe { span, retention, table: hashbrown::HashTable::new(), oldest: i64::MIN, newest: i64::MIN,
                 unstamped: false }
    }

    fn gen_tag(g: i64) -> u64 {
        g.rem_euclid(255) as u64 // 0..254; 255 marks "unstamped"
    }

    pub fn admit(&mut self, id: u64, content: u32, watermark: f64) -> Admission {
        // Entries are matched on the id hash's top 48 bits (the table's own hash is derived from
        // those): two ids are confused when they agree on 48 bits, probability n / 2^48 per event
        // with n ids remembered (3e6: 1.1e-8, about one event in 94 million).
        let tag_id = id & ID_BITS;
        let content = ((content & 0xFF) as u64) << 8;
        if let Some(&entry) = self.table.find(rehash(tag_id), |&e| e & ID_BITS == tag_id) {
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
                for e in self.table.iter_mut() {
                    if *e & 0xFF == UNSTAMPED {
                        *e = (*e & !0xFF) | t;
                    }
                }
                self.unstamped = false;
            }
            Self::gen_tag(g)
        };
        self.table.insert_unique(rehash(tag_id), tag_id | content | tag, |&e| rehash(e));
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
        let keep: Vec<bool> = (0..255u64).map(|t| (oldest..=newest).any(|g| Self::gen_tag(g) == t && g >= first_kept)).collect();
        self.table.retain(|e| {
            let t = *e & 0xFF;
            t == UNSTAMPED || keep[t as usize]
        });
        self.oldest = first_kept.min(newest.max(first_kept));
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn heap_bytes(&self) -> usize {
        self.table.capacity() * (8 + 1)
    }

    pub fn retention(&self) -> f64 {
        self.retention
    }
}

/// The position hash of a stored entry (only its top 48 id bits survive): used when the table grows.
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
