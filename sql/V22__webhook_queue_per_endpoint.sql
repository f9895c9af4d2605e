-- Each endpoint's pending deliveries in the order they go out, so a worker finds an endpoint's
-- next due delivery with one index probe, however long its queue has grown (a receiver that was
-- down, or a fleet's first posts: one `created` event per container). Replaces the time-only
-- index, which made every claim sort the whole backlog.
CREATE INDEX webhook_deliveries_queue_idx ON webhook_deliveries (endpoint_id, next_attempt_at, id)
    WHERE state = 'pending';
DROP INDEX webhook_deliveries_due_idx;
