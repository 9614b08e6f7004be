//! A job's live view for its artist: `GET /api/v1/jobs/{id}/events`, a
//! stream of server-sent events. The first event is the job's whole view
//! (`event: job`, the `JobView` JSON); another follows whenever it changes,
//! so a browser needs no polling loop, and one that reconnects (after a
//! gateway restart, say) gets the whole view again and is caught up.
//!
//! The gateway looks for changes when anything happens on its bus and at
//! least every [`CHECK_EVERY`] (the verifier and indexer may run in other
//! processes), by a one-row stamp of the job; the view is rebuilt only when
//! the stamp moved. A stream costs a task and a query per check: at most
//! [`MAX_STREAMS`] are open at once, [`MAX_STREAMS_PER_ARTIST`] per artist.

use std::{
    collections::HashMap,
    convert::Infallible,
    hash::Hash,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::Stream;
use lumen_protocol::{Address, JobId};

use crate::{
    AppState,
    api::{ApiResult, job_view, own_job},
    error::ApiError,
    session::Artist,
};

/// How often an open stream looks for changes without a bus event.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Open streams at once.
pub(crate) const MAX_STREAMS: usize = 512;
/// Open streams per artist (a few tabs).
pub(crate) const MAX_STREAMS_PER_ARTIST: usize = 8;

/// Who holds how many open streams, with a cap in all and per holder.
#[derive(Debug, Clone)]
pub(crate) struct StreamSlots<K> {
    held: Arc<Mutex<HashMap<K, usize>>>,
    max_total: usize,
    max_each: usize,
}

/// An open stream's slot, given back when the stream ends.
#[derive(Debug)]
pub(crate) struct Slot<K: Eq + Hash + Copy> {
    slots: StreamSlots<K>,
    holder: K,
}

impl<K: Eq + Hash + Copy> StreamSlots<K> {
    /// At most `max_total` streams at once, `max_each` per holder.
    pub(crate) fn new(max_total: usize, max_each: usize) -> Self {
        Self { held: Arc::default(), max_total, max_each }
    }

    /// A slot for `holder`, unless it or everyone holds too many already.
    pub(crate) fn take(&self, holder: K) -> Option<Slot<K>> {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let total: usize = held.values().sum();
        let mine = held.get(&holder).copied().unwrap_or(0);
        if total >= self.max_total || mine >= self.max_each {
            return None;
        }
        held.insert(holder, mine + 1);
        Some(Slot { slots: self.clone(), holder })
    }
}

impl<K: Eq + Hash + Copy> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = held.get_mut(&self.holder) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.holder);
            }
        }
    }
}

/// One open stream.
struct Live {
    state: AppState,
    job_id: JobId,
    wake: tokio::sync::broadcast::Receiver<lumen_store::Event>,
    tick: tokio::time::Interval,
    stamp: Option<String>,
    sent: Option<String>,
    _slot: Slot<Address>,
}

impl Live {
    /// The next event to send: the view, once it differs from the last one
    /// sent. `None` ends the stream (gateway stopping, database gone).
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            let stamp = self.state.store.job_stamp(self.job_id).await.ok()?;
            if self.stamp.as_ref() != Some(&stamp) {
                self.stamp = Some(stamp.clone());
                let view = job_view(&self.state, self.job_id).await.ok()?;
                let json = serde_json::to_string(&view).ok()?;
                if self.sent.as_ref() != Some(&json) {
                    self.sent = Some(json.clone());
                    return Some((Ok(Event::default().event("job").id(stamp).data(json)), self));
                }
            }
            tokio::select! {
                // Lagged or closed: either way, look again.
                _ = self.wake.recv() => {}
                _ = self.tick.tick() => {}
                () = self.state.shutdown.cancelled() => return None,
            }
        }
    }
}

/// `GET /api/v1/jobs/{id}/events`: the job's artist only.
pub(crate) async fn job_events(
    State(state): State<AppState>,
    artist: Artist,
    Path(id): Path<JobId>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    own_job(&state, artist, id).await?;
    let Some(slot) = state.live.take(artist.address) else {
        return Err(ApiError::client(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            format!("at most {MAX_STREAMS_PER_ARTIST} live views per artist ({MAX_STREAMS} in all) at once"),
        ));
    };
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let live =
        Live { wake: state.bus.subscribe(), state, job_id: id, tick, stamp: None, sent: None, _slot: slot };
    Ok(Sse::new(futures::stream::unfold(live, Live::next)).keep_alive(KeepAlive::default()))
}
