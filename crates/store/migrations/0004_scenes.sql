-- What inspection read from each uploaded .blend, so a job's spec can be
-- checked against the scene it claims to render.
CREATE TABLE scenes (
    blend_hash   TEXT PRIMARY KEY,
    frame_start  INTEGER NOT NULL,
    frame_end    INTEGER NOT NULL,
    frame_step   INTEGER NOT NULL,
    width        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    engine       TEXT NOT NULL,
    fps          REAL NOT NULL,
    saved_with   TEXT,
    inspected_at INTEGER NOT NULL
);
