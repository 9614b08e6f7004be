//! What inspection read from each uploaded `.blend`.

use lumen_protocol::{ContentHash, api::SceneSummary};

use crate::{Store, StoreResult, now_ms};

#[derive(sqlx::FromRow)]
struct SceneRow {
    frame_start: i32,
    frame_end: i32,
    frame_step: i32,
    #[sqlx(try_from = "i64")]
    width: u32,
    #[sqlx(try_from = "i64")]
    height: u32,
    engine: String,
    fps: f64,
    saved_with: Option<String>,
    samples: Option<i64>,
}

impl Store {
    /// Records what inspection read from the `.blend` `blend_hash` (the
    /// latest inspection wins: a newer inspector may read more).
    pub async fn record_scene(&self, blend_hash: ContentHash, scene: &SceneSummary) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO scenes (blend_hash, frame_start, frame_end, frame_step, width, height, engine, fps, \
             saved_with, inspected_at, samples) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (blend_hash) DO UPDATE SET frame_start = $2, frame_end = $3, frame_step = $4, \
             width = $5, height = $6, engine = $7, fps = $8, saved_with = $9, inspected_at = $10, \
             samples = $11",
        )
        .bind(blend_hash)
        .bind(scene.frame_start)
        .bind(scene.frame_end)
        .bind(scene.frame_step)
        .bind(i64::from(scene.width))
        .bind(i64::from(scene.height))
        .bind(&scene.engine)
        .bind(scene.fps)
        .bind(&scene.saved_with)
        .bind(now_ms())
        .bind(scene.samples.map(i64::from))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// What inspection read from the `.blend` `blend_hash`, if it was
    /// inspected.
    pub async fn scene(&self, blend_hash: ContentHash) -> StoreResult<Option<SceneSummary>> {
        let row: Option<SceneRow> = sqlx::query_as(
            "SELECT frame_start, frame_end, frame_step, width, height, engine, fps, saved_with, samples \
             FROM scenes WHERE blend_hash = $1",
        )
        .bind(blend_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| SceneSummary {
            frame_start: r.frame_start,
            frame_end: r.frame_end,
            frame_step: r.frame_step,
            width: r.width,
            height: r.height,
            engine: r.engine,
            fps: r.fps,
            saved_with: r.saved_with,
            // A count that does not fit was not written by `record_scene`.
            samples: r.samples.and_then(|n| u32::try_from(n).ok()),
        }))
    }
}
