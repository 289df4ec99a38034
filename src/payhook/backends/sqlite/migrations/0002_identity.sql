-- 0002: identity only from signed data.
-- id_signed = 0: the provider sent the event id outside its signature (Shopify, Razorpay,
-- a generic provider with unsigned_identity), so the webhook id derives from the body's
-- digest; conflict = 1: another delivery carries the same unsigned id with other bytes.
ALTER TABLE webhooks ADD COLUMN id_signed INTEGER NOT NULL DEFAULT 1;
ALTER TABLE webhooks ADD COLUMN conflict INTEGER NOT NULL DEFAULT 0;
CREATE INDEX webhooks_by_unsigned_event ON webhooks (provider, event_id) WHERE id_signed = 0;
