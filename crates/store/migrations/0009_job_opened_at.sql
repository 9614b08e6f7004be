-- The escrow keeps only a hash of each job's terms and takes the terms back
-- as call arguments (settle, cancel, refund, slash), so the mirror keeps
-- every term of JobOpened, including the time the job was opened (only
-- nodes bound before it can be paid for the job).
ALTER TABLE chain_events ADD COLUMN opened_at INTEGER;
-- Events mirrored from an escrow of the earlier layout lack it; that escrow
-- is not compatible with this build, so the mirror starts over from the
-- deployment's first block.
DELETE FROM chain_events;
DELETE FROM frame_payouts;
DELETE FROM verification_payouts;
DELETE FROM indexer_cursor;
