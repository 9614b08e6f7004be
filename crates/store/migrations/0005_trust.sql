-- Redundant sampling and its consequences.
--
-- Every render records the owner its node key was bound to and the node's
-- Blender build at dispatch, so independent renders of a frame can be
-- required to come from different owners running the same version, and a
-- node's record (agreeing samples, renders it lost a vote on) can be derived
-- from its tasks alone.
ALTER TABLE tasks ADD COLUMN owner TEXT;
ALTER TABLE tasks ADD COLUMN blender_version TEXT;
CREATE INDEX tasks_node ON tasks (node, state);
-- A deterministic failure a node reported, probed by the verifier: 1 when
-- its own probe render failed the same way, 0 when it rendered.
ALTER TABLE tasks ADD COLUMN confirmed INTEGER;
-- Last sign of work on a running task (ms): a task quiet for too long is
-- lost and goes to another node.
ALTER TABLE tasks ADD COLUMN progress_at INTEGER;

-- Nodes proven to cheat (outvoted by independent renders): never given work
-- again, refused at the gateway, and slashed on-chain by the settler with
-- the hash of the evidence bundle (a blob anyone can fetch).
CREATE TABLE node_bans (
    node           TEXT PRIMARY KEY,
    owner          TEXT,
    reason         TEXT NOT NULL,
    job_id         INTEGER NOT NULL,
    frame_index    INTEGER NOT NULL,
    evidence_hash  TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    -- pending | slashed | no_stake (lumen_protocol::SlashState)
    slash_state    TEXT NOT NULL,
    slash_tx       TEXT,
    slashed_amount TEXT
);
