"""The wrapper's few lines of loopback HTTP and JSON, which spare it two heavy imports."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aitrack.capture.loopback import to_json

PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30)


@given(PLAIN)
def test_what_it_writes_json_reads_back_the_same(value):
    assert json.loads(to_json(value)) == value


def test_a_run_event_reads_back_exactly():
    event = {"id": "ab" * 16, "started": 1795960463.11458, "exit_code": -15, "cwd": '/a "b"\\c',
             "env": {"HOME": "/home/zoë\udcff"}, "git": None, "ok": True, "n": [1, 2.5]}
    assert json.loads(to_json(event)) == event
    assert to_json(event).isascii()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1: "x"}, object(), b"x"])
def test_what_json_cannot_hold_is_refused(value):
    with pytest.raises((ValueError, TypeError)):
        to_json(value)
