"""Shared by the stream workers, the API and the sinks: settings, errors, logging."""
