"""A byte-capped relay between the grader's Jupyter sockets and a sandboxed kernel's (ipc transport).

ZeroMQ bounds each part of a message (MAXMSGSIZE), not their number: a kernel can send one
message of any size, and the grader's ZeroMQ holds it whole before anything of the grader's sees
it (tests/test_hostile.py, the multi-part case). The relay sits on the byte streams instead: the
grader's sockets connect to the relay's unix sockets, the relay to the kernel's; every byte the
kernel sends on a channel is counted, and past the channel's cap (for the whole session, across
reconnections) the relay closes that channel's connections and refuses new ones. What the kernel
can make the grader's process hold is then at most the sum of the caps.

The sandbox (sandbox.py) owns one relay per session: at each kernel start, once the kernel's
sockets are checked (`Sandbox.seal`), it adds each channel; the kernel manager's control socket
and the kernel client connect to the relay's paths instead of the kernel's. When a channel passes
its cap, `on_exceeded(channel)` is called (from the relay's thread): the sandbox kills the kernel,
and the session is over (the channel stays refused).
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
from collections.abc import Callable, Mapping
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
    """Relays connections on each channel's listening path to the kernel's socket of that channel."""

    def __init__(self, caps: Mapping[str, int], on_exceeded: Callable[[str], None] | None = None):
        self.on_exceeded = on_exceeded
        self.caps = dict(caps)                       # channel -> bytes the kernel may send in all
        self.sent: dict[str, int] = {name: 0 for name in caps}
        self.exceeded: set[str] = set()
        self._kernel_sockets: dict[str, int] = {}   # channel -> O_PATH descriptor of the kernel's socket
        self._listeners: dict[socket.socket, tuple[str, Path]] = {}
        self._actions: list[tuple[Callable[[], None], threading.Event]] = []
        self._pipes: list[_Pipe] = []
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)          # a full wake-up pipe already wakes the loop
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="channel-relay", daemon=True)

    # -- set-up ---------------------------------------------------------------------------------
    def add(self, name: str, kernel_socket: int, listen_path: Path) -> Path:
        """Relay channel `name` (one of the caps) from a new unix socket at `listen_path` (which must
        not exist: a folder only the grader can write) to the kernel's socket, given as an O_PATH
        descriptor of its file (the relay owns it from now on). Connections go to that very socket,
        whatever its path holds later: the kernel cannot swap it for a link. Returns `listen_path`.
        The count of a channel goes on across kernel starts."""
        if name not in self.caps:
            os.close(kernel_socket)
            raise ValueError(f"no cap for channel {name!r}")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(listen_path))
            listener.listen(8)
            listener.setblocking(False)
        except OSError:
            listener.close()
            os.close(kernel_socket)
            raise

        def install() -> None:
            old = self._kernel_sockets.pop(name, None)
            self._kernel_sockets[name] = kernel_socket
            self._listeners[listener] = (name, listen_path)
            self._selector.register(listener, selectors.EVENT_READ, ("listen", name))
            if old is not None:
                os.close(old)

        self._call(install)
        return listen_path

    def drop_listeners(self) -> None:
        """The end of a kernel start: close every listener (its path removed) and connection."""
        self._call(self._drop_all)

    def _drop_all(self) -> None:
        for pipe in list(self._pipes):
            self._drop(pipe)
        listeners, self._listeners = self._listeners, {}
        kernel_sockets, self._kernel_sockets = self._kernel_sockets, {}
        for fd in kernel_sockets.values():
            os.close(fd)
        for listener, (_, path) in listeners.items():
            try:
                self._selector.unregister(listener)
            except (KeyError, ValueError):
                pass
            listener.close()
            try:
                os.unlink(path)
            except OSError:
                pass

    def _call(self, action: Callable[[], None]) -> None:
        """Run `action` on the relay's thread (at once if it is not running) and wait for it: the
        relay's sockets, descriptors and selector are only ever touched by one thread."""
        if not self._thread.is_alive() or threading.current_thread() is self._thread:
            action()
            return
        done = threading.Event()
        with self._lock:
            self._actions.append((action, done))
        self._wake()
        done.wait(timeout=10)

    def start(self) -> "ChannelRelay":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop = True
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._drop_all()
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
                    self._run_actions()
                    continue
                try:
                    if key.data[0] == "listen":
                        self._accept(key.fileobj, key.data[1])
                    else:
                        self._pump(key.data[1], events)
                except Exception:        # never lose the thread: the connection goes, the relay stays
                    if key.data[0] == "pipe":
                        self._close_connection(key.data[1][0])
        self._run_actions()

    def _run_actions(self) -> None:
        with self._lock:
            actions, self._actions = self._actions, []
        for action, done in actions:
            try:
                action()
            finally:
                done.set()

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
            kernel_side.setblocking(False)   # a full backlog fails at once (the grader's side retries)
            kernel_side.connect(f"/proc/self/fd/{self._kernel_sockets[name]}")
        except (OSError, KeyError):
            grader_side.close()
            kernel_side.close()
            return
        grader_side.setblocking(False)
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
                        if self.on_exceeded is not None:
                            try:
                                self.on_exceeded(reading.channel)
                            except Exception:
                                pass
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
