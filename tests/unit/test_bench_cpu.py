"""The bench's CPU accounting (bench/cpu.py): which process counts as what, and that CPU is seen."""
from __future__ import annotations

import subprocess
import sys
import time
import uuid

from bench.cpu import CpuMeter, group_of, per_decision_ms


def test_processes_are_grouped_by_their_command_line():
    assert group_of("java -cp ... kafka.Kafka /tmp/server.properties") == "broker"
    assert group_of("/venv/bin/python -m streams stock --loglevel warn") == "stock_worker"
    assert group_of("/venv/bin/python -m streams ledger") == "ledger_worker"
    assert group_of("postgres: inventory inventory 127.0.0.1(5432) idle") == "postgres"
    assert group_of("/usr/bin/python -m pytest") is None


def test_the_meter_sees_the_cpu_a_process_burns_between_start_and_stop():
    marker = f"cpu-burner-{uuid.uuid4()}"
    meter = CpuMeter(groups=(("burner", marker),))
    meter.start()
    # It spins for about 0.6 s of CPU, then sleeps.
    burner = subprocess.Popen([sys.executable, "-c",
                               "import time\nend = time.process_time() + 0.6\n"
                               "while time.process_time() < end: pass\ntime.sleep(30)",
                               marker])
    try:
        time.sleep(1.5)
        used = meter.stop()
    finally:
        burner.kill()
        burner.wait()
    assert 0.5 <= used["cpu_s"].get("burner", 0) <= 1.5, used
    # About 0.6 CPU-seconds over about 1.5 s at 100 decisions/s: about 4 ms a decision.
    per = per_decision_ms(used, 100)
    assert 2.0 <= per["burner"] <= 10.0 and per["total"] == per["burner"], per
    assert per_decision_ms(used, 0) == {}


def test_the_cpu_of_children_that_ended_during_the_phase_is_counted_with_their_parent():
    """Like PostgreSQL's backends: a child that burns CPU and exits, reaped by its parent."""
    marker = f"cpu-parent-{uuid.uuid4()}"
    meter = CpuMeter(groups=(("parent", marker),))
    parent = subprocess.Popen([sys.executable, "-c",
                               "import subprocess, sys, time\n"
                               "subprocess.run([sys.executable, '-c', 'import time\\n"
                               "end = time.process_time() + 0.6\\nwhile time.process_time() < end: pass'])\n"
                               "time.sleep(30)", marker])
    try:
        time.sleep(0.3)  # the parent is up; its child is still burning
        meter.start()
        time.sleep(1.5)
        used = meter.stop()
    finally:
        parent.kill()
        parent.wait()
    assert used["cpu_s"].get("parent", 0) >= 0.2, used
