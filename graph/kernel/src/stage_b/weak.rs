//! Weak evidence is weighed, not unioned.
//!
//! IPs and prompt templates are shared by strangers all the time (carrier NAT, public wifi, VPN and
//! proxy exits, cloud regions, a framework's default prompt). One shared weak entity never joins two
//! groups. Two cores X and Y are joined by a *weak edge* only when at least `weak_min_entities`
//! distinct weak entities each
//!   * are **heavy** for both: used by at least `max(weak_min_accounts, weak_cover_min * |core|)` of
//!     the core's members ("many accounts of both sides"), and
//!   * are **owned** by the cores heavy on them: those cores hold at least `weak_purity_min` of the
//!     entity's accounts ("little else on that entity"), and at most `weak_max_groups` cores are heavy
//!     on it (a popular template or a café IP used by dozens of households is nobody's infrastructure).
//! A loose account (in no core) is attached to core X the same way: at least `weak_min_entities`
//! weak entities of its own that are heavy for X and owned once the account itself is counted.
//!
//! Two operations on one residential proxy network share hundreds of exits, but each exit carries a
//! few accounts of each: never heavy, so they stay apart. A household on a proxy exit shares one
//! entity with a ring: one is not three. A ring's own API servers and templates are used by most of
//! its accounts and by nobody else: they join its farms into one operation.
//!
//! Per weak entity e, Q(e) is the set of node pairs it supports; supports are counted per pair and
//! a pair is an edge at `weak_min_entities`. Only entities whose inputs changed are re-evaluated.

use crate::stage_b::graph::{is_weak, Graph};
use crate::store::intern::NONE;
use crate::stage_b::tables::SINGLE;
use rustc_hash::FxHashSet;

impl Graph {
    #[inline]
    pub fn heavy_threshold(&self, size: u32) -> f64 {
        (self.cfg.weak_min_accounts as f64).max(self.cfg.weak_cover_min * size as f64)
    }

    /// The pairs of nodes weak entity `e` supports right now (sorted).
    pub fn supported_pairs(&self, e: u32) -> Vec<(u32, u32)> {
        let ent = &self.ent[e as usize];
        if !ent.live || !is_weak(ent.kind) || ent.members.len() < 2 {
            return Vec::new();
        }
        let deg = ent.members.len() as f64;
        if ((ent.exclusive + 1) as f64) < self.cfg.weak_purity_min * deg {
            return Vec::new(); // even every member in a core could not own it: a NAT, a popular prompt
        }
        let mut heavy: Vec<u32> = Vec::new();
        let mut mass = 0u32;
        for (c, n) in self.hists.of(ent) {
            if n as f64 >= self.heavy_threshold(self.cores.size(c)) {
                heavy.push(c);
                mass += n;
            }
        }
        if heavy.is_empty() || heavy.len() > self.cfg.weak_max_groups as usize {
            return Vec::new();
        }
        heavy.sort_unstable();
        let p = self.cfg.weak_purity_min;
        let mut pairs = Vec::new();
        if heavy.len() >= 2 && mass as f64 >= p * deg {
            for i in 0..heavy.len() {
                for j in i + 1..heavy.len() {
                    pairs.push((heavy[i], heavy[j]));
                }
            }
        }
        // the loose members (in no core): `exclusive` counts the members in a core, so the scan of a
        // large entity (a proxy exit) stops at its last loose member
        debug_assert!(ent.exclusive as usize <= ent.members.len());
        let mut loose = ent.members.len().saturating_sub(ent.exclusive as usize);
        if loose > 0 && (mass + 1) as f64 >= p * deg {
            for &a in &ent.members {
                if self.acct[a as usize].core == NONE {
                    for &c in &heavy {
                        pairs.push((c, SINGLE | a));
                    }
                    loose -= 1;
                    if loose == 0 {
                        break;
                    }
                }
            }
        }
        pairs.sort_unstable();
        pairs
    }

    /// Recheck heavy sets of cores whose size or profile changed; entities whose heaviness flipped
    /// are queued for re-evaluation.
    fn refresh_heavy(&mut self) {
        let mut todo = std::mem::take(&mut self.cores.heavy_todo);
        todo.sort_unstable();
        for c in todo {
            let core = &mut self.cores.list[c as usize];
            let changed = std::mem::take(&mut core.changed);
            if !core.live {
                let heavy = std::mem::take(&mut core.heavy);
                for e in heavy {
                    self.mark_weak(e);
                }
                continue;
            }
            let size = core.members.len() as u32;
            let threshold = self.heavy_threshold(size);
            let core = &mut self.cores.list[c as usize];
            let mut flips = Vec::new();
            if size < core.heavy_size || core.heavy_size == 0 {
                // smaller: entities may have become heavy anywhere in the profile
                let mut now: Vec<u32> = core.profile.iter().filter(|(_, &n)| n as f64 >= threshold).map(|(&e, _)| e).collect();
                now.sort_unstable();
                let now_set: FxHashSet<u32> = now.iter().copied().collect();
                let mut old: Vec<u32> = core.heavy.iter().copied().collect();
                old.sort_unstable();
                flips.extend(old.iter().filter(|e| !now_set.contains(e)));
                flips.extend(now.iter().filter(|e| !core.heavy.contains(e)));
                core.heavy = now_set;
            } else {
                let mut check: Vec<u32> = core.heavy.iter().copied().chain(changed.iter().copied()).collect();
                check.sort_unstable();
                check.dedup();
                for e in check {
                    let is = core.profile.get(&e).map(|&n| n as f64 >= threshold).unwrap_or(false);
                    if is != core.heavy.contains(&e) {
                        if is {
                            core.heavy.insert(e);
                        } else {
                            core.heavy.remove(&e);
                        }
                        flips.push(e);
                    }
                }
            }
            core.heavy_size = size;
            for e in flips {
                self.mark_weak(e);
            }
        }
    }

    pub fn update_weak(&mut self) {
        self.refresh_heavy();
        let mut dirty = std::mem::take(&mut self.dirty.weak);
        dirty.sort_unstable();
        dirty.dedup();
        let k = self.cfg.weak_min_entities;
        for e in &dirty {
            let new = self.supported_pairs(*e);
            let old = self.weak.supports.remove(e).unwrap_or_default();
            if old == new {
                if !new.is_empty() {
                    self.weak.supports.insert(*e, new);
                }
                continue;
            }
            let (mut i, mut j) = (0, 0);
            while i < old.len() || j < new.len() {
                let take_old = j >= new.len() || (i < old.len() && old[i] < new[j]);
                let take_new = i >= old.len() || (j < new.len() && new[j] < old[i]);
                if take_old {
                    let pair = old[i];
                    let s = self.weak.supp.get_mut(&pair).expect("a supported pair is counted");
                    *s -= 1;
                    let after = *s;
                    if after == 0 {
                        self.weak.supp.remove(&pair);
                    }
                    if after + 1 == k {
                        self.weak.set_edge(pair.0, pair.1, false);
                    }
                    i += 1;
                } else if take_new {
                    let pair = new[j];
                    let s = self.weak.supp.entry(pair).or_insert(0);
                    *s += 1;
                    if *s == k {
                        self.weak.set_edge(pair.0, pair.1, true);
                    }
                    j += 1;
                } else {
                    i += 1;
                    j += 1;
                }
            }
            if !new.is_empty() {
                self.weak.supports.insert(*e, new);
            }
        }
        dirty.clear();
        self.dirty.weak = dirty;
    }
}
