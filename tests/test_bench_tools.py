"""bench/'s pure parts: reading the machine's CPU time (make_test_cpu.cpu_seconds)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from make_test_cpu import cpu_seconds  # noqa: E402

STAT = """cpu  1000 200 300 4000 500 60 70 80 0 0
cpu0 500 100 150 2000 250 30 35 40 0 0
intr 12345
"""


def test_busy_is_user_nice_system_irq_softirq_steal_and_idle_is_idle_and_iowait():
    ticks = os.sysconf("SC_CLK_TCK")
    busy, idle = cpu_seconds(STAT)
    assert busy == pytest.approx((1000 + 200 + 300 + 60 + 70 + 80) / ticks)
    assert idle == pytest.approx((4000 + 500) / ticks)


def test_a_stat_without_the_total_line_is_refused():
    with pytest.raises(ValueError, match="no 'cpu' line"):
        cpu_seconds("cpu0 1 2 3 4 5 6 7 8\n")
