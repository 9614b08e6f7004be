//! The one shape every Lumen service has.
//!
//! A service is started by its crate's `spawn(config, deps)`, which returns a
//! [`ServiceHandle`]: the bound address (when the service listens), a way to
//! stop it that drains its work and returns the service's own `Result`, and
//! [`ServiceHandle::stopped`] to notice a service that ended by itself.
//! Dropping a handle stops the service too, so a test that panics leaks
//! nothing.
//!
//! Loop services (matchmaker, verifier, indexer) run [`rounds`]: a round,
//! then sleep until woken or the poll interval passes, until cancelled. A
//! round that is in flight when shutdown comes is finished, never cut.

use std::{fmt, future::Future, net::SocketAddr, time::Duration};

use tokio::{sync::broadcast, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Why a service stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError<E> {
    /// The service returned an error.
    #[error("{service}: {source}")]
    Failed {
        /// The service's name.
        service: &'static str,
        /// Its error.
        source: E,
    },
    /// The service's task panicked.
    #[error("{service} panicked: {message}")]
    Panicked {
        /// The service's name.
        service: &'static str,
        /// The panic's message.
        message: String,
    },
}

impl<E> ServiceError<E> {
    /// The name of the service that failed.
    pub fn service(&self) -> &'static str {
        match self {
            Self::Failed { service, .. } | Self::Panicked { service, .. } => service,
        }
    }

    /// Converts the service's own error, e.g. into a boxed error to collect
    /// the failures of several services.
    pub fn map<F>(self, f: impl FnOnce(E) -> F) -> ServiceError<F> {
        match self {
            Self::Failed { service, source } => ServiceError::Failed { service, source: f(source) },
            Self::Panicked { service, message } => ServiceError::Panicked { service, message },
        }
    }
}

enum Join<E> {
    Running(JoinHandle<Result<(), E>>),
    Done(Result<(), ServiceError<E>>),
    Taken,
}

/// A running service. [`shutdown`](Self::shutdown) stops it and returns its
/// result; dropping the handle stops it without waiting.
pub struct ServiceHandle<E> {
    name: &'static str,
    addr: Option<SocketAddr>,
    token: CancellationToken,
    join: Join<E>,
}

impl<E> Drop for ServiceHandle<E> {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl<E> fmt::Debug for ServiceHandle<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceHandle")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("running", &matches!(self.join, Join::Running(_)))
            .finish()
    }
}

impl<E: Send + 'static> ServiceHandle<E> {
    /// Runs `service` as a task; cancelling `shutdown` must make it finish
    /// its work in flight and return.
    pub fn spawn<F>(
        name: &'static str,
        addr: Option<SocketAddr>,
        shutdown: CancellationToken,
        service: F,
    ) -> Self
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let task = tokio::spawn(service);
        Self { name, addr, token: shutdown, join: Join::Running(task) }
    }

    /// The service's name (as in logs and errors).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The address the service listens on, when it listens.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Waits until the service ends by itself (an error, a panic, or
    /// someone cancelled its token). Cancel-safe: the result is kept for
    /// [`shutdown`](Self::shutdown).
    pub async fn stopped(&mut self) {
        if let Join::Running(task) = &mut self.join {
            let result = match task.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(source)) => Err(ServiceError::Failed { service: self.name, source }),
                Err(join) => Err(ServiceError::Panicked { service: self.name, message: panic_message(join) }),
            };
            self.join = Join::Done(result);
        }
    }

    /// Whether the service has ended.
    pub fn is_finished(&self) -> bool {
        match &self.join {
            Join::Running(task) => task.is_finished(),
            Join::Done(_) | Join::Taken => true,
        }
    }

    /// Runs until `signal` resolves or the service ends by itself, then
    /// shuts it down: what a binary does with its service.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Result<(), ServiceError<E>> {
        tokio::select! {
            () = signal => {}
            () = self.stopped() => {}
        }
        self.shutdown().await
    }

    /// Stops the service, waits for its work in flight, and returns how it
    /// ended.
    pub async fn shutdown(mut self) -> Result<(), ServiceError<E>> {
        self.token.cancel();
        self.stopped().await;
        match std::mem::replace(&mut self.join, Join::Taken) {
            Join::Done(result) => result,
            Join::Running(_) | Join::Taken => Ok(()),
        }
    }
}

/// A boxed error, to hold services with different error types together.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<E: std::error::Error + Send + Sync + 'static> ServiceHandle<E> {
    /// The same service with its error boxed, so that services of several
    /// kinds can be stopped as one list. Panics stay panics.
    pub fn boxed(mut self) -> ServiceHandle<BoxError> {
        // `self` is dropped below; give it a token of its own to cancel.
        let token = std::mem::replace(&mut self.token, CancellationToken::new());
        let join = match std::mem::replace(&mut self.join, Join::Taken) {
            Join::Running(task) => Join::Running(tokio::spawn(async move {
                match task.await {
                    Ok(result) => result.map_err(|e| Box::new(e) as BoxError),
                    Err(join) => match join.try_into_panic() {
                        Ok(payload) => std::panic::resume_unwind(payload),
                        Err(cancelled) => Err(Box::new(cancelled) as BoxError),
                    },
                }
            })),
            Join::Done(result) => Join::Done(result.map_err(|e| e.map(|e| Box::new(e) as BoxError))),
            Join::Taken => Join::Taken,
        };
        ServiceHandle { name: self.name, addr: self.addr, token, join }
    }
}

fn panic_message(join: tokio::task::JoinError) -> String {
    match join.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into()),
        Err(join) => join.to_string(),
    }
}

/// Errors a retry loop can classify.
pub trait Retryable {
    /// Whether the same step may succeed when tried again (a busy
    /// database, an unreachable RPC), as opposed to a bug or bad data.
    fn is_retryable(&self) -> bool;
}

/// How a loop service paces its rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Sleep between rounds when nothing wakes the service.
    pub poll: Duration,
    /// Consecutive rounds failing with an error that is not retryable
    /// before the service gives up and returns it. Retryable errors never
    /// stop a service: it heals when the database or chain comes back.
    pub max_fatal_rounds: u32,
}

impl Pace {
    /// Polls every `poll_ms`; gives up after five fatal rounds in a row.
    pub fn every_ms(poll_ms: u64) -> Self {
        Self { poll: Duration::from_millis(poll_ms), max_fatal_rounds: 5 }
    }
}

/// Runs `round` until `shutdown` is cancelled: after each round, sleeps
/// until `wake` delivers anything or `pace.poll` passes. A round in flight
/// when shutdown comes is finished. Returns the error of the last round when
/// `pace.max_fatal_rounds` rounds in a row failed with a non-retryable error.
pub async fn rounds<E, T, R, Fut>(
    service: &'static str,
    pace: Pace,
    shutdown: CancellationToken,
    mut wake: broadcast::Receiver<T>,
    mut round: R,
) -> Result<(), E>
where
    E: Retryable + fmt::Display,
    T: Clone,
    R: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    info!(target: "runtime::service", service, "started");
    let mut fatal_in_a_row = 0u32;
    loop {
        match round().await {
            Ok(()) => fatal_in_a_row = 0,
            Err(err) if err.is_retryable() => {
                fatal_in_a_row = 0;
                warn!(target: "runtime::service", service, %err, "round failed; retrying");
            }
            Err(err) => {
                fatal_in_a_row += 1;
                error!(target: "runtime::service", service, %err, in_a_row = fatal_in_a_row, "round failed");
                if fatal_in_a_row >= pace.max_fatal_rounds.max(1) {
                    error!(target: "runtime::service", service, "giving up: the error is not retryable");
                    return Err(err);
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(pace.poll) => {}
            woken = wake.recv() => {
                if let Err(broadcast::error::RecvError::Closed) = woken {
                    // Nobody can wake us any more: poll.
                    tokio::time::sleep(pace.poll).await;
                }
            }
        }
    }
    info!(target: "runtime::service", service, "stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    };

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct TestError(&'static str, bool);

    impl Retryable for TestError {
        fn is_retryable(&self) -> bool {
            self.1
        }
    }

    fn counted(
        outcome: fn(u32) -> Result<(), TestError>,
    ) -> (Arc<AtomicU32>, impl FnMut() -> std::future::Ready<Result<(), TestError>>) {
        let count = Arc::new(AtomicU32::new(0));
        let seen = count.clone();
        (count, move || std::future::ready(outcome(seen.fetch_add(1, Ordering::SeqCst))))
    }

    #[tokio::test(start_paused = true)]
    async fn fatal_errors_in_a_row_stop_the_loop_with_the_error() {
        let (_tx, rx) = broadcast::channel::<()>(1);
        let (count, round) = counted(|_| Err(TestError("corrupt row", false)));
        let pace = Pace { poll: Duration::from_secs(1), max_fatal_rounds: 3 };
        let err = rounds("test", pace, CancellationToken::new(), rx, round).await.unwrap_err();
        assert_eq!(err.0, "corrupt row");
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_errors_and_successes_reset_the_count() {
        let (_tx, rx) = broadcast::channel::<()>(1);
        // fatal, fatal, retryable, fatal, fatal, ok, fatal, fatal, fatal -> stops at the 9th.
        let (count, round) = counted(|n| match n {
            2 => Err(TestError("rpc down", true)),
            5 => Ok(()),
            _ => Err(TestError("bad", false)),
        });
        let pace = Pace { poll: Duration::from_secs(1), max_fatal_rounds: 3 };
        rounds("test", pace, CancellationToken::new(), rx, round).await.unwrap_err();
        assert_eq!(count.load(Ordering::SeqCst), 9);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_up_starts_a_round_before_the_poll_interval() {
        let (tx, rx) = broadcast::channel::<()>(4);
        let (count, round) = counted(|_| Ok(()));
        let token = CancellationToken::new();
        let pace = Pace { poll: Duration::from_secs(3600), max_fatal_rounds: 3 };
        let task = tokio::spawn(rounds("test", pace, token.clone(), rx, round));
        tokio::task::yield_now().await;
        assert_eq!(count.load(Ordering::SeqCst), 1);
        tx.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(count.load(Ordering::SeqCst), 2);
        token.cancel();
        task.await.unwrap().unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 2, "no round after shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_lets_the_round_in_flight_finish() {
        let (_tx, rx) = broadcast::channel::<()>(1);
        let finished = Arc::new(AtomicU32::new(0));
        let done = finished.clone();
        let token = CancellationToken::new();
        let round = move || {
            let done = done.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(10)).await;
                done.fetch_add(1, Ordering::SeqCst);
                Ok::<(), TestError>(())
            }
        };
        let pace = Pace::every_ms(1_000);
        let handle =
            ServiceHandle::spawn("slow", None, token.clone(), rounds("slow", pace, token, rx, round));
        tokio::time::sleep(Duration::from_secs(1)).await;
        handle.shutdown().await.unwrap();
        assert_eq!(finished.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn shutdown_returns_the_service_error_and_names_the_service() {
        let handle = ServiceHandle::spawn("indexer", None, CancellationToken::new(), async {
            Err::<(), _>(TestError("settler key has no funds", false))
        });
        let err = handle.shutdown().await.unwrap_err();
        assert_eq!(err.service(), "indexer");
        assert_eq!(err.to_string(), "indexer: settler key has no funds");
    }

    #[tokio::test]
    async fn a_panic_is_reported_not_swallowed() {
        let mut handle = ServiceHandle::spawn("verifier", None, CancellationToken::new(), async {
            if true {
                panic!("decoder blew up");
            }
            Ok::<(), TestError>(())
        });
        handle.stopped().await;
        assert!(handle.is_finished());
        let err = handle.shutdown().await.unwrap_err();
        assert!(
            matches!(&err, ServiceError::Panicked { message, .. } if message == "decoder blew up"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_boxed_handle_still_controls_the_service_and_keeps_its_error() {
        let token = CancellationToken::new();
        let inner = token.clone();
        let handle = ServiceHandle::spawn("indexer", None, token, async move {
            inner.cancelled().await;
            Err::<(), _>(TestError("chain gone", false))
        });
        let boxed = handle.boxed();
        tokio::task::yield_now().await;
        assert!(!boxed.is_finished(), "boxing must not stop the service");
        let err = boxed.shutdown().await.unwrap_err();
        assert_eq!(err.to_string(), "indexer: chain gone");

        let panics = ServiceHandle::spawn("verifier", None, CancellationToken::new(), async {
            if true {
                panic!("boom");
            }
            Ok::<(), TestError>(())
        })
        .boxed();
        let err = panics.shutdown().await.unwrap_err();
        assert!(matches!(&err, ServiceError::Panicked { message, .. } if message == "boom"), "{err}");
    }

    #[tokio::test]
    async fn dropping_the_handle_stops_the_service() {
        let token = CancellationToken::new();
        let watch = token.clone();
        let handle = ServiceHandle::spawn("gateway", None, token.clone(), async move {
            token.cancelled().await;
            Ok::<(), TestError>(())
        });
        drop(handle);
        tokio::time::timeout(Duration::from_secs(5), watch.cancelled()).await.unwrap();
    }
}
