"""The wire format reader and writer that class_indices edits ONNX graphs with: what
it reads it writes back byte for byte, and bytes that are not a message are refused
with WireFormatError, never read past their end."""

from __future__ import annotations

import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlpatterns.serving.batch import protobuf_wire as wire

pytestmark = pytest.mark.unit

numbers = st.integers(min_value=1, max_value=(1 << 29) - 1)
fields = st.one_of(
    st.builds(wire.varint_field, numbers, st.integers(min_value=0, max_value=(1 << 64) - 1)),
    st.builds(wire.bytes_field, numbers, st.binary(max_size=300)),
    st.builds(wire.Field, numbers, st.just(wire.FIXED32), st.binary(min_size=4, max_size=4)),
    st.builds(wire.Field, numbers, st.just(wire.FIXED64), st.binary(min_size=8, max_size=8)),
)


@given(st.lists(fields, max_size=20))
def test_fields_come_back_as_they_were_written(written: list[wire.Field]) -> None:
    assert wire.decode(wire.encode(written)) == written


def test_a_negative_int64_is_written_as_protobuf_writes_it() -> None:
    attribute = onnx.helper.make_attribute("offsets", [-1, 5, -(1 << 63)])
    fields = [f for f in wire.decode(attribute.SerializeToString()) if f.number == 8]
    assert wire.encode(wire.varint_field(8, v) for v in (-1, 5, -(1 << 63))) == wire.encode(fields)


def test_a_real_model_is_written_back_byte_for_byte() -> None:
    node = onnx.helper.make_node(
        "LinearClassifier",
        ["input"],
        ["label", "probabilities"],
        domain="ai.onnx.ml",
        classlabels_strings=["a", "b"],
        coefficients=[0.5, -1.25, 2.0, 3.0],
        intercepts=[0.1, -0.1],
    )
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [None, 2])],
        [onnx.helper.make_tensor_value_info("label", onnx.TensorProto.STRING, [None])],
    )
    model = onnx.helper.make_model(graph).SerializeToString()
    assert wire.encode(wire.decode(model)) == model
    graph_field = wire.only(wire.decode(model), 7)
    assert graph_field is not None
    assert wire.encode(wire.decode(graph_field.payload)) == graph_field.payload


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"\x08", "ends inside a varint"),
        (b"\x08\xff", "ends inside a varint"),
        (b"\x08" + b"\xff" * 10 + b"\x01", "longer than ten bytes"),
        (b"\x0a\x05ab", "runs past the end"),
        (b"\x0d\x01\x02", "runs past the end"),
        (b"\x0b", "unsupported wire type 3"),
        (b"\x00\x01", "field number 0"),
    ],
)
def test_bytes_that_are_not_a_message_are_refused(message: bytes, reason: str) -> None:
    with pytest.raises(wire.WireFormatError, match=reason):
        wire.decode(message)


def test_edit_only_declines_an_absent_or_repeated_field() -> None:
    once = wire.encode([wire.bytes_field(2, b"x"), wire.varint_field(3, 1)])
    twice = wire.encode([wire.bytes_field(2, b"x"), wire.bytes_field(2, b"y")])
    assert wire.edit_only(once, 2, lambda payload: payload + b"!") == wire.encode(
        [wire.bytes_field(2, b"x!"), wire.varint_field(3, 1)]
    )
    assert wire.edit_only(once, 5, lambda payload: payload) is None
    assert wire.edit_only(twice, 2, lambda payload: payload) is None
    assert wire.edit_only(once, 2, lambda payload: None) is None


def test_fields_of_reads_no_further_than_asked() -> None:
    """What class_indices relies on to read an attribute's name and not its values."""
    fields = wire.fields_of(b"\x0a\x01a" + b"\xff" * 12)
    assert next(fields) == wire.bytes_field(1, b"a")
    with pytest.raises(wire.WireFormatError):
        next(fields)
