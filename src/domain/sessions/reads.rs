//! Session rows read by id for verification, in batches: the reads that
//! miss the live-session cache while others are running wait and go
//! together in the next query, one `WHERE id IN (…)` for many sessions.
//! Under load a database round trip (and on SQLite, the hand-off to the
//! connection's worker thread and back) is paid once per batch instead of
//! once per request; alone, a read goes at once.

use std::collections::HashMap;
use std::future::Future;
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
        let store = store.clone();
        self.read(project_id, id, move |ids| {
            let store = store.clone();
            async move { store.sessions_by_ids(ids).await }
        })
        .await
    }

    /// As `session`, with `fetch` reading the rows of a batch's ids should
    /// this read start a batch task.
    async fn read<F, Fut>(
        &self,
        project_id: &str,
        id: &str,
        fetch: F,
    ) -> StoreResult<Option<sessions::Model>>
    where
        F: Fn(Vec<String>) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<Vec<sessions::Model>>> + Send + 'static,
    {
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
            tokio::spawn(drain(fetch, self.queue.clone()));
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
async fn drain<F, Fut>(fetch: F, queue: Arc<Mutex<Queue>>)
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = StoreResult<Vec<sessions::Model>>>,
{
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
        let mut ids: Vec<String> = batch.iter().map(|(_, id, _)| id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        match fetch(ids).await {
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
                // The store's own message: `read` names it a database
                // error again.
                let message = match e {
                    StoreError::Db(db) => db.to_string(),
                    StoreError::Duplicate(m) => m,
                };
                for (_, _, reply) in batch {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::sync::Semaphore;
    use tokio::task::JoinHandle;
    use tokio::time::timeout;

    use super::*;

    const PATIENCE: Duration = Duration::from_secs(5);

    fn row(project_id: &str, id: &str) -> sessions::Model {
        sessions::Model {
            id: id.to_owned(),
            project_id: project_id.to_owned(),
            user_id: "u".to_owned(),
            method: "password".to_owned(),
            amr: "[]".to_owned(),
            created_at: 0,
            last_issued_at: 0,
            expires_at: 1,
            revoked_at: None,
            vendor_credential: None,
            vendor_pending: false,
        }
    }

    /// Fetches held at a gate until the test opens it, counting how many
    /// are in, how many at once at most, and the ids of each batch.
    struct Fetches {
        gate: Semaphore,
        entered: AtomicUsize,
        inside: AtomicUsize,
        most_inside: AtomicUsize,
        batches: Mutex<Vec<Vec<String>>>,
    }

    impl Fetches {
        fn new() -> Arc<Self> {
            Arc::new(Fetches {
                gate: Semaphore::new(0),
                entered: AtomicUsize::new(0),
                inside: AtomicUsize::new(0),
                most_inside: AtomicUsize::new(0),
                batches: Mutex::new(Vec::new()),
            })
        }

        /// A fetch that waits at the gate, then panics if `panic`, or
        /// answers with a row of project `p` for each id.
        fn fetch(
            self: &Arc<Self>,
            panic: bool,
        ) -> impl Fn(
            Vec<String>,
        )
            -> futures::future::BoxFuture<'static, StoreResult<Vec<sessions::Model>>>
        + Send
        + 'static {
            let this = self.clone();
            move |ids| {
                let this = this.clone();
                Box::pin(async move {
                    this.entered.fetch_add(1, Ordering::SeqCst);
                    let now = this.inside.fetch_add(1, Ordering::SeqCst) + 1;
                    this.most_inside.fetch_max(now, Ordering::SeqCst);
                    this.batches.lock().unwrap().push(ids.clone());
                    this.gate.acquire().await.expect("gate open").forget();
                    this.inside.fetch_sub(1, Ordering::SeqCst);
                    assert!(!panic, "a batch read panics");
                    Ok(ids.iter().map(|id| row("p", id)).collect())
                })
            }
        }

        async fn until(&self, what: impl Fn(&Self) -> bool) {
            timeout(PATIENCE, async {
                while !what(self) {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
            .await
            .expect("the condition came true in time");
        }
    }

    type Read = JoinHandle<StoreResult<Option<sessions::Model>>>;

    fn read(
        reads: &Arc<SessionReads>,
        fetches: &Arc<Fetches>,
        panic: bool,
        p: &str,
        id: &str,
    ) -> Read {
        let (reads, fetch) = (reads.clone(), fetches.fetch(panic));
        let (p, id) = (p.to_owned(), id.to_owned());
        tokio::spawn(async move { reads.read(&p, &id, fetch).await })
    }

    /// Two batches held in their fetches (the most that run at once) and
    /// `waiting` reads queued behind them, in order.
    async fn two_held_and(
        reads: &Arc<SessionReads>,
        fetches: &Arc<Fetches>,
        panic: bool,
        waiting: &[(&str, &str)],
    ) -> Vec<Read> {
        let mut handles = vec![read(reads, fetches, panic, "p", "a")];
        fetches
            .until(|f| f.entered.load(Ordering::SeqCst) == 1)
            .await;
        handles.push(read(reads, fetches, panic, "p", "b"));
        fetches
            .until(|f| f.entered.load(Ordering::SeqCst) == 2)
            .await;
        for (p, id) in waiting {
            handles.push(read(reads, fetches, panic, p, id));
        }
        let queued = || lock(&reads.queue).waiting.len();
        fetches.until(|_| queued() == waiting.len()).await;
        assert_eq!(lock(&reads.queue).running, MAX_RUNNING);
        handles
    }

    async fn answer(handle: Read) -> StoreResult<Option<sessions::Model>> {
        timeout(PATIENCE, handle)
            .await
            .expect("the read was answered")
            .expect("the read did not panic")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_reads_go_together_and_each_gets_its_own_row() {
        let (reads, fetches) = (Arc::new(SessionReads::default()), Fetches::new());
        let waiting = [("p", "c"), ("p", "d"), ("p", "c"), ("other", "e")];
        let handles = two_held_and(&reads, &fetches, false, &waiting).await;
        fetches.gate.add_permits(100);
        let mut answers = Vec::new();
        for handle in handles {
            answers.push(answer(handle).await.expect("read").map(|r| r.id));
        }
        let some = |id: &str| Some(id.to_owned());
        // Another project's session reads as none.
        assert_eq!(
            answers,
            [some("a"), some("b"), some("c"), some("d"), some("c"), None]
        );
        let batches = fetches.batches.lock().unwrap().clone();
        assert_eq!(batches.len(), 3, "{batches:?}");
        assert_eq!(
            batches[2],
            ["c", "d", "e"],
            "the waiting reads in one batch, ids once"
        );
        assert_eq!(fetches.most_inside.load(Ordering::SeqCst), MAX_RUNNING);
        let q = lock(&reads.queue);
        assert_eq!((q.running, q.waiting.len()), (0, 0));
    }

    #[tokio::test]
    async fn a_failed_batch_gives_each_read_the_store_error_once() {
        let reads = SessionReads::default();
        let fetch = |_ids: Vec<String>| async {
            Err(StoreError::Db(DbErr::Custom("connection reset".to_owned())))
        };
        let (a, b) = tokio::join!(reads.read("p", "a", fetch), reads.read("p", "b", fetch));
        for answer in [a, b] {
            let err = answer.expect_err("a failed read").to_string();
            assert!(err.contains("connection reset"), "{err}");
            assert_eq!(err.matches("database error").count(), 1, "{err}");
        }
        let q = lock(&reads.queue);
        assert_eq!((q.running, q.waiting.len()), (0, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_that_panics_fails_its_reads_and_those_waiting_and_the_next_read_goes() {
        let (reads, fetches) = (Arc::new(SessionReads::default()), Fetches::new());
        let waiting = [("p", "c"), ("p", "d"), ("p", "e")];
        let handles = two_held_and(&reads, &fetches, true, &waiting).await;
        fetches.gate.add_permits(100);
        for handle in handles {
            let err = answer(handle).await.expect_err("a failed read");
            assert!(err.to_string().contains("abandoned"), "{err}");
        }
        {
            let q = lock(&reads.queue);
            assert_eq!((q.running, q.waiting.len()), (0, 0));
        }
        let after = answer(read(&reads, &fetches, false, "p", "f")).await;
        assert_eq!(after.expect("read").map(|r| r.id), Some("f".to_owned()));
    }
}
