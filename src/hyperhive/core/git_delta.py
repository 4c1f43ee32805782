"""Git's delta format (the instructions that rebuild an object from a base), applied
strictly and without I/O.

The delta is bytes a possibly hostile agent wrote: every copy is checked against the
base, every insert against the delta, and the result against its declared size.
"""

from __future__ import annotations

from hyperhive.core.git_format import MAX_VARINT, CorruptObject, RepoLimit


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """A delta header size: seven bits a byte, least significant first."""
    value = shift = 0
    for count in range(MAX_VARINT):
        if at + count >= len(data):
            break
        byte = data[at + count]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at + count + 1
    raise CorruptObject("its delta header is truncated or too long")


def delta_sizes(delta: bytes) -> tuple[int, int, int]:
    """``(base size, result size, where the instructions start)`` of a delta."""
    base_size, at = _varint(delta, 0)
    result_size, at = _varint(delta, at)
    return base_size, result_size, at


def apply_delta(base: bytes, delta: bytes, *, max_result: int) -> bytes:
    """Rebuild an object from its base and a git delta, checking every instruction.

    Copies must lie inside the base, inserts inside the delta, and the result
    must be exactly the size the delta declares (at most ``max_result``).
    """
    base_size, result_size, at = delta_sizes(delta)
    if base_size != len(base):
        raise CorruptObject("its delta is for a base of another size")
    if result_size > max_result:
        raise RepoLimit(f"its delta result is larger than {max_result} bytes")
    source = memoryview(base)
    out = bytearray()
    while at < len(delta):
        op = delta[at]
        at += 1
        if op & 0x80:
            offset, size, at = _copy_args(delta, at, op)
            if offset + size > len(base):
                raise CorruptObject("its delta copies from outside its base")
            chunk = source[offset : offset + size]
        elif op:
            if at + op > len(delta):
                raise CorruptObject("its delta inserts past its own end")
            chunk = memoryview(delta)[at : at + op]
            at += op
        else:
            raise CorruptObject("its delta holds the reserved instruction 0")
        if len(out) + len(chunk) > result_size:
            raise CorruptObject("its delta writes past its declared size")
        out += chunk
    if len(out) != result_size:
        raise CorruptObject("its delta result is shorter than declared")
    return bytes(out)


def _copy_args(delta: bytes, at: int, op: int) -> tuple[int, int, int]:
    """Offset and size of a copy instruction: only the bytes its flag bits name follow."""
    values = [0, 0]
    for bit in range(7):
        if op & (1 << bit):
            if at >= len(delta):
                raise CorruptObject("its delta copy instruction is truncated")
            which, shift = (0, bit) if bit < 4 else (1, bit - 4)
            values[which] |= delta[at] << (8 * shift)
            at += 1
    return values[0], values[1] or 0x10000, at
