"""The REST and WebSocket edge: takes requests, produces commands, waits for their outcome."""
