"""pjsua2 media helpers shared by the worker engine and the lab phone (both own a pjsua thread)."""

from __future__ import annotations

import ctypes
from typing import Any

import pjsua2 as pj

CLOCK_RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = CLOCK_RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2


def error_text(exc: pj.Error) -> str:
    # str(pj.Error) is empty; info() carries the reason.
    try:
        return str(exc.info())
    except Exception:  # pragma: no cover - defensive: info() itself failing
        return repr(exc)


# -- reading frames fast ----------------------------------------------------------------------------------
# MediaFrame.buf is a SWIG proxy of std::vector<unsigned char>; bytes() on it goes element by element through
# the iterator protocol (~250 us per 320-byte frame here).  libstdc++ lays a vector out as three pointers
# (begin, end, end of storage), and int(proxy.this) is the vector's address, so two pointer reads and one
# ctypes.string_at copy the frame in ~5 us.  The layout is checked once on a vector we built ourselves; if it
# does not match, frame_bytes() falls back to the slow copy.
_VECTOR_HEAD = ctypes.c_size_t * 2


def _vector_probe() -> bool:
    try:
        probe = pj.ByteVector()
        pattern = bytes(range(1, 40))
        for value in pattern:
            probe.push_back(value)
        begin, end = _VECTOR_HEAD.from_address(int(probe.this))
        return bool(end - begin == len(pattern) and ctypes.string_at(begin, end - begin) == pattern)
    except Exception:  # pragma: no cover - any surprise means: use the slow path
        return False


_FAST_VECTOR = _vector_probe()


def frame_bytes(frame: pj.MediaFrame) -> bytes:
    """The payload of a pjsua2 ``MediaFrame`` as bytes, read from the vector's memory when the layout allows."""
    buf = frame.buf
    if _FAST_VECTOR:
        begin, end = _VECTOR_HEAD.from_address(int(buf.this))
        return ctypes.string_at(begin, end - begin) if end > begin else b""
    return bytes(buf)


def destroy(obj: Any) -> None:
    """Destroy a pjsua2 media object now, on this (the pjsua) thread, rather than when Python collects it."""
    destroy = getattr(type(obj), "__swig_destroy__", None)
    if destroy is not None and getattr(obj, "thisown", False):
        destroy(obj)
        obj.thisown = False



def pcm_format() -> pj.MediaFormatAudio:
    """8 kHz, mono, 16-bit, 20 ms frames: the bridge's own format."""
    fmt = pj.MediaFormatAudio()
    fmt.init(pj.PJMEDIA_FORMAT_PCM, CLOCK_RATE, 1, FRAME_MS * 1000, 16)
    return fmt
