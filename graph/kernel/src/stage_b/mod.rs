//! Stage B, the global graph (`graph`) and the tables it keeps (`tables`); its behaviour by
//! algorithm: cores (`cores`), weak edges (`weak`), operations and identity (`ops`), owned templates
//! (`owned`), damage (`damage`), features (`features`), the full recompute and the consistency check
//! the tests use (`recompute`, `check`).

pub mod check;
pub mod cores;
pub mod damage;
pub mod features;
pub mod graph;
pub mod ops;
pub mod owned;
pub mod recompute;
pub mod tables;
pub mod weak;
