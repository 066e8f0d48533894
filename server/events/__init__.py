"""Events for the durable outbox (delivered as signed webhooks by the webhooks feature)."""
