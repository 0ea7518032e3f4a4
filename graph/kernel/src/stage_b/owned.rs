//! Owned templates: evidence a group holds together.
//!
//! A prompt template is weak evidence: a framework's default prompt or a tutorial's example is used
//! by thousands of strangers. But strangers also write prompts of their own — an ordinary user's
//! prompts are mostly one-offs, fingerprints no one else sends. An operation's accounts do not: they
//! run the operation's templates and nothing else. So a template is **owned** by the group that uses
//! it when
//!   * at least `group_min_accounts` accounts use it (a handful sharing a prompt is nothing), at most
//!     `template_max_degree` (a bound on the work per template), and
//!   * at least `group_captive_min` of them are **captive**: they use no template of their own (every
//!     template they use is used by someone else too), and
//!   * at least `group_set_min` of them use two or more shared templates (**on a set**). An operation
//!     runs a set of prompts (distillation needs coverage); a crowd on a framework's default prompt
//!     that writes nothing of its own uses that one template — a crowd, not a group.
//!
//! An owned template `t:x` gets a derived entity `g:x` that every user of the template links and that
//! binds like a device: the users of a set of templates nobody else uses become one core even when
//! each account has its own phone and card and touches only one or two of the templates. A popular
//! template fails the captive share (its crowd writes its own prompts too); a class's exercise
//! template or a company's internal tool passes it, and is held by the score, which needs extraction
//! on top of structure (graph/scoring.py), as it does for lockstep cohorts.
//!
//! Captive and on-a-set counts are kept per template as accounts gain and lose templates (each
//! account's two flags, bits 2 and 3 of `AcctB::private`, settled in `Graph::rebind` like devices' and
//! cards' private flags), so a
//! template's status is re-read in O(1) when its counts move; a status flip links or unlinks every
//! member once, a new member of an owned template is linked alone.

use crate::stage_b::graph::{Graph, OWNED, TEMPLATE};
use crate::store::intern::NONE;

/// `AcctB::private` bits of the template state (bits 0 and 1 are devices' and cards').
pub const CAPTIVE: u8 = 4;
pub const ON_SET: u8 = 8;

impl Graph {
    /// The owned-template rule with the kept counts.
    pub fn template_owned(&self, e: u32) -> bool {
        let counts = self.captive.get(&e).copied().unwrap_or([0, 0]);
        self.owned_with(e, counts)
    }

    /// The same rule counted from scratch (the consistency check uses it).
    pub fn template_owned_fresh(&self, e: u32) -> bool {
        let mut counts = [0u32; 2];
        for &a in self.ent[e as usize].members.iter() {
            let state = self.captive_fresh(a);
            counts[0] += (state & CAPTIVE != 0) as u32;
            counts[1] += (state & ON_SET != 0) as u32;
        }
        self.owned_with(e, counts)
    }

    fn owned_with(&self, e: u32, [captive, on_set]: [u32; 2]) -> bool {
        let ent = &self.ent[e as usize];
        let deg = ent.members.len() as u32;
        ent.live && ent.kind == TEMPLATE && deg >= self.cfg.group_min_accounts.max(2)
            && deg <= self.cfg.template_max_degree && captive as f64 >= self.cfg.group_captive_min * deg as f64
            && on_set as f64 >= self.cfg.group_set_min * deg as f64
    }

    /// The account's template state from its links: `CAPTIVE` (no template of its own, at least one
    /// shared), with `ON_SET` (at least two shared). `AcctB::private` caches it (bits 2 and 3).
    pub fn captive_fresh(&self, a: u32) -> u8 {
        let mut shared = 0;
        for l in self.acct[a as usize].links.iter() {
            if !l.strong() && self.ent[l.ent as usize].kind == TEMPLATE {
                if self.ent[l.ent as usize].members.len() == 1 {
                    return 0;
                }
                shared += 1;
            }
        }
        match shared {
            0 => 0,
            1 => CAPTIVE,
            _ => CAPTIVE | ON_SET,
        }
    }

    #[inline]
    pub fn captive_cached(&self, a: u32) -> u8 {
        self.acct[a as usize].private & (CAPTIVE | ON_SET)
    }

    /// Account `a` joined (`added`) or left template `e`, which now has `deg` members.
    pub(crate) fn template_member_moved(&mut self, a: u32, e: u32, deg: usize, added: bool) {
        // a new prompt of its own (most API calls of ordinary users) leaves a non-captive account as it is
        if !(added && deg == 1 && self.captive_cached(a) == 0) {
            self.dirty.moved_kind.push((a, TEMPLATE));
        }
        if added && deg == 2 {
            let first = self.ent[e as usize].members[0]; // its template is no longer its own
            self.dirty.moved_kind.push((first, TEMPLATE));
        } else if !added && deg == 1 {
            let survivor = self.ent[e as usize].members[0]; // its own again
            self.dirty.moved_kind.push((survivor, TEMPLATE));
        }
        let state = self.captive_cached(a);
        self.count_captive(e, state, added);
        self.watch_template(e, deg);
        if added && (self.owned.contains_key(&e) || deg as u32 >= self.cfg.group_min_accounts) {
            self.dirty.owned_join.push((a, e));
        }
    }

    /// Settle the account's cached template state (`rebind`, for accounts whose templates moved);
    /// when it changed, its templates' counts move.
    pub(crate) fn settle_captive(&mut self, a: u32) {
        let (old, new) = (self.captive_cached(a), self.captive_fresh(a));
        if old == new {
            return;
        }
        self.acct[a as usize].private = (self.acct[a as usize].private & !(CAPTIVE | ON_SET)) | new;
        for i in 0..self.acct[a as usize].links.len() {
            let l = self.acct[a as usize].links[i];
            if l.strong() || self.ent[l.ent as usize].kind != TEMPLATE {
                continue;
            }
            self.count_captive(l.ent, old, false);
            self.count_captive(l.ent, new, true);
            let deg = self.ent[l.ent as usize].members.len();
            self.watch_template(l.ent, deg);
        }
    }

    fn count_captive(&mut self, e: u32, state: u8, up: bool) {
        if state == 0 {
            return;
        }
        let add = [(state & CAPTIVE != 0) as u32, (state & ON_SET != 0) as u32];
        let counts = self.captive.entry(e).or_insert([0, 0]);
        for k in 0..2 {
            if up {
                counts[k] += add[k];
            } else {
                debug_assert!(counts[k] >= add[k], "a captive count below zero");
                counts[k] -= add[k];
            }
        }
        if *counts == [0, 0] {
            self.captive.remove(&e);
        }
    }

    fn watch_template(&mut self, e: u32, deg: usize) {
        // a template far under the size cannot flip (and one-off templates are most of them)
        if deg as u32 + 1 >= self.cfg.group_min_accounts || self.owned.contains_key(&e) {
            self.dirty.owned_check.push(e);
        }
    }

    /// Settle owned status for the templates whose counts moved this tick, and link new members of
    /// owned templates. Runs in `rebind` after the private flags and before binding is re-read, so
    /// the groups' links bind in the same tick.
    pub(crate) fn settle_owned(&mut self) {
        let mut checks = std::mem::take(&mut self.dirty.owned_check);
        let mut joins = std::mem::take(&mut self.dirty.owned_join);
        if checks.is_empty() && joins.is_empty() {
            return;
        }
        checks.sort_unstable();
        checks.dedup();
        let ts = (self.now.max(0) as u64).min(u32::MAX as u64 - 1) as u32;
        for e in checks {
            if !self.ent[e as usize].live || self.ent[e as usize].kind != TEMPLATE {
                continue; // freed this tick (its group went with it)
            }
            let owned = self.template_owned(e);
            let group = self.owned.get(&e).copied().unwrap_or(NONE);
            if owned != (group != NONE) {
                self.counters.owned_flips += 1;
            }
            if owned && group == NONE {
                let name = format!("g:{}", &self.ent_str(e)[2..]);
                let g = self.intern_entity(&name);
                debug_assert_eq!(self.ent[g as usize].kind, OWNED);
                self.ent_retain(g); // the template holds its group's id
                self.owned.insert(e, g);
                for i in 0..self.ent[e as usize].members.len() {
                    let a = self.ent[e as usize].members[i];
                    self.add_link(a, g, ts);
                }
            } else if !owned && group != NONE {
                self.owned.remove(&e);
                let members = self.ent[group as usize].members.to_vec();
                for a in members {
                    self.remove_link(a, group);
                }
                if self.ent_release(group) {
                    self.ent[group as usize] = Default::default();
                }
            }
        }
        joins.sort_unstable();
        joins.dedup();
        for (a, e) in joins {
            let group = self.owned.get(&e).copied().unwrap_or(NONE);
            if group != NONE && self.acct[a as usize].live && self.acct[a as usize].link(e).is_some()
                && self.acct[a as usize].link(group).is_none() {
                self.add_link(a, group, ts);
            }
        }
    }
}
