//! Operations: components of the core graph (cores, plus loose accounts attached by weak edges,
//! joined by the weak edges of `weak.rs`). An operation of at least `track_min_size` accounts is a
//! tracked cluster with a public id.
//!
//! Only operations that contain something that changed are rebuilt, by a walk over their nodes
//! (cores count as one node whatever their size). Identity then follows the Python registry's rule:
//! each new operation is matched greedily to the old clusters it overlaps, largest overlap first
//! (ties: older id), so a group keeps the id of the cluster it mostly is. Overlaps come from the
//! cores' `origin` counts, so a 24,000-account cluster that gains ten accounts costs ten accounts.

use crate::stage_b::graph::{ClusterB, Graph, Lineage, TickOut};
use crate::store::intern::NONE;
use crate::stage_b::tables::{Op, SINGLE};
use rustc_hash::{FxHashMap, FxHashSet};

impl Graph {
    pub fn node_op(&self, node: u32) -> u32 {
        if node & SINGLE != 0 {
            self.acct[(node & !SINGLE) as usize].op
        } else {
            self.cores.list[node as usize].op
        }
    }

    fn node_live(&self, node: u32) -> bool {
        if node & SINGLE != 0 {
            let a = &self.acct[(node & !SINGLE) as usize];
            a.live && a.core == NONE && !self.weak.neighbours(node).is_empty()
        } else {
            self.cores.list[node as usize].live
        }
    }

    fn node_size(&self, node: u32) -> u32 {
        if node & SINGLE != 0 {
            1
        } else {
            self.cores.size(node)
        }
    }

    fn set_node_op(&mut self, node: u32, op: u32) {
        if node & SINGLE != 0 {
            self.acct[(node & !SINGLE) as usize].op = op;
        } else {
            self.cores.list[node as usize].op = op;
        }
    }

    pub fn op_accounts(&self, op: u32) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.ops.list[op as usize].size as usize);
        for &node in &self.ops.list[op as usize].nodes {
            if node & SINGLE != 0 {
                out.push(node & !SINGLE);
            } else {
                out.extend_from_slice(&self.cores.list[node as usize].members);
            }
        }
        out
    }

    fn op_free(&mut self, op: u32) {
        let o = &mut self.ops.list[op as usize];
        if !o.live {
            return;
        }
        o.live = false;
        if o.cluster != NONE {
            self.ops.old_clusters.push(o.cluster);
        }
        self.ops.free.push(op);
    }

    fn op_new(&mut self, nodes: Vec<u32>, size: u32) -> u32 {
        let op = Op { nodes, size, cluster: NONE, live: true };
        let id = match self.ops.free.pop() {
            Some(i) => {
                self.ops.list[i as usize] = op;
                i
            }
            None => {
                self.ops.list.push(op);
                (self.ops.list.len() - 1) as u32
            }
        };
        self.ops.created.push(id);
        id
    }

    pub fn update_ops(&mut self) {
        let mut seeds: Vec<u32> = self.cores.touched.clone();
        for &(x, y) in &self.weak.edge_changes {
            seeds.push(x);
            seeds.push(y);
        }
        seeds.extend(self.cores.departed.iter().map(|&a| SINGLE | a));
        seeds.sort_unstable();
        seeds.dedup();
        let mut pool: Vec<u32> = Vec::new();
        let mut pooled_ops: FxHashSet<u32> = FxHashSet::default();
        let mut in_pool: FxHashSet<u32> = FxHashSet::default();
        let absorb = |g: &mut Graph, node: u32, pool: &mut Vec<u32>, pooled: &mut FxHashSet<u32>, in_pool: &mut FxHashSet<u32>| {
            if in_pool.insert(node) {
                pool.push(node);
            }
            let op = g.node_op(node);
            if op != NONE && g.ops.list[op as usize].live && pooled.insert(op) {
                let nodes = g.ops.list[op as usize].nodes.clone();
                for n in nodes {
                    if in_pool.insert(n) {
                        pool.push(n);
                    }
                }
                g.op_free(op);
            }
        };
        for op in std::mem::take(&mut self.ops.stale) {
            if self.ops.list[op as usize].live && pooled_ops.insert(op) {
                let nodes = self.ops.list[op as usize].nodes.clone();
                for n in nodes {
                    if in_pool.insert(n) {
                        pool.push(n);
                    }
                }
                self.op_free(op);
            }
        }
        for &s in &seeds {
            absorb(self, s, &mut pool, &mut pooled_ops, &mut in_pool);
        }
        let mut placed: FxHashSet<u32> = FxHashSet::default();
        let mut i = 0;
        while i < pool.len() {
            let start = pool[i];
            i += 1;
            if placed.contains(&start) {
                continue;
            }
            if !self.node_live(start) {
                placed.insert(start);
                if start & SINGLE != 0 {
                    let a = start & !SINGLE;
                    if self.acct[a as usize].op != NONE {
                        self.acct[a as usize].op = NONE;
                    }
                    self.ops.dropped.push(a);
                }
                continue;
            }
            let mut comp = vec![start];
            placed.insert(start);
            let mut k = 0;
            while k < comp.len() {
                let node = comp[k];
                k += 1;
                let neighbours: Vec<u32> = self.weak.neighbours(node).to_vec();
                for n in neighbours {
                    if placed.contains(&n) || !self.node_live(n) {
                        continue;
                    }
                    absorb(self, n, &mut pool, &mut pooled_ops, &mut in_pool);
                    placed.insert(n);
                    comp.push(n);
                }
            }
            comp.sort_unstable();
            let size = comp.iter().map(|&n| self.node_size(n)).sum();
            let op = self.op_new(comp.clone(), size);
            for n in comp {
                self.set_node_op(n, op);
            }
        }
    }

    /// New operations against the clusters they came from: public ids, lineage, member deltas.
    pub fn reconcile(&mut self, at: i64, out: &mut TickOut) {
        let created = std::mem::take(&mut self.ops.created);
        let track = self.cfg.track_min_size;
        let stamp = self.stamp;
        let tracked: Vec<u32> = created.iter().copied().filter(|&o| self.ops.list[o as usize].size >= track).collect();
        let mut overlaps: Vec<Vec<(u32, u32)>> = Vec::with_capacity(tracked.len());
        for &op in &tracked {
            let mut m: FxHashMap<u32, u32> = FxHashMap::default();
            for &node in &self.ops.list[op as usize].nodes {
                if node & SINGLE != 0 {
                    let c = self.acct[(node & !SINGLE) as usize].cluster;
                    if c != NONE {
                        *m.entry(c).or_insert(0) += 1;
                    }
                } else {
                    let core = &self.cores.list[node as usize];
                    if core.stamp == stamp {
                        for &(c, n) in &core.origin {
                            if c != NONE {
                                *m.entry(c).or_insert(0) += n;
                            }
                        }
                    } else if core.cluster != NONE {
                        *m.entry(core.cluster).or_insert(0) += core.members.len() as u32;
                    }
                }
            }
            let mut v: Vec<(u32, u32)> = m.into_iter().collect();
            v.sort_unstable();
            overlaps.push(v);
        }
        let mut pairs: Vec<(u32, u32, usize)> = Vec::new();
        for (i, ov) in overlaps.iter().enumerate() {
            for &(c, n) in ov {
                pairs.push((n, c, i));
            }
        }
        pairs.sort_unstable_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
        let mut group_id: Vec<u32> = vec![NONE; tracked.len()];
        let mut taken: FxHashSet<u32> = FxHashSet::default();
        for &(_n, c, i) in &pairs {
            if group_id[i] == NONE && !taken.contains(&c) && self.clusters.contains_key(&c) {
                group_id[i] = c;
                taken.insert(c);
            }
        }
        // lineage of the tracked operations
        for (i, &op) in tracked.iter().enumerate() {
            let size = self.ops.list[op as usize].size;
            let parent = overlaps[i].iter().filter(|o| self.clusters.contains_key(&o.0))
                .min_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0))).map(|o| o.0);
            if group_id[i] != NONE {
                let c = group_id[i];
                let before = self.clusters[&c].size;
                if size != before {
                    out.lineage.push((c, if size > before { Lineage::Grew } else { Lineage::Shrank }, size, NONE));
                }
                for &(other, _) in &overlaps[i] {
                    if other != c && !taken.contains(&other) && self.clusters.contains_key(&other) {
                        out.lineage.push((c, Lineage::Merged, size, other));
                    }
                }
                let cl = self.clusters.get_mut(&c).unwrap();
                cl.op = op;
                cl.size = size;
            } else {
                let c = self.next_cluster;
                self.next_cluster += 1;
                group_id[i] = c;
                self.clusters.insert(c, ClusterB { op, size, born_at: at, updated_at: at, usage: Vec::new() });
                match parent {
                    None => out.lineage.push((c, Lineage::Born, size, NONE)),
                    Some(p) => out.lineage.push((c, Lineage::Split, size, p)),
                }
                out.changed.push(c);
            }
        }
        // old clusters no operation kept
        let mut old: Vec<u32> = std::mem::take(&mut self.ops.old_clusters);
        for ov in &overlaps {
            old.extend(ov.iter().map(|o| o.0));
        }
        old.sort_unstable();
        old.dedup();
        let kept: FxHashSet<u32> = group_id.iter().copied().collect();
        let mut gone: FxHashSet<u32> = FxHashSet::default();
        for c in old {
            if kept.contains(&c) || !self.clusters.contains_key(&c) {
                continue;
            }
            let holder = overlaps.iter().enumerate()
                .filter_map(|(i, ov)| ov.iter().find(|o| o.0 == c).map(|o| (o.1, group_id[i])))
                .min_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
            match holder {
                Some((_, h)) => out.lineage.push((c, Lineage::MergedInto, 0, h)),
                None => out.lineage.push((c, Lineage::Expired, 0, NONE)),
            }
            self.clusters.remove(&c);
            gone.insert(c);
            out.gone.push(c);
        }
        // assign ids to every new operation and settle the members' clusters
        let tracked_id: FxHashMap<u32, u32> = tracked.iter().copied().zip(group_id.iter().copied()).collect();
        let mut changed: FxHashSet<u32> = out.changed.iter().copied().collect();
        for &op in &created {
            if !self.ops.list[op as usize].live {
                continue;
            }
            let id = tracked_id.get(&op).copied().unwrap_or(NONE);
            self.ops.list[op as usize].cluster = id;
            let nodes = self.ops.list[op as usize].nodes.clone();
            for node in nodes {
                if node & SINGLE != 0 {
                    self.set_cluster(node & !SINGLE, id, &gone, &mut changed);
                    continue;
                }
                let c = node;
                let (touched_now, base) = {
                    let core = &self.cores.list[c as usize];
                    (core.stamp == stamp, core.cluster)
                };
                if touched_now && base == id {
                    let joined = std::mem::take(&mut self.cores.list[c as usize].joined);
                    for &a in &joined {
                        if self.acct[a as usize].core == c {
                            self.set_cluster(a, id, &gone, &mut changed);
                        }
                    }
                    self.cores.list[c as usize].joined = joined;
                } else if touched_now || base != id {
                    let members = self.cores.list[c as usize].members.clone();
                    for a in members {
                        self.set_cluster(a, id, &gone, &mut changed);
                    }
                }
                self.cores.list[c as usize].cluster = id;
            }
        }
        let loose: Vec<u32> = std::mem::take(&mut self.cores.departed).into_iter()
            .chain(std::mem::take(&mut self.ops.dropped)).collect();
        for a in loose {
            let acc = &self.acct[a as usize];
            if acc.live && acc.core == NONE && acc.op == NONE {
                self.set_cluster(a, NONE, &gone, &mut changed);
            }
        }
        for c in &changed {
            if let Some(cl) = self.clusters.get_mut(c) {
                cl.updated_at = at;
            }
        }
        let mut changed: Vec<u32> = changed.into_iter().filter(|c| self.clusters.contains_key(c)).collect();
        changed.sort_unstable();
        out.changed = changed;
        self.cores.touched.clear();
        self.weak.edge_changes.clear();
    }

    fn set_cluster(&mut self, a: u32, id: u32, gone: &FxHashSet<u32>, changed: &mut FxHashSet<u32>) {
        let old = self.acct[a as usize].cluster;
        if old == id {
            return;
        }
        self.acct[a as usize].cluster = id;
        self.move_usage(a, if gone.contains(&old) { NONE } else { old }, id);
        let name = self.acc_str(a).to_owned();
        if old != NONE && !gone.contains(&old) {
            self.deltas.entry(old).or_default().1.push(name.clone());
            changed.insert(old);
        }
        if id != NONE {
            self.deltas.entry(id).or_default().0.push(name);
            changed.insert(id);
        }
    }
}
