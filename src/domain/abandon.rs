//! Undoing a reservation when the request that made it is cancelled.

use std::future::Future;
use std::pin::Pin;

/// Runs its undo, in the background, if dropped while armed: the caller
/// went away (the request's future was dropped) between a reservation and
/// the end of what it reserved for. [`Abandon::disarm`] once the
/// reservation is settled either way.
pub(crate) struct Abandon {
    undo: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Abandon {
    /// Arms `undo`, which runs only if this is dropped still armed.
    pub(crate) fn new(undo: impl Future<Output = ()> + Send + 'static) -> Abandon {
        Abandon {
            undo: Some(Box::pin(undo)),
        }
    }

    /// The reservation is settled: nothing to undo.
    pub(crate) fn disarm(&mut self) {
        self.undo = None;
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if let (Some(undo), Ok(rt)) = (self.undo.take(), tokio::runtime::Handle::try_current()) {
            rt.spawn(undo);
        }
    }
}
