"""The steps of `make engine`: fetch and check the source, configure, build, wrap with SWIG, verify, cache, install."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from switch.tools.engine import (
    CFLAGS,
    CONFIG_SITE,
    CONFIGURE_ARGS,
    ENGINE_INFO,
    MAX_CALLS,
    SOURCE_DIR,
    SOURCE_PATCHES,
    SOURCE_SHA256,
    SOURCE_URL,
    VERSION,
    BuildKey,
    cache_root,
    describe,
    engine_dir,
    sha256_of,
)

log = logging.getLogger("engine")

DOWNLOAD_TIMEOUT = 120.0
MODULE_FILES = ("pjsua2.py",)  # plus the extension, whose name carries the ABI suffix


class BuildError(Exception):
    """A step failed; the message says which and where its output is."""


def source_tarball() -> tuple[Path, str]:
    """The release tarball and its SHA-256: `$PJPROJECT_TARBALL`, else a download checked against the pin."""
    named = os.environ.get("PJPROJECT_TARBALL")
    if named:
        path = Path(named).expanduser().resolve()
        if not path.is_file():
            raise BuildError(f"PJPROJECT_TARBALL={named}: no such file")
        digest = sha256_of(path)
        if digest != SOURCE_SHA256:
            log.warning("%s is not the pinned pjproject %s release (sha256 %s); building it anyway", path, VERSION,
                        digest)
        return path, digest
    path = cache_root() / "src" / f"pjproject-{VERSION}.tar.bz2"
    if path.is_file() and sha256_of(path) == SOURCE_SHA256:
        return path, SOURCE_SHA256
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part")
    log.info("downloading %s", SOURCE_URL)
    try:
        with urllib.request.urlopen(SOURCE_URL, timeout=DOWNLOAD_TIMEOUT) as response, part.open("wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise BuildError(f"cannot download {SOURCE_URL}: {exc} (set PJPROJECT_TARBALL to a local copy)") from None
    digest = sha256_of(part)
    if digest != SOURCE_SHA256:
        part.unlink(missing_ok=True)
        raise BuildError(f"{SOURCE_URL}: sha256 {digest}, expected {SOURCE_SHA256}")
    part.replace(path)
    return path, digest


def extension_name() -> str:
    """`_pjsua2` plus this Python's extension suffix (`.cpython-311-x86_64-linux-gnu.so`)."""
    return "_pjsua2" + str(sysconfig.get_config_var("EXT_SUFFIX") or ".so")


def cached_build(key: BuildKey) -> Path | None:
    """The cache directory of a finished build with this key, if there is one."""
    where = cache_root() / key.value
    complete = (where / ENGINE_INFO).is_file() and (where / extension_name()).is_file()
    return where if complete and all((where / name).is_file() for name in MODULE_FILES) else None


def _run(args: list[str], cwd: Path, logfile: Path, env: dict[str, str] | None = None) -> None:
    with logfile.open("a") as out:
        out.write(f"\n$ {' '.join(args)}   (in {cwd})\n")
        out.flush()
        done = subprocess.run(args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode != 0:
        raise BuildError(f"`{' '.join(args)}` failed with status {done.returncode}; see {logfile}")


def _check_tools() -> None:
    missing = [tool for tool in ("make", "gcc", "g++", "swig") if shutil.which(tool) is None]
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not include.is_file():
        missing.append(f"Python.h ({include}: Debian package python3-dev)")
    if missing:
        raise BuildError("the engine build needs: " + ", ".join(missing) + " (`make engine` installs them)")


def _extract(tarball: Path, into: Path) -> Path:
    with tarfile.open(tarball) as tar:
        tar.extractall(into, filter="data")
    tree = into / SOURCE_DIR
    if not (tree / "aconfigure").is_file():
        raise BuildError(f"{tarball} does not hold {SOURCE_DIR}/aconfigure")
    return tree


def _patch(tree: Path) -> None:
    for name, old, new in SOURCE_PATCHES:
        path = tree / name
        text = path.read_text()
        if text.count(old) != 1:
            raise BuildError(f"{name}: the text to patch ({old.strip()!r}) is not there exactly once")
        path.write_text(text.replace(old, new))


def compile_engine(tarball: Path, key: BuildKey, jobs: int) -> Path:
    """Build into a scratch directory and move the result into the cache; returns the cache directory."""
    _check_tools()
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    logfile = root / f"build-{key.value}.log"
    logfile.write_text(f"pjproject {VERSION} server engine, key {key.value}\n")
    log.info("building pjproject %s (key %s); output in %s", VERSION, key.value, logfile)
    with tempfile.TemporaryDirectory(prefix="build-", dir=root) as scratch:
        tree = _extract(tarball, Path(scratch))
        (tree / "pjlib" / "include" / "pj" / "config_site.h").write_text(CONFIG_SITE)
        _patch(tree)
        env = dict(os.environ, CFLAGS=CFLAGS, CXXFLAGS=CFLAGS)
        log.info("configure")
        _run(["./configure", *CONFIGURE_ARGS], tree, logfile, env)
        log.info("make -j%d (libraries)", jobs)
        _run(["make", f"-j{jobs}", "dep"], tree, logfile, env)
        _run(["make", f"-j{jobs}", "lib"], tree, logfile, env)
        swig = tree / "pjsip-apps" / "src" / "swig" / "python"
        log.info("swig and the Python module (the longest step, one file)")
        _run(["make", "pjsua2_wrap.cpp"], swig, logfile, env)
        _run([sys.executable, "setup.py", "build_ext", "--inplace"], swig, logfile, dict(env, PJDIR=str(tree)))
        staged = Path(scratch) / "out"
        staged.mkdir()
        for name in (*MODULE_FILES, extension_name()):
            if not (swig / name).is_file():
                raise BuildError(f"the SWIG build made no {name}; see {logfile}")
            shutil.copy2(swig / name, staged / name)
        info = verify(staged)
        info.update(key=key.value, source_sha256=key.source_sha256, config_site=CONFIG_SITE,
                    configure=list(CONFIGURE_ARGS))
        (staged / ENGINE_INFO).write_text(json.dumps(info, indent=2) + "\n")
        final = root / key.value
        shutil.rmtree(final, ignore_errors=True)
        staged.replace(final)
    log.info("built %s", describe(info))
    return final


_PROBE = """
import ctypes, json, sys
sys.path.insert(0, sys.argv[1])
import pjsua2 as pj
ep = pj.Endpoint()
ep.libCreate()
cfg = pj.EpConfig()
cfg.logConfig.level = 0
cfg.logConfig.consoleLevel = 0
ep.libInit(cfg)
lib = ctypes.CDLL(pj._pjsua2.__file__)
lib.pjsua_call_get_max_count.restype = ctypes.c_uint
lib.pj_ioqueue_name.restype = ctypes.c_char_p
info = {"version": ep.libVersion().full, "max_calls": int(lib.pjsua_call_get_max_count()),
        "ioqueue": lib.pj_ioqueue_name().decode().split("[")[0], "module": pj._pjsua2.__file__}
ep.libDestroy()
print(json.dumps(info))
"""


def verify(where: Path) -> dict[str, object]:
    """Load the module in a fresh interpreter and read what it really is: version, call limit, ioqueue."""
    done = subprocess.run([sys.executable, "-c", _PROBE, str(where)], capture_output=True, text=True, timeout=60,
                          check=False, cwd=where)
    if done.returncode != 0:
        raise BuildError(f"the built module does not load: {done.stderr.strip()[-2000:]}")
    info: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    if not str(info["module"]).startswith(str(where)):
        raise BuildError(f"the probe loaded {info['module']}, not the build in {where}")
    del info["module"]
    max_calls = info["max_calls"]
    if info["version"] != VERSION or info["ioqueue"] != "epoll" or not isinstance(max_calls, int) \
            or max_calls < MAX_CALLS:
        raise BuildError(f"the built module is not the server engine asked for: {info}")
    return info


def install(built: Path, target: Path) -> bool:
    """Copy a cached build into `target` (the venv's engine directory); False if it was there already."""
    wanted = (built / ENGINE_INFO).read_text()
    current = target / ENGINE_INFO
    names = (*MODULE_FILES, extension_name())
    if current.is_file() and current.read_text() == wanted and all((target / n).is_file() for n in names):
        return False
    target.mkdir(parents=True, exist_ok=True)
    current.unlink(missing_ok=True)  # half-copied: not an engine until engine.json is back
    for name in names:
        shutil.copy2(built / name, target / f".{name}.tmp")
        (target / f".{name}.tmp").replace(target / name)
    shutil.copy2(built / ENGINE_INFO, current)
    return True


def ensure_engine(jobs: int, force: bool = False) -> Path:
    """Build (or take from the cache) and install the engine; returns the install directory."""
    tarball, digest = source_tarball()
    key = BuildKey(digest)
    built = None if force else cached_build(key)
    if built is None:
        built = compile_engine(tarball, key, jobs)
    else:
        log.info("cached build %s", built)
    target = engine_dir()
    changed = install(built, target)
    info = json.loads((target / ENGINE_INFO).read_text())
    log.info("%s %s in %s", describe(info), "installed" if changed else "already installed", target)
    return target
