//! Damage kept per cluster: the API exchanges and output tokens of its members within the window,
//! maintained as usage arrives, as accounts join and leave the cluster and as hours leave the window
//! — never by walking the members. A cluster holds the sum of its members' usage per bucket of
//! `USAGE_BUCKET_HOURS` (an hour: at most window / 1 h + 1 buckets), so reading its damage as of the latest
//! tick costs the buckets, not the members: every published alert version carries it (graph/detector.py).

use crate::stage_b::graph::{bucket_in_window, Graph};
use crate::store::intern::NONE;

impl Graph {
    /// The first whole hour of the window as of the latest tick (usage buckets that end after it count).
    pub fn window_first_hour(&self) -> u32 {
        ((self.now - self.cfg.window).max(0) / 3600) as u32 + 1
    }

    /// (API exchanges, output tokens) of the cluster's members within the window, as of the latest tick.
    pub fn damage(&self, no: u32) -> Option<(u64, u64)> {
        let cluster = self.clusters.get(&no)?;
        let first_hour = self.window_first_hour();
        Some(cluster.usage.iter().filter(|u| bucket_in_window(u.0, first_hour)).fold((0, 0), |s, u| (s.0 + u.1, s.1 + u.2)))
    }

    /// Add (or take away) usage of one bucket to cluster `no`'s sums.
    pub(crate) fn cluster_usage(&mut self, no: u32, bucket: u32, requests: u64, tokens: u64, add: bool) {
        let Some(cluster) = self.clusters.get_mut(&no) else { return }; // a cluster that went this tick
        self.dirty.damaged.push(no);
        let usage = &mut cluster.usage;
        match usage.binary_search_by_key(&bucket, |u| u.0) {
            Ok(i) => {
                if add {
                    usage[i].1 += requests;
                    usage[i].2 += tokens;
                } else {
                    debug_assert!(usage[i].1 >= requests && usage[i].2 >= tokens, "cluster usage below zero");
                    usage[i].1 -= requests;
                    usage[i].2 -= tokens;
                    if usage[i].1 == 0 && usage[i].2 == 0 {
                        usage.remove(i);
                    }
                }
            }
            Err(i) => {
                debug_assert!(add, "taking usage from a bucket the cluster does not hold");
                if add {
                    usage.insert(i, (bucket, requests, tokens));
                }
            }
        }
    }

    /// Account `a` moves from cluster `from` to cluster `to` (either may be NONE): its usage goes with it.
    pub(crate) fn move_usage(&mut self, a: u32, from: u32, to: u32) {
        if self.acct[a as usize].usage.is_empty() {
            return;
        }
        let first_hour = self.window_first_hour();
        let usage: Vec<(u32, u32, u32)> = self.acct[a as usize].usage.iter()
            .filter(|u| bucket_in_window(u.0, first_hour)).copied().collect(); // (hours already out: pruned)
        for (bucket, r, t) in usage {
            if from != NONE {
                self.cluster_usage(from, bucket, r as u64, t as u64, false);
            }
            if to != NONE {
                self.cluster_usage(to, bucket, r as u64, t as u64, true);
            }
        }
    }

    /// Drop the buckets that left the window (with the members' own, at a bucket boundary).
    pub(crate) fn prune_cluster_usage(&mut self, first_hour: u32) {
        for (&no, cluster) in self.clusters.iter_mut() {
            let keep = cluster.usage.partition_point(|u| !bucket_in_window(u.0, first_hour));
            if keep > 0 {
                cluster.usage.drain(..keep);
                self.dirty.damaged.push(no); // an hour left the window: its damage moved
            }
        }
    }

    /// Clusters whose damage moved in the last applied tick (usage arrived, members came or went, an
    /// hour left the window), sorted.
    pub fn damage_changed(&self) -> Vec<u32> {
        let mut out: Vec<u32> = self.dirty.damaged.iter().copied().filter(|c| self.clusters.contains_key(c)).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The same sums counted from the members (the consistency check compares them).
    pub fn damage_fresh(&self, no: u32) -> (u64, u64) {
        let first_hour = self.window_first_hour();
        let mut sums = (0u64, 0u64);
        for a in self.cluster_members(no) {
            for u in self.acct[a as usize].usage.iter() {
                if bucket_in_window(u.0, first_hour) {
                    sums.0 += u.1 as u64;
                    sums.1 += u.2 as u64;
                }
            }
        }
        sums
    }
}
