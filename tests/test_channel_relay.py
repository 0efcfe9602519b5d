"""grader/channel_relay.py: ZeroMQ over the byte-capped relay, without a kernel (sockets of this
process stand for the kernel's and the grader's)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import zmq

from grader.channel_relay import (FLAG_COMMAND, FLAG_LONG, FLAG_MORE, FRAME_CHARGE, MESSAGE_LIMIT, ChannelRelay,
                                  MessageFilter, ProtocolViolation)


def resident_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.fixture
def context():
    ctx = zmq.Context()
    ctx.setsockopt(zmq.MAXMSGSIZE, 8 << 20)
    ctx.setsockopt(zmq.LINGER, 0)
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def folder(tmp_path):
    short = Path(f"/tmp/relay-{os.getpid()}-{time.monotonic_ns() % 10**6}")   # unix socket paths are short
    short.mkdir()
    yield short
    for p in short.iterdir():
        p.unlink()
    short.rmdir()


def kernel_socket(path: Path) -> int:
    return os.open(path, os.O_PATH | os.O_NOFOLLOW)


def pub_sub(context, folder: Path, relay: ChannelRelay, name: str = "iopub"):
    kernel = context.socket(zmq.PUB)
    kernel.bind(f"ipc://{folder}/kernel-{name}")
    grader = context.socket(zmq.SUB)
    grader.setsockopt(zmq.SUBSCRIBE, b"")
    grader.connect(f"ipc://{relay.add(name, kernel_socket(folder / f'kernel-{name}'), folder / f'relay-{name}')}")
    time.sleep(0.3)   # the subscription reaches the kernel's side
    return kernel, grader


def received(sock: zmq.Socket, seconds: float = 1.0) -> list[list[bytes]]:
    got = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if sock.poll(int(left * 1000)):
            got.append(sock.recv_multipart())
    return got


def test_messages_cross_the_relay_both_ways(context, folder):
    with ChannelRelay({"iopub": 1 << 20, "shell": 1 << 20}) as relay:
        kernel, grader = pub_sub(context, folder, relay)
        for i in range(50):
            kernel.send_multipart([b"stream", str(i).encode()])
        assert [m[1] for m in received(grader)] == [str(i).encode() for i in range(50)]
        shell_kernel = context.socket(zmq.ROUTER)
        shell_kernel.bind(f"ipc://{folder}/kernel-shell")
        shell_grader = context.socket(zmq.DEALER)
        shell_grader.connect(f"ipc://{relay.add('shell', kernel_socket(folder / 'kernel-shell'), folder / 'relay-shell')}")
        shell_grader.send_multipart([b"execute_request"])
        assert shell_kernel.poll(2000)
        identity, request = shell_kernel.recv_multipart()
        shell_kernel.send_multipart([identity, b"execute_reply"])
        assert shell_grader.poll(2000) and shell_grader.recv_multipart() == [b"execute_reply"]
        assert relay.exceeded == set() and 0 < relay.sent["shell"] < 1000
        for s in (kernel, grader, shell_kernel, shell_grader):
            s.close()


def test_a_message_of_many_parts_past_the_cap_is_cut_before_the_grader_holds_it(context, folder):
    cap = 16 << 20
    cut = []
    with ChannelRelay({"iopub": cap}, on_exceeded=cut.append) as relay:
        kernel, grader = pub_sub(context, folder, relay)
        kernel.send_multipart([b"ok"])
        assert received(grader, 0.5) == [[b"ok"]]
        before = resident_mb()
        part = zmq.Frame(b"x" * ((8 << 20) - 4096))
        for _ in range(2):
            kernel.send_multipart([b"flood"] + [part] * 60, copy=False)   # 2 x 480 MB
        deadline = time.monotonic() + 5
        while not relay.exceeded and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)                                # anything still on its way arrives
        grown = resident_mb() - before
        kernel.send_multipart([b"after"])
        assert received(grader, 1.0) == []            # cut: nothing more on this channel
        assert relay.exceeded == {"iopub"} and cut == ["iopub"]
        assert grown < 2 * cap / 2**20, f"grew by {grown:.0f} MB"
        kernel.close()
        grader.close()


def test_the_count_goes_on_across_kernel_starts(context, folder):
    with ChannelRelay({"iopub": 3000}) as relay:
        kernel, grader = pub_sub(context, folder, relay)
        kernel.send_multipart([b"a" * 2000])
        assert len(received(grader, 0.5)) == 1
        kernel.close()
        relay.drop_listeners()                        # the start ends: its listener's path is gone
        assert not (folder / "relay-iopub").exists()
        os.unlink(folder / "kernel-iopub")
        restarted = context.socket(zmq.PUB)           # the next start binds anew; the grader reconnects
        restarted.bind(f"ipc://{folder}/kernel-iopub2")
        relay.add("iopub", kernel_socket(folder / "kernel-iopub2"), folder / "relay-iopub")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:            # until the grader's side is connected again
            restarted.send_multipart([b"?"])
            if received(grader, 0.2):
                break
        assert relay.exceeded == set()
        restarted.send_multipart([b"b" * 2000])       # over 4000 bytes in all: past 3000
        assert received(grader, 1.0) == [] and relay.exceeded == {"iopub"}
        restarted.close()
        grader.close()


def test_a_channel_without_a_cap_is_refused(folder):
    relay = ChannelRelay({"iopub": 1})
    with pytest.raises(ValueError, match="no cap for channel 'shell'"):
        relay.add("shell", os.open(folder, os.O_PATH), folder / "y")
    assert not (folder / "y").exists()
    relay.close()


def test_the_relay_connects_to_the_socket_it_was_given_not_to_what_its_path_holds_later(context, folder):
    """The kernel replaces its socket's file by a link to another socket (another kernel's, say):
    the grader's next connection still reaches the kernel's own socket."""
    with ChannelRelay({"shell": 1 << 20}) as relay:
        own = context.socket(zmq.ROUTER)
        own.bind(f"ipc://{folder}/kernel-shell")
        listen = relay.add("shell", kernel_socket(folder / "kernel-shell"), folder / "relay-shell")
        other = context.socket(zmq.ROUTER)
        other.bind(f"ipc://{folder}/elsewhere")
        os.unlink(folder / "kernel-shell")
        os.symlink(folder / "elsewhere", folder / "kernel-shell")
        grader = context.socket(zmq.DEALER)
        grader.connect(f"ipc://{listen}")
        grader.send_multipart([b"execute_request"])
        assert own.poll(2000) and own.recv_multipart()[1] == b"execute_request"
        assert not other.poll(200)
        for s in (own, other, grader):
            s.close()


def test_a_message_over_the_limit_is_dropped_whole_and_the_channel_lives_on(context, folder):
    with ChannelRelay({"iopub": 1 << 30}) as relay:
        kernel, grader = pub_sub(context, folder, relay)
        kernel.send_multipart([b"big", b"x" * (MESSAGE_LIMIT + 1)])
        kernel.send_multipart([b"small", b"y"])
        assert received(grader, 1.0) == [[b"small", b"y"]]
        assert relay.dropped["iopub"] == 1 and relay.exceeded == set()
        kernel.close()
        grader.close()


SENDER = """
import sys, time, zmq
ctx = zmq.Context()
kernel = ctx.socket(zmq.PUB)
kernel.bind(sys.argv[1])
print("bound", flush=True)
sys.stdin.readline()                      # the grader's side has subscribed
kernel.send_multipart([b""] * 200_000)
kernel.send_multipart([b"after"])
time.sleep(10)
"""


def test_a_message_of_many_empty_parts_is_charged_for_its_parts(context, folder):
    """Empty parts cost 2 bytes on the wire and 64 to libzmq each: 200,000 of them (400 KB sent,
    by another process) are charged past the message limit and dropped; the grader's ZeroMQ never
    holds them (without the relay: about 12 MB here)."""
    import subprocess
    import sys
    sender = subprocess.Popen([sys.executable, "-c", SENDER, f"ipc://{folder}/kernel-iopub"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert sender.stdout.readline() == "bound\n"
        with ChannelRelay({"iopub": 1 << 30}) as relay:
            grader = context.socket(zmq.SUB)
            grader.setsockopt(zmq.SUBSCRIBE, b"")
            grader.connect(f"ipc://{relay.add('iopub', kernel_socket(folder / 'kernel-iopub'), folder / 'relay-iopub')}")
            time.sleep(0.3)
            before = resident_mb()
            sender.stdin.write("go\n")
            sender.stdin.flush()
            assert received(grader, 3.0) == [[b"after"]]
            assert relay.dropped["iopub"] == 1
            assert relay.sent["iopub"] > 200_000 * (2 + FRAME_CHARGE)
            assert resident_mb() - before < 4
            grader.close()
    finally:
        sender.kill()
        sender.wait()


# -- MessageFilter, on bytes ----------------------------------------------------------------------
GREETING = b"\xff" + bytes(8) + b"\x7f" + b"\x03\x01" + b"NULL".ljust(20, b"\0") + b"\0" + bytes(31)


def frame(body: bytes, more: bool = False, command: bool = False) -> bytes:
    flags = (FLAG_MORE if more else 0) | (FLAG_COMMAND if command else 0)
    if len(body) > 255:
        return bytes([flags | FLAG_LONG]) + len(body).to_bytes(8, "big") + body
    return bytes([flags, len(body)]) + body


def test_the_filter_passes_the_same_bytes_however_they_are_split():
    stream = (GREETING + frame(b"\x05READY", command=True) + frame(b"a", more=True) + frame(b"b" * 300)
              + frame(b"c" * 100, more=True) + frame(b"d" * 3000) + frame(b""))
    whole, charge = MessageFilter(message_limit=1000).feed(stream)
    assert whole == GREETING + frame(b"\x05READY", command=True) + frame(b"a", more=True) + frame(b"b" * 300) \
        + frame(b"")                                  # the 3100-byte message dropped, the rest in order
    assert charge == len(stream) + 6 * FRAME_CHARGE
    split = MessageFilter(message_limit=1000)
    assert b"".join(split.feed(stream[i:i + 1])[0] for i in range(len(stream))) == whole
    assert split.dropped == 1


def test_a_message_is_counted_as_dropped_from_the_part_that_passed_the_limit():
    """Not at its last part, which may come long after (or never, within the notebook's run)."""
    message = MessageFilter(message_limit=1000)
    out, _ = message.feed(GREETING + frame(b"a" * 600, more=True))
    assert out == GREETING and message.dropped == 0
    out, _ = message.feed(frame(b"b" * 600, more=True))
    assert out == b"" and message.dropped == 1
    out, _ = message.feed(frame(b"c", more=True) + frame(b"d") + frame(b"next"))
    assert out == frame(b"next") and message.dropped == 1


@pytest.mark.parametrize("stream", [
    b"GET / HTTP/1.1\r\n" + bytes(64),                            # not ZMTP at all
    GREETING[:10] + b"\x02" + GREETING[11:],                      # ZMTP 2
    GREETING + frame(b"a", more=True) + frame(b"\x04PING", command=True),   # a command inside a message
    GREETING + bytes([0x10, 1]) + b"a",                           # unknown flags
], ids=["not zmtp", "old version", "command in a message", "unknown flags"])
def test_what_is_not_zmtp_3_closes_the_connection(stream):
    with pytest.raises(ProtocolViolation):
        MessageFilter().feed(stream)
