-- Sweeping expired kv entries and pruning old delivered events.
CREATE INDEX kv_expires ON kv (expires_at) WHERE expires_at <> 0;
CREATE INDEX events_delivered_updated ON events (updated_at) WHERE state = 'delivered';
