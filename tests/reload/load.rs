//! The continuous request loop: workers that send requests to the daemon one after another
//! until stopped, and count every answer. Any answer that is not 2xx, and any request that
//! cannot be sent or is not answered (the client gives up after a generous bound), is a
//! failure, kept with its method, path, status and body.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use readyd_tests::send;

/// One request of the loop.
#[derive(Clone, Debug)]
pub struct Target {
    pub method: &'static str,
    pub path: String,
    pub token: Option<&'static str>,
}

impl Target {
    pub fn get(path: impl Into<String>, token: &'static str) -> Target {
        Target {
            method: "GET",
            path: path.into(),
            token: Some(token),
        }
    }

    pub fn public(path: impl Into<String>) -> Target {
        Target {
            method: "GET",
            path: path.into(),
            token: None,
        }
    }

    pub fn post(path: impl Into<String>, token: &'static str) -> Target {
        Target {
            method: "POST",
            path: path.into(),
            token: Some(token),
        }
    }
}

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    failures: Mutex<Vec<String>>,
}

/// A running request loop.
pub struct Load {
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

/// What a finished loop saw.
#[derive(Debug)]
pub struct LoadReport {
    pub ok: u64,
    pub failures: Vec<String>,
}

impl Load {
    /// Start `workers` workers, each cycling through `targets` (starting at a different one).
    pub fn start(addr: SocketAddr, targets: Vec<Target>, workers: usize) -> Load {
        assert!(!targets.is_empty());
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let targets = Arc::new(targets);
        let workers = (0..workers)
            .map(|w| {
                let (stop, counters, targets) = (stop.clone(), counters.clone(), targets.clone());
                tokio::spawn(async move {
                    let mut i = w;
                    while !stop.load(Ordering::SeqCst) {
                        let target = targets[i % targets.len()].clone();
                        i += 1;
                        match one(addr, &target).await {
                            Ok(()) => {
                                counters.ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(failure) => counters.failures.lock().unwrap().push(failure),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            counters,
            workers,
        }
    }

    /// Requests answered with success so far.
    pub fn completed(&self) -> u64 {
        self.counters.ok.load(Ordering::SeqCst)
    }

    /// Failures so far.
    pub fn failures(&self) -> Vec<String> {
        self.counters.failures.lock().unwrap().clone()
    }

    /// Wait until at least `n` more requests than `since` have succeeded: proof that the loop
    /// kept running across whatever happened in between.
    pub async fn wait_past(&self, since: u64, n: u64) {
        crate::poll::eventually(&format!("{n} more requests of the loop"), || async {
            let done = self.completed();
            if done >= since + n {
                Ok(())
            } else {
                Err(format!(
                    "{} since, failures so far: {:?}",
                    done - since,
                    self.failures()
                ))
            }
        })
        .await;
    }

    /// Stop the workers (each finishes its request in flight) and report.
    pub async fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers {
            worker.await.expect("a load worker does not panic");
        }
        LoadReport {
            ok: self.counters.ok.load(Ordering::SeqCst),
            failures: self.counters.failures.lock().unwrap().clone(),
        }
    }
}

/// Send one request; `Err` describes a failure. The shared client panics when it cannot
/// connect or gets no answer within its bound: run it as a task so that a panic is a
/// recorded failure rather than the end of the worker.
async fn one(addr: SocketAddr, target: &Target) -> Result<(), String> {
    let (method, path) = (target.method, target.path.clone());
    let authorization = target.token.map(|t| format!("Bearer {t}"));
    let sent = tokio::spawn(async move {
        let mut headers = Vec::new();
        if let Some(value) = &authorization {
            headers.push(("authorization", value.as_str()));
        }
        send(addr, method, &path, &headers, Vec::new()).await
    })
    .await;
    match sent {
        Ok(answer) if (200..300).contains(&answer.status) => Ok(()),
        Ok(answer) => Err(format!(
            "{} {}: {} {}",
            target.method,
            target.path,
            answer.status,
            answer.text()
        )),
        Err(e) => {
            let reason = match e.try_into_panic() {
                Ok(payload) => payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".into()),
                Err(e) => e.to_string(),
            };
            Err(format!("{} {}: {reason}", target.method, target.path))
        }
    }
}
