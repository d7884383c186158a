"""Ledger area: every stock event persisted to PostgreSQL (the read model and audit ledger)."""
