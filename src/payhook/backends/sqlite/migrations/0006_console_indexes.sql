-- 0006: what the console (and the CLI's same queries) needs at 100,000+ webhooks.
-- A search by event id reads "webhook_id IN (ids derived per provider) OR (id_signed = 0 AND
-- event_id = ?)"; the unsigned branch had an index only behind provider, so a search without
-- a provider scanned every row. Partial: only unsigned rows (Shopify, Razorpay) pay for it.
CREATE INDEX IF NOT EXISTS webhooks_unsigned_by_event ON webhooks (event_id) WHERE id_signed = 0;
-- Payments list most recently updated first, paged by (updated_at, provider, payment_id).
CREATE INDEX IF NOT EXISTS payments_by_update ON payments (updated_at, provider, payment_id);
