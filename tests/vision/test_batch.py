"""Reading a batch into the run folder: the files of docs/DATA.md section 2, bad files as rows, the CLI."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.errors import ExitCode
from pipeline.vision import read_batch
from pipeline.vision import settings as st
from pipeline.vision.batch import CROP_COLUMNS, MARK_COLUMNS, PAGE_COLUMNS
from pipeline.vision.settings import ReadSettings


@pytest.fixture(scope="module")
def synth_run(synth_batch, tmp_path_factory):
    """The four synthetic sheets read with two worker processes."""
    return read_batch([synth_batch / "sheets"], tmp_path_factory.mktemp("run"), ReadSettings(workers=2))


def test_run_folder_has_every_table_with_the_contract_columns(synth_run):
    pages = pd.read_csv(synth_run / "pages.csv")
    crops = pd.read_parquet(synth_run / "crops.parquet")
    marks = pd.read_csv(synth_run / "marks.csv")
    digits = np.load(synth_run / "digits.npy", allow_pickle=False)
    assert list(pages.columns) == PAGE_COLUMNS and list(crops.columns) == CROP_COLUMNS
    assert list(marks.columns) == MARK_COLUMNS
    assert digits.dtype == np.uint8 and digits.shape[1:] == (28, 28)
    assert sorted(crops.loc[crops["digit_row"] >= 0, "digit_row"]) == list(range(len(digits)))
    assert (crops.loc[crops["box_status"] == st.BOX_EMPTY, "digit_row"] == -1).all()
    assert not list(synth_run.glob(".*.tmp")), "temporary files left behind"


def test_every_synthetic_sheet_is_registered_with_its_evidence(synth_run, synth_batch, template):
    pages = pd.read_csv(synth_run / "pages.csv")
    truth = pd.read_csv(synth_batch / "truth.csv")
    assert sorted(pages["sheet_id"]) == sorted(truth["sheet_id"])
    assert (pages["status"] == st.OK).all() and (pages["registration_score"] > 0.9).all()
    for sid in pages["sheet_id"]:
        assert {p.stem for p in (synth_run / "fields" / sid).glob("*.png")} == {f.name for f in template.fields}
        registered = cv2.imread(str(synth_run / "registered" / f"{sid}.jpg"), cv2.IMREAD_GRAYSCALE)
        assert registered.shape == template.size_px(200)[::-1]
    assert all(len(json.loads(h)) == 9 for h in pages["homography"])


def test_digit_counts_match_what_was_written_on_clean_fields(synth_run, synth_batch, template):
    crops = pd.read_parquet(synth_run / "crops.parquet")
    truth = pd.read_csv(synth_batch / "truth.csv").set_index("sheet_id")
    boxes = pd.read_csv(synth_batch / "boxes.csv")
    written = boxes[(boxes["position"] == "box") & (boxes["digit"] >= 0)].groupby(["sheet_id", "field"]).size()
    found = crops[(crops["box"] >= 0) & (crops["box_status"] != st.BOX_EMPTY)].groupby(["sheet_id", "field"]).size()
    checked = 0
    for sid in truth.index:
        for f in template.fields_of_kind("id", "count"):
            if f.kind == "count" and truth.loc[sid, f"{f.name}_alteration"] not in ("none", "fabricated"):
                continue
            assert found.get((sid, f.name), 0) == written.get((sid, f.name), 0), (sid, f.name)
            checked += 1
    assert checked > 50


def test_ticks_match_the_truth(synth_run, synth_batch):
    marks = pd.read_csv(synth_run / "marks.csv")
    truth = pd.read_csv(synth_batch / "truth.csv").set_index("sheet_id")
    for row in marks.itertuples():
        expected = (row.option == truth.loc[row.sheet_id, "station_type"] if row.field == "station_type"
                    else bool(truth.loc[row.sheet_id, row.field]))
        assert row.ticked == expected, (row.sheet_id, row.field, row.option, row.ink_ratio)


def test_a_batch_of_bad_files_goes_on_and_says_why(tmp_path, filled):
    page, _ = filled
    scans = tmp_path / "scans"
    (scans / "sub").mkdir(parents=True)
    cv2.imwrite(str(scans / "good.png"), page)
    cv2.imwrite(str(scans / "sub" / "good.jpg"), page)  # same sheet id as good.png
    (scans / "empty.png").write_bytes(b"")
    (scans / "broken.jpg").write_bytes(cv2.imencode(".jpg", page)[1].tobytes()[:5000])
    cv2.imwrite(str(scans / "blank.png"), np.full((2339, 1654), 250, np.uint8))
    out = read_batch([scans], tmp_path / "run", ReadSettings(workers=2))
    pages = pd.read_csv(out / "pages.csv").set_index("source")
    status = {p.split("/scans/")[1]: s for p, s in pages["status"].items()}
    assert status == {"blank.png": st.NOT_A_FORM, "broken.jpg": st.UNREADABLE, "empty.png": st.EMPTY_FILE,
                      "good.png": st.OK, "sub/good.jpg": st.DUPLICATE_ID}
    assert pages["reason"].fillna("").str.len().gt(0).sum() == 4
    crops = pd.read_parquet(out / "crops.parquet")
    assert set(crops["sheet_id"]) == {"good"}


def test_cli_reads_a_folder_and_reports(tmp_path, filled, capsys):
    page, written = filled
    cv2.imwrite(str(tmp_path / "sheet.png"), page)
    code = main(["read", str(tmp_path / "sheet.png"), "--out", str(tmp_path / "run"), "--workers", "1"])
    assert code == ExitCode.ok
    assert "ok 1" in capsys.readouterr().out
    crops = pd.read_parquet(tmp_path / "run" / "crops.parquet")
    found = {(r.field, r.box) for r in crops.itertuples() if r.box_status != st.BOX_EMPTY}
    assert found == set(written)


def test_cli_exit_codes_for_nothing_readable(tmp_path, capsys):
    assert main(["read", str(tmp_path / "missing"), "--out", str(tmp_path / "run")]) == ExitCode.input_file
    assert "missing: no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty.png").write_bytes(b"")
    assert main(["read", str(tmp_path / "empty.png"), "--out", str(tmp_path / "run")]) == ExitCode.input_file
    assert "empty_file" in capsys.readouterr().out


def test_bad_settings_are_config_errors(tmp_path, capsys):
    assert main(["read", str(tmp_path), "--out", str(tmp_path / "run"), "--dpi", "5"]) == ExitCode.config_error
    assert "dpi" in capsys.readouterr().err


def _pdf_of(pages: list[np.ndarray], path, dpi: int = 200) -> None:
    """A PDF with one JPEG page per image, as a scanner writes them."""
    from pipeline.synth.pdf import JpegPdf

    with JpegPdf(path) as pdf:
        for page in pages:
            pdf.add_page(cv2.imencode(".jpg", page)[1].tobytes(), page.shape[1], page.shape[0], dpi, True)


def test_a_file_name_that_is_not_utf8_is_read_like_any_other(tmp_path, filled):
    page, _ = filled
    scans = tmp_path / "scans"
    scans.mkdir()
    name = os.fsdecode(b"latin1_\xe9\xff.png")  # bytes no UTF-8 decoder accepts, as a Latin-1 system writes them
    cv2.imwrite(str(scans / "good.png"), page)
    (scans / name).write_bytes((scans / "good.png").read_bytes())
    out = read_batch([scans], tmp_path / "run", ReadSettings(workers=1))
    pages = pd.read_csv(out / "pages.csv", keep_default_na=False).set_index("sheet_id")
    assert list(pages.index) == ["good", "latin1_~E9~FF"] and (pages["status"] == st.OK).all()
    assert pages.loc["latin1_~E9~FF", "source"].endswith("latin1_\\xe9\\xff.png")
    crops = pd.read_parquet(out / "crops.parquet")
    assert (crops["sheet_id"] == "latin1_~E9~FF").sum() == (crops["sheet_id"] == "good").sum() > 0
    assert (out / "fields" / "latin1_~E9~FF").is_dir()
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    assert manifest["path"].str.endswith("latin1_\\xe9\\xff.png").sum() == 1


def test_a_page_id_that_is_another_files_name_is_a_duplicate_never_a_merge(tmp_path, filled, template, mnist):
    from tests.vision.conftest import fill_form

    page, _ = filled
    other = fill_form(template, mnist, seed=11)[0]
    scans = tmp_path / "scans"
    scans.mkdir()
    _pdf_of([page, other], scans / "collide.pdf")
    cv2.imwrite(str(scans / "collide-p2.jpg"), page)
    for order in ([scans], [scans / "collide.pdf", scans / "collide-p2.jpg"]):  # the owner listed first, then last
        out = read_batch(order, tmp_path / f"run{len(order)}", ReadSettings(workers=1))
        pages = pd.read_csv(out / "pages.csv", keep_default_na=False)
        first = pages.drop_duplicates("sheet_id").set_index("sheet_id")
        assert first["status"].to_dict() == {"collide": st.OK, "collide-p2": st.OK}
        assert first.loc["collide-p2", "source"].endswith("collide-p2.jpg")
        dup = pages[pages["status"] == st.DUPLICATE_ID]
        assert len(pages) == 3 and len(dup) == 1 and dup["source"].iloc[0].endswith("collide.pdf")
        assert "collide-p2.jpg" in dup["reason"].iloc[0]
        crops = pd.read_parquet(out / "crops.parquet")
        per_sheet = crops.groupby("sheet_id").size()
        assert per_sheet["collide-p2"] == per_sheet["collide"], "crops of two pages merged into one sheet"


def test_links_to_nothing_and_to_devices_each_get_a_row(tmp_path):
    from pipeline.vision.loading import NOT_A_FILE

    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "dangling.png").symlink_to(tmp_path / "gone.png")
    (scans / "zero.png").symlink_to("/dev/zero")
    os.mkfifo(scans / "pipe.png")
    out = read_batch([scans], tmp_path / "run", ReadSettings(workers=1))
    pages = pd.read_csv(out / "pages.csv", keep_default_na=False).set_index("sheet_id")
    assert pages["status"].to_dict() == {"dangling": NOT_A_FILE, "pipe": NOT_A_FILE, "zero": NOT_A_FILE}
    assert "does not exist" in pages.loc["dangling", "reason"]
    assert "character device" in pages.loc["zero", "reason"] and "named pipe" in pages.loc["pipe", "reason"]


def test_pages_name_their_input_relative_to_the_run_folder(tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "empty.png").write_bytes(b"")
    out = read_batch([scans.absolute()], tmp_path / "out" / "run", ReadSettings(workers=1))
    page = pd.read_csv(out / "pages.csv", keep_default_na=False).iloc[0]
    assert page["source"] == os.path.join("..", "..", "scans", "empty.png")
    assert str(tmp_path) not in page["reason"] and page["source"] in page["reason"]


def test_a_full_disk_is_one_line_naming_the_path_and_its_exit_code(tmp_path, monkeypatch, capsys):
    import errno

    from pipeline.engine import parts

    def full(path, *_):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(parts, "write_part", full)
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.png").write_bytes(b"")
    assert main(["read", str(tmp_path), "--out", str(tmp_path / "run"), "--workers", "1"]) == ExitCode.output_error
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "No space left on device; the disk is full" in err[-1]
    assert str(tmp_path / "run" / "parts") in err[-1] and "Traceback" not in "\n".join(err)


def test_a_full_disk_that_names_no_file_is_reported_with_the_output_folder(tmp_path, monkeypatch, capsys):
    import errno

    from pipeline.engine import parts

    def full(*_):
        raise OSError(errno.ENOSPC, "No space left on device")  # a write to an open file names no path

    monkeypatch.setattr(parts, "write_part", full)
    (tmp_path / "a.png").write_bytes(b"")
    assert main(["read", str(tmp_path), "--out", str(tmp_path / "run"), "--workers", "1"]) == ExitCode.output_error
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"error: {tmp_path / 'run'} (writing the output): No space left on device")
    assert "(no path)" not in last


def test_a_file_that_killed_its_worker_is_recorded_and_never_read_again(tmp_path, monkeypatch):
    from pipeline.engine.pool import WORKER_DIED, ItemResult
    from pipeline.vision import batch

    scans = tmp_path / "scans"
    scans.mkdir()
    for name in ("bomb.png", "empty.png"):
        (scans / name).write_bytes(b"" if name == "empty.png" else b"\x89PNG\r\n\x1a\n pretend")
    real = batch.map_items
    asked = []

    def dying(fn, items, *args, **kwargs):
        items = list(items)
        asked.append([p.name for p in items])
        rest = [p for p in items if p.name != "bomb.png"]
        died = [ItemResult(p, error=f"{WORKER_DIED}: killed", died=True) for p in items if p.name == "bomb.png"]
        return iter(died + list(real(fn, rest, *args, **kwargs)))

    monkeypatch.setattr(batch, "map_items", dying)
    run = read_batch([scans], tmp_path / "run", ReadSettings(workers=1))
    pages = pd.read_csv(run / "pages.csv", keep_default_na=False).set_index("sheet_id")
    assert pages.loc["bomb", "status"] == WORKER_DIED and "killed" in pages.loc["bomb", "reason"]
    read_batch([scans], run, ReadSettings(workers=1))
    assert asked == [["bomb.png", "empty.png"], []], "the file that killed a worker was tried again"
    manifest = pd.read_csv(run / "manifest.csv", keep_default_na=False)
    assert manifest.set_index("path").loc[str(scans / "bomb.png"), "status"] == WORKER_DIED
