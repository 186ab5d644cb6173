"""`make engine`: pjproject 2.17 and its SWIG Python module (pjsua2), built with limits for a server.

The PyPI wheel `pjsua2-python` holds 4 calls on a 64-handle select() ioqueue: fine for a laptop, not for a
server.  This package builds pjproject from its release tarball with the limits in `config_site.h` below
(PJSUA_MAX_CALLS 1024, an epoll ioqueue with 8,192 handles, conference ports, players, recorders, transactions
and dialogs to match; no video, no sound device), then the SWIG module against it, and installs `pjsua2.py` and
`_pjsua2*.so` into a directory of its own inside the venv (`<sys.prefix>/engine`, or `$SOFTSWITCH_ENGINE_DIR`).
The wheel stays installed; `switch.worker.pjengine` chooses between them (`SOFTSWITCH_ENGINE`).

The source is the file `$PJPROJECT_TARBALL` names, else the upstream release tarball, downloaded once and
checked against `SOURCE_SHA256`.  A build is cached per machine under `~/.cache/softswitch/engine/<key>/`
(`$XDG_CACHE_HOME` honoured), the key a hash of the source checksum, the configuration and the Python ABI:
a second `make engine` only copies the cached module (or finds it already installed).

Run: `python -m switch.tools.engine [--force] [--jobs N]`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

VERSION = "2.17"
# The upstream release tarball (the same bytes Asterisk 22 bundles: md5 baacc87418a95107657039269bc71538).
SOURCE_URL = f"https://raw.githubusercontent.com/asterisk/third-party/master/pjproject/{VERSION}/pjproject-{VERSION}.tar.bz2"
SOURCE_SHA256 = "04b2eb1f0f01aa0ad1945b167171843448a51aa6b7c3e806496d434f13a112b7"
SOURCE_DIR = f"pjproject-{VERSION}"
# Bump when the steps below change in a way that changes the result.
BUILDER_REVISION = 1

MAX_CALLS = 1024
MAX_HANDLES = 8192

# pjlib/include/pj/config_site.h: what makes this a server build.  pjsua2's UaConfig.maxCalls defaults to
# PJSUA_MAX_CALLS in 2.17, so `pjsua_call_get_max_count()` reports MAX_CALLS without any runtime setting.
CONFIG_SITE = f"""\
/* softswitch server engine (switch/tools/engine) */
#define PJ_HAS_IPV6                 1
#define PJ_IOQUEUE_MAX_HANDLES      {MAX_HANDLES}
#define PJSUA_MAX_CALLS             {MAX_CALLS}
#define PJSUA_MAX_ACC               32
/* a call's own port, a player and a recording tap or two each */
#define PJSUA_MAX_CONF_PORTS        (3 * PJSUA_MAX_CALLS)
#define PJSUA_MAX_PLAYERS           PJSUA_MAX_CALLS
#define PJSUA_MAX_RECORDERS         PJSUA_MAX_CALLS
/* hash-table sizes: several transactions per live call (INVITE, re-INVITE, BYE, OPTIONS, NOTIFY) */
#define PJSIP_MAX_TSX_COUNT         (16 * 1024 - 1)
#define PJSIP_MAX_DIALOG_COUNT      (4 * 1024 - 1)
#define PJSIP_TCP_TRANSPORT_BACKLOG 128
#define PJMEDIA_HAS_VIDEO           0
"""

CONFIGURE_ARGS = (
    "--enable-epoll", "--disable-video", "--disable-sound", "--disable-ssl", "--disable-libuuid",
    "--disable-upnp", "--disable-opus", "--disable-silk", "--disable-opencore-amr", "--disable-bcg729",
    "--disable-lyra", "--disable-sdl", "--disable-ffmpeg", "--disable-v4l2", "--disable-openh264",
    "--disable-vpx", "--disable-libyuv", "--disable-libwebrtc", "--disable-android-mediacodec",
    "--disable-speex-codec", "--disable-speex-aec", "--disable-gsm-codec", "--disable-ilbc-codec",
    "--disable-g7221-codec",
)
# NDEBUG: a failed pj_assert() (an internal check, e.g. pj_sockaddr_get_len on an unset address, seen once in
# a bench run) returns an error as in a release build instead of aborting a worker with all of its calls.
CFLAGS = "-O2 -fPIC -DNDEBUG"

# Source edits, each (file, exact text, replacement); the build fails if the text is not there exactly once.
# 2.17 offers a T.140 real-time text stream in every call by default (an m=text line in each SDP offer, two more
# sockets per call, and a local hang-up's BYE waits ~300 ms for that stream's teardown); the wheel (2.15) has
# none and the switch uses none, so the default text count is 0, as the wheel's behaviour.
# The media endpoint's worker thread waits for RTP 10 ms at a time: 100 wake-ups a second in an idle worker
# (~0.08 % of a core); a packet ends the wait at once either way, so 100 ms only makes teardown wait longer.
SOURCE_PATCHES = (
    ("pjsip/src/pjsua-lib/pjsua_call.c", "    opt->txt_cnt = 1;\n", "    opt->txt_cnt = 0;  /* softswitch */\n"),
    ("pjmedia/src/pjmedia/endpoint.c", "        pj_time_val timeout = { 0, 10 };\n",
     "        pj_time_val timeout = { 0, 100 };  /* softswitch */\n"),
)

ENGINE_INFO = "engine.json"


def engine_dir() -> Path:
    """Where the built module is installed: `$SOFTSWITCH_ENGINE_DIR`, else `<venv>/engine`.

    `switch.worker.pjengine.engine_dir` reads the same place (the worker may not import this package)."""
    override = os.environ.get("SOFTSWITCH_ENGINE_DIR")
    return Path(override) if override else Path(sys.prefix) / "engine"


def cache_root() -> Path:
    """`~/.cache/softswitch/engine` (or under `$XDG_CACHE_HOME`)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "softswitch" / "engine"


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class BuildKey:
    """What a build depends on: the source's checksum, the configuration and the Python ABI."""

    source_sha256: str

    @property
    def abi(self) -> str:
        return str(sysconfig.get_config_var("EXT_SUFFIX") or sys.implementation.cache_tag)

    @property
    def value(self) -> str:
        spec = json.dumps({"source": self.source_sha256, "config_site": CONFIG_SITE, "configure": CONFIGURE_ARGS,
                           "cflags": CFLAGS, "patches": SOURCE_PATCHES, "abi": self.abi,
                           "revision": BUILDER_REVISION}, sort_keys=True)
        return hashlib.sha256(spec.encode()).hexdigest()[:16]


def describe(info: dict[str, object]) -> str:
    """One line for logs: `pjproject 2.17 (built, epoll, 1024 calls)`."""
    return f"pjproject {info.get('version')} (built, {info.get('ioqueue')}, {info.get('max_calls')} calls)"
