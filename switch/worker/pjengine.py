"""Which pjsua2 this process loads: every importer does `from switch.worker.pjengine import pj`, never
`import pjsua2` itself, so the choice is made once, here, before pjsua2 is first imported.

Two engines can be installed side by side (ARCHITECTURE.md, "Engines"):
- built: pjproject 2.17 built by `make engine` (switch.tools.engine) with server limits (1,024 calls, epoll
  ioqueue with 8,192 handles), installed as `pjsua2.py` + `_pjsua2*.so` in a directory of its own,
  `<venv>/engine` (or `$SOFTSWITCH_ENGINE_DIR`), described by its `engine.json`;
- wheel: the PyPI wheel `pjsua2-python` (4 calls, a 64-handle select() ioqueue), always installed.

`SOFTSWITCH_ENGINE` = `auto` (default: built when present, else the wheel) | `built` (an error if absent)
| `wheel`.  `ENGINE` describes the loaded one for the worker's hello and the logs.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys
from importlib import metadata
from pathlib import Path

ENGINE_ENV = "SOFTSWITCH_ENGINE"
CHOICES = ("auto", "built", "wheel")
INFO_FILE = "engine.json"
# The built engine's ioqueue holds this many sockets (two per call's RTP/RTCP): let the process open them.
_WANTED_FILES = 8192 + 1024


def engine_dir() -> Path:
    """Where `make engine` installs the built module (`switch.tools.engine.engine_dir` writes the same place)."""
    override = os.environ.get("SOFTSWITCH_ENGINE_DIR")
    return Path(override) if override else Path(sys.prefix) / "engine"


def built_present(where: Path) -> bool:
    """Whether a complete built engine is installed in `where` (engine.json is written last)."""
    return (where / INFO_FILE).is_file() and (where / "pjsua2.py").is_file() and any(where.glob("_pjsua2*.so"))


def choose() -> str:
    """`built` or `wheel`, from `SOFTSWITCH_ENGINE` and what is installed."""
    wanted = (os.environ.get(ENGINE_ENV) or "auto").strip().lower()
    if wanted not in CHOICES:
        raise ImportError(f"{ENGINE_ENV}={wanted!r}: expected one of {', '.join(CHOICES)}")
    present = built_present(engine_dir())
    if wanted == "built" and not present:
        raise ImportError(f"{ENGINE_ENV}=built, but no built engine in {engine_dir()}: run `make engine`")
    return "built" if present and wanted != "wheel" else "wheel"


def _raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = _WANTED_FILES if hard == resource.RLIM_INFINITY else min(hard, _WANTED_FILES)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


KIND = choose()
if "pjsua2" in sys.modules:
    raise ImportError("pjsua2 was imported before switch.worker.pjengine chose the engine")
if KIND == "built":
    _where = str(engine_dir())
    sys.path.insert(0, _where)
    try:
        import pjsua2 as pj
    finally:
        sys.path.remove(_where)
    if not str(pj.__file__).startswith(_where):
        raise ImportError(f"the built engine was chosen but pjsua2 came from {pj.__file__}")
    _info = json.loads((Path(_where) / INFO_FILE).read_text())
    ENGINE = f"pjproject {_info.get('version', '?')} (built, {_info.get('ioqueue', '?')})"
    _raise_file_limit()
else:
    import pjsua2 as pj

    try:
        _version = metadata.version("pjsua2-python")
    except metadata.PackageNotFoundError:
        _version = "?"
    ENGINE = f"pjsua2-python {_version} (wheel)"


def max_calls_compiled() -> int:
    """The call limit the loaded pjsua2 was compiled with (PJSUA_MAX_CALLS)."""
    lib = ctypes.CDLL(pj._pjsua2.__file__)
    func = lib.pjsua_call_get_max_count
    func.restype = ctypes.c_uint
    return int(func())


__all__ = ["CHOICES", "ENGINE", "ENGINE_ENV", "KIND", "built_present", "choose", "engine_dir", "max_calls_compiled",
           "pj"]
