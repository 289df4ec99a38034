-- 0007: the request headers of each delivery (a JSON object, names lower-case), for the
-- console's delivery view, which masks signature values. Purged with the payload.
ALTER TABLE webhooks ADD COLUMN headers TEXT;
