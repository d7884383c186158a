"""The bench's CPU accounting (bench/cpu.py): which process counts as what, and that CPU is seen.

The burners report when they are done instead of the tests sleeping a fixed time: on a throttled
VM (steal) a fixed sleep may end before the CPU is spent."""
from __future__ import annotations

import subprocess
import sys
import uuid

from bench.cpu import CpuMeter, group_of, per_decision_ms

BURN = ("import sys, time\nend = time.process_time() + 0.6\n"
        "while time.process_time() < end: pass\n")
# Runs BURN in a child it waits for (and so reaps), like PostgreSQL's postmaster its backends.
PARENT = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {BURN!r}])\n"
REPORT_AND_WAIT = "print('done', flush=True)\nsys.stdin.read()\n"


def test_processes_are_grouped_by_their_command_line():
    assert group_of("java -cp ... kafka.Kafka /tmp/server.properties") == "broker"
    assert group_of("/venv/bin/python -m streams stock --loglevel warn") == "stock_worker"
    assert group_of("/venv/bin/python -m streams ledger") == "ledger_worker"
    assert group_of("postgres: inventory inventory 127.0.0.1(5432) idle") == "postgres"
    assert group_of("/usr/bin/python -m pytest") is None


def _measure(code: str, marker: str) -> dict:
    """CPU of the ``marker`` group from before the process starts until it reports done."""
    meter = CpuMeter(groups=((marker, marker),))
    meter.start()
    proc = subprocess.Popen([sys.executable, "-c", "import sys\n" + code + REPORT_AND_WAIT, marker],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "done"
        return meter.stop()
    finally:
        proc.kill()
        proc.wait()


def test_the_meter_sees_the_cpu_a_process_burns_between_start_and_stop():
    marker = f"cpu-burner-{uuid.uuid4()}"
    used = _measure(BURN, marker)
    assert 0.5 <= used["cpu_s"].get(marker, 0) <= 2.0, used
    per = per_decision_ms(used, 100)
    expected = used["cpu_s"][marker] / used["wall_s"] * 1000 / 100
    assert abs(per[marker] - expected) < 0.01 and per["total"] == per[marker], per
    assert per_decision_ms(used, 0) == {}


def test_the_cpu_of_children_that_ended_during_the_phase_is_counted_with_their_parent():
    """The child is not in the group itself: its CPU counts only through its parent's reaping."""
    marker = f"cpu-parent-{uuid.uuid4()}"
    used = _measure(PARENT, marker)
    assert used["cpu_s"].get(marker, 0) >= 0.5, used
