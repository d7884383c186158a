"""`make chaos`: 100,000 commands against two stock workers that keep being SIGKILLed and a broker
that keeps being restarted; then every command, table row and read is checked.

``python -m chaos`` writes ``chaos/results/latest.json``. The checks live in ``invariants``
(tables and PostgreSQL agree, nothing negative or oversold, nothing applied twice) and ``model``
(the log of decisions is a sequential execution of the commands, each read is a state of it).
"""
