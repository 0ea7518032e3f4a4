//! What a cluster looks like, as numbers: the inputs of the score (the policy that weighs them is
//! `graph/scoring.py`), the evidence that travels with an alert, the damage (API exchanges and
//! output tokens in the window), and the infrastructure it shares with other clusters.

use crate::stage_b::graph::{AcctB, Graph, COHORT, DEVICE, IP, OWNED, PAYMENT};
use crate::store::index::{prefetch, prefetch_slice};
use crate::store::intern::NONE;
use rustc_hash::{FxHashMap, FxHashSet};

pub struct Evidence {
    pub kind: u8,
    pub value: String,
    pub members: u32,
    pub first_seen: u32,
    pub last_seen: u32,
}

/// Clusters (per entity type) listed as sharing infrastructure with one cluster, most shared first.
pub const SHARED_LIMIT: usize = 20;
/// Weak entities on more accounts than this are not listed as shared infrastructure.
pub const SHARED_MAX_DEGREE: usize = 200;

pub struct SharedWith {
    pub cluster: u32,
    pub kind: u8,
    pub entities: u32,
    pub here: u32,
    pub there: u32,
}

pub struct Features {
    pub values: Vec<(&'static str, f64)>,
    pub evidence: Vec<Evidence>,
    pub shared: Vec<SharedWith>,
    pub requests: u64,
    pub tokens_out: u64,
    pub newest: u32,
}

fn burst_share(signups: &mut [u32], span: u32) -> f64 {
    if signups.len() < 10 {
        return 0.0;
    }
    signups.sort_unstable();
    let (mut best, mut lo) = (0usize, 0usize);
    for hi in 0..signups.len() {
        while signups[hi] - signups[lo] > span {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best as f64 / signups.len() as f64
}

/// Accounts in the largest piece connected through the given entity groups, counting only pieces
/// held together by at least two entities (one card's star is not a mesh).
fn largest_piece(groups: &[&Vec<u32>]) -> usize {
    let mut parent: FxHashMap<u32, u32> = FxHashMap::default();
    let mut entities: FxHashMap<u32, u32> = FxHashMap::default();
    fn find(parent: &mut FxHashMap<u32, u32>, x: u32) -> u32 {
        let mut root = x;
        loop {
            let p = *parent.entry(root).or_insert(root);
            if p == root {
                break;
            }
            root = p;
        }
        let mut y = x;
        while parent[&y] != root {
            let next = parent[&y];
            parent.insert(y, root);
            y = next;
        }
        root
    }
    for accounts in groups {
        let first = find(&mut parent, accounts[0]);
        let mut count = entities.remove(&first).unwrap_or(0) + 1;
        for &other in &accounts[1..] {
            let root = find(&mut parent, other);
            if root != first {
                parent.insert(root, first);
                count += entities.remove(&root).unwrap_or(0);
            }
        }
        entities.insert(first, count);
    }
    let keys: Vec<u32> = parent.keys().copied().collect();
    let mut sizes: FxHashMap<u32, usize> = FxHashMap::default();
    for k in keys {
        let r = find(&mut parent, k);
        *sizes.entry(r).or_insert(0) += 1;
    }
    sizes.iter().filter(|(r, _)| entities.get(r).copied().unwrap_or(0) >= 2).map(|(_, &n)| n).max().unwrap_or(0)
}

/// How far ahead of a walk its prefetches reach: enough for the memory's latency, few enough that
/// the lines are still in cache when the walk gets there.
const AHEAD: usize = 8;

impl Graph {
    /// While walking `members`, at position `i`: ask for the slot of the member `AHEAD` on, and for
    /// the list (`list` of its slot) of the one `AHEAD / 2` on, whose slot was asked for earlier.
    /// Hints only: a walk over a large cluster otherwise waits on memory at every member.
    #[inline(always)]
    fn prefetch_member<T>(&self, members: &[u32], i: usize, list: impl Fn(&AcctB) -> &[T]) {
        if let Some(&next) = members.get(i + AHEAD) {
            prefetch(&self.acct[next as usize]);
        }
        if let Some(&soon) = members.get(i + AHEAD / 2) {
            prefetch_slice(list(&self.acct[soon as usize]));
        }
    }

    pub fn features(&self, no: u32) -> Option<Features> {
        let cluster = self.clusters.get(&no)?;
        let members = self.op_accounts(cluster.op);
        let n = members.len();
        if n == 0 {
            return None;
        }
        let nf = n as f64;
        let horizon = self.now - self.cfg.window;
        let horizon_s = horizon.max(0) as u32;
        let horizon_hour = (horizon.max(0) / 3600) as u32;

        // binding devices/cards with the members on them (the mesh needs who); IPs, templates and
        // binding cohorts only counted (a 24,000-account cluster touches hundreds of thousands of IPs);
        // other cards only counted too (the single payer). All keep the first and last time a member
        // linked to the entity (the evidence's span), so the members' links are walked once. A strong
        // link carries its kind and whether its entity binds, so a personal device or card is passed
        // without reading its entity; an IP or template link is counted without reading it either.
        type Span = (u32, u32);
        let widen = |span: &mut Span, ts: u32| {
            span.0 = span.0.min(ts);
            span.1 = span.1.max(ts);
        };
        let mut on: FxHashMap<u32, (Vec<u32>, Span)> = FxHashMap::default();
        let mut count: FxHashMap<u32, (u32, Span)> = FxHashMap::with_capacity_and_hasher(4 * n, Default::default());
        let mut cohort_count: FxHashMap<u32, (u32, Span)> = FxHashMap::default();
        let mut payers: FxHashMap<u32, u32> = FxHashMap::default(); // cards that do not bind: accounts on each
        let mut newest = 0u32;
        let mut lockstep = 0usize; // members in a lockstep cohort (a binding cohort link)
        let mut grouped = 0usize; // members in an owned template group (owned.rs)
        for (i, &a) in members.iter().enumerate() {
            self.prefetch_member(&members, i, |acc| acc.links.as_slice());
            let mut in_cohort = false;
            let mut in_group = false;
            for l in &self.acct[a as usize].links {
                newest = newest.max(l.ts);
                let (c, span) = match l.strong_kind() {
                    0 => count.entry(l.ent).or_insert((0, (u32::MAX, 0))),
                    DEVICE | PAYMENT if l.binds() => {
                        let (accounts, span) = on.entry(l.ent).or_insert_with(|| (Vec::new(), (u32::MAX, 0)));
                        accounts.push(a);
                        widen(span, l.ts);
                        continue;
                    }
                    COHORT if l.binds() => {
                        in_cohort = true;
                        cohort_count.entry(l.ent).or_insert((0, (u32::MAX, 0)))
                    }
                    OWNED if l.binds() => {
                        in_group = true;
                        cohort_count.entry(l.ent).or_insert((0, (u32::MAX, 0))) // derived, like cohorts
                    }
                    PAYMENT => {
                        *payers.entry(l.ent).or_insert(0) += 1;
                        continue;
                    }
                    _ => continue, // a device or cohort that does not bind: in no feature
                };
                *c += 1;
                widen(span, l.ts);
            }
            lockstep += in_cohort as usize;
            grouped += in_group as usize;
        }
        // One pass over the counted IPs and templates, each entity read once: IP links, the weak
        // entities the members share, the top template, and the weak entities another cluster's cores
        // also use (shared infrastructure, from the entity's per-core counts).
        let mut ips = 0usize;
        let mut owned_ip_links = 0usize; // members' links to IPs used by two or more of them and by little else
        let mut weak_shared: Vec<u32> = Vec::new();
        let mut top_template = 0u32;
        let top_payment = payers.values().copied().max().unwrap_or(0);
        let mut cohorts: Vec<u32> = cohort_count.iter().filter(|(_, c)| c.0 >= 2).map(|(&e, _)| e).collect();
        let mut others_on: FxHashMap<u32, Vec<u32>> = FxHashMap::default(); // weak entity -> other clusters on it
        let counted_weak: Vec<(u32, u32)> = count.iter().map(|(&e, &(c, _))| (e, c)).collect();
        for (i, &(e, c)) in counted_weak.iter().enumerate() {
            if let Some(&(ahead, _)) = counted_weak.get(i + AHEAD) {
                prefetch(&self.ent[ahead as usize]);
            }
            let ent = &self.ent[e as usize];
            if ent.kind == IP {
                ips += c as usize;
                if c >= 2 && c as f64 >= self.cfg.weak_purity_min * ent.members.len() as f64 {
                    owned_ip_links += c as usize;
                }
            } else {
                top_template = top_template.max(c);
            }
            if c >= 2 {
                weak_shared.push(e);
            }
            if ent.members.len() > SHARED_MAX_DEGREE {
                continue; // a carrier NAT or a framework's default prompt is nobody's lead
            }
            let mut others: Vec<u32> = Vec::new();
            for (core, _) in self.hists.of(ent) {
                let other = self.cores.list[core as usize].cluster; // settled at the end of every tick
                if other != NONE && other != no && !others.contains(&other) {
                    others.push(other);
                }
            }
            if !others.is_empty() {
                others_on.insert(e, others);
            }
        }
        let name = |e: u32| self.ent_str(e);
        let mut strong: Vec<u32> = on.iter().filter(|(_, m)| m.0.len() >= 2).map(|(&e, _)| e).collect();
        strong.sort_unstable_by(|&x, &y| on[&y].0.len().cmp(&on[&x].0.len()).then_with(|| name(x).cmp(name(y))));
        for (v, counts) in [(&mut cohorts, &cohort_count), (&mut weak_shared, &count)] {
            v.sort_unstable_by(|&x, &y| counts[&y].0.cmp(&counts[&x].0).then_with(|| name(x).cmp(name(y))));
        }
        // how many members share a counted entity, and when they linked to it
        let counted = |e: u32| count.get(&e).or_else(|| cohort_count.get(&e)).copied().unwrap_or((0, (u32::MAX, 0)));
        let shared_count = |e: u32| -> usize { on.get(&e).map(|m| m.0.len()).unwrap_or_else(|| counted(e).0 as usize) };

        // the hub and its near-copies (a renewed company card)
        let mut hub: FxHashSet<u32> = FxHashSet::default();
        if let Some(&first) = strong.first() {
            let hub_members: FxHashSet<u32> = on[&first].0.iter().copied().collect();
            hub.insert(first);
            for &e in &strong[1..] {
                let accounts = &on[&e].0;
                if (accounts.len() as f64) < self.cfg.hub_copy_overlap * hub_members.len() as f64 {
                    break;
                }
                let inside = accounts.iter().filter(|a| hub_members.contains(a)).count();
                if inside as f64 >= self.cfg.hub_copy_overlap * accounts.len() as f64 {
                    hub.insert(e);
                }
            }
        }
        let rest: Vec<&Vec<u32>> = strong.iter().filter(|e| !hub.contains(e)).map(|e| &on[e].0).collect();
        let mesh = largest_piece(&rest) as f64 / nf;

        // (the cached flags are settled at the end of every tick; the consistency check compares them)
        let own_identity = |a: u32| {
            let acc = &self.acct[a as usize];
            acc.has_private_cached(DEVICE) || acc.has_private_cached(PAYMENT)
        };
        let mut with_device: FxHashSet<u32> = FxHashSet::default();
        let mut with_payment: FxHashSet<u32> = FxHashSet::default();
        let mut off_hub: FxHashSet<u32> = FxHashSet::default();
        for &e in &strong {
            let set = if self.kind(e) == DEVICE { &mut with_device } else { &mut with_payment };
            set.extend(on[&e].0.iter().copied());
            if !hub.contains(&e) {
                off_hub.extend(on[&e].0.iter().copied());
            }
        }
        let sharing: FxHashSet<u32> = with_device.union(&with_payment).copied().collect();
        let no_own = sharing.iter().filter(|&&a| !own_identity(a)).count() as f64 / nf;
        let no_own_off_hub = off_hub.iter().filter(|&&a| !own_identity(a)).count() as f64 / nf;

        let mut signups = Vec::new();
        let mut datacenter = 0usize;
        let mut domains: FxHashMap<u32, usize> = FxHashMap::default();
        let (mut requests, mut tokens) = (0u64, 0u64);
        let mut volumes: Vec<u64> = Vec::with_capacity(n);
        for (i, &a) in members.iter().enumerate() {
            self.prefetch_member(&members, i, |acc| acc.usage.as_slice());
            let acc = &self.acct[a as usize];
            if acc.signup != NONE && acc.signup > horizon_s {
                signups.push(acc.signup);
            }
            if acc.dc_hour != NONE && acc.dc_hour >= horizon_hour {
                datacenter += 1;
            }
            if acc.domain != NONE && !self.cfg.freemail.contains(self.names.domains.get_str(acc.domain)) {
                *domains.entry(acc.domain).or_insert(0) += 1;
            }
            let (mut r, mut t) = (0u64, 0u64);
            let first_hour = horizon_hour + 1;
            for u in &acc.usage {
                if crate::stage_b::graph::bucket_in_window(u.0, first_hour) {
                    r += u.1 as u64;
                    t += u.2 as u64;
                }
            }
            requests += r;
            tokens += t;
            volumes.push(t);
        }
        let fresh = signups.len();
        let burst = burst_share(&mut signups, 3600);
        let mid = volumes.len() / 2;
        let median_tokens = *volumes.select_nth_unstable(mid).1 as f64;
        let intensity = if self.population_tokens_median > 0.0 { median_tokens / self.population_tokens_median } else { 0.0 };
        let org = domains.values().copied().max().unwrap_or(0) as f64 / nf;
        let top_template = top_template as f64 / nf;
        let single_payer = on.iter().filter(|(&e, _)| self.kind(e) == PAYMENT).map(|(_, m)| m.0.len() as u32)
            .fold(top_payment, u32::max) as f64 / nf;
        let largest_core = self.ops.list[cluster.op as usize].nodes.iter()
            .filter(|&&nd| nd & crate::stage_b::tables::SINGLE == 0).map(|&c| self.cores.size(c)).max().unwrap_or(0) as f64;
        let owned_weak = weak_shared.iter().filter(|&&e| count[&e].0 as f64 >= self.cfg.weak_purity_min * self.ent[e as usize].members.len() as f64).count();

        let values = vec![
            ("size", nf),
            ("mesh", mesh),
            ("no_own_identity", no_own),
            ("no_own_identity_off_hub", no_own_off_hub),
            ("binding_strong_entities", strong.len() as f64),
            ("binding_devices", strong.iter().filter(|&&e| self.kind(e) == DEVICE).count() as f64),
            ("binding_cards", strong.iter().filter(|&&e| self.kind(e) == PAYMENT).count() as f64),
            ("lockstep_cohorts", cohorts.iter().filter(|&&e| self.kind(e) == COHORT).count() as f64),
            ("owned_templates", cohorts.iter().filter(|&&e| self.kind(e) == OWNED).count() as f64),
            ("owned_template_share", grouped as f64 / nf),
            ("owned_weak_entities", owned_weak as f64),
            ("top_entity_share", strong.first().map(|e| on[e].0.len() as f64 / nf).unwrap_or(0.0)),
            ("device_reuse", with_device.len() as f64 / nf),
            ("payment_sharing", with_payment.len() as f64 / nf),
            ("single_payer_share", single_payer),
            ("signup_burst", burst),
            ("signups_in_window", fresh as f64),
            ("fresh_share", fresh as f64 / nf),
            ("ips_per_member", ips as f64 / nf),
            ("owned_ip_share", (owned_ip_links as f64 / nf).min(1.0)),
            ("datacenter_share", datacenter as f64 / nf),
            ("org_domain_share", org),
            ("lockstep_share", lockstep as f64 / nf),
            ("top_template_share", top_template),
            ("intensity", intensity),
            ("weak_attached_share", 1.0 - largest_core / nf),
        ];

        let limit = self.cfg.evidence_limit;
        let chosen: Vec<u32> = strong.iter().chain(cohorts.iter()).chain(weak_shared.iter()).take(limit).copied().collect();
        let evidence: Vec<Evidence> = chosen.iter().map(|&e| {
            let full = name(e);
            let (first, last) = on.get(&e).map(|v| v.1).unwrap_or_else(|| counted(e).1);
            Evidence { kind: full.as_bytes()[0], value: full[2..].to_owned(), members: shared_count(e) as u32,
                       first_seen: first, last_seen: last }
        }).collect();

        // per (other cluster, kind): shared entities, distinct accounts here on them, distinct there
        let mut shared: FxHashMap<(u32, u8), (u32, FxHashSet<u32>, FxHashSet<u32>)> = FxHashMap::default();
        for (&e, others) in &others_on {
            let kind = self.kind(e);
            for &other in others {
                shared.entry((other, kind)).or_insert_with(|| (0, FxHashSet::default(), FxHashSet::default())).0 += 1;
            }
            // the entity's members are its accounts here and there (at most SHARED_MAX_DEGREE of them)
            for &m in &self.ent[e as usize].members {
                let c = self.acct[m as usize].cluster;
                if c == no {
                    for &other in others {
                        shared.get_mut(&(other, kind)).expect("counted above").1.insert(m);
                    }
                } else if c != NONE && others.contains(&c) {
                    shared.get_mut(&(c, kind)).expect("counted above").2.insert(m);
                }
            }
        }
        let mut shared: Vec<SharedWith> = shared.into_iter()
            .map(|((cluster, kind), (entities, here, there))| SharedWith {
                cluster, kind, entities, here: here.len() as u32, there: there.len() as u32 })
            .collect();
        shared.sort_unstable_by(|x, y| y.entities.cmp(&x.entities).then(x.cluster.cmp(&y.cluster)).then(x.kind.cmp(&y.kind)));
        shared.truncate(SHARED_LIMIT);
        Some(Features { values, evidence, shared, requests, tokens_out: tokens, newest })
    }

    /// Devices and cards binding a cluster (a benign verdict compares them later).
    pub fn strong_entities(&self, no: u32) -> Vec<String> {
        let Some(cluster) = self.clusters.get(&no) else { return Vec::new() };
        let mut out: Vec<String> = Vec::new();
        let mut seen = FxHashSet::default();
        for a in self.op_accounts(cluster.op) {
            for l in &self.acct[a as usize].links {
                let k = self.kind(l.ent);
                if (k == DEVICE || k == PAYMENT) && self.ent[l.ent as usize].binding && seen.insert(l.ent) {
                    out.push(self.ent_str(l.ent).to_owned());
                }
            }
        }
        out.sort_unstable();
        out
    }
}
