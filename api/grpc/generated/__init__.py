"""Stubs generated from schemas/inventory.proto by `make proto` (api/grpc/generate.py): do not edit."""
