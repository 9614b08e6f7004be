-- The dashboard's change feed (`GET /api/v1/changes`) stamps the network
-- every couple of seconds with the latest write of each table; these
-- indexes keep each maximum a lookup instead of a scan.
CREATE INDEX jobs_updated ON jobs (updated_at);
CREATE INDEX frames_updated ON frames (updated_at);
CREATE INDEX tasks_finished ON tasks (finished_at);
