"""Warehouses: each one's capacity ledger, a single writer keyed by warehouse id."""
