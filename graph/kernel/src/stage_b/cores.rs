//! Cores: connected components of the binding graph (accounts joined by binding devices, cards and
//! lockstep cohorts), kept exact as links come and go.
//!
//! * Growth is union by size: the smaller core's members are relabelled into the larger, so a
//!   24,000-account network costs what its new accounts cost.
//! * Loss (a link left the window, an entity stopped binding, an account stopped being a member) is
//!   answered by the split check: breadth-first searches from the *touch points* (surviving members
//!   next to what was lost) advance in turn, one step at a time, inside the core — a step expands one
//!   account or takes one member of an entity being walked, so a group of thousands is never walked
//!   whole to prove what a few steps show. Searches that meet merge; one that runs dry has found a
//!   piece that broke off; once a single search is left running, the rest of the core is connected
//!   (every piece contains a touch point). The work is bounded by the pieces that break off, not by
//!   the core.
//! * Each core keeps its *profile*: per weak entity (IP, template), how many members use it — the
//!   input of the weak-edge rule (`weak.rs`).
//! * During a tick a core also records where its members came from (`origin`: public cluster ->
//!   count) and who joined, so identity and member deltas cost what changed (`ops.rs`).

use crate::stage_b::graph::Graph;
use crate::stage_b::tables::Core;
use crate::store::index::{prefetch, prefetch_slice};
use crate::store::intern::NONE;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

fn origin_add(origin: &mut Vec<(u32, u32)>, cluster: u32, n: i64) {
    if let Some(i) = origin.iter().position(|o| o.0 == cluster) {
        let v = origin[i].1 as i64 + n;
        if v <= 0 {
            origin.swap_remove(i);
        } else {
            origin[i].1 = v as u32;
        }
    } else if n > 0 {
        origin.push((cluster, n as u32));
    }
}

impl Graph {
    fn core_touch(&mut self, c: u32) {
        let stamp = self.stamp;
        let core = &mut self.cores.list[c as usize];
        if core.stamp != stamp {
            core.stamp = stamp;
            core.origin.clear();
            let n = core.members.len() as u32;
            if n > 0 {
                core.origin.push((core.cluster, n));
            }
            core.joined.clear();
            self.cores.touched.push(c);
        }
        self.queue_heavy(c);
    }

    pub fn queue_heavy(&mut self, c: u32) {
        let stamp = self.stamp;
        let core = &mut self.cores.list[c as usize];
        if core.hstamp != stamp {
            core.hstamp = stamp;
            self.cores.heavy_todo.push(c);
        }
    }

    fn core_new(&mut self) -> u32 {
        let core = Core { live: true, op: NONE, cluster: NONE, ..Default::default() };
        let c = match self.cores.free.pop() {
            Some(c) => {
                self.cores.list[c as usize] = core;
                c
            }
            None => {
                self.cores.list.push(core);
                (self.cores.list.len() - 1) as u32
            }
        };
        self.core_touch(c);
        c
    }

    /// A weak link of a core member appeared (+1) or went (-1).
    pub fn cores_weak_link(&mut self, c: u32, e: u32, n: i64) {
        let core = &mut self.cores.list[c as usize];
        let entry = core.profile.entry(e).or_insert(0);
        let v = *entry as i64 + n;
        if v <= 0 {
            core.profile.remove(&e);
        } else {
            *entry = v as u32;
        }
        core.changed.push(e);
        self.hists.add(&mut self.ent[e as usize], c, n);
        self.queue_heavy(c);
    }

    fn move_weak(&mut self, a: u32, from: u32, to: u32) {
        let weak: Vec<u32> = self.acct[a as usize].links.iter().filter(|l| !l.strong()).map(|l| l.ent).collect();
        for e in weak {
            if from != NONE {
                self.cores_weak_link(from, e, -1);
            }
            if to != NONE {
                self.cores_weak_link(to, e, 1);
            }
            self.mark_weak(e);
        }
    }

    /// Put a loose account into core `c`.
    fn core_add(&mut self, c: u32, a: u32) {
        self.core_touch(c);
        let cluster = self.acct[a as usize].cluster;
        let core = &mut self.cores.list[c as usize];
        let pos = core.members.len() as u32;
        core.members.push(a);
        core.joined.push(a);
        origin_add(&mut core.origin, cluster, 1);
        let acc = &mut self.acct[a as usize];
        acc.core = c;
        acc.core_pos = pos;
        self.move_weak(a, NONE, c);
    }

    /// Take an account out of its core; `to` is another core or NONE (it becomes loose).
    fn core_take(&mut self, a: u32, to: u32) {
        let c = self.acct[a as usize].core;
        debug_assert!(c != NONE);
        self.core_touch(c);
        let cluster = self.acct[a as usize].cluster;
        let pos = self.acct[a as usize].core_pos as usize;
        let core = &mut self.cores.list[c as usize];
        core.members.swap_remove(pos);
        if pos < core.members.len() {
            let moved = core.members[pos];
            self.acct[moved as usize].core_pos = pos as u32;
        }
        origin_add(&mut self.cores.list[c as usize].origin, cluster, -1);
        if to == NONE {
            self.acct[a as usize].core = NONE;
            self.acct[a as usize].core_pos = NONE;
            self.move_weak(a, c, NONE);
            self.cores.departed.push(a);
        } else {
            self.core_touch(to);
            let core = &mut self.cores.list[to as usize];
            let p = core.members.len() as u32;
            core.members.push(a);
            core.joined.push(a);
            origin_add(&mut core.origin, cluster, 1);
            self.acct[a as usize].core = to;
            self.acct[a as usize].core_pos = p;
            self.move_weak(a, c, to);
        }
    }

    /// Merge core `s` into core `l`.
    fn core_merge(&mut self, l: u32, s: u32) {
        self.core_touch(l);
        self.core_touch(s);
        let members = std::mem::take(&mut self.cores.list[s as usize].members);
        let origin = std::mem::take(&mut self.cores.list[s as usize].origin);
        let profile = std::mem::take(&mut self.cores.list[s as usize].profile);
        for a in &members {
            let core = &mut self.cores.list[l as usize];
            let p = core.members.len() as u32;
            core.members.push(*a);
            core.joined.push(*a);
            self.acct[*a as usize].core = l;
            self.acct[*a as usize].core_pos = p;
        }
        for (cluster, n) in origin {
            origin_add(&mut self.cores.list[l as usize].origin, cluster, n as i64);
        }
        let mut ents: Vec<(u32, u32)> = profile.into_iter().collect();
        ents.sort_unstable();
        for (e, n) in ents {
            *self.cores.list[l as usize].profile.entry(e).or_insert(0) += n;
            self.cores.list[l as usize].changed.push(e);
            let ent = &mut self.ent[e as usize];
            self.hists.add(ent, s, -(n as i64));
            self.hists.add(ent, l, n as i64);
            self.mark_weak(e);
        }
        self.core_dissolve_empty(s);
    }

    fn core_dissolve_empty(&mut self, c: u32) {
        let core = &mut self.cores.list[c as usize];
        debug_assert!(core.members.is_empty());
        core.live = false;
        if core.op != NONE {
            // its id may be reused by a new core before the operations are rebuilt: remember its op now
            self.ops.stale.push(core.op);
            core.op = NONE;
        }
        core.profile = FxHashMap::default();
        let heavy = std::mem::take(&mut core.heavy);
        for e in heavy {
            self.mark_weak(e);
        }
        self.cores.free.push(c);
    }

    fn core_of_or_new(&mut self, a: u32) -> u32 {
        let c = self.acct[a as usize].core;
        if c != NONE {
            return c;
        }
        let c = self.core_new();
        self.core_add(c, a);
        c
    }

    /// Join the cores of two accounts (either may be loose).
    fn unite(&mut self, a: u32, b: u32) {
        let (ca, cb) = (self.acct[a as usize].core, self.acct[b as usize].core);
        if ca != NONE && ca == cb {
            return;
        }
        match (ca, cb) {
            (NONE, NONE) => {
                let c = self.core_of_or_new(a);
                self.core_add(c, b);
            }
            (NONE, c) => self.core_add(c, a),
            (c, NONE) => self.core_add(c, b),
            (x, y) => {
                let (sx, sy) = (self.cores.size(x), self.cores.size(y));
                let (l, s) = if sx > sy || (sx == sy && x < y) { (x, y) } else { (y, x) };
                self.core_merge(l, s);
            }
        }
    }

    // -- the tick's core update ----------------------------------------------------------------
    pub fn update_cores(&mut self) {
        // 1. losses: split checks, per core, from the touch points. A lost link (a, e) touches the
        //    account; if e still binds, its remaining members are one connected seed (they share e),
        //    else each of them is a touch point of its own.
        let lost = std::mem::take(&mut self.dirty.lost);
        let mut touch: FxHashMap<u32, (Vec<u32>, Vec<u32>)> = FxHashMap::default();
        for &(a, e) in &lost {
            let c = self.acct[a as usize].core;
            if c == NONE {
                continue;
            }
            let t = touch.entry(c).or_default();
            t.0.push(a);
            let ent = &self.ent[e as usize];
            if ent.live && ent.binding {
                t.1.push(e);
            } else {
                for &m in &ent.members {
                    if self.acct[m as usize].core == c {
                        t.0.push(m);
                    }
                }
            }
        }
        let mut cores: Vec<u32> = touch.keys().copied().collect();
        cores.sort_unstable();
        for c in cores {
            let (mut accounts, mut entities) = touch.remove(&c).unwrap();
            accounts.sort_unstable();
            accounts.dedup();
            entities.sort_unstable();
            entities.dedup();
            self.split_core(c, &accounts, &entities);
        }
        self.dirty.lost = lost;
        // 2. gains: an entity that started binding joins all its members; a new member of an entity
        //    that already bound joins the entity's core
        let mut joins = std::mem::take(&mut self.dirty.unite);
        joins.sort_unstable();
        joins.dedup();
        let mut flipped = self.dirty.flipped_on.clone();
        flipped.sort_unstable();
        for (e, a) in joins {
            if !self.ent[e as usize].live || !self.ent[e as usize].binding || flipped.binary_search(&e).is_ok()
                || self.acct[a as usize].link(e).is_none() {
                continue;
            }
            let members = &self.ent[e as usize].members;
            if let Some(&other) = members.iter().find(|&&m| m != a) {
                self.unite(other, a);
            }
        }
        for e in flipped {
            if !self.ent[e as usize].live || !self.ent[e as usize].binding {
                continue;
            }
            let members = self.ent[e as usize].members.to_vec();
            // anchor on the largest core among them, so relabelling stays on the smaller sides
            let mut anchor = members[0];
            let mut best = 0;
            for &m in &members {
                let c = self.acct[m as usize].core;
                let size = if c == NONE { 1 } else { self.cores.size(c) };
                if size > best {
                    best = size;
                    anchor = m;
                }
            }
            for m in members {
                if m != anchor {
                    self.unite(anchor, m);
                }
            }
        }
    }

    /// The split check of one core that lost connections (module docs). Seeds: binding entities
    /// (all their members in the core at once) and accounts.
    ///
    /// A search holds accounts to expand and entities being walked (a cursor into each one's members);
    /// each step expands one account (its binding entities join the search, or meet the search that
    /// already holds them) or, with no account waiting, takes one member from the latest entity. A
    /// group of thousands that lost one member is thus not walked whole: the touch point's search and
    /// the group's meet within a few steps, and the check ends. A search that runs dry has walked
    /// every entity it took, so its accounts are a whole piece.
    fn split_core(&mut self, c: u32, touch: &[u32], seeds: &[u32]) {
        if !self.cores.list[c as usize].live {
            return;
        }
        let cores = &mut self.cores;
        cores.seen_stamp = cores.seen_stamp.wrapping_add(1);
        if cores.seen_stamp == 0 {
            cores.seen_acct.iter_mut().for_each(|x| *x = (0, 0));
            cores.seen_stamp = 1;
        }
        let stamp = cores.seen_stamp;
        let size = cores.list[c as usize].members.len();
        if cores.seen_acct.len() < size {
            cores.seen_acct.resize(size, (0, 0));
        }
        let mut seen_acct = std::mem::take(&mut cores.seen_acct);
        let mut seen_ent = std::mem::take(&mut cores.seen_ent);
        seen_ent.clear();
        // every account a search reaches is in core `c`: its position there indexes `seen_acct`
        let pos = |g: &Graph, a: u32| g.acct[a as usize].core_pos as usize;
        let mut s = Searches::default();
        for &e in seeds {
            let i = s.open(Vec::new(), vec![(e, 0)]);
            seen_ent.insert(e, i as u32);
        }
        for &a in touch {
            if self.acct[a as usize].core != c || seen_acct[pos(self, a)].0 == stamp {
                continue;
            }
            let i = s.open(vec![a], Vec::new());
            seen_acct[pos(self, a)] = (stamp, i as u32);
        }
        let mut pieces: Vec<Vec<u32>> = Vec::new();
        while s.n_running > 1 {
            for i0 in 0..s.parent.len() {
                if !s.running[i0] || s.n_running <= 1 {
                    continue;
                }
                if let Some(a) = s.frontier[i0].pop_front() {
                    // expand an account: its binding entities join this search, or meet the one holding them
                    if let Some(&next) = s.frontier[i0].front() {
                        prefetch_slice(self.acct[next as usize].links.as_slice()); // a hint for the next step
                    }
                    self.counters.split_steps += 1;
                    let mut i = i0;
                    for li in 0..self.acct[a as usize].links.len() {
                        let link = self.acct[a as usize].links[li];
                        if !link.binds() {
                            continue;
                        }
                        match seen_ent.entry(link.ent) {
                            std::collections::hash_map::Entry::Occupied(seen) => {
                                let (ri, rj) = (s.find(i), s.find(*seen.get() as usize));
                                if ri != rj {
                                    i = s.union(ri, rj);
                                }
                            }
                            std::collections::hash_map::Entry::Vacant(slot) => {
                                slot.insert(i as u32);
                                let r = s.find(i);
                                s.walks[r].push((link.ent, 0));
                            }
                        }
                    }
                    continue;
                }
                let Some(&mut (e, ref mut k)) = s.walks[i0].last_mut() else {
                    // ran dry: a piece that broke off (or, if every search does, one of the pieces)
                    s.running[i0] = false;
                    s.n_running -= 1;
                    if !s.reached[i0].is_empty() {
                        pieces.push(std::mem::take(&mut s.reached[i0]));
                    }
                    continue;
                };
                // one member of the entity being walked
                let members = &self.ent[e as usize].members;
                let m = members[*k as usize];
                *k += 1;
                if *k as usize >= members.len() {
                    s.walks[i0].pop();
                } else if let Some(&ahead) = members.get(*k as usize + 8) {
                    prefetch(&self.acct[ahead as usize]); // a hint
                }
                // A binding entity untouched this tick still has all its members in one core, the one
                // the search is in: no need to read each member's core (a cache miss per member).
                let settled = self.ent[e as usize].stamp != self.stamp;
                debug_assert!(!settled || self.acct[m as usize].core == c, "untouched entity {e} spans cores");
                if !settled && self.acct[m as usize].core != c {
                    continue;
                }
                let (st, j) = seen_acct[pos(self, m)];
                if st == stamp {
                    let (ri, rj) = (s.find(i0), s.find(j as usize));
                    if ri != rj {
                        s.union(ri, rj);
                    }
                } else {
                    seen_acct[pos(self, m)] = (stamp, i0 as u32);
                    s.frontier[i0].push_back(m);
                    s.reached[i0].push(m);
                }
            }
        }
        self.cores.seen_acct = seen_acct;
        self.cores.seen_ent = seen_ent;
        // What is left running (if anything) is the rest of the core, still connected.
        let last = (0..s.parent.len()).find(|&i| s.running[i]);
        if let Some(l) = last {
            if s.frontier[l].is_empty() && s.walks[l].is_empty() {
                pieces.push(std::mem::take(&mut s.reached[l]));
            } else {
                // pieces broke off; the rest stays core `c`
                self.detach_pieces(c, pieces, None);
                return;
            }
        }
        // Every search ran dry: the pieces are the whole core. The largest keeps the core.
        let keep = pieces.iter().enumerate()
            .max_by(|x, y| x.1.len().cmp(&y.1.len()).then_with(|| y.1.iter().min().cmp(&x.1.iter().min())))
            .map(|(i, _)| i);
        self.detach_pieces(c, pieces, keep);
    }

    fn detach_pieces(&mut self, c: u32, pieces: Vec<Vec<u32>>, keep: Option<usize>) {
        for (i, piece) in pieces.into_iter().enumerate() {
            if Some(i) == keep {
                continue;
            }
            if piece.len() == 1 {
                self.core_take(piece[0], NONE);
                continue;
            }
            let p = self.core_new();
            for a in piece {
                self.core_take(a, p);
            }
        }
        let left = self.cores.list[c as usize].members.len();
        if left == 1 {
            let a = self.cores.list[c as usize].members[0];
            self.core_take(a, NONE);
        }
        if self.cores.list[c as usize].members.is_empty() {
            self.core_dissolve_empty(c);
        }
    }
}

/// The searches of one split check: union-find over them, and each one's accounts to expand, entity
/// walks (entity, next member) and accounts reached. Searches that meet become one (the larger keeps).
#[derive(Default)]
struct Searches {
    parent: Vec<usize>,
    frontier: Vec<VecDeque<u32>>,
    walks: Vec<Vec<(u32, u32)>>,
    reached: Vec<Vec<u32>>,
    running: Vec<bool>,
    n_running: usize,
}

impl Searches {
    fn open(&mut self, accounts: Vec<u32>, walks: Vec<(u32, u32)>) -> usize {
        let i = self.parent.len();
        self.parent.push(i);
        self.frontier.push(accounts.iter().copied().collect());
        self.reached.push(accounts);
        self.walks.push(walks);
        self.running.push(true);
        self.n_running += 1;
        i
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn union(&mut self, i: usize, j: usize) -> usize {
        let (keep, gone) = if self.reached[i].len() >= self.reached[j].len() { (i, j) } else { (j, i) };
        self.parent[gone] = keep;
        let r = std::mem::take(&mut self.reached[gone]);
        self.reached[keep].extend(r);
        let f = std::mem::take(&mut self.frontier[gone]);
        self.frontier[keep].extend(f);
        let w = std::mem::take(&mut self.walks[gone]);
        self.walks[keep].extend(w);
        if self.running[gone] {
            self.running[gone] = false;
            self.n_running -= 1;
        }
        keep
    }
}
