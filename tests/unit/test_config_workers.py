"""`[server] workers` and the `[workers]` table (switch.core.config), and `serve --workers` (switch.cli)."""

from __future__ import annotations

from pathlib import Path

import pytest

from switch.cli import _config_from_args, build_parser
from switch.core.config import Config, load_config
from switch.core.errors import ConfigError
from switch.workers.scaling import Scaling


def _load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "softswitch.toml"
    path.write_text(text)
    return load_config(path)


def test_auto_is_the_default(tmp_path: Path) -> None:
    assert Config().workers == Scaling()
    assert load_config(None).workers == Scaling()
    assert _load(tmp_path, '[server]\nsip = "127.0.0.1:5060"\n').workers == Scaling()
    assert _load(tmp_path, '[server]\nworkers = "auto"\n').workers == Scaling(min=1, max=None, max_calls=100,
                                                                               spare_calls=2, idle_timeout=60.0)


def test_a_number_is_a_fixed_pool(tmp_path: Path) -> None:
    assert _load(tmp_path, "[server]\nworkers = 3\n").workers == 3


def test_the_workers_table_tunes_auto(tmp_path: Path) -> None:
    cfg = _load(tmp_path, '[server]\nworkers = "auto"\n[workers]\nmin = 2\nmax = 6\nmax_calls = 40\n'
                          "spare_calls = 4\nidle_timeout = 1.5\n")
    assert cfg.workers == Scaling(min=2, max=6, max_calls=40, spare_calls=4, idle_timeout=1.5)
    assert _load(tmp_path, '[workers]\nmax = "auto"\nidle_timeout = 5\n').workers == Scaling(idle_timeout=5.0)


@pytest.mark.parametrize(("text", "message"), [
    ("[server]\nworkers = 0\n", 'server.workers must be "auto" \\(an elastic pool\\) or a whole number of workers '
                                "from 1, not 0"),
    ('[server]\nworkers = "many"\n', "server.workers must be .* not 'many'"),
    ("[server]\nworkers = true\n", "server.workers must be .* not true"),
    ("[server]\nworkers = 2\n[workers]\nmin = 1\n", r'\[workers\] tunes workers = "auto"; with a fixed pool '
                                                    r"\(workers = 2\) remove it"),
    ("[workers]\nminimum = 1\n", r"unknown key workers\.minimum \(did you mean workers\.min\?\)"),
    ("[workers]\nmin = 3\nmax = 2\n", r"\[workers\]: max \(2\) must not be below min \(3\)"),
    ("[workers]\nmin = 0\n", r"\[workers\]: min must be at least 1, not 0"),
    ('[workers]\nmin = "2"\n', "workers.min must be a whole number, not '2'"),
    ('[workers]\nmax = "lots"\n', "workers.max must be \"auto\" .* not 'lots'"),
    ('[workers]\nidle_timeout = "60s"\n', "workers.idle_timeout must be a number, not '60s'"),
    ("[workers]\nidle_timeout = 0\n", r"\[workers\]: idle_timeout must be a number of seconds above 0"),
    ("[workers]\nspare_calls = 0\n", r"\[workers\]: spare_calls must be at least 1, not 0"),
    ("workers = 3\n", r"\[workers\] must be a table"),
])
def test_bad_settings_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, text)


def _cli(*argv: str) -> Config:
    return _config_from_args(build_parser().parse_args(["serve", *argv]))


def test_the_command_line_flag(tmp_path: Path) -> None:
    assert _cli("--workers", "4").workers == 4
    assert _cli("--workers", "auto").workers == Scaling()
    tuned = tmp_path / "tuned.toml"
    tuned.write_text("[workers]\nmin = 2\n")
    assert _cli("--config", str(tuned), "--workers", "auto").workers == Scaling(min=2)  # the file's tuning stays
    assert _cli("--config", str(tuned), "--workers", "1").workers == 1
    fixed = tmp_path / "fixed.toml"
    fixed.write_text("[server]\nworkers = 3\n")
    assert _cli("--config", str(fixed), "--workers", "auto").workers == Scaling()
    for bad in ("0", "two", "-1"):
        with pytest.raises(ConfigError, match="--workers must be"):
            _cli("--workers", bad)
