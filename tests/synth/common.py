"""Settings and helpers shared by the synth tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

#: Low resolution and one process keep rendering fast; every alteration kind is likely in a few sheets.
FAST = {"dpi": 100, "workers": 1, "gallery_sheets": 4}
TAMPERED = {"altered_rate_absent": 1.0, "altered_rate_present": 1.0, "fabricated_rate": 0.5,
            "arithmetic_error_rate": 0.3, "max_altered_fields": 3}


def folder_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
