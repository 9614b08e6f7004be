//! Public views computed once per change of what they show, however many
//! readers ask at once: a page open on a thousand screens, all told by the
//! change feed that its data moved, costs one query, not a thousand.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    http::header,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::{api::ApiResult, error::ApiError};

/// The longest a value is kept for one stamp of the network (two writes in
/// the same millisecond, one before and one after a computation, share it).
pub(crate) const SAME_STAMP_MAX_AGE: Duration = Duration::from_secs(2);

/// The last value computed, for which key and when. The lock is held while
/// a value is computed, so readers that come meanwhile wait for it rather
/// than computing it again.
#[derive(Debug)]
pub(crate) struct Memo<K, V> {
    last: Arc<Mutex<Option<(K, Instant, V)>>>,
    max_age: Duration,
}

impl<K, V> Clone for Memo<K, V> {
    fn clone(&self) -> Self {
        Self { last: self.last.clone(), max_age: self.max_age }
    }
}

impl<K: PartialEq, V: Clone> Memo<K, V> {
    /// A memo whose values are used for their key and at most `max_age`.
    pub(crate) fn new(max_age: Duration) -> Self {
        Self { last: Arc::new(Mutex::new(None)), max_age }
    }

    /// The value for `key`: the last one when it was computed for `key`
    /// less than `max_age` ago, otherwise `compute`'s (kept when it is
    /// `Ok`).
    pub(crate) async fn get<E>(&self, key: K, compute: impl Future<Output = Result<V, E>>) -> Result<V, E> {
        let mut last = self.last.lock().await;
        if let Some((at_key, at, value)) = &*last
            && *at_key == key
            && at.elapsed() < self.max_age
        {
            return Ok(value.clone());
        }
        let value = compute.await?;
        *last = Some((key, Instant::now(), value.clone()));
        Ok(value)
    }
}

impl<K: PartialEq> Memo<K, Bytes> {
    /// The JSON answer for `key`: `compute`'s value serialized once, and
    /// the same bytes served to every reader until the key moves.
    pub(crate) async fn json<T: Serialize>(
        &self,
        key: K,
        compute: impl Future<Output = ApiResult<T>>,
    ) -> ApiResult<Response> {
        let json = self
            .get(key, async {
                serde_json::to_vec(&compute.await?).map(Bytes::from).map_err(ApiError::internal)
            })
            .await?;
        Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn readers_at_once_share_one_computation_per_key() {
        let memo: Memo<u32, u32> = Memo::new(Duration::from_secs(60));
        let runs = Arc::new(AtomicUsize::new(0));
        let read = |key: u32| {
            let (memo, runs) = (memo.clone(), runs.clone());
            async move {
                memo.get(key, async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, ()>(key * 10)
                })
                .await
            }
        };
        let answers = futures::future::join_all((0..100).map(|_| read(1))).await;
        assert!(answers.iter().all(|a| *a == Ok(10)));
        assert_eq!(runs.load(Ordering::SeqCst), 1, "a hundred readers at once, one computation");
        assert_eq!(read(2).await, Ok(20), "a new key computes again");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failure_is_not_kept_and_an_old_value_is_not_used() {
        let memo: Memo<u32, u32> = Memo::new(Duration::from_millis(50));
        assert_eq!(memo.get(1, async { Err::<u32, _>("down") }).await, Err("down"));
        assert_eq!(memo.get(1, async { Ok::<_, ()>(5) }).await, Ok(5), "the failure was not kept");
        assert_eq!(memo.get(1, async { Ok::<_, ()>(6) }).await, Ok(5), "kept for its key");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(memo.get(1, async { Ok::<_, ()>(7) }).await, Ok(7), "too old for the same key");
    }
}
