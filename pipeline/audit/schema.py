"""Field names of the acta, taken from the form template, and how flags and tables name them.

The template (``pipeline/forms/acta1988.yaml``) is the single source of truth for field names; docs/DATA.md uses
the same names as column names, so the audit derives every column list from it rather than spelling them out.
"""

from __future__ import annotations

from pipeline.forms import load_template

_TEMPLATE = load_template()

PARTIES: tuple[str, ...] = _TEMPLATE.parties
ID_FIELDS: tuple[str, ...] = tuple(f.name for f in _TEMPLATE.fields_of_kind("id"))
COUNT_FIELDS: tuple[str, ...] = tuple(f.name for f in _TEMPLATE.fields_of_kind("count"))
NUMERIC_FIELDS: tuple[str, ...] = ID_FIELDS + COUNT_FIELDS
TICK_FIELDS: tuple[str, ...] = tuple(f.name for f in _TEMPLATE.fields_of_kind("tick"))
CHOICE_FIELD = "station_type"
STATION_TYPES: tuple[str, ...] = _TEMPLATE.field(CHOICE_FIELD).options
#: Largest value each numeric field's boxes can hold (999 for a three-box count).
MAX_VALUE: dict[str, int] = {f.name: f.max_value for f in _TEMPLATE.fields if f.is_numeric}
#: Counts that add up to the total votes: every party, then the unregistered candidates and the null votes.
VOTE_PARTS: tuple[str, ...] = PARTIES + ("unregistered", "null_votes")
DISTRICT_KEY = ("state", "district")
#: ``pages.csv`` status of a page the reader read (docs/DATA.md section 2); every other status means no reading.
OK_STATUS = "ok"
STATION_KEY = ("state", "district", "section", "station", "station_type")

#: Kinds of visible alteration in a synthetic batch's ground truth (``F_alteration``); ``fabricated`` leaves no trace.
VISIBLE_KINDS = ("overwrite", "erase", "fluid", "crossout")
#: Verdicts and severities a flag may carry (docs/DATA.md section 4).
VERDICTS = ("inconsistent", "needs_review", "altered", "suspicious")
SEVERITIES = ("info", "low", "medium", "high")


def rep_field(party: str) -> str:
    """Column of the representative-present tick for ``party`` (``rep_pan``)."""
    return f"rep_{party}"


def conf_field(field: str) -> str:
    """Column holding the recogniser's confidence in ``field`` (``pan_conf``)."""
    return f"{field}_conf"


def text_field(field: str) -> str:
    """Column holding the text as read, with ``?`` for unreadable digits (``pan_text``)."""
    return f"{field}_text"


def display_name(field: str) -> str:
    """Short human name of a field for reasons: parties upper-case (``PAN``), others in words (``total votes``)."""
    if field in PARTIES:
        return field.upper()
    return {"null_votes": "null"}.get(field, field.replace("_", " "))
