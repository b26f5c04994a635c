"""The templates a run folder was read with, and which page was read with which (docs/DATA.md section 2).

A run read with one template records it as ``template.yaml`` (none for the packaged acta), as before; a run read
with several (``read --form A.yaml --form B.yaml``) records each as ``templates/<name>.yaml`` and no
``template.yaml``, and every page's template name is the ``page_type`` column of ``pages.csv``. The stages after
reading find a page's fields, roles and rules with:

* :func:`run_templates` - every template of the run by name (one for a single-template run);
* :func:`page_templates` - the template name of every page that was read, by ``sheet_id``;
* :func:`sheet_templates` - both joined: the :class:`Template` of every page that was read.

Each recorded template is written loadable from anywhere (its reference image's folder written in:
:func:`pipeline.forms.template.portable_raw`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import yaml

from pipeline.atomic import write_text_atomic
from pipeline.errors import ConfigError, InputFileError
from pipeline.forms.template import (
    RUN_TEMPLATE_FILE,
    RUN_TEMPLATES_DIR,
    TEMPLATE_SUFFIX,
    Template,
    portable_raw,
    read_run_template,
    run_template,
)

#: Folder of a several-template run's templates, one ``<name>.yaml`` each.
TEMPLATES_DIR = RUN_TEMPLATES_DIR
#: The reader's page table and its template column.
PAGES_FILE = "pages.csv"
PAGE_TYPE = "page_type"
#: Status of a page that was read (``pipeline.vision.settings.OK``; not imported: that module loads the reader's).
OK = "ok"


def templates_dir(rundir: Path) -> Path:
    """The folder of a several-template run's templates."""
    return Path(rundir) / TEMPLATES_DIR


def _load_recorded(path: Path) -> Template:
    """A template recorded in a run folder, its file named in any error."""
    return read_run_template(path, named=True)


def recorded_files(rundir: Path) -> list[Path]:
    """The ``templates/<name>.yaml`` files of ``rundir``, by name (none for a single-template run)."""
    folder = templates_dir(rundir)
    return sorted(folder.glob(f"*{TEMPLATE_SUFFIX}")) if folder.is_dir() else []


def run_templates(rundir: Path) -> dict[str, Template]:
    """Every template the run folder ``rundir`` was read with, by name (sorted): its ``templates/*.yaml``, else its
    one template (``template.yaml``, else the packaged acta: :func:`pipeline.forms.template.run_template`).

    Not cached: a run folder may be read again with other templates.

    Raises:
        ConfigError: a recorded template cannot be read or parsed, is not named as its file, or the folder holds
            both ``template.yaml`` and ``templates/`` (the message names the files).
    """
    files = recorded_files(rundir)
    if len(files) <= 1 or (Path(rundir) / RUN_TEMPLATE_FILE).is_file():
        template = run_template(Path(rundir))
        return {template.name: template}
    return {path.stem: _load_recorded(path) for path in files}


def _pages(rundir: Path) -> pd.DataFrame:
    """``pages.csv`` of ``rundir`` as text (its first row of each sheet id: later ones are ``duplicate_id``)."""
    path = Path(rundir) / PAGES_FILE
    try:
        pages = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{path}: cannot read the run's pages ({exc}); run `python -m pipeline read SCANS "
                             f"--out {rundir}` first") from exc
    missing = {"sheet_id", "status"} - set(pages.columns)
    if missing:
        raise InputFileError(f"{path}: lacks column(s) {', '.join(sorted(missing))}")
    return pages.drop_duplicates("sheet_id")


def page_templates(rundir: Path) -> dict[str, str]:
    """The template name of every page of ``rundir`` that was read (``status`` ok), by ``sheet_id``, in the order
    of ``pages.csv``: its ``page_type`` column; a run written before that column existed read every page with its
    one template.

    Raises:
        InputFileError: ``pages.csv`` is missing or unreadable.
        ConfigError: a page names a template the run did not record, or an older run without ``page_type`` holds
            several templates.
    """
    templates = run_templates(rundir)
    pages = _pages(rundir)
    read = pages[pages["status"] == OK]
    if PAGE_TYPE not in pages.columns:
        if len(templates) != 1:
            raise ConfigError(f"{Path(rundir) / PAGES_FILE}: has no {PAGE_TYPE} column, but the run holds "
                              f"{len(templates)} templates; read the scans into it again")
        return dict.fromkeys(read["sheet_id"], next(iter(templates)))
    unknown = sorted(set(read[PAGE_TYPE]) - set(templates))
    if unknown:
        raise ConfigError(f"{Path(rundir) / PAGES_FILE}: pages of template(s) {', '.join(map(repr, unknown))} that "
                          f"the run did not record (it has {', '.join(templates)})")
    return dict(zip(read["sheet_id"], read[PAGE_TYPE], strict=True))


def sheet_templates(rundir: Path) -> dict[str, Template]:
    """The :class:`Template` of every page of ``rundir`` that was read, by ``sheet_id`` (:func:`page_templates`)."""
    templates = run_templates(rundir)
    return {sheet: templates[name] for sheet, name in page_templates(rundir).items()}


def check_names(templates: Sequence[Template], sources: Sequence[str | Path]) -> None:
    """Refuse templates that cannot be told apart in a run folder: two with one name, or a name that is not a
    plain file name (``templates/<name>.yaml``); ``sources`` are their files, named in the error.

    Raises:
        ConfigError: naming the files and the name at fault.
    """
    seen: dict[str, str | Path] = {}
    for template, source in zip(templates, sources, strict=True):
        name = template.name
        if not name or Path(name).name != name or name.startswith("."):
            raise ConfigError(f"{source}: template name {name!r} cannot name a file in the run folder")
        if name in seen:
            raise ConfigError(f"{source} and {seen[name]} are both named '{name}'; give every form template its "
                              "own name")
        seen[name] = source


def record_templates(templates: Sequence[Template], rundir: Path, packaged_default: bool = False) -> list[Path]:
    """Record the templates a run was read with in ``rundir``; returns the files written.

    One template: ``template.yaml`` (not for the packaged acta: ``packaged_default``), as runs always had.
    Several: ``templates/<name>.yaml`` each. What an earlier reading of the folder recorded and this one does not
    use is removed, so that :func:`run_templates` describes this reading.
    """
    rundir = Path(rundir)
    single = rundir / RUN_TEMPLATE_FILE
    keep = {f"{t.name}{TEMPLATE_SUFFIX}" for t in templates} if len(templates) > 1 else set()
    for stale in recorded_files(rundir):
        if stale.name not in keep:
            stale.unlink()
    written = []
    if len(templates) == 1:
        if packaged_default:
            single.unlink(missing_ok=True)
            return []
        written.append(_write(single, templates[0]))
    else:
        single.unlink(missing_ok=True)
        templates_dir(rundir).mkdir(parents=True, exist_ok=True)
        written += [_write(templates_dir(rundir) / f"{t.name}{TEMPLATE_SUFFIX}", t) for t in templates]
    if templates_dir(rundir).is_dir() and not any(templates_dir(rundir).iterdir()):
        templates_dir(rundir).rmdir()
    return written


def _write(path: Path, template: Template) -> Path:
    write_text_atomic(path, yaml.safe_dump(portable_raw(template), sort_keys=False, allow_unicode=True))
    return path
