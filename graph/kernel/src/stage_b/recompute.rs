//! The same rules evaluated from scratch over the current links: no incremental state is read
//! (binding, cores, heavy sets, supports and operations are all rebuilt). Tests compare it with the
//! incremental result after every step; production never calls it.

use crate::stage_b::graph::{is_strong, is_weak, Graph};
use rustc_hash::{FxHashMap, FxHashSet};

impl Graph {
    pub fn full_partition(&self) -> Vec<Vec<String>> {
        let live_accounts: Vec<u32> = (0..self.acct.len() as u32).filter(|&a| self.acct[a as usize].live && !self.acct[a as usize].links.is_empty()).collect();
        let binding: FxHashSet<u32> = (0..self.ent.len() as u32)
            .filter(|&e| self.ent[e as usize].live && is_strong(self.ent[e as usize].kind) && self.strong_binds_fresh(e))
            .collect();
        // cores by breadth-first search over binding entities
        let mut core_of: FxHashMap<u32, u32> = FxHashMap::default();
        let mut cores: Vec<Vec<u32>> = Vec::new();
        for &a in &live_accounts {
            if core_of.contains_key(&a) || !self.acct[a as usize].links.iter().any(|l| binding.contains(&l.ent)) {
                continue;
            }
            let id = cores.len() as u32;
            let mut comp = vec![a];
            core_of.insert(a, id);
            let mut k = 0;
            while k < comp.len() {
                let x = comp[k];
                k += 1;
                for l in &self.acct[x as usize].links {
                    if !binding.contains(&l.ent) {
                        continue;
                    }
                    for &y in &self.ent[l.ent as usize].members {
                        if let std::collections::hash_map::Entry::Vacant(v) = core_of.entry(y) {
                            v.insert(id);
                            comp.push(y);
                        }
                    }
                }
            }
            cores.push(comp);
        }
        // weak supports
        let single = |a: u32| (1u64 << 40) | a as u64;
        let mut supp: FxHashMap<(u64, u64), u32> = FxHashMap::default();
        for e in 0..self.ent.len() as u32 {
            let ent = &self.ent[e as usize];
            if !ent.live || !is_weak(ent.kind) || ent.members.len() < 2 {
                continue;
            }
            let mut hist: FxHashMap<u32, u32> = FxHashMap::default();
            for &a in &ent.members {
                if let Some(&c) = core_of.get(&a) {
                    *hist.entry(c).or_insert(0) += 1;
                }
            }
            let mut heavy: Vec<u32> = hist.iter()
                .filter(|(&c, &n)| n as f64 >= self.heavy_threshold(cores[c as usize].len() as u32))
                .map(|(&c, _)| c).collect();
            if heavy.is_empty() || heavy.len() > self.cfg.weak_max_groups as usize {
                continue;
            }
            heavy.sort_unstable();
            let mass: u32 = heavy.iter().map(|c| hist[c]).sum();
            let deg = ent.members.len() as f64;
            let p = self.cfg.weak_purity_min;
            if heavy.len() >= 2 && mass as f64 >= p * deg {
                for i in 0..heavy.len() {
                    for j in i + 1..heavy.len() {
                        *supp.entry((heavy[i] as u64, heavy[j] as u64)).or_insert(0) += 1;
                    }
                }
            }
            if (mass + 1) as f64 >= p * deg {
                for &a in &ent.members {
                    if !core_of.contains_key(&a) {
                        for &c in &heavy {
                            *supp.entry((c as u64, single(a))).or_insert(0) += 1;
                        }
                    }
                }
            }
        }
        let mut adj: FxHashMap<u64, Vec<u64>> = FxHashMap::default();
        for (&(x, y), &n) in &supp {
            if n >= self.cfg.weak_min_entities {
                adj.entry(x).or_default().push(y);
                adj.entry(y).or_default().push(x);
            }
        }
        // operations
        let mut nodes: Vec<u64> = (0..cores.len() as u64).collect();
        let mut singles: Vec<u64> = adj.keys().copied().filter(|&n| n >= 1 << 40).collect();
        singles.sort_unstable();
        nodes.extend(singles);
        let mut seen: FxHashSet<u64> = FxHashSet::default();
        let mut out = Vec::new();
        for &start in &nodes {
            if !seen.insert(start) {
                continue;
            }
            let mut comp = vec![start];
            let mut k = 0;
            while k < comp.len() {
                let x = comp[k];
                k += 1;
                for &y in adj.get(&x).map(|v| v.as_slice()).unwrap_or(&[]) {
                    if seen.insert(y) {
                        comp.push(y);
                    }
                }
            }
            let mut accounts: Vec<String> = Vec::new();
            for node in comp {
                if node >= 1 << 40 {
                    accounts.push(self.acc_str((node & 0xffff_ffff) as u32).to_owned());
                } else {
                    accounts.extend(cores[node as usize].iter().map(|&a| self.acc_str(a).to_owned()));
                }
            }
            if accounts.len() as u32 >= self.cfg.track_min_size {
                accounts.sort_unstable();
                out.push(accounts);
            }
        }
        out.sort_unstable();
        out
    }

    /// The tracked clusters as the incremental state has them (canonical order).
    pub fn partition(&self) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = self.clusters.keys().map(|&no| {
            let mut v: Vec<String> = self.cluster_members(no).into_iter().map(|a| self.acc_str(a).to_owned()).collect();
            v.sort_unstable();
            v
        }).collect();
        out.sort_unstable();
        out
    }
}
