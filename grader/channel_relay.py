"""A byte-capped relay between the grader's Jupyter sockets and a sandboxed kernel's (ipc transport).

ZeroMQ bounds each part of a message (MAXMSGSIZE), not their number: a kernel can send one
message of any size, and the grader's ZeroMQ holds it whole before anything of the grader's sees
it (tests/test_hostile.py, the multi-part case). The relay sits on the byte streams instead: the
grader's sockets connect to the relay's unix sockets, the relay to the kernel's; every byte the
kernel sends on a channel is counted, and past the channel's cap (for the whole session, across
reconnections) the relay closes that channel's connections and refuses new ones. What the kernel
can make the grader's process hold is then at most the sum of the caps.

Not wired in yet (work in progress): NotebookRunner would start one per session, add the
channels of each kernel start, and point the kernel client (and the kernel manager's control
socket) at `listen_path(name)`.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = 64 * 1024
PENDING_LIMIT = 4 * CHUNK    # bytes read but not yet written onward, per direction: then reading waits


@dataclass
class _Pipe:
    """One direction of one connection: what was read from `source` and waits for `target`."""

    source: socket.socket
    target: socket.socket
    channel: str
    from_kernel: bool
    pending: bytearray = field(default_factory=bytearray)


class ChannelRelay:
    """Relays connections on `<folder>/<name>` to the kernel's socket of each channel added."""

    def __init__(self, folder: Path, caps: Mapping[str, int]):
        self.folder = folder
        self.caps = dict(caps)                       # channel -> bytes the kernel may send in all
        self.sent: dict[str, int] = {name: 0 for name in caps}
        self.exceeded: set[str] = set()
        self._kernel_paths: dict[str, Path] = {}
        self._listeners: dict[socket.socket, str] = {}
        self._pipes: list[_Pipe] = []
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="channel-relay", daemon=True)

    # -- set-up ---------------------------------------------------------------------------------
    def listen_path(self, name: str) -> Path:
        return self.folder / name

    def add(self, name: str, kernel_path: Path) -> Path:
        """Relay channel `name` (one of the caps) to the kernel's socket at `kernel_path`; the path
        the grader connects to instead. A channel added again (the next kernel start) is relayed to
        its new socket; its count goes on."""
        if name not in self.caps:
            raise ValueError(f"no cap for channel {name!r}")
        with self._lock:
            self._kernel_paths[name] = kernel_path
            if name in self._listeners.values():
                return self.listen_path(name)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(self.listen_path(name)))
            listener.listen(8)
            listener.setblocking(False)
            self._listeners[listener] = name
        self._selector.register(listener, selectors.EVENT_READ, ("listen", name))
        self._wake()
        return self.listen_path(name)

    def start(self) -> "ChannelRelay":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop = True
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for pipe in list(self._pipes):
            self._drop(pipe)
        for listener in list(self._listeners):
            listener.close()
            try:
                os.unlink(self.listen_path(self._listeners[listener]))
            except OSError:
                pass
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> "ChannelRelay":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop -------------------------------------------------------------------------------
    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _run(self) -> None:
        while not self._stop:
            for key, events in self._selector.select(timeout=1.0):
                if key.data is None:
                    self._wake_r.recv(4096)
                elif key.data[0] == "listen":
                    self._accept(key.fileobj, key.data[1])
                else:
                    self._pump(key.data[1], events)

    def _accept(self, listener: socket.socket, name: str) -> None:
        try:
            grader_side, _ = listener.accept()
        except OSError:
            return
        if name in self.exceeded:            # past its cap: refused for the rest of the session
            grader_side.close()
            return
        kernel_side = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            kernel_side.settimeout(2.0)
            kernel_side.connect(str(self._kernel_paths[name]))
        except OSError:
            grader_side.close()
            kernel_side.close()
            return
        for s in (grader_side, kernel_side):
            s.setblocking(False)
        to_grader = _Pipe(kernel_side, grader_side, name, from_kernel=True)
        to_kernel = _Pipe(grader_side, kernel_side, name, from_kernel=False)
        self._pipes += [to_grader, to_kernel]
        self._selector.register(kernel_side, selectors.EVENT_READ, ("pipe", (to_grader, to_kernel)))
        self._selector.register(grader_side, selectors.EVENT_READ, ("pipe", (to_kernel, to_grader)))

    def _pump(self, pair: tuple[_Pipe, _Pipe], events: int) -> None:
        reading, writing_back = pair   # reading: from this socket; writing_back: into this socket
        if events & selectors.EVENT_WRITE:
            self._flush(writing_back)
        if events & selectors.EVENT_READ and len(reading.pending) < PENDING_LIMIT:
            try:
                data = reading.source.recv(CHUNK)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if data == b"":
                self._close_connection(reading)
                return
            if data:
                if reading.from_kernel:
                    self.sent[reading.channel] += len(data)
                    if self.sent[reading.channel] > self.caps[reading.channel]:
                        self.exceeded.add(reading.channel)
                        self._close_channel(reading.channel)
                        return
                reading.pending += data
                self._flush(reading)
        self._update(pair)

    def _flush(self, pipe: _Pipe) -> None:
        if not pipe.pending:
            return
        try:
            n = pipe.target.send(pipe.pending)
        except BlockingIOError:
            return
        except OSError:
            self._close_connection(pipe)
            return
        del pipe.pending[:n]

    def _update(self, pair: tuple[_Pipe, _Pipe]) -> None:
        """Each socket: read while its outgoing pipe has room, write while its incoming one waits
        (neither: out of the selector until the other side has written)."""
        a, b = pair
        for sock, out_pipe, in_pipe in ((a.source, a, b), (a.target, b, a)):
            if sock.fileno() < 0:
                continue
            mask = (selectors.EVENT_READ if len(out_pipe.pending) < PENDING_LIMIT else 0) | \
                   (selectors.EVENT_WRITE if in_pipe.pending else 0)
            key = self._selector.get_map().get(sock)
            data = ("pipe", (out_pipe, in_pipe))
            if key is None and mask:
                self._selector.register(sock, mask, data)
            elif key is not None and not mask:
                self._selector.unregister(sock)
            elif key is not None and key.events != mask:
                self._selector.modify(sock, mask, data)

    def _close_connection(self, pipe: _Pipe) -> None:
        for other in [p for p in self._pipes if {p.source, p.target} == {pipe.source, pipe.target}]:
            self._drop(other)

    def _close_channel(self, name: str) -> None:
        for pipe in [p for p in self._pipes if p.channel == name]:
            self._drop(pipe)

    def _drop(self, pipe: _Pipe) -> None:
        if pipe in self._pipes:
            self._pipes.remove(pipe)
        for sock in (pipe.source, pipe.target):
            try:
                self._selector.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()
