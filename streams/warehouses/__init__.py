"""The warehouse area: each warehouse's capacity ledger, owned by one partition (keyed by warehouse id)."""
