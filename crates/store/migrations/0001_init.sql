-- Lumen's database. Amounts are decimal strings of wei (they exceed 64 bits);
-- addresses and hashes are 0x-prefixed lowercase hex; times are unix
-- milliseconds.

-- Content-addressed blobs (.blend files, frames). Bytes live on disk (or
-- IPFS); this table records what the store holds.
CREATE TABLE blobs (
    hash        TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Jobs registered by artists, keyed by their on-chain id.
CREATE TABLE jobs (
    job_id           INTEGER PRIMARY KEY,
    artist           TEXT NOT NULL,
    spec_json        TEXT NOT NULL,
    spec_hash        TEXT NOT NULL,
    signature        TEXT NOT NULL,
    blend_hash       TEXT NOT NULL REFERENCES blobs (hash),
    frame_count      INTEGER NOT NULL,
    width            INTEGER NOT NULL,
    height           INTEGER NOT NULL,
    engine           TEXT NOT NULL,
    token            TEXT NOT NULL,
    price_per_frame  TEXT NOT NULL,
    -- awaiting_chain | rendering | settling | completed | failed | rejected
    state            TEXT NOT NULL,
    failure          TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX jobs_state ON jobs (state);

-- One row per frame of a job.
CREATE TABLE frames (
    job_id        INTEGER NOT NULL REFERENCES jobs (job_id),
    frame_index   INTEGER NOT NULL,
    frame_number  INTEGER NOT NULL,
    -- pending | rendering | verifying | verified | failed
    state         TEXT NOT NULL,
    node          TEXT,
    output_hash   TEXT,
    verdict       TEXT,
    failure       TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (job_id, frame_index)
);
CREATE INDEX frames_state ON frames (state, job_id);

-- Every attempt to render a frame on a node.
CREATE TABLE tasks (
    task_id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id           INTEGER NOT NULL,
    frame_index      INTEGER NOT NULL,
    node             TEXT NOT NULL,
    -- running | uploaded | accepted | rejected | failed | lost | cancelled
    state            TEXT NOT NULL,
    upload_hash      TEXT,
    output_hash      TEXT,
    signature        TEXT,
    failure_code     TEXT,
    failure_message  TEXT,
    deterministic    INTEGER NOT NULL DEFAULT 0,
    render_secs      REAL,
    lease_until      INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    FOREIGN KEY (job_id, frame_index) REFERENCES frames (job_id, frame_index)
);
CREATE INDEX tasks_frame ON tasks (job_id, frame_index);
CREATE INDEX tasks_node_state ON tasks (node, state);

-- Mirror of contract events, in chain order. Rebuildable from the chain.
CREATE TABLE chain_events (
    block_number  INTEGER NOT NULL,
    log_index     INTEGER NOT NULL,
    block_hash    TEXT NOT NULL,
    tx_hash       TEXT NOT NULL,
    contract      TEXT NOT NULL,
    name          TEXT NOT NULL,
    job_id        INTEGER,
    node          TEXT,
    account       TEXT,
    data          TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX chain_events_job ON chain_events (job_id, name);

-- Per-frame payouts, derived from FramesReleased events in the mirror.
CREATE TABLE frame_payouts (
    job_id        INTEGER NOT NULL,
    frame_index   INTEGER NOT NULL,
    node          TEXT NOT NULL,
    owner         TEXT NOT NULL,
    amount        TEXT NOT NULL,
    fee           TEXT NOT NULL,
    tx_hash       TEXT NOT NULL,
    block_number  INTEGER NOT NULL,
    PRIMARY KEY (job_id, frame_index)
);
CREATE INDEX frame_payouts_owner ON frame_payouts (owner);

-- How far the mirror has read, per contract.
CREATE TABLE indexer_cursor (
    name          TEXT PRIMARY KEY,
    block_number  INTEGER NOT NULL,
    block_hash    TEXT NOT NULL
);
