"""Stock area: product stock per warehouse and reservations, decided by each SKU's single writer."""
