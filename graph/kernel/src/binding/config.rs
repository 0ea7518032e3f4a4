//! The kernel's configuration as Python hands it over (`DetectionConfig.kernel()`, a dict): one typed
//! struct per stage, read in one extraction and checked once.

use crate::stage_a::window::WindowConfig;
use crate::stage_b::graph::GraphConfig;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn whole_seconds(name: &str, v: f64) -> PyResult<i64> {
    if v <= 0.0 || v.fract() != 0.0 {
        return Err(PyValueError::new_err(format!("{name} must be a positive whole number of seconds, not {v}")));
    }
    Ok(v as i64)
}

/// Stage A's settings.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct WindowArgs {
    window_seconds: f64,
    tick_seconds: f64,
    allowed_lateness_seconds: f64,
    max_clock_skew_seconds: f64,
    skew_sample: usize,
    datacenter_asns: Vec<String>,
    partition: u32,
}

impl WindowArgs {
    pub fn config(self) -> PyResult<WindowConfig> {
        Ok(WindowConfig {
            window: whole_seconds("window_seconds", self.window_seconds)?,
            tick: whole_seconds("tick_seconds", self.tick_seconds)?,
            lateness: self.allowed_lateness_seconds,
            max_skew: self.max_clock_skew_seconds,
            skew_sample: self.skew_sample,
            datacenter_asns: self.datacenter_asns.into_iter().collect(),
            partition: self.partition,
        })
    }
}

/// Stage B's settings.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct GraphArgs {
    window_seconds: f64,
    tick_seconds: f64,
    device_max_degree: u32,
    payment_max_degree: u32,
    exclusivity_min: f64,
    sync_min_accounts: u32,
    sync_min_lift: f64,
    sync_min_overlap: f64,
    sync_recent_buckets: u32,
    sync_min_buckets: u16,
    sync_min_ratio: f64,
    weak_cover_min: f64,
    weak_min_accounts: u32,
    weak_purity_min: f64,
    weak_min_entities: u32,
    weak_max_groups: u32,
    track_min_size: u32,
    hub_copy_overlap: f64,
    evidence_limit: usize,
    freemail_domains: Vec<String>,
    group_min_accounts: u32,
    device_rotation_min: u32,
    group_captive_min: f64,
    group_set_min: f64,
    template_max_degree: u32,
}

impl GraphArgs {
    pub fn config(self) -> PyResult<GraphConfig> {
        if self.weak_min_entities < 1 || self.track_min_size < 2 {
            return Err(PyValueError::new_err("weak_min_entities must be >= 1 and track_min_size >= 2"));
        }
        Ok(GraphConfig {
            window: whole_seconds("window_seconds", self.window_seconds)?,
            tick: whole_seconds("tick_seconds", self.tick_seconds)?,
            device_max_degree: self.device_max_degree,
            payment_max_degree: self.payment_max_degree,
            exclusivity_min: self.exclusivity_min,
            sync_bucket_seconds: 60,
            sync_min_accounts: self.sync_min_accounts,
            sync_min_lift: self.sync_min_lift,
            sync_min_overlap: self.sync_min_overlap,
            sync_recent_buckets: self.sync_recent_buckets as usize,
            sync_min_buckets: self.sync_min_buckets,
            sync_min_ratio: self.sync_min_ratio,
            weak_cover_min: self.weak_cover_min,
            weak_min_accounts: self.weak_min_accounts,
            weak_purity_min: self.weak_purity_min,
            weak_min_entities: self.weak_min_entities,
            weak_max_groups: self.weak_max_groups,
            track_min_size: self.track_min_size,
            hub_copy_overlap: self.hub_copy_overlap,
            evidence_limit: self.evidence_limit,
            freemail: self.freemail_domains.into_iter().collect(),
            group_min_accounts: self.group_min_accounts,
            device_rotation_min: self.device_rotation_min,
            group_captive_min: self.group_captive_min,
            group_set_min: self.group_set_min,
            template_max_degree: self.template_max_degree,
        })
    }
}
