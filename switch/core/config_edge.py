"""`[edge]` of softswitch.toml: Kamailio as the SIP edge, its limits and its TLS files (switch.workers.edge).

Part of `switch.core.config`, which re-exports `EdgeConfig` and documents every key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switch.core.errors import ConfigError


@dataclass
class EdgeConfig:
    """`[edge]`: Kamailio as the SIP edge (see the module docstring for the keys)."""

    enabled: bool = True
    worker_port: int | None = None  # None: the [server] sip port + 100
    max_cps: int = 400
    per_source_rps: int = 2000
    max_message_bytes: int = 16384
    worker_timeout_ms: int = 2000
    tls_certificate: Path | None = None  # both set: the edge also listens for SIP over TLS on tls_port
    tls_private_key: Path | None = None
    tls_port: int | None = None  # None: the [server] sip port + 1

    @property
    def tls(self) -> bool:
        return self.tls_certificate is not None


_EDGE_INTS = {"worker_port": (1, 65535), "max_cps": (1, 100000), "per_source_rps": (1, 1000000),
              "max_message_bytes": (1024, 65535), "worker_timeout_ms": (100, 60000), "tls_port": (1, 65535)}
_EDGE_FILES = ("tls_certificate", "tls_private_key")


def load_edge(edge: dict[str, Any]) -> EdgeConfig:
    cfg = EdgeConfig()
    enabled = edge.get("enabled", cfg.enabled)
    if not isinstance(enabled, bool):
        raise ConfigError(f"edge.enabled must be true or false, not {enabled!r}")
    cfg.enabled = enabled
    for key, (low, high) in _EDGE_INTS.items():
        if key not in edge:
            continue
        value = edge[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"edge.{key} must be a whole number from {low} to {high}, not {value!r}")
        setattr(cfg, key, value)
    for key in _EDGE_FILES:
        if key in edge:
            setattr(cfg, key, _readable_file(edge[key], f"edge.{key}"))
    if (cfg.tls_certificate is None) != (cfg.tls_private_key is None):
        raise ConfigError("edge.tls_certificate and edge.tls_private_key go together: give both or neither")
    return cfg


def _readable_file(value: Any, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be the path of a file, not {value!r}")
    path = Path(value).expanduser().resolve()
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    return path
