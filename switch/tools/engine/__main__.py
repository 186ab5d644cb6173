"""`python -m switch.tools.engine [--force] [--jobs N]`: build (or take from the cache) and install the engine."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from switch.tools.engine.build import BuildError, ensure_engine


def main(argv: list[str] | None = None) -> int:
    """Build and install the server engine; 1 with a one-line reason if a step failed."""
    parser = argparse.ArgumentParser(prog="python -m switch.tools.engine", description=__doc__)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel make jobs (default: cores)")
    parser.add_argument("--force", action="store_true", help="build again even if the cache holds this build")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="engine: %(message)s")
    try:
        ensure_engine(max(1, args.jobs), args.force)
    except BuildError as exc:
        logging.getLogger("engine").error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
