//! The writer task: the one thread that commits to redb, with group commit.
//!
//! Callers send a `WriteBatch` through a channel and await the reply. The thread takes every
//! request already queued (up to `WriterOptions::max_group`) and commits them in one
//! transaction: one fsync for many callers. The group is `Immediate` if any of its batches needs
//! it. If the merged transaction fails, each batch is retried alone, so a batch with a failing
//! operation fails only itself. After an `Eventual` commit the thread makes it durable with an
//! `Immediate` commit within `flush_interval`, even under continuous load.
//!
//! A dedicated OS thread rather than a tokio task, because a commit blocks on fsync. Dropping a
//! `commit` future does not cancel the write: a queued batch is always committed.

use std::future::Future;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::Instant;

use tokio::sync::oneshot;

use super::batch::WriteBatch;
use super::records::{CommitStats, Durability, WriterOptions};
use super::{Store, StoreError};

/// Starts the writer thread. See the module documentation.
#[derive(Debug)]
pub struct Writer;

/// A cheap, cloneable handle to the writer thread. The thread stops when every handle is
/// dropped (after committing what was queued and flushing) or on [`WriterHandle::shutdown`].
#[derive(Clone, Debug)]
pub struct WriterHandle {
    requests: Sender<Request>,
}

enum Request {
    Commit(CommitRequest),
    Flush(oneshot::Sender<Result<(), StoreError>>),
    Shutdown(oneshot::Sender<Result<(), StoreError>>),
}

struct CommitRequest {
    batch: WriteBatch,
    durability: Durability,
    reply: oneshot::Sender<Result<CommitStats, StoreError>>,
}

impl Writer {
    /// Starts the writer with default options.
    pub fn spawn(store: Store) -> WriterHandle {
        Self::spawn_with(store, WriterOptions::default())
    }

    /// Starts the writer.
    ///
    /// # Panics
    /// If the OS refuses to start a thread (resource exhaustion at start-up).
    pub fn spawn_with(store: Store, options: WriterOptions) -> WriterHandle {
        let (requests, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("readyd-store-writer".into())
            .spawn(move || run(store, &queue, &options))
            .expect("the OS refused to start the store writer thread");
        WriterHandle { requests }
    }
}

impl WriterHandle {
    /// Queues `batch` now (calls are committed in call order) and resolves when it is committed
    /// with at least `durability` (more if the batch or its group requires it).
    pub fn commit(
        &self,
        batch: WriteBatch,
        durability: Durability,
    ) -> impl Future<Output = Result<CommitStats, StoreError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self.requests.send(Request::Commit(CommitRequest {
            batch,
            durability,
            reply,
        }));
        async move {
            sent.map_err(|_| StoreError::WriterClosed)?;
            answer.await.map_err(|_| StoreError::WriterClosed)?
        }
    }

    /// Makes every earlier commit durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Flush(reply))
            .map_err(|_| StoreError::WriterClosed)?;
        answer.await.map_err(|_| StoreError::WriterClosed)?
    }

    /// Commits what is queued before this call, flushes, and stops the thread; when it returns
    /// the writer no longer holds the database. Later commits through any handle fail with
    /// [`StoreError::WriterClosed`].
    pub async fn shutdown(self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Shutdown(reply))
            .map_err(|_| StoreError::WriterClosed)?;
        answer.await.map_err(|_| StoreError::WriterClosed)?
    }
}

/// When the oldest commit not yet durable was made.
struct Unflushed(Option<Instant>);

type ShutdownReply = (
    oneshot::Sender<Result<(), StoreError>>,
    Result<(), StoreError>,
);

fn run(store: Store, queue: &Receiver<Request>, options: &WriterOptions) {
    let shutdown = serve(&store, queue, options);
    // Released before answering `shutdown`, so that its caller may reopen the file at once.
    drop(store);
    if let Some((reply, result)) = shutdown {
        let _ = reply.send(result);
    }
}

/// Serves requests until `shutdown` (returned with its answer) or until every handle is gone.
fn serve(
    store: &Store,
    queue: &Receiver<Request>,
    options: &WriterOptions,
) -> Option<ShutdownReply> {
    let mut unflushed = Unflushed(None);
    let mut carried: Option<Request> = None;
    loop {
        let request = match carried.take() {
            Some(request) => request,
            None => match next_request(store, queue, options, &mut unflushed) {
                Some(request) => request,
                None => break,
            },
        };
        match request {
            Request::Commit(first) => {
                let mut group = vec![first];
                while group.len() < options.max_group.max(1) {
                    match queue.try_recv() {
                        Ok(Request::Commit(next)) => group.push(next),
                        Ok(other) => {
                            carried = Some(other);
                            break;
                        }
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                }
                commit_group(store, group, options, &mut unflushed);
            }
            Request::Flush(reply) => {
                let _ = reply.send(flush(store, &mut unflushed));
            }
            Request::Shutdown(reply) => return Some((reply, flush(store, &mut unflushed))),
        }
    }
    if unflushed.0.is_some()
        && let Err(error) = store.flush()
    {
        tracing::error!(%error, "final flush of the state file failed");
    }
    None
}

/// Waits for the next request, flushing when the flush deadline passes; `None` when every
/// handle is gone.
fn next_request(
    store: &Store,
    queue: &Receiver<Request>,
    options: &WriterOptions,
    unflushed: &mut Unflushed,
) -> Option<Request> {
    loop {
        let Some(since) = unflushed.0 else {
            return queue.recv().ok();
        };
        let deadline = since + options.flush_interval;
        let wait = deadline.saturating_duration_since(Instant::now());
        match queue.recv_timeout(wait) {
            Ok(request) => return Some(request),
            Err(RecvTimeoutError::Timeout) => {
                if let Err(error) = flush(store, unflushed) {
                    tracing::error!(%error, "flushing eventual commits failed");
                    // Retrying at once would spin; the next commit or flush retries.
                    unflushed.0 = None;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
}

fn flush(store: &Store, unflushed: &mut Unflushed) -> Result<(), StoreError> {
    store.flush()?;
    unflushed.0 = None;
    Ok(())
}

fn commit_group(
    store: &Store,
    group: Vec<CommitRequest>,
    options: &WriterOptions,
    unflushed: &mut Unflushed,
) {
    // A batch refused by its builder never joins a transaction.
    let mut ready = Vec::with_capacity(group.len());
    for mut request in group {
        match request.batch.take_error() {
            Some(error) => {
                let _ = request.reply.send(Err(error));
            }
            None => ready.push(request),
        }
    }
    if ready.is_empty() {
        return;
    }
    let overdue = unflushed
        .0
        .is_some_and(|since| since.elapsed() >= options.flush_interval);
    let durability = if overdue {
        Durability::Immediate
    } else {
        ready
            .iter()
            .map(|r| store.effective_durability(&r.batch, r.durability))
            .max()
            .unwrap_or(Durability::Immediate)
    };
    let batches: Vec<&WriteBatch> = ready.iter().map(|r| &r.batch).collect();
    match store.commit_group(&batches, durability) {
        Ok(all_stats) => {
            note_commit(unflushed, durability);
            for (request, stats) in ready.into_iter().zip(all_stats) {
                let _ = request.reply.send(Ok(stats));
            }
        }
        Err(error) if ready.len() == 1 => {
            if let Some(request) = ready.pop() {
                let _ = request.reply.send(Err(error));
            }
        }
        Err(error) => {
            tracing::debug!(%error, batches = ready.len(), "group commit failed; retrying each batch alone");
            for request in ready {
                let durability = store.effective_durability(&request.batch, request.durability);
                let result = store
                    .commit_group(&[&request.batch], durability)
                    .map(|mut stats| {
                        note_commit(unflushed, durability);
                        stats.pop().unwrap_or_default()
                    });
                let _ = request.reply.send(result);
            }
        }
    }
}

fn note_commit(unflushed: &mut Unflushed, durability: Durability) {
    match durability {
        Durability::Immediate => unflushed.0 = None,
        Durability::Eventual => {
            unflushed.0.get_or_insert_with(Instant::now);
        }
    }
}
