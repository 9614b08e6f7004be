-- Several renders per frame, and a typed chain mirror.
--
-- Frames: `renders_wanted` is how many independent accepted renders a frame
-- needs (1; more when sampled for verification); its state follows from its
-- tasks and is written with a compare-and-swap on `version`. The verdict
-- column goes: verdicts live on the tasks.
ALTER TABLE frames ADD COLUMN renders_wanted INTEGER NOT NULL DEFAULT 1;
ALTER TABLE frames ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE frames DROP COLUMN verdict;

-- Tasks: why each render exists (primary | verification | arbitration).
ALTER TABLE tasks ADD COLUMN role TEXT NOT NULL DEFAULT 'primary';
CREATE INDEX tasks_state ON tasks (state, task_id);

-- The chain mirror gets one typed column per event field instead of JSON
-- text. It is rebuilt from the chain: drop it and its cursors.
DROP TABLE chain_events;
DROP TABLE frame_payouts;
DELETE FROM indexer_cursor;

CREATE TABLE chain_events (
    block_number  INTEGER NOT NULL,
    log_index     INTEGER NOT NULL,
    block_hash    TEXT NOT NULL,
    tx_hash       TEXT NOT NULL,
    -- JobOpened | FramesReleased | ... (lumen_protocol::ChainEventKind)
    kind          TEXT NOT NULL,
    job_id        INTEGER,
    node          TEXT,
    -- artist, owner, treasury or slash recipient
    account       TEXT,
    -- the node's owner where `account` is someone else (NodeSlashed)
    owner         TEXT,
    token         TEXT,
    -- wei, decimal
    amount        TEXT,
    fee           TEXT,
    total         TEXT,
    price         TEXT,
    -- spec hash (JobOpened) or evidence hash (NodeSlashed)
    hash          TEXT,
    frame_count   INTEGER,
    -- deadline, refundable_at or available_at (unix seconds)
    at_time       INTEGER,
    fee_bps       INTEGER,
    word_index    INTEGER,
    bits          TEXT,
    -- administrative event name
    name          TEXT,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX chain_events_job ON chain_events (job_id, kind);
CREATE INDEX chain_events_account ON chain_events (account);

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
