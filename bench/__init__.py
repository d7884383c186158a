"""`make bench`: the pipeline against the row-lock alternative and a raw Kafka loop, same run.

``python -m bench`` runs every phase in order against the stack of ``scripts/stack.sh`` and writes
``bench/results/latest.json``, ``latest.md`` (a table) and ``latest.png`` (a chart). Load always
comes from separate processes (``bench.kafka_load``, ``bench.pg_baseline``, ``bench.http_load``),
so the system under test never shares an interpreter with its clients.
"""
