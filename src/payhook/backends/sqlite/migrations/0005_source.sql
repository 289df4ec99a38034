-- 0005: events fetched from a provider's events API (backfill, reconciliation) go through the
-- same store and dedup as webhooks; source says which way an event came ('webhook' or 'api').
ALTER TABLE webhooks ADD COLUMN source TEXT NOT NULL DEFAULT 'webhook'
    CHECK (source IN ('webhook', 'api'));
-- One row per provider: where the last run reached, so a partial run resumes and the next
-- scheduled run starts from the high-water mark; the lease keeps runs one at a time.
CREATE TABLE IF NOT EXISTS backfill_cursors (
    provider     TEXT PRIMARY KEY,
    since        REAL,
    page_cursor  TEXT,
    high_water   REAL,
    lease_owner  TEXT,
    lease_until  REAL,
    updated_at   REAL NOT NULL
);
