-- 0003: the keyed audit chain. The last entry of every append carries a MAC over its seq and
-- hash, made with a key held outside the database (audit.key).
ALTER TABLE audit ADD COLUMN mac TEXT;
