-- 0001: the schema as it was before numbered migrations. "IF NOT EXISTS" everywhere, so a
-- database created before migrations existed (user_version 0) takes it as a no-op.
CREATE TABLE IF NOT EXISTS webhooks (
    webhook_id    TEXT PRIMARY KEY,
    provider      TEXT NOT NULL,
    provider_type TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('received', 'processed', 'dead')),
    verified      INTEGER NOT NULL DEFAULT 1,
    payload       BLOB NOT NULL,
    received_at   REAL NOT NULL,
    occurred_at   REAL,
    processed_at  REAL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    error         TEXT
);
CREATE INDEX IF NOT EXISTS webhooks_by_status ON webhooks (status, received_at);
CREATE INDEX IF NOT EXISTS webhooks_by_provider ON webhooks (provider, received_at);

-- A message's id is its webhook's rowid: at most one message per webhook, and no index on
-- the random webhook id to update for every message (an insert touches appended pages only).
CREATE TABLE IF NOT EXISTS queue (
    message_id    INTEGER PRIMARY KEY,
    webhook_id    TEXT NOT NULL,
    visible_at    REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    enqueued_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_by_visibility ON queue (visible_at, message_id);

CREATE TABLE IF NOT EXISTS dead_letters (
    webhook_id    TEXT PRIMARY KEY,
    reason        TEXT NOT NULL,
    receive_count INTEGER NOT NULL,
    failed_at     REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS payments (
    provider        TEXT NOT NULL,
    payment_id      TEXT NOT NULL,
    status          TEXT NOT NULL,
    currency        TEXT,
    amount          INTEGER NOT NULL CHECK (amount >= 0),
    amount_refunded INTEGER NOT NULL CHECK (amount_refunded >= 0),
    updated_at      REAL NOT NULL,
    version         INTEGER NOT NULL,
    record          TEXT NOT NULL,
    PRIMARY KEY (provider, payment_id)
);
CREATE INDEX IF NOT EXISTS payments_by_status ON payments (status, provider);

CREATE TABLE IF NOT EXISTS outbox (
    event_id        TEXT PRIMARY KEY,
    body            TEXT NOT NULL,
    created_at      REAL NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    delivered_at    REAL,
    last_error      TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (delivered_at, next_attempt_at);

CREATE TABLE IF NOT EXISTS changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    entity     TEXT NOT NULL,
    entity_key TEXT NOT NULL,
    action     TEXT NOT NULL,
    data       TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS audit (
    seq         INTEGER PRIMARY KEY,
    recorded_at TEXT NOT NULL,
    entity      TEXT NOT NULL,
    entity_key  TEXT NOT NULL,
    action      TEXT NOT NULL,
    data        TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);

-- Storing a webhook schedules its processing: the two cannot be separated.
CREATE TRIGGER IF NOT EXISTS webhooks_enqueued AFTER INSERT ON webhooks BEGIN
    INSERT INTO queue (message_id, webhook_id, visible_at, enqueued_at)
    VALUES (NEW.rowid, NEW.webhook_id, NEW.received_at, NEW.received_at);
END;
CREATE TRIGGER IF NOT EXISTS webhooks_inserted AFTER INSERT ON webhooks BEGIN
    INSERT INTO changes (entity, entity_key, action, data) VALUES (
        'webhook', NEW.webhook_id, 'insert',
        json_object('provider', NEW.provider, 'eventId', NEW.event_id,
                    'eventType', NEW.event_type, 'status', NEW.status));
END;
CREATE TRIGGER IF NOT EXISTS webhooks_status_changed AFTER UPDATE OF status ON webhooks
WHEN OLD.status IS NOT NEW.status BEGIN
    INSERT INTO changes (entity, entity_key, action, data) VALUES (
        'webhook', NEW.webhook_id, 'modify',
        json_object('provider', NEW.provider, 'eventId', NEW.event_id,
                    'eventType', NEW.event_type, 'status', NEW.status,
                    'previousStatus', OLD.status));
END;
CREATE TRIGGER IF NOT EXISTS payments_inserted AFTER INSERT ON payments BEGIN
    INSERT INTO changes (entity, entity_key, action, data) VALUES (
        'payment', NEW.provider || '/' || NEW.payment_id, 'insert',
        json_object('status', NEW.status, 'amount', NEW.amount, 'currency', NEW.currency,
                    'amountRefunded', NEW.amount_refunded, 'version', NEW.version));
END;
CREATE TRIGGER IF NOT EXISTS payments_changed AFTER UPDATE ON payments
WHEN OLD.version IS NOT NEW.version BEGIN
    INSERT INTO changes (entity, entity_key, action, data) VALUES (
        'payment', NEW.provider || '/' || NEW.payment_id, 'modify',
        json_object('status', NEW.status, 'amount', NEW.amount, 'currency', NEW.currency,
                    'amountRefunded', NEW.amount_refunded, 'version', NEW.version,
                    'previousStatus', OLD.status));
END;
