"""Owning a partition: its local state, its batched writes and its fenced producer, for every area."""
