-- Settlement that the indexer stopped retrying: the settle call's
-- simulation reverted for a reason the same call can never pass
-- (lumen_chain::ChainError::permanent_revert), decoded into `reason`.
-- `events` and `last_block` describe the job's mirrored chain events when
-- it was parked: once they change (a cancel, a refund, a reorg), the
-- indexer unparks the job and tries again. Every park is lifted when the
-- indexer starts (an operator fixes the cause, then restarts it).
CREATE TABLE settlement_parks (
    job_id      INTEGER PRIMARY KEY,
    reason      TEXT NOT NULL,
    events      INTEGER NOT NULL,
    last_block  INTEGER NOT NULL,
    parked_at   INTEGER NOT NULL
);

-- Nodes whose frames (and verification renders) of a job the escrow will
-- never pay, e.g. bound to their owner after the job opened
-- (Escrow_NodeBoundAfterOpen): left out of every release so the job's
-- other frames are paid; their share is refunded to the artist at close.
CREATE TABLE unpayable_nodes (
    job_id      INTEGER NOT NULL,
    node        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (job_id, node)
);

-- Why a slash was parked (slash_state = 'parked').
ALTER TABLE node_bans ADD COLUMN slash_failure TEXT;

-- Registrations whose job id a reorg gave to another spec, kept for the
-- record when the job that owns the id on-chain now is registered.
CREATE TABLE superseded_jobs (
    job_id         INTEGER NOT NULL,
    artist         TEXT NOT NULL,
    spec_hash      TEXT NOT NULL,
    spec_json      TEXT NOT NULL,
    state          TEXT NOT NULL,
    failure        TEXT,
    created_at     INTEGER NOT NULL,
    superseded_at  INTEGER NOT NULL
);
CREATE INDEX superseded_jobs_id ON superseded_jobs (job_id);
