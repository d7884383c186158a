"""PostgreSQL: the durable read model and audit ledger, written only by the event sink."""
