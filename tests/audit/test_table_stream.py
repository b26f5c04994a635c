"""audit-table in flat memory: chunk-size independence, the streaming helpers, and the forensics' compact inputs."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import pipeline.audit.table_forensics as tf
import pipeline.audit.table_stream as ts
from pipeline.audit.table_audit import TableAuditSettings, iter_chunks, read_header, run_table_audit
from pipeline.audit.table_forensics import TableForensicsSettings, run_table_forensics
from pipeline.audit.table_stream import RowCursor, ScopeCoder, SeenIds, compact_counts, merge_counts, ordered_counts
from pipeline.audit.table_synth import SYNTH_MAPPING, clean_table, random_shape, stations_from_table
from pipeline.errors import InputFileError

DRAWS = 30
OUTPUTS = ("stations.csv", "flags.csv", "excluded.csv")


def settings(chunk_rows: int) -> TableAuditSettings:
    return TableAuditSettings(chunk_rows=chunk_rows, forensics=TableForensicsSettings(mc_draws=DRAWS))


def full_turnout(table: pd.DataFrame, row: int) -> None:
    """Make station ``row`` reach 100% turnout, the added ballots all valid and for the leader (relations hold)."""
    added = table.loc[row, "registered"] - table.loc[row, "issued"]
    for col in ("issued", "found", "valid", "choice_1"):
        table.loc[row, col] += added
    table.loc[row, "cancelled"] -= added


@pytest.fixture
def messy(tmp_path):
    """A 600-station table with every kind of row: bad values, repeated ids (inside a chunk and across chunks),
    excluded rows, failed identities, a soft bound, big stations at 100% turnout; and its mapping file."""
    table = clean_table(random_shape(600, 4, seed=3), seed=4)
    table.loc[3, "valid"] += 7
    table.loc[4, ["found", "valid", "choice_1"]] += 2
    table.loc[40, "registered"] = 30
    for row in (50, 51, 52):
        table.loc[row, "registered"] = 2000
        full_turnout(table, row)
    frame = table.astype({"valid": object})
    frame.loc[0, "valid"] = "abc"
    frame.loc[9, "valid"] = "-4"
    frame = pd.concat([frame, frame.iloc[[10, 300]], frame.iloc[[12]]], ignore_index=True)
    frame = pd.concat([frame.iloc[:20], frame.iloc[[15]], frame.iloc[20:]], ignore_index=True)
    mapping = dict(SYNTH_MAPPING, exclude={"ids": [{"level": "region", "pattern": "04$", "reason": "abroad"}],
                                           "min_registered": 50})
    map_path = tmp_path / "map.yaml"
    map_path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    path = tmp_path / "results.csv"
    frame.to_csv(path, index=False)
    return path, map_path


def forensics_without_chunk_rows(out: Path) -> dict:
    summary = json.loads((out / "forensics.json").read_text(encoding="utf-8"))
    summary["audit_settings"].pop("chunk_rows")
    return summary


def test_outputs_do_not_depend_on_chunk_size(tmp_path, messy):
    path, map_path = messy
    outs = {}
    for chunk_rows in (7, 1000):
        outs[chunk_rows] = tmp_path / f"out_{chunk_rows}"
        run_table_audit(path, map_path, outs[chunk_rows], settings(chunk_rows))
    small, whole = outs[7], outs[1000]
    for name in OUTPUTS:
        assert (small / name).read_bytes() == (whole / name).read_bytes(), name
    assert forensics_without_chunk_rows(small) == forensics_without_chunk_rows(whole)
    pd.testing.assert_frame_equal(pd.read_parquet(small / "stations.parquet"),
                                  pd.read_parquet(whole / "stations.parquet"), check_exact=True)
    # the table really has every kind of row, and the files keep row order
    flags = pd.read_csv(whole / "flags.csv", keep_default_na=False)
    assert {"boxes_balance", "valid_sum", "found_le_issued", "full_turnout_improbable"} <= set(flags["rule"])
    assert flags["row"].is_monotonic_increasing
    statuses = json.loads((whole / "forensics.json").read_text())["statuses"]
    assert {"bad_value", "duplicate_id", "excluded", "inconsistent", "warning", "ok"} <= set(statuses)
    assert list(statuses.values()) == sorted(statuses.values(), reverse=True)
    stations = pd.read_csv(whole / "stations.csv")
    assert stations["row"].tolist() == list(range(1, len(stations) + 1))
    assert not [p.name for p in whole.iterdir() if p.name.startswith(".")]


def test_zip_and_parquet_inputs_give_the_same_outputs(tmp_path, messy):
    path, map_path = messy
    run_table_audit(path, map_path, tmp_path / "csv", settings(100))
    archive = tmp_path / "results.csv.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(path, "results.csv")
    run_table_audit(archive, map_path, tmp_path / "zip", settings(100))
    for name in (*OUTPUTS, "stations.parquet"):
        assert (tmp_path / "csv" / name).read_bytes() == (tmp_path / "zip" / name).read_bytes(), name


def test_zip_with_several_files_is_a_clear_error(tmp_path, messy):
    path, map_path = messy
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(path, "a.csv")
        zf.write(path, "b.csv")
    with pytest.raises(InputFileError, match="exactly one CSV file; it holds 2"):
        read_header(archive)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip archive at all")
    with pytest.raises(InputFileError, match="not a readable zip archive"):
        read_header(broken)


def test_zip_member_is_read_in_chunks(tmp_path, messy):
    path, _ = messy
    archive = tmp_path / "results.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(path, "results.csv")
    chunks = list(iter_chunks(archive, ["region", "uik"], 100))
    assert [len(c) for c in chunks[:-1]] == [100] * (len(chunks) - 1)
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True),
                                  pd.concat(iter_chunks(path, ["region", "uik"], 100), ignore_index=True))


def test_a_failed_run_keeps_earlier_outputs_and_leaves_no_temporary_file(tmp_path, messy):
    path, map_path = messy
    out = tmp_path / "out"
    run_table_audit(path, map_path, out, settings(50))
    before = {name: (out / name).read_bytes() for name in (*OUTPUTS, "forensics.json")}
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[400] = '"' + lines[400]  # a quote never closed: the parser fails when it reaches the end
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="cannot read the table"):
        run_table_audit(broken, map_path, out, settings(50))
    assert {name: (out / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in out.iterdir()) == sorted([*before, "stations.parquet"])
    fresh = tmp_path / "fresh"
    with pytest.raises(InputFileError):
        run_table_audit(broken, map_path, fresh, settings(50))
    assert not fresh.exists()


def dictionary_walk(ids: list[str], valid: list[bool]) -> list[int]:
    """What the audit did before: one dictionary of id -> first row (rows from 1)."""
    seen, out = {}, []
    for row, (sid, ok) in enumerate(zip(ids, valid, strict=True), start=1):
        if not ok:
            out.append(0)
        elif sid in seen:
            out.append(seen[sid])
        else:
            seen[sid] = row
            out.append(0)
    return out


def seen_in_chunks(ids: list[str], valid: list[bool], sizes: list[int]) -> list[int]:
    seen, out, start = SeenIds(), [], 0
    for size in sizes:
        rows = np.arange(start + 1, start + size + 1)
        part = np.array(ids[start:start + size], dtype=object)
        out += seen.first_rows(part, rows, np.array(valid[start:start + size])).tolist()
        start += size
    return out


def test_seen_ids_find_the_same_repeats_as_a_dictionary():
    rng = np.random.default_rng(0)
    ids = [f"region {rng.integers(5)} / {rng.integers(300)}" for _ in range(1000)]
    valid = (rng.random(1000) > 0.05).tolist()
    expected = dictionary_walk(ids, valid)
    assert sum(x > 0 for x in expected) > 100
    for sizes in ([1000], [1] * 1000, [7] * 142 + [6], [500, 1, 499]):
        assert seen_in_chunks(ids, valid, sizes) == expected


def test_seen_ids_compare_the_second_hash_when_the_first_collides(monkeypatch):
    real = ts.id_hashes

    def colliding(values):
        h1, h2 = real(values)
        return np.zeros_like(h1), h2  # every id has the same first hash

    monkeypatch.setattr(ts, "id_hashes", colliding)
    ids = ["a", "b", "a", "c", "b", "d", "a"]
    valid = [True] * len(ids)
    assert seen_in_chunks(ids, valid, [2, 2, 3]) == dictionary_walk(ids, valid) == [0, 0, 1, 0, 2, 0, 1]


def test_scope_coder_numbers_scopes_like_factorize():
    values = pd.Series(["b", "a", "b", "c", "a", "d", "c", "e"])
    coder = ScopeCoder(("region",))
    for start in range(0, len(values), 3):
        coder.add(pd.DataFrame({"region": values[start:start + 3]}))
    codes, names = coder.scopes()["region"]
    expected_codes, expected_names = pd.factorize(values)
    assert codes.tolist() == expected_codes.tolist() and names == list(expected_names)
    assert codes.dtype == np.int32


def test_counts_over_chunks_are_ordered_like_value_counts():
    values = ["ok", "warning", "ok", "excluded", "bad_value", "warning", "excluded", "ok", "duplicate_id"]
    total: dict[str, int] = {}
    for start in range(0, len(values), 2):
        merge_counts(total, values[start:start + 2])
    assert list(ordered_counts(total).items()) == list(pd.Series(values).value_counts().items())


def test_row_cursor_hands_out_rows_in_order(tmp_path):
    path = tmp_path / "rows.parquet"
    pd.DataFrame({"row": [2, 2, 5, 9, 9, 14], "x": list("abcdef")}).to_parquet(path, row_group_size=2)
    cursor = RowCursor(path, ["row", "x"], batch_rows=1)
    assert cursor.upto(1).empty
    assert cursor.upto(5)["x"].tolist() == ["a", "b", "c"]
    assert cursor.upto(8).empty
    assert cursor.upto(20)["x"].tolist() == ["d", "e", "f"]
    assert RowCursor(None, ["row", "x"], 10).upto(100).empty


def test_compact_counts_keep_every_value():
    small = np.array([0.0, 12.0, 2.0 ** 31 - 1])
    assert compact_counts(small).dtype == np.int32 and compact_counts(small).tolist() == small.tolist()
    big = np.array([1.0, 2.0 ** 31])
    assert compact_counts(big).dtype == np.int64 and compact_counts(big).tolist() == big.tolist()


def test_forensics_do_not_depend_on_vote_width_or_count_block(monkeypatch):
    table = clean_table(random_shape(3000, 6, seed=1), seed=2)
    s = TableForensicsSettings(mc_draws=40)
    wide = stations_from_table(table)
    narrow = tf.Stations(**{**wide.__dict__, "votes": wide.votes.astype(np.int32)})
    reference, p_ref = run_table_forensics(wide, s)
    monkeypatch.setattr(tf, "COUNT_ELEMENTS", 1)  # one draw at a time
    other, p_other = run_table_forensics(narrow, s)
    assert json.dumps(other, default=str, sort_keys=True) == json.dumps(reference, default=str, sort_keys=True)
    assert np.array_equal(p_ref, p_other, equal_nan=True)


def test_collected_numbers_are_joined_letting_go_of_the_chunks():
    """The chunks' arrays are joined one name at a time and let go at once, so that the forensics never run
    beside a second copy of every station's numbers."""
    from pipeline.audit.table_audit import _Collected
    from pipeline.audit.table_stream import ScopeCoder

    acc = _Collected(scopes=ScopeCoder(("region",)))
    acc.votes = [np.array([[1, 2]], np.int32), np.array([[3, 4], [5, 6]], np.int32)]
    joined = acc.take("votes", (0, 2), np.int64)
    assert joined.tolist() == [[1, 2], [3, 4], [5, 6]] and joined.dtype == np.int32
    assert acc.votes == []
    assert acc.take("ballots", (0,), np.int64).shape == (0,)
