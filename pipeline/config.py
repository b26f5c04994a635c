"""One place for paths and settings.

Every path the pipeline uses is derived from :data:`PROJ_ROOT`. Stage settings are frozen dataclasses defined
next to the code that uses them; :func:`build_settings` fills one from its defaults, then from the section of the
same name in a YAML config file (``--config``), then from CLI flags. It rejects unknown keys, and checks every value
against its field's type annotation (a ``bool`` must be ``true``/``false``, an ``int`` a whole number, ...) and
against the ranges of :data:`RANGES`, before the dataclass's own checks run; :func:`load_config_file` rejects
unknown sections.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
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

#: Every section of a config file that some stage reads; any other is a typo (``raed:``) and refused.
SECTIONS = ("synth", "read", "train", "recognise", "review", "retrain", "audit", "alteration", "report", "engine",
            "scale_bench", "table_audit", "table_forensics")


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed values of a number: ``low <= x <= high``, with an open end where ``low_open`` / ``high_open``."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def contains(self, x: float) -> bool:
        """Whether ``x`` lies in the range (NaN never does)."""
        above = x > self.low if self.low_open else x >= self.low
        below = x < self.high if self.high_open else x <= self.high
        return bool(above and below)

    def __str__(self) -> str:
        left = f"{'(' if self.low_open else '['}{self.low:g}"
        return f"{left}, {self.high:g}{')' if self.high_open else ']'}"


AT_LEAST_ONE = Range(1)
NOT_NEGATIVE = Range(0)
SHARE = Range(0, 1, low_open=True, high_open=True)
JPEG_QUALITY = Range(1, 100)
#: Ranges of settings, ``(section, key) -> Range``, checked for every value given in a config file or by a flag.
#: Settings whose dataclass checks its own ranges need no entry; these are the ones that had none, or whose
#: dataclass belongs to a module being edited elsewhere (read).
RANGES = {
    ("recognise", "batch_size"): AT_LEAST_ONE,
    ("review", "limit"): AT_LEAST_ONE,
    ("retrain", "holdout"): SHARE,
    ("report", "table_chunk_rows"): AT_LEAST_ONE,
    ("report", "page_size"): AT_LEAST_ONE,
    ("report", "figure_dpi"): AT_LEAST_ONE,
    ("report", "scan_width_px"): AT_LEAST_ONE,
    ("report", "scan_jpeg_quality"): JPEG_QUALITY,
    ("report", "workers"): NOT_NEGATIVE,
    ("read", "jpeg_quality"): JPEG_QUALITY,
    ("read", "max_candidates"): AT_LEAST_ONE,
    ("read", "writer_min_digits"): AT_LEAST_ONE,
    ("engine", "workers"): NOT_NEGATIVE,
}


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
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file (a YAML config file is UTF-8 text)") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"{path}: expected a mapping of sections, e.g. 'synth: {{sheets: 100}}'")
    unknown = sorted(str(k) for k in data if k not in SECTIONS)
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    return data


def _type_name(hint: Any) -> str:
    """How a type annotation reads in a message: ``a whole number``, ``true or false``, ..."""
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "text",
             type(None): "empty (null)"}
    if hint in names:
        return names[hint]
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return " or ".join(_type_name(a) for a in args)
    if typing.get_origin(hint) is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0])}s"
        return f"a list of {len(args)} items ({', '.join(_type_name(a) for a in args)})"
    return str(hint)


def fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` (from YAML or a flag) is of the annotated type ``hint``.

    ``bool`` is never taken for a number nor a number for ``bool``; an ``int`` is a ``float`` (YAML writes
    ``300`` for 300.0); a list is a ``tuple``. Annotations other than these are not checked.
    """
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is type(None):
        return value is None
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(fits(value, a) for a in args)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(fits(v, a) for v, a in zip(value, args, strict=True))
    return True


def check_values(cls: type, section: str, values: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` naming ``section.key`` for the first value not of its field's type or out of its
    :data:`RANGES` range."""
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation that cannot be evaluated here: check the ranges only
        hints = {}
    for key, value in values.items():
        if key in hints and not fits(value, hints[key]):
            raise ConfigError(f"{section}.{key} must be {_type_name(hints[key])}, not {value!r}")
        allowed = RANGES.get((section, key))
        if allowed is not None and value is not None and not allowed.contains(value):
            raise ConfigError(f"{section}.{key} must lie in {allowed}, not {value!r}")


def build_settings(cls: type[S], section: str, config: dict[str, dict[str, Any]] | None = None,
                   **overrides: Any) -> S:
    """Build settings dataclass ``cls``: defaults, then ``config[section]``, then non-None ``overrides``.

    Raises:
        ConfigError: an unknown key, a value of the wrong type or out of range, or one the dataclass refuses.
    """
    known = {f.name for f in dataclasses.fields(cls)}
    values = dict((config or {}).get(section, {}))
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s) for '{section}': {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    check_values(cls, section, values)
    return cls(**values)
