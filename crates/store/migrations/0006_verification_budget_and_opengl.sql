-- Two things verification needed: a budget that pays its renders, and the
-- OpenGL implementation of each render.
--
-- Verification renders are paid from the artist's verification budget,
-- locked with the job (`openJob(..., verifications, ...)`): at most one per
-- paid frame, at the frame price, the unused rest refunded.
--
-- The budget as the chain set it (JobOpened), copied to the job when the
-- indexer confirms it.
ALTER TABLE chain_events ADD COLUMN verifications INTEGER;
ALTER TABLE jobs ADD COLUMN verifications INTEGER NOT NULL DEFAULT 0;
-- And its deadline (unix seconds): dispatch and the job stop early enough
-- to settle before the artist can refund.
ALTER TABLE jobs ADD COLUMN deadline INTEGER NOT NULL DEFAULT 0;

-- One row per paid verification render, derived from VerificationsReleased
-- (rebuildable from the chain, like frame_payouts).
CREATE TABLE verification_payouts (
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
CREATE INDEX verification_payouts_owner ON verification_payouts (owner);

-- The OpenGL implementation a render's node announced: Eevee and Workbench
-- renders of two implementations differ, so verification renders of those
-- engines pair equal values (docs/verification.md).
ALTER TABLE tasks ADD COLUMN opengl TEXT;
