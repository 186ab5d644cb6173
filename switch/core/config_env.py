"""The environment's overrides of the configuration file (a container sets these; the flags override both)."""

from __future__ import annotations

import os

from switch.core.config import Config, _load_media, parse_seconds
from switch.core.errors import ConfigError

# SOFTSWITCH_* variable -> its [media] key
MEDIA_VARIABLES = {"SOFTSWITCH_MEDIA_ADDRESS": "address", "SOFTSWITCH_EXTERNAL_ADDRESS": "external_address",
                   "SOFTSWITCH_RTP_PORTS": "rtp_ports"}


def apply_environment(cfg: Config, env: dict[str, str] | None = None) -> Config:
    """Override `cfg` with the SOFTSWITCH_* variables of `env` (the process environment by default) that are set
    and not empty (MEDIA_VARIABLES, and SOFTSWITCH_DRAIN_SECONDS for [server] drain_seconds), checked as the
    file's keys are; an error names the variable."""
    env = dict(os.environ) if env is None else env
    for name, key in MEDIA_VARIABLES.items():
        if env.get(name):
            try:
                _load_media(cfg, {key: env[name]})
            except ConfigError as exc:
                raise ConfigError(f"{name}: {exc}") from None
    if env.get("SOFTSWITCH_DRAIN_SECONDS"):
        cfg.drain_seconds = parse_seconds(env["SOFTSWITCH_DRAIN_SECONDS"], "SOFTSWITCH_DRAIN_SECONDS")
    return cfg
