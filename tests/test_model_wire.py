"""The model worker's wire format: plain data both ways, and nothing else gets through."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

from grader.model_wire import Closed, TimedOut, WireError, decode, encode, read_message, write_message


def body(header: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(header)) + header + payload


def test_a_message_round_trips_with_its_arrays_and_plain_values():
    message = {"op": "forward", "weights": [np.arange(6, dtype=np.float32).reshape(2, 3), np.zeros(0)],
               "X": np.ones((1, 2, 2), np.uint8), "training": True, "seed": None, "nan": float("nan")}
    got = decode(encode(message)[8:])
    assert got["op"] == "forward" and got["training"] is True and got["seed"] is None and np.isnan(got["nan"])
    assert [w.tolist() for w in got["weights"]] == [[[0, 1, 2], [3, 4, 5]], []]
    assert got["X"].dtype == np.uint8 and got["X"].shape == (1, 2, 2)


def test_arrays_of_other_kinds_are_sent_as_plain_numbers():
    got = decode(encode({"x": np.array([1.5], np.float16), "o": np.int16(3)})[8:])
    assert got["x"].dtype == np.float64 and got["o"] == 3


@pytest.mark.parametrize("header, payload, why", [
    (b'{"a": ' + b"1" * 5000 + b"}", b"", "not JSON"),                      # past Python's digit limit
    (b"[1, 2]", b"", "not a JSON object"),
    (b'{"x": ' + b"[" * 200 + b"]" * 200 + b"}", b"", "bounded depth"),
    (json.dumps({"x": {"__array__": 0}, "arrays": [{"dtype": "object", "shape": [1]}]}).encode(), b"\0" * 8,
     "unknown kind"),
    (json.dumps({"x": {"__array__": 0}, "arrays": [{"dtype": "uint8", "shape": [1] * 100}]}).encode(), b"\0",
     "unknown kind"),
    (json.dumps({"x": {"__array__": 0}, "arrays": [{"dtype": "float64", "shape": [1 << 39, 1 << 39]}]}).encode(),
     b"", "longer than the message"),                                       # nothing allocated for it
    (json.dumps({"x": {"__array__": 0}, "arrays": [{"dtype": "float64", "shape": [4]}]}).encode(), b"\0" * 8,
     "longer than the message"),
    (json.dumps({"x": {"__array__": 1}, "arrays": [{"dtype": "uint8", "shape": [1]}]}).encode(), b"\0",
     "does not carry"),
    (json.dumps({"x": 1}).encode(), b"extra", "bytes after"),
])
def test_malformed_messages_are_wire_errors(header, payload, why):
    with pytest.raises(WireError, match=why):
        decode(body(header, payload))


def test_reading_is_bounded_in_size_and_time_and_notices_a_closed_pipe():
    reader, writer = os.pipe()
    try:
        write_message(writer, {"big": np.zeros(1000)})
        with pytest.raises(WireError, match="more than the 100 allowed"):
            read_message(reader, 100)
    finally:
        os.close(writer)
        os.close(reader)
    reader, writer = os.pipe()
    try:
        with pytest.raises(TimedOut):
            read_message(reader, 1 << 20, deadline=__import__("time").monotonic() + 0.2)
        os.write(writer, struct.pack(">Q", 10) + b"abc")
        os.close(writer)
        with pytest.raises(Closed):
            read_message(reader, 1 << 20)
    finally:
        os.close(reader)
