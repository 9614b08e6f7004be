-- The escrow emits one FramesReleased per job and settlement, listing every
-- frame set it paid (frames and verification renders), instead of one log per
-- node and kind. The mirror keeps one row per frame set, so a row is now
-- keyed by its log and its entry within that log. The earlier escrow is not
-- compatible with this build: the mirror starts over from the deployment's
-- first block.
DROP TABLE chain_events;
DELETE FROM frame_payouts;
DELETE FROM verification_payouts;
DELETE FROM indexer_cursor;

CREATE TABLE chain_events (
    block_number  INTEGER NOT NULL,
    log_index     INTEGER NOT NULL,
    -- position within the log: the frame set of a FramesReleased, else 0
    entry         INTEGER NOT NULL DEFAULT 0,
    block_hash    TEXT NOT NULL,
    tx_hash       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    job_id        INTEGER,
    node          TEXT,
    account       TEXT,
    owner         TEXT,
    token         TEXT,
    amount        TEXT,
    fee           TEXT,
    total         TEXT,
    price         TEXT,
    hash          TEXT,
    frame_count   INTEGER,
    at_time       INTEGER,
    fee_bps       INTEGER,
    word_index    INTEGER,
    bits          TEXT,
    name          TEXT,
    verifications INTEGER,
    opened_at     INTEGER,
    PRIMARY KEY (block_number, log_index, entry)
);
CREATE INDEX chain_events_job ON chain_events (job_id, kind);
CREATE INDEX chain_events_account ON chain_events (account);
