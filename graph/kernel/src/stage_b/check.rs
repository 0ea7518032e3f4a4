//! Consistency of the incremental structures with each other (tests call it after every step;
//! production never does). Returns what is wrong, empty when all holds.

use crate::stage_b::graph::{is_strong, is_weak, Graph};
use crate::store::intern::NONE;
use crate::stage_b::tables::SINGLE;
use rustc_hash::FxHashMap;

impl Graph {
    pub fn check(&self) -> Vec<String> {
        let mut bad = Vec::new();
        for (a, acc) in self.acct.iter().enumerate() {
            let a = a as u32;
            if !acc.live {
                continue;
            }
            if !self.acc_is_live(a) {
                bad.push(format!("account {a} live in the graph but freed in the interner"));
            }
            for l in &acc.links {
                let ent = &self.ent[l.ent as usize];
                if !ent.live || ent.members.get(l.pos as usize) != Some(&a) {
                    bad.push(format!("link {a}->{} position {} wrong", l.ent, l.pos));
                }
                let kind = if is_strong(ent.kind) { ent.kind } else { 0 };
                if l.strong_kind() != kind || l.binds() != (kind != 0 && ent.binding) {
                    bad.push(format!("link {a}->{} copies kind {:?} binding {} of an entity of kind {:?} binding {}",
                                     l.ent, l.strong_kind() as char, l.binds(), ent.kind as char, ent.binding));
                }
            }
            let strong = acc.links.iter().any(|l| self.ent[l.ent as usize].binding);
            if strong != acc.strong {
                bad.push(format!("account {} strong flag {} but binding links say {strong}: {:?}", self.acc_str(a), acc.strong, acc.links.iter().map(|l| (self.ent_str(l.ent).to_owned(), self.ent[l.ent as usize].binding, self.ent[l.ent as usize].members.len())).collect::<Vec<_>>()));
            }
            if acc.core != NONE {
                let core = &self.cores.list[acc.core as usize];
                if !core.live || core.members.get(acc.core_pos as usize) != Some(&a) {
                    bad.push(format!("account {a} core {} position wrong or core dead", acc.core));
                }
            } else if acc.strong {
                bad.push(format!("account {a} has a binding entity but no core"));
            }
            if acc.core == NONE && acc.op != NONE {
                let op = &self.ops.list[acc.op as usize];
                if !op.live || !op.nodes.contains(&(SINGLE | a)) {
                    bad.push(format!("loose account {a} points at op {} that does not hold it", acc.op));
                }
            }
        }
        for (e, ent) in self.ent.iter().enumerate() {
            if ent.live && (ent.kind == crate::stage_b::graph::DEVICE || ent.kind == crate::stage_b::graph::PAYMENT) {
                let fresh = ent.members.iter().filter(|&&a| !self.has_private(a, ent.kind)).count() as u32;
                if fresh != ent.exclusive || self.strong_binds_fresh(e as u32) != ent.binding {
                    bad.push(format!("entity {} counts {} exclusive members, fresh {fresh}", self.ent_str(e as u32), ent.exclusive));
                }
            }
        }
        for (e, ent) in self.ent.iter().enumerate() {
            if ent.live && (ent.kind == crate::stage_b::graph::IP || ent.kind == crate::stage_b::graph::TEMPLATE) {
                let in_cores = ent.members.iter().filter(|&&a| self.acct[a as usize].core != NONE).count() as u32;
                if in_cores != ent.exclusive {
                    bad.push(format!("entity {} counts {} members in cores, really {in_cores}", self.ent_str(e as u32), ent.exclusive));
                }
            }
        }
        // owned templates: captive counts, status and group membership (owned.rs)
        for (e, ent) in self.ent.iter().enumerate() {
            let e = e as u32;
            if !ent.live || ent.kind != crate::stage_b::graph::TEMPLATE {
                continue;
            }
            let mut fresh = [0u32; 2];
            for &a in ent.members.iter() {
                let state = self.captive_fresh(a);
                fresh[0] += (state & crate::stage_b::owned::CAPTIVE != 0) as u32;
                fresh[1] += (state & crate::stage_b::owned::ON_SET != 0) as u32;
            }
            let kept = self.captive.get(&e).copied().unwrap_or([0, 0]);
            if fresh != kept {
                bad.push(format!("template {} counts {kept:?} captive / on-set members, really {fresh:?}", self.ent_str(e)));
            }
            let group = self.owned.get(&e).copied().unwrap_or(NONE);
            if self.template_owned_fresh(e) != (group != NONE) {
                bad.push(format!("template {} owned status stale (group {group})", self.ent_str(e)));
            }
            if group != NONE {
                let mut in_group: Vec<u32> = self.ent[group as usize].members.to_vec();
                let mut users: Vec<u32> = ent.members.to_vec();
                in_group.sort_unstable();
                users.sort_unstable();
                if in_group != users {
                    bad.push(format!("owned group of {} holds {} accounts, the template {}", self.ent_str(e), in_group.len(), users.len()));
                }
            }
        }
        for (e, ent) in self.ent.iter().enumerate() {
            if ent.live && ent.kind == crate::stage_b::graph::OWNED && !self.owned.values().any(|&g| g == e as u32) {
                bad.push(format!("group entity {} belongs to no owned template", self.ent_str(e as u32)));
            }
        }
        for (a, acc) in self.acct.iter().enumerate() {
            if acc.live {
                if self.captive_cached(a as u32) != self.captive_fresh(a as u32) {
                    bad.push(format!("account {} template state is stale", self.acc_str(a as u32)));
                }
                for kind in [crate::stage_b::graph::DEVICE, crate::stage_b::graph::PAYMENT] {
                    if acc.has_private_cached(kind) != self.has_private(a as u32, kind) {
                        bad.push(format!("account {} private flag for {} is stale", self.acc_str(a as u32), kind as char));
                    }
                }
            }
        }
        for (c, core) in self.cores.list.iter().enumerate() {
            if !core.live {
                continue;
            }
            let c = c as u32;
            if core.members.len() < 2 {
                bad.push(format!("core {c} has {} members", core.members.len()));
            }
            let mut profile: FxHashMap<u32, u32> = FxHashMap::default();
            for &a in &core.members {
                if !self.acct[a as usize].live || self.acct[a as usize].core != c {
                    bad.push(format!("core {c} lists account {a} that is not in it"));
                }
                for l in &self.acct[a as usize].links {
                    if is_weak(self.kind(l.ent)) {
                        *profile.entry(l.ent).or_insert(0) += 1;
                    }
                }
            }
            if profile != core.profile {
                bad.push(format!("core {c} profile differs from its members' weak links"));
            }
            for (&e, &n) in &profile {
                if self.hists.get(&self.ent[e as usize], c) != n {
                    bad.push(format!("entity {e} counts {} members of core {c}, not {n}", self.hists.get(&self.ent[e as usize], c)));
                }
            }
            if core.op == NONE || !self.ops.list[core.op as usize].live || !self.ops.list[core.op as usize].nodes.contains(&c) {
                bad.push(format!("core {c} op {} does not hold it", core.op));
            }
        }
        for (o, op) in self.ops.list.iter().enumerate() {
            if !op.live {
                continue;
            }
            let mut size = 0;
            for &n in &op.nodes {
                if n & SINGLE != 0 {
                    let a = &self.acct[(n & !SINGLE) as usize];
                    if !a.live || a.core != NONE || a.op != o as u32 {
                        bad.push(format!("op {o} holds loose node {} that is not loose in it", n & !SINGLE));
                    }
                    size += 1;
                } else {
                    let core = &self.cores.list[n as usize];
                    if !core.live || core.op != o as u32 {
                        bad.push(format!("op {o} holds core {n} that is dead or elsewhere"));
                    }
                    size += core.members.len() as u32;
                }
            }
            if size != op.size {
                bad.push(format!("op {o} size {} but nodes hold {size}", op.size));
            }
            if op.cluster != NONE && self.clusters.get(&op.cluster).map(|c| c.op) != Some(o as u32) {
                bad.push(format!("op {o} names cluster {} that does not point back", op.cluster));
            }
        }
        for &no in self.clusters.keys() {
            let kept = self.damage(no).unwrap_or((0, 0));
            let fresh = self.damage_fresh(no);
            if kept != fresh {
                bad.push(format!("cluster {no} keeps damage {kept:?}, its members sum to {fresh:?}"));
            }
        }
        for (&no, cl) in &self.clusters {
            let op = &self.ops.list[cl.op as usize];
            if !op.live || op.cluster != no || op.size != cl.size {
                bad.push(format!("cluster {no} op {} dead, elsewhere or of another size", cl.op));
            }
            if op.live {
                for a in self.op_accounts(cl.op) {
                    if self.acct[a as usize].cluster != no {
                        bad.push(format!("account {a} of cluster {no} says {}", self.acct[a as usize].cluster));
                    }
                }
            }
        }
        bad
    }
}
