"""`make chaos`: 100,000 commands against two stock workers that keep being SIGKILLed and a broker
that keeps being restarted; then every command, table row, order and read is checked.

The clients send mostly stock commands, and orders (placed, fulfilled, cancelled, some while
their saga runs, some allowed to wait as backorders), transfers between two warehouses, and a few
pre-orders (incoming units announced, reservations and orders holding them until receipts bring them).
``python -m chaos`` writes ``chaos/results/latest.json``. The checks live in ``invariants``
(tables and PostgreSQL agree, nothing negative, oversold or pre-sold, nothing applied twice, units
conserved, every order settled and holding what its status says) and ``model`` (the log of
decisions, the sagas' commands included, is a sequential execution of the commands, each read is
a state of it).
"""
