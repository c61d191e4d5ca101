"""Read a large UTF-8 file into one ``str`` without holding a second copy (CPython).

Reading bytes and decoding them holds the bytes and the string at the peak (2× the file,
more with the decoder's buffers). Instead, a string of the right length and kind is
allocated uninitialised with ``PyUnicode_New`` and filled in place, the way CPython's own
decoders build strings:

1. *ASCII, one pass* (the common case: logs, prompt corpora): copy the file into a
   ``PyUnicode_New(size + SLACK, 127)`` string chunk by chunk, checking each chunk with
   ``bytearray.isascii``, then shorten it to ``size``; stop at the first non-ASCII chunk.
2. *Any UTF-8, two more passes over the rest*: decode the file from the first non-ASCII
   chunk on to learn the length and the widest character (which fixes the string's kind: 1,
   2 or 4 bytes per character — it must be the narrowest that fits, as CPython compares
   strings by kind first), then decode the rest again and copy each chunk in, converted to
   the kind's layout by encoding it as latin-1, UTF-16-LE or UTF-32-LE. Invalid bytes become
   U+FFFD, as ``errors="replace"`` does. The ASCII prefix from pass 1 is never read again:

   * kind 1 (latin-1, e.g. a log with one "café"): pass 1's string, made with ``SLACK``
     spare characters, becomes the result in place — its characters move up past the longer
     header of a non-ASCII string, whose header bytes are copied from a fresh latin-1 string
     (then its length and hash are set): no second string at all;
   * kinds 2 and 4: a new string; the prefix is copied over from pass 1's string (widened),
     and pass 1's pages are handed back to the kernel (``madvise(MADV_DONTNEED)``) chunk by
     chunk as they are copied, so the two strings are never both whole.

Peak memory is the string plus a few chunks; large strings are populated in one call
(``MADV_POPULATE_WRITE``) rather than a page fault per page. A file that is ASCII up to its
last chunk costs pass 1 plus one pass over that chunk. The layout facts used (a compact
string's characters follow its header; ``sys.getsizeof`` of a fresh string is header +
(length + 1) × character size; the length and hash follow ``PyObject_HEAD``) hold on every
CPython 3 with the GIL; other interpreters read the file the ordinary way.
"""

from __future__ import annotations

import codecs
import ctypes
import functools
import mmap
import platform
import re
import sys
import sysconfig
from collections.abc import Iterator
from io import BufferedReader

CHUNK = 1 << 24
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# kind (bytes per character) -> (max char passed to PyUnicode_New, codec giving that layout)
_KINDS = {1: (255, "latin-1"), 2: (65535, "utf-16-le"), 4: (1114111, "utf-32-le")}


SLACK = 64  # spare characters in pass 1's string: room to turn it into a latin-1 string in place
_HEAD = object.__basicsize__  # PyObject_HEAD: the string's length, then its hash, follow it


def in_place_supported() -> bool:
    return platform.python_implementation() == "CPython" and not sysconfig.get_config_var("Py_GIL_DISABLED")


def _new_string(length: int, max_char: int) -> str:
    new = ctypes.pythonapi.PyUnicode_New
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.c_ssize_t, ctypes.c_uint32]
    text: str = new(length, max_char)
    if length >= CHUNK:  # one call faults every page in: cheaper than a fault per page
        _advise(id(text), sys.getsizeof(text), MADV_POPULATE_WRITE)
    return text


def _header(max_char: int, char_size: int = 1) -> int:
    """Bytes before the first character of a compact string of this kind."""
    return sys.getsizeof(_new_string(1, max_char)) - 2 * char_size


def _data_address(text: str, max_char: int, char_size: int) -> int:
    """Address of the first character of ``text``, a fresh compact string of that kind."""
    return id(text) + _header(max_char, char_size)


def _set_length(text: str, length: int, data: int, char_size: int) -> None:
    """Shorten a string nobody else holds yet to ``length`` characters (a string made with
    spare room): the length field, an unset hash, the terminating NUL."""
    ctypes.c_ssize_t.from_address(id(text) + _HEAD).value = length
    ctypes.c_ssize_t.from_address(id(text) + _HEAD + 8).value = -1
    ctypes.memset(data + length * char_size, 0, char_size)


def _to_latin1_in_place(text: str, ascii_count: int, length: int) -> int | None:
    """Turn pass 1's ASCII string (its first ``ascii_count`` characters filled) into a latin-1
    one of ``length`` characters, in place: move the characters up past the longer header of
    a non-ASCII string and copy that header from a fresh latin-1 string (kind 1, compact, not
    ASCII; its length and hash set after). Returns the new data address, or None when the
    spare room is too small."""
    ascii_header, latin1_header = _header(127), _header(255)
    if length + latin1_header - ascii_header > len(text):
        return None
    base = id(text)
    ctypes.memmove(base + latin1_header, base + ascii_header, ascii_count)
    model = _new_string(1, 255)
    ctypes.memmove(base + _HEAD, id(model) + _HEAD, latin1_header - _HEAD)
    _set_length(text, length, base + latin1_header, 1)
    return base + latin1_header


MADV_DONTNEED, MADV_POPULATE_WRITE = 4, 23


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc


def _advise(address: int, count: int, advice: int) -> None:
    """madvise the whole pages inside [address, address + count) (Linux; best effort)."""
    page = mmap.PAGESIZE
    low = -(-address // page) * page
    high = (address + count) // page * page
    if high > low and sys.platform.startswith("linux"):
        _libc().madvise(low, high - low, advice)


def _hand_back(address: int, count: int) -> None:
    """Give the whole pages inside [address, address + count) back to the kernel: they belong
    to a string about to be freed that nothing reads again (its header page is never inside)."""
    _advise(address, count, MADV_DONTNEED)


def read_ascii(handle: BufferedReader, size: int) -> tuple[str | None, int, str]:
    """Pass 1: the file as an ASCII str (None if it is not ASCII), how many leading bytes
    are ASCII, and the string those bytes fill (for :func:`read_utf8` to take them from)."""
    text = _new_string(size + SLACK, 127)
    data = _data_address(text, 127, 1)
    buffer = bytearray(CHUNK)
    buffer_address = ctypes.addressof((ctypes.c_char * CHUNK).from_buffer(buffer))
    offset = 0
    while offset < size:
        count = handle.readinto(buffer)
        if not count:
            return None, offset, text  # the file shrank while we read it
        count = min(count, size - offset)
        if not (buffer if count == CHUNK else buffer[:count]).isascii():
            return None, offset, text
        ctypes.memmove(data + offset, buffer_address, count)
        offset += count
    if handle.read(1):
        return None, offset, text  # the file grew while we read it
    _set_length(text, size, data, 1)
    return text, size, text


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


def _copy_prefix(prefix: str, count: int, data: int, char_size: int, codec: str) -> None:
    """Copy the first ``count`` characters of pass 1's ASCII string into the new string's
    ``data``, widened to ``char_size``; hand each copied chunk's pages back."""
    source = _data_address(prefix, 127, 1)
    for start in range(0, count, CHUNK):
        size = min(CHUNK, count - start)
        if char_size == 1:
            ctypes.memmove(data + start, source + start, size)
        else:
            raw = ctypes.string_at(source + start, size).decode("ascii").encode(codec)
            ctypes.memmove(data + start * char_size, raw, len(raw))
        _hand_back(source + start, size)


def read_utf8(handle: BufferedReader, ascii_prefix: int = 0, prefix: str | None = None) -> str:
    """Passes 2 and 3: measure, allocate once, fill. Any UTF-8 file, invalid bytes replaced.

    ``ascii_prefix`` leading bytes are known to be ASCII (from pass 1): measuring skips them,
    and with ``prefix`` (pass 1's string, which must not be used afterwards: its pages are
    handed back) filling copies them from memory instead of reading them again.
    """
    length, char_size, ascii_only = ascii_prefix, 1, True
    for piece in _decoded_chunks(handle, ascii_prefix):
        length += len(piece)
        ascii_only = ascii_only and piece.isascii()
        char_size = max(char_size, _char_size(piece))
    max_char, codec = (127, "ascii") if ascii_only else _KINDS[char_size]
    in_place = None
    if prefix is not None and max_char == 255:  # latin-1: pass 1's string becomes the result
        in_place = _to_latin1_in_place(prefix, ascii_prefix, length)
    if in_place is not None and prefix is not None:
        text, data = prefix, in_place
    else:
        text = _new_string(length, max_char)
        data = _data_address(text, max_char, char_size)
    offset = 0
    if prefix is not None and ascii_prefix:
        if in_place is None:
            _copy_prefix(prefix, ascii_prefix, data, char_size, codec)
        offset = ascii_prefix
    for piece in _decoded_chunks(handle, offset):
        if offset + len(piece) > length:
            raise OSError("the file changed while it was being read")
        raw = piece.encode(codec)
        ctypes.memmove(data + offset * char_size, raw, len(raw))
        offset += len(piece)
    if offset != length:
        raise OSError("the file changed while it was being read")
    return text
