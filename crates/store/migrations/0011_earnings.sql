-- Credits, statements and the leaderboard are computed from the chain
-- mirror, and monthly statements need each event's time: the block's
-- timestamp (unix seconds). Rows mirrored before lack it: the mirror starts
-- over from the deployment's first block.
ALTER TABLE chain_events ADD COLUMN block_time INTEGER NOT NULL DEFAULT 0;
ALTER TABLE frame_payouts ADD COLUMN block_time INTEGER NOT NULL DEFAULT 0;
ALTER TABLE verification_payouts ADD COLUMN block_time INTEGER NOT NULL DEFAULT 0;
DELETE FROM chain_events;
DELETE FROM frame_payouts;
DELETE FROM verification_payouts;
DELETE FROM indexer_cursor;
CREATE INDEX chain_events_node ON chain_events (node, kind);
CREATE INDEX verification_payouts_node ON verification_payouts (node);
CREATE INDEX frame_payouts_node ON frame_payouts (node);

-- Uptime is not on the chain: the gateway records it. Once a minute it adds
-- the minute to `up_secs` of every node that is connected and heard from
-- within the heartbeat timeout; `first_seen` is when a node first
-- authenticated. Uptime % = up time / time since first seen, over a window.
CREATE TABLE node_uptime (
    node      TEXT NOT NULL,
    -- unix day (seconds / 86400)
    day       INTEGER NOT NULL,
    up_secs   INTEGER NOT NULL,
    PRIMARY KEY (node, day)
);
CREATE TABLE node_first_seen (
    node      TEXT PRIMARY KEY,
    -- unix milliseconds
    at_ms     INTEGER NOT NULL
);
