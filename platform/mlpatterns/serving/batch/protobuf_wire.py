"""The protobuf wire format, just enough to edit a few fields of a serialized message
and keep every other byte as it was (unknown fields, field order, packed or not).

Batch prediction edits one node of an ONNX graph (`class_indices.py`). The `onnx`
package would parse and rebuild the whole model, but importing it costs most of a
second here (its `ml_dtypes` dependency alone 0.6 s), several times the work of
predicting a million iris rows. A message is read as a flat list of its fields; an
embedded message is just a length-delimited field, decoded only when it is edited.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

__all__ = [
    "Field",
    "WireFormatError",
    "bytes_field",
    "decode",
    "edit_only",
    "encode",
    "fields_of",
    "last_text",
    "only",
    "replaced",
    "varint_field",
]

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5
_FIXED_SIZE = {FIXED64: 8, FIXED32: 4}


class WireFormatError(ValueError):
    """The bytes are not a protobuf message this module can read."""


@dataclass(frozen=True)
class Field:
    number: int
    wire_type: int
    value: int | bytes  # an int for VARINT, the payload's bytes for the other types

    @property
    def payload(self) -> bytes:
        if not isinstance(self.value, bytes):
            raise WireFormatError(f"field {self.number} is a varint, not a payload")
        return self.value


def varint_field(number: int, value: int) -> Field:
    return Field(number, VARINT, value)


def bytes_field(number: int, value: bytes | str) -> Field:
    return Field(number, LENGTH_DELIMITED, value.encode() if isinstance(value, str) else value)


def decode(message: bytes) -> list[Field]:
    """The fields of `message` in the order they were written."""
    return list(fields_of(message))


def fields_of(message: bytes) -> Iterator[Field]:
    """The fields of `message` one at a time, read only as far as they are asked for."""
    view = memoryview(message)
    position = 0
    while position < len(view):
        key, position = _read_varint(view, position)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireFormatError(f"field number 0 at byte {position}")
        value: int | bytes
        if wire_type == VARINT:
            value, position = _read_varint(view, position)
        elif wire_type == LENGTH_DELIMITED:
            length, position = _read_varint(view, position)
            value, position = _read_bytes(view, position, length)
        elif wire_type in _FIXED_SIZE:
            value, position = _read_bytes(view, position, _FIXED_SIZE[wire_type])
        else:  # groups (3, 4) are long deprecated and absent from ONNX
            raise WireFormatError(f"field {number} has the unsupported wire type {wire_type}")
        yield Field(number, wire_type, value)


def encode(fields: Iterable[Field]) -> bytes:
    parts: list[bytes] = []
    for field in fields:
        parts.append(_varint(field.number << 3 | field.wire_type))
        if field.wire_type == VARINT:
            if not isinstance(field.value, int):
                raise WireFormatError(f"field {field.number}: a varint needs an int")
            parts.append(_varint(field.value))
            continue
        payload = field.payload
        if field.wire_type == LENGTH_DELIMITED:
            parts.append(_varint(len(payload)))
        elif _FIXED_SIZE.get(field.wire_type) != len(payload):
            raise WireFormatError(f"field {field.number}: wrong size for its wire type")
        parts.append(payload)
    return b"".join(parts)


def only(fields: list[Field], number: int) -> Field | None:
    """The one field `number`, or None when it is absent or repeated."""
    found = [field for field in fields if field.number == number]
    return found[0] if len(found) == 1 else None


def last_text(fields: list[Field], number: int) -> str:
    """A string field's value: the last one written wins, as protobuf parsers have it;
    "" when absent."""
    found = [field for field in fields if field.number == number]
    return found[-1].payload.decode() if found else ""


def replaced(fields: list[Field], old: Field, payload: bytes) -> list[Field]:
    """`fields` with the payload of `old` (that very field, not an equal one) replaced."""
    return [bytes_field(f.number, payload) if f is old else f for f in fields]


def edit_only(message: bytes, number: int, edit: Callable[[bytes], bytes | None]) -> bytes | None:
    """`message` with the payload of its one field `number` passed through `edit`; None
    when that field is absent or repeated, or when `edit` gives None."""
    fields = decode(message)
    target = only(fields, number)
    if target is None or target.wire_type != LENGTH_DELIMITED:
        return None
    edited = edit(target.payload)
    return None if edited is None else encode(replaced(fields, target, edited))


def _varint(value: int) -> bytes:
    if value < 0:  # int64 fields store negatives as their 64-bit two's complement
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(view: memoryview, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(view):
            raise WireFormatError("the message ends inside a varint")
        byte = view[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift >= 70:
            raise WireFormatError(f"a varint longer than ten bytes at byte {position}")


def _read_bytes(view: memoryview, position: int, length: int) -> tuple[bytes, int]:
    end = position + length
    if end > len(view):
        raise WireFormatError(f"a field of {length} bytes runs past the end of the message")
    return bytes(view[position:end]), end
