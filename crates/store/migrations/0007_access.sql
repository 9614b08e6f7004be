-- Who may read what.
--
-- Artists sign in with their wallet (Sign-In with Ethereum); a session is
-- kept as the blake3 hash of its bearer token, never the token itself.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    address    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- Sign-in nonces already used, until they expire (a nonce is accepted once).
CREATE TABLE used_nonces (
    nonce      TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);

-- Secrets the gateway keeps across restarts and shares between gateways
-- on one database (the key that authenticates sign-in nonces).
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Which artist uploaded which .blend: a file is readable by the artists who
-- uploaded it and by the nodes rendering a job of it.
CREATE TABLE blend_owners (
    blend_hash  TEXT NOT NULL,
    artist      TEXT NOT NULL,
    uploaded_at INTEGER NOT NULL,
    PRIMARY KEY (blend_hash, artist)
);

-- The reduced, watermarked preview of a verified output, made by the
-- verifier: what the artist sees of a frame until its payment is final.
CREATE TABLE previews (
    output_hash  TEXT PRIMARY KEY,
    preview_hash TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX jobs_by_artist ON jobs (artist, job_id);
