//! Session rows read by id for verification, in batches: the reads that
//! miss the live-session cache while others are running wait and go
//! together in the next query, one `WHERE id IN (…)` for many sessions.
//! Under load a database round trip (and on SQLite, the hand-off to the
//! connection's worker thread and back) is paid once per batch instead of
//! once per request; alone, a read goes at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sea_orm::DbErr;
use tokio::sync::oneshot;

use crate::store::entity::sessions;
use crate::store::{Store, StoreError, StoreResult};

/// The most sessions read by one query.
const MAX_BATCH: usize = 128;
/// The most batch queries running at once.
const MAX_RUNNING: usize = 2;

type Reply = oneshot::Sender<Result<Option<sessions::Model>, String>>;

/// A read waiting for its batch: project, session id, where to answer.
type Waiting = (String, String, Reply);

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    running: usize,
}

/// Batched reads of sessions by id.
#[derive(Default)]
pub(in crate::domain) struct SessionReads {
    queue: Arc<Mutex<Queue>>,
}

impl SessionReads {
    /// The session `id` of `project_id`, if any, read with whatever other
    /// reads are waiting.
    pub(in crate::domain) async fn session(
        &self,
        store: &Store,
        project_id: &str,
        id: &str,
    ) -> StoreResult<Option<sessions::Model>> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut q = lock(&self.queue);
            q.waiting.push((project_id.to_owned(), id.to_owned(), tx));
            let start = q.running < MAX_RUNNING;
            if start {
                q.running += 1;
            }
            start
        };
        if start {
            tokio::spawn(drain(store.clone(), self.queue.clone()));
        }
        let failed = |message: String| StoreError::Db(DbErr::Custom(message));
        match rx.await {
            Ok(Ok(row)) => Ok(row),
            Ok(Err(message)) => Err(failed(message)),
            Err(_) => Err(failed("the session read was abandoned".to_owned())),
        }
    }
}

fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts a batch task out of the queue if it ends before finding the
/// queue empty, i.e. if it panics or is dropped: it drops the reads it took
/// (their callers get an error) and those still waiting, so that no caller
/// waits for a task that is gone.
struct Running {
    queue: Arc<Mutex<Queue>>,
    done: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.done {
            let mut q = lock(&self.queue);
            q.running -= 1;
            q.waiting.clear();
        }
    }
}

/// Reads batches until none is waiting.
async fn drain(store: Store, queue: Arc<Mutex<Queue>>) {
    let mut running = Running {
        queue: queue.clone(),
        done: false,
    };
    loop {
        let batch: Vec<Waiting> = {
            let mut q = lock(&queue);
            let n = q.waiting.len().min(MAX_BATCH);
            if n == 0 {
                // Counted out under the same lock that found the queue
                // empty: a read queued after this starts its own task.
                q.running -= 1;
                running.done = true;
                return;
            }
            q.waiting.drain(..n).collect()
        };
        let mut ids: Vec<&str> = batch.iter().map(|(_, id, _)| id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        match store.sessions_by_ids(&ids).await {
            Ok(rows) => {
                let by_id: HashMap<String, sessions::Model> =
                    rows.into_iter().map(|r| (r.id.clone(), r)).collect();
                for (project_id, id, reply) in batch {
                    let row = by_id
                        .get(&id)
                        .filter(|r| r.project_id == project_id)
                        .cloned();
                    let _ = reply.send(Ok(row));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for (_, _, reply) in batch {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
}
