//! The Python binding (`graph._kernel`): thin and typed. Config arrives as one typed struct per stage
//! (`config`), every call enters its stage through one helper (`names`), results are named classes.

pub mod config;
pub mod graph;
pub mod names;
pub mod window;
