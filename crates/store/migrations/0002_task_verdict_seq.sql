-- The order in which the verifier judged tasks (1, 2, 3, ...), so services in
-- other processes can follow verdicts without missing one.
ALTER TABLE tasks ADD COLUMN verdict_seq INTEGER;
CREATE UNIQUE INDEX tasks_verdict_seq ON tasks (verdict_seq);
