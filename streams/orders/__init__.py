"""Orders: each order's allocation saga, a single writer keyed by order id."""
