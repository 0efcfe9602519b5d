"""A message-filtering, byte-capped relay between the grader's Jupyter sockets and a sandboxed kernel's.

ZeroMQ bounds each part of a message (MAXMSGSIZE), not their number: a kernel can send one
message of any size, or of millions of empty parts (64 bytes each to libzmq for 2 on the wire),
and the grader's ZeroMQ holds it whole before anything of the grader's sees it
(tests/test_hostile.py). The relay sits on the byte streams instead: the grader's sockets connect
to the relay's unix sockets, the relay to the kernel's. It reads what the kernel sends as ZMTP
(MessageFilter) and passes only whole messages within MESSAGE_LIMIT, each part charged with its
record, dropping larger ones whole; so a message costs the grader at most MESSAGE_LIMIT, and a
socket at most its queue of them. What the kernel sends on a channel is also counted for the whole
session (bytes and parts, across reconnections): past the channel's cap the relay closes that
channel's connections and refuses new ones, a bound on what a flood costs.

The sandbox (sandbox.py) owns one relay per session: at each kernel start, once the kernel's
sockets are checked (`Sandbox.seal`), it adds each channel; the kernel manager's control socket
and the kernel client connect to the relay's paths instead of the kernel's. When a channel passes
its cap, `on_exceeded(channel)` is called (from the relay's thread) and the channel stays refused:
the sandbox decides the rest (outputs: no longer heard; any other channel: the kernel killed).
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
# ZMTP 3 (rfc.zeromq.org/spec/23): a 64-byte greeting, then frames: a flags byte (MORE, LONG,
# COMMAND), a size of 1 or 8 bytes, the body. Each frame also costs the receiver its own record
# (libzmq keeps 64 bytes per message part, pyzmq an object per part): charged as FRAME_CHARGE.
GREETING_BYTES = 64
FLAG_MORE, FLAG_LONG, FLAG_COMMAND = 0x01, 0x02, 0x04
FRAME_CHARGE = 64
MESSAGE_LIMIT = 1 << 20      # a message's parts and their charges: a larger message is dropped whole
COMMAND_LIMIT = 4096         # READY, PING, PONG, ERROR are small


class ProtocolViolation(Exception):
    """What the kernel sent is not ZMTP 3 as libzmq speaks it: its connection is closed."""


class MessageFilter:
    """The kernel-to-grader half of one connection, read as ZMTP 3: the greeting and commands pass,
    messages pass whole if within MESSAGE_LIMIT (their parts charged), larger ones are dropped
    whole. Nothing of a message reaches the grader before its last part: a message of any number
    of parts costs the grader's ZeroMQ at most MESSAGE_LIMIT, whatever ZeroMQ's own limits are."""

    def __init__(self, message_limit: int = MESSAGE_LIMIT):
        self.message_limit = message_limit
        self.dropped = 0                 # messages dropped for their size (from the part that passed it)
        self._greeting = bytearray()
        self._head = bytearray()         # the frame header being read
        self._body_left = 0              # bytes of the current frame's body still to come
        self._flags = 0
        self._message = bytearray()      # the frames of the message being read (as on the wire)
        self._charged = 0                # of the message being read
        self._dropping = False

    def feed(self, data: bytes) -> tuple[bytes, int]:
        """What to pass on of `data`, and the charge of `data` (its bytes and its frames)."""
        out = bytearray()
        charge = len(data)
        pos, end = 0, len(data)
        while pos < end:
            if len(self._greeting) < GREETING_BYTES:
                take = data[pos:pos + GREETING_BYTES - len(self._greeting)]
                pos += len(take)
                self._greeting += take
                out += take
                if len(self._greeting) >= 11 and (self._greeting[0] != 0xFF or self._greeting[9] != 0x7F
                                                   or self._greeting[10] < 3):
                    raise ProtocolViolation("not a ZMTP 3 greeting")
                continue
            if self._body_left == 0:                  # a frame's header: 2 or 9 bytes
                head = self._head
                if not head:
                    head.append(data[pos])
                    pos += 1
                want = (9 if head[0] & FLAG_LONG else 2) - len(head)
                take = data[pos:pos + want]
                pos += len(take)
                head += take
                if len(take) == want:
                    charge += FRAME_CHARGE
                    self._start_frame(out)
                continue
            take = data[pos:pos + self._body_left]
            pos += len(take)
            self._body_left -= len(take)
            if self._flags & FLAG_COMMAND:
                out += take
            elif not self._dropping:
                self._message += take
            if self._body_left == 0:
                self._end_frame(out)
        return bytes(out), charge

    def _start_frame(self, out: bytearray) -> None:
        head, self._head = bytes(self._head), bytearray()
        flags = head[0]
        if flags & ~(FLAG_MORE | FLAG_LONG | FLAG_COMMAND):
            raise ProtocolViolation("unknown frame flags")
        size = int.from_bytes(head[1:], "big")
        self._flags, self._body_left = flags, size
        if flags & FLAG_COMMAND:
            if self._message or self._dropping or size > COMMAND_LIMIT or flags & FLAG_MORE:
                raise ProtocolViolation("a command inside a message, or too large")
            out += head
        else:
            self._charged += FRAME_CHARGE + size
            if self._charged > self.message_limit and not self._dropping:
                # counted now, not at its last part: a message still arriving when the notebook's
                # run ends (millions of parts) is among the run's notes all the same
                self._dropping = True
                self.dropped += 1
                self._message = bytearray()
            if not self._dropping:
                self._message += head
        if size == 0:
            self._end_frame(out)

    def _end_frame(self, out: bytearray) -> None:
        if self._flags & (FLAG_COMMAND | FLAG_MORE):
            return
        if not self._dropping:
            out += self._message
        self._message, self._charged, self._dropping = bytearray(), 0, False


@dataclass
class _Pipe:
    """One direction of one connection: what was read from `source` and waits for `target`."""

    source: socket.socket
    target: socket.socket
    channel: str
    pending: bytearray = field(default_factory=bytearray)
    messages: MessageFilter | None = None     # from the kernel: read as ZMTP, charged to the channel


class ChannelRelay:
    """Relays connections on each channel's listening path to the kernel's socket of that channel."""

    def __init__(self, caps: Mapping[str, int], on_exceeded: Callable[[str], None] | None = None):
        self.on_exceeded = on_exceeded
        self.caps = dict(caps)                       # channel -> bytes the kernel may send in all
        self.sent: dict[str, int] = {name: 0 for name in caps}      # charged: bytes and frames
        self.dropped: dict[str, int] = {name: 0 for name in caps}   # messages over MESSAGE_LIMIT
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
        to_grader = _Pipe(kernel_side, grader_side, name, messages=MessageFilter())
        to_kernel = _Pipe(grader_side, kernel_side, name)
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
            if data and reading.messages is not None:
                before = reading.messages.dropped
                try:
                    data, charge = reading.messages.feed(data)
                except ProtocolViolation:
                    self._close_connection(reading)
                    return
                self.dropped[reading.channel] += reading.messages.dropped - before
                self.sent[reading.channel] += charge
                if self.sent[reading.channel] > self.caps[reading.channel]:
                    self.exceeded.add(reading.channel)
                    self._close_channel(reading.channel)
                    if self.on_exceeded is not None:
                        try:
                            self.on_exceeded(reading.channel)
                        except Exception:
                            pass
                    return
            if data:
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
