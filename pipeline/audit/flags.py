"""The :class:`Flag` record and its table form (docs/DATA.md section 4, ``flags.parquet``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import pandas as pd

from pipeline.audit.outputs import dumps
from pipeline.audit.schema import SEVERITIES, VERDICTS

FLAG_COLUMNS = ("sheet_id", "fields", "rule", "severity", "verdict", "reason", "evidence")
#: How much one flag of each severity adds to a sheet's suspicion score (combined as a noisy-OR).
SEVERITY_WEIGHT = {"info": 0.0, "low": 0.1, "medium": 0.3, "high": 0.6}


@dataclass(frozen=True)
class Flag:
    """One finding about one sheet: which fields, which rule, how bad, why (plain language) and the numbers.

    ``evidence`` holds JSON-able values (the numbers compared, confidences, relative paths of field images).
    """

    sheet_id: str
    fields: tuple[str, ...]
    rule: str
    severity: str
    verdict: str
    reason: str
    evidence: dict

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"flag severity must be one of {SEVERITIES}, not '{self.severity}'")
        if self.verdict not in VERDICTS:
            raise ValueError(f"flag verdict must be one of {VERDICTS}, not '{self.verdict}'")

    def to_row(self) -> dict:
        """The flag as a table row: fields ``;``-joined, evidence as a JSON string."""
        row = asdict(self)
        row["fields"] = ";".join(self.fields)
        row["evidence"] = dumps(self.evidence)
        return row


def flags_to_frame(flags: list[Flag]) -> pd.DataFrame:
    """One row per flag, in the column order of docs/DATA.md (an empty table still has the columns)."""
    return pd.DataFrame([f.to_row() for f in flags], columns=list(FLAG_COLUMNS)).astype("string")


def frame_to_flags(frame: pd.DataFrame) -> list[Flag]:
    """The :class:`Flag` records of a flags table (the inverse of :func:`flags_to_frame`, evidence as parsed JSON)."""
    return [Flag(str(r.sheet_id), tuple(str(r.fields).split(";")) if pd.notna(r.fields) and r.fields else (),
                 str(r.rule), str(r.severity), str(r.verdict), str(r.reason), json.loads(r.evidence))
            for r in frame.itertuples(index=False)]
