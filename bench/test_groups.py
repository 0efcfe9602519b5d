"""Where `make test`'s time goes: a pytest JUnit XML summed by xdist group.

    .venv/bin/python -m pytest -m "slow or not slow" -n auto --dist loadgroup --junitxml=/tmp/t.xml
    .venv/bin/python bench/test_groups.py /tmp/t.xml [--workers 2] [--top 15]

Groups are the ones `make test` schedules by (tests/conftest.py): a test file, or a sample batch
(`samples-<exercise>`; its first test's time is the whole batch's grading). Prints each group's
seconds and share, and two floors of the run's wall time on N workers: the sum over N (perfect
packing) and the longest group (a group runs on one worker). Times are each test's own (set-up,
call, tear-down), so a group's sum leaves out the session fixtures another group already paid for.
"""

from __future__ import annotations

import argparse
import collections
import xml.etree.ElementTree as ET
from pathlib import Path


def group_of(testcase: ET.Element) -> str:
    """The xdist group a JUnit testcase ran in: its name's "@group" where xdist wrote one, else its file."""
    name = testcase.get("name", "")
    if "@" in name:
        return name.rsplit("@", 1)[1]
    return testcase.get("file") or testcase.get("classname", "?").rsplit(".", 1)[0].replace(".", "/") + ".py"


def group_seconds(xml: Path) -> tuple[dict[str, float], dict[str, int]]:
    """(group -> seconds, group -> number of tests) from a JUnit XML file."""
    seconds: dict[str, float] = collections.defaultdict(float)
    counts: dict[str, int] = collections.Counter()
    for testcase in ET.parse(xml).iter("testcase"):
        group = group_of(testcase)
        seconds[group] += float(testcase.get("time") or 0.0)
        counts[group] += 1
    return dict(seconds), dict(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("xml", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    seconds, counts = group_seconds(args.xml)
    total = sum(seconds.values())
    print("| group | tests | seconds | share |\n|---|---|---|---|")
    ranked = sorted(seconds, key=seconds.get, reverse=True)
    for group in ranked[:args.top]:
        print(f"| {group} | {counts[group]} | {seconds[group]:.0f} | {seconds[group] / total:.0%} |")
    rest = ranked[args.top:]
    if rest:
        print(f"| {len(rest)} other groups | {sum(counts[g] for g in rest)} | "
              f"{sum(seconds[g] for g in rest):.0f} | {sum(seconds[g] for g in rest) / total:.0%} |")
    print(f"\nall tests: {total:.0f} s; floors on {args.workers} workers: {total / args.workers:.0f} s "
          f"(perfect packing), {seconds[ranked[0]]:.0f} s (the longest group, {ranked[0]})")


if __name__ == "__main__":
    main()
