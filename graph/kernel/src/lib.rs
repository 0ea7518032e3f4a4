//! fraudgraph's detection kernel (`graph._kernel`): the state on integer ids. The Python package keeps
//! the policy (scores, severities, alerts, verdicts).
//!
//! Modules, one direction of use (each uses only those after it):
//! * `binding` — the Python classes and their typed config;
//! * `state` — a stage's whole state as checkpoint bytes;
//! * `stage_b` — the global graph: binding, cores, weak edges, operations, damage, features;
//! * `stage_a` — one input partition's window: decoding, ordering, de-duplication, change batches;
//! * `store` — interning, hash indexes, packed lists, allocation.

pub mod binding;
pub mod stage_a;
pub mod stage_b;
pub mod state;
pub mod store;

#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: store::alloc::KernelAlloc = store::alloc::KernelAlloc;

use pyo3::prelude::*;

#[pymodule]
fn _kernel(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(binding::window::fast_decode, m)?)?;
    m.add_class::<binding::window::Window>()?;
    m.add_class::<binding::window::Batch>()?;
    m.add_class::<binding::graph::Graph>()?;
    m.add_class::<binding::graph::Tick>()?;
    m.add_class::<binding::graph::Measured>()?;
    m.add("FORMAT_VERSION", stage_a::changes::FORMAT_VERSION)?;
    m.add("LINK_KINDS", binding::graph::KIND_NAMES.to_vec())?;
    m.add("STATE_FORMAT", format!("{}-{:016x}", state::STATE_VERSION, state::layout()))?;
    Ok(())
}
