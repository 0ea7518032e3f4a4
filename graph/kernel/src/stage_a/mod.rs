//! Stage A, one input partition: the strict JSON decoder (`contract`), event-time ordering and
//! de-duplication (`ordering`), the rolling window of links (`window`) and the change batches it
//! closes for stage B (`changes`).

pub mod changes;
pub mod contract;
pub mod ordering;
pub mod window;
