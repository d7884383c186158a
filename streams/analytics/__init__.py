"""Analytics: stream analytics over the stock events (windowed tables, their own worker, off the
reservation path) and forecasting from the demand history they persist."""
