"""What the channel relay (grader/channel_relay.py) costs a stream of Jupyter-sized messages.

    .venv/bin/python bench/relay_cost.py [--messages 20000] [--write]

A PUB socket (the kernel's side) sends N seven-part messages shaped like a Jupyter `stream`
message (topic, delimiter, signature, header, parent header, metadata, content: about 700 bytes
on the wire) to a SUB socket (the grader's side), once connected directly and once through the
relay; the time from the first send to the last receive, best of three each. Both ends live in
this process, as the grader's sockets and the relay's thread do; the kernel's end is not.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import zmq

from common import ROOT, write_section

sys.path.insert(0, str(ROOT))
from grader.channel_relay import ChannelRelay  # noqa: E402

MESSAGE = [b"stream", b"<IDS|MSG>", b"a" * 64, b"h" * 250, b"p" * 250, b"{}",
           b'{"name": "stdout", "text": "hello\\n"}']


def one_run(context: zmq.Context, folder: Path, relayed: bool, count: int) -> float:
    kernel = context.socket(zmq.PUB)
    kernel.setsockopt(zmq.SNDHWM, 0)
    path = folder / f"kernel-{relayed}-{time.monotonic_ns()}"
    kernel.bind(f"ipc://{path}")
    grader = context.socket(zmq.SUB)
    grader.setsockopt(zmq.SUBSCRIBE, b"")
    grader.setsockopt(zmq.RCVHWM, 0)
    relay = None
    if relayed:
        relay = ChannelRelay({"iopub": 1 << 40}).start()
        listen = relay.add("iopub", os.open(path, os.O_PATH), folder / f"relay-{time.monotonic_ns()}")
        grader.connect(f"ipc://{listen}")
    else:
        grader.connect(f"ipc://{path}")
    time.sleep(0.5)                      # the subscription reaches the kernel's side
    start = time.perf_counter()
    for _ in range(count):
        kernel.send_multipart(MESSAGE)
    for _ in range(count):
        grader.recv_multipart()
    seconds = time.perf_counter() - start
    kernel.close(linger=0)
    grader.close(linger=0)
    if relay is not None:
        relay.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--write", action="store_true", help="write the section of BENCHMARKS.md")
    args = parser.parse_args()
    context = zmq.Context()
    with tempfile.TemporaryDirectory(prefix="relay-", dir="/tmp") as tmp:
        direct = min(one_run(context, Path(tmp), False, args.messages) for _ in range(3))
        relayed = min(one_run(context, Path(tmp), True, args.messages) for _ in range(3))
    context.term()
    per = (relayed - direct) / args.messages * 1e6
    body = f"""
| {args.messages} Jupyter-sized messages, one process (best of 3) | time | per message | ratio |
|---|---|---|---|
| direct (PUB -> SUB) | {direct:.2f} s | {direct / args.messages * 1e6:.0f} us | 1.00x |
| through the relay | {relayed:.2f} s | {relayed / args.messages * 1e6:.0f} us | {relayed / direct:.2f}x |

The relay adds about {per:.0f} us per message here (its thread parses each frame in Python and
shares the interpreter with the receiving end). On a whole grading it did not show: `python
grade.py --exercise conv_step_by_step correct.ipynb` with a new gradebook each time, alternating
with the code of a05dee3 (no relay), four runs each after a first: 2.9 to 3.7 s at 1e1aaf2 (the
relay, and the course's test cells left out), 3.1 to 4.0 s at a05dee3 (2026-12-01, 18:50).
"""
    print(body)
    if args.write:
        write_section("What the channel relay costs (security)", body,
                      ".venv/bin/python bench/relay_cost.py --write")


if __name__ == "__main__":
    main()
