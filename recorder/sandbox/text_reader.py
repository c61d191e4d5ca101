"""Read a large UTF-8 file into one ``str`` without holding a second copy (CPython).

Reading bytes and decoding them holds the bytes and the string at the peak (2× the file,
more with the decoder's buffers). Instead, a string of the right length and kind is
allocated uninitialised with ``PyUnicode_New`` and filled in place, the way CPython's own
decoders build strings:

1. *ASCII, one pass* (the common case: logs, prompt corpora): copy the file into a
   ``PyUnicode_New(size, 127)`` string chunk by chunk, checking each chunk with
   ``bytearray.isascii``; abandon at the first non-ASCII chunk.
2. *Any UTF-8, two more passes*: decode the rest of the file to learn the length and the
   widest character (which fixes the string's kind: 1, 2 or 4 bytes per character — it must
   be the narrowest that fits, as CPython compares strings by kind first); allocate; decode
   again and copy each chunk in, converted to the kind's layout by encoding it as latin-1,
   UTF-16-LE or UTF-32-LE. Invalid bytes become U+FFFD, as ``errors="replace"`` does.

Peak memory is the string plus a few chunks. The layout facts used (a compact string's
characters follow its header; ``sys.getsizeof`` of a fresh string is header + (length + 1)
× character size) hold on every CPython 3; other interpreters read the file the ordinary way.
"""

from __future__ import annotations

import codecs
import ctypes
import platform
import re
import sys
from collections.abc import Iterator
from io import BufferedReader

CHUNK = 1 << 24
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# kind (bytes per character) -> (max char passed to PyUnicode_New, codec giving that layout)
_KINDS = {1: (255, "latin-1"), 2: (65535, "utf-16-le"), 4: (1114111, "utf-32-le")}


def in_place_supported() -> bool:
    return platform.python_implementation() == "CPython"


def _new_string(length: int, max_char: int) -> str:
    new = ctypes.pythonapi.PyUnicode_New
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.c_ssize_t, ctypes.c_uint32]
    text: str = new(length, max_char)
    return text


def _data_address(text: str, max_char: int, char_size: int) -> int:
    """Address of the first character of ``text``, a fresh compact string of that kind."""
    header = sys.getsizeof(_new_string(1, max_char)) - 2 * char_size
    return id(text) + header


def read_ascii(handle: BufferedReader, size: int) -> tuple[str | None, int]:
    """Pass 1: the file as an ASCII str, or None and how many leading bytes are ASCII."""
    text = _new_string(size, 127)
    data = _data_address(text, 127, 1)
    buffer = bytearray(CHUNK)
    buffer_address = ctypes.addressof((ctypes.c_char * CHUNK).from_buffer(buffer))
    offset = 0
    while offset < size:
        count = handle.readinto(buffer)
        if not count:
            return None, offset  # the file shrank while we read it
        count = min(count, size - offset)
        if not (buffer if count == CHUNK else buffer[:count]).isascii():
            return None, offset
        ctypes.memmove(data + offset, buffer_address, count)
        offset += count
    if handle.read(1):
        return None, offset  # the file grew while we read it
    return text, size


def _decoded_chunks(handle: BufferedReader, start: int = 0) -> Iterator[str]:
    handle.seek(start)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while True:
        block = handle.read(CHUNK)
        piece = decoder.decode(block, final=not block)
        if piece:
            yield piece
        if not block:
            return


def _char_size(piece: str) -> int:
    if piece.isascii():
        return 1
    try:
        piece.encode("latin-1")
        return 1
    except UnicodeEncodeError:
        return 4 if _ASTRAL.search(piece) else 2


def read_utf8(handle: BufferedReader, ascii_prefix: int = 0) -> str:
    """Passes 2 and 3: measure, allocate once, fill. Any UTF-8 file, invalid bytes replaced.

    ``ascii_prefix`` leading bytes are known to be ASCII (from pass 1): measuring skips them.
    """
    length, char_size, ascii_only = ascii_prefix, 1, True
    for piece in _decoded_chunks(handle, ascii_prefix):
        length += len(piece)
        ascii_only = ascii_only and piece.isascii()
        char_size = max(char_size, _char_size(piece))
    max_char, codec = (127, "ascii") if ascii_only else _KINDS[char_size]
    text = _new_string(length, max_char)
    data = _data_address(text, max_char, char_size)
    offset = 0
    for piece in _decoded_chunks(handle):
        if offset + len(piece) > length:
            raise OSError("the file changed while it was being read")
        raw = piece.encode(codec)
        ctypes.memmove(data + offset * char_size, raw, len(raw))
        offset += len(piece)
    if offset != length:
        raise OSError("the file changed while it was being read")
    return text
