-- 0004: retention. A processed webhook's payload is removed after storage.retention_days;
-- purged_at says when. The row, its digest-derived id and its dedup key stay, so a late
-- redelivery is still a duplicate, and the ledger and the audit chain stay whole.
ALTER TABLE webhooks ADD COLUMN purged_at REAL;
