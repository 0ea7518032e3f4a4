//! The names a window and a graph in one process share, moved into the stage a call runs for the
//! length of that call (`enter`): the one preamble every binding method goes through.

use crate::stage_a::window;
use crate::stage_b::graph;
use crate::store::intern;
use std::sync::{Arc, Mutex, MutexGuard};

/// Names a window and a graph in one process share (each call moves them into the stage it runs).
pub type SharedNames = Arc<Mutex<intern::Names>>;

pub trait HasNames {
    fn names_mut(&mut self) -> &mut intern::Names;
}
impl HasNames for window::Window {
    fn names_mut(&mut self) -> &mut intern::Names {
        &mut self.names
    }
}
impl HasNames for graph::Graph {
    fn names_mut(&mut self) -> &mut intern::Names {
        &mut self.names
    }
}

/// A stage with the shared names moved in for the length of one call, and back out when it ends.
pub struct Entered<'a, T: HasNames> {
    stage: &'a mut T,
    names: MutexGuard<'a, intern::Names>,
}
impl<'a, T: HasNames> Entered<'a, T> {
    pub fn new(stage: &'a mut T, names: &'a SharedNames) -> Self {
        let mut names = names.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::swap(stage.names_mut(), &mut *names);
        Entered { stage, names }
    }
}
impl<T: HasNames> Drop for Entered<'_, T> {
    fn drop(&mut self) {
        std::mem::swap(self.stage.names_mut(), &mut *self.names);
    }
}
impl<T: HasNames> std::ops::Deref for Entered<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.stage
    }
}
impl<T: HasNames> std::ops::DerefMut for Entered<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.stage
    }
}

/// Run `f` on `stage` with the shared names moved in.
pub fn enter<T: HasNames, R>(stage: &mut T, names: &SharedNames, f: impl FnOnce(&mut T) -> R) -> R {
    let mut entered = Entered::new(stage, names);
    f(&mut entered)
}
