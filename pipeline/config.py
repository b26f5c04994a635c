"""One place for paths and settings.

Every path the pipeline uses is derived from :data:`PROJ_ROOT`. Stage settings are frozen dataclasses defined
next to the code that uses them; :func:`build_settings` fills one from its defaults, then from the section of the
same name in a YAML config file (``--config``), then from CLI flags, and rejects unknown keys.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pipeline.errors import ConfigError

PROJ_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = PROJ_ROOT / "data"
RAW_DIR = DATA_DIR / "raw"
INTERIM_DIR = DATA_DIR / "interim"
PROCESSED_DIR = DATA_DIR / "processed"
SYNTHETIC_DIR = DATA_DIR / "synthetic"
MODELS_DIR = PROJ_ROOT / "models"
CURRENT_MODEL = MODELS_DIR / "current"
REPORTS_DIR = PROJ_ROOT / "reports"
FIGURES_DIR = REPORTS_DIR / "figures"
BENCH_JSON = REPORTS_DIR / "bench.json"
SHARED_MNIST = PROJ_ROOT.parent / "shared" / "data" / "mnist.npz"
RAW_MNIST = RAW_DIR / "mnist.npz"
MNIST_ENV_VAR = "MNIST_NPZ"

#: Largest image, in pixels, that any stage will decode (guards against decompression bombs).
#: A4 at 300 dpi is about 8.7 Mpx, so 40 Mpx leaves room for 600 dpi scans.
MAX_IMAGE_PIXELS = 40_000_000

S = TypeVar("S")


def mnist_candidates() -> list[Path]:
    """Places to look for MNIST, in order: ``$MNIST_NPZ``, ``../shared``, ``data/raw``."""
    env = os.environ.get(MNIST_ENV_VAR)
    paths = [Path(env)] if env else []
    return paths + [SHARED_MNIST, RAW_MNIST]


def load_config_file(path: Path | None) -> dict[str, dict[str, Any]]:
    """Read a YAML config file into ``{section: {key: value}}``; ``None`` gives an empty config."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"{path}: expected a mapping of sections, e.g. 'synth: {{sheets: 100}}'")
    return data


def build_settings(cls: type[S], section: str, config: dict[str, dict[str, Any]] | None = None,
                   **overrides: Any) -> S:
    """Build settings dataclass ``cls``: defaults, then ``config[section]``, then non-None ``overrides``."""
    known = {f.name for f in dataclasses.fields(cls)}
    values = dict((config or {}).get(section, {}))
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s) for '{section}': {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    return cls(**values)
