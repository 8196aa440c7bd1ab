"""GPQA: the seeded option shuffle, the recorded permutation, and malformed files.

Synthetic CSVs here hold made-up text only; the real archive is read in memory, and assertions
about it name record ids, never question or option text."""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter

import pytest

from reasonkit.evals.gpqa import OPTION_FIELDS, GPQAError, load_gpqa, shuffle_options

HEADER = ["Question", *OPTION_FIELDS, "Record ID", "High-level domain", "Subdomain"]


def fake_csv(rows: list[list[str]], header: list[str] = HEADER) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def fake_row(i: int) -> list[str]:
    return [f"made-up question {i}\nwith a second line", f"right {i}", f"wrong a{i}", f"wrong b{i}", f"wrong c{i}",
            f"rec{i:03d}", "Physics", "Optics"]  # fmt: skip


def test_shuffle_is_seeded_per_record():
    assert shuffle_options("recA", 0) == shuffle_options("recA", 0)
    assert sorted(shuffle_options("recA", 3)) == [0, 1, 2, 3]
    orders = {tuple(shuffle_options(f"rec{i}", 0)) for i in range(50)}
    assert len(orders) > 10  # questions get different orders, not one global one


def test_synthetic_csv_layout_and_permutation(tmp_path):
    path = tmp_path / "gpqa_main.csv"
    path.write_text(fake_csv([fake_row(i) for i in range(8)]), encoding="utf-8")
    problems = load_gpqa(path, "main", seed=7)
    assert [p.id for p in problems] == [f"gpqa-main-rec{i:03d}" for i in range(8)]
    for i, p in enumerate(problems):
        perm = p.meta["trace_meta"]["permutation"]
        originals = [f"right {i}", f"wrong a{i}", f"wrong b{i}", f"wrong c{i}"]
        assert p.choices == tuple(originals[k] for k in perm)
        assert p.choices["ABCD".index(p.answer)] == f"right {i}"
        assert p.meta["trace_meta"]["shuffle_seed"] == 7 and p.meta["domain"] == "Physics"
        assert p.question.endswith("second line")


def test_real_archive_same_seed_same_shuffle_other_seed_other(gpqa_zip):
    a = load_gpqa(gpqa_zip, "diamond", seed=0)
    b = load_gpqa(gpqa_zip, "diamond", seed=0)
    c = load_gpqa(gpqa_zip, "diamond", seed=1)
    perms = lambda ps: [tuple(p.meta["trace_meta"]["permutation"]) for p in ps]  # noqa: E731
    assert perms(a) == perms(b) and [p.answer for p in a] == [p.answer for p in b]
    assert [p.choices for p in a] == [p.choices for p in b]
    differ = sum(x != y for x, y in zip(perms(a), perms(c)))
    assert differ > 100, f"only {differ} of 198 orders changed with the seed"
    letters = Counter(p.answer for p in a)
    assert set(letters) == set("ABCD") and min(letters.values()) >= 30, letters
    # one record keeps its order across subsets (the shuffle is keyed by Record ID, not position)
    main = {p.meta["trace_meta"]["record_id"]: perms([p])[0] for p in load_gpqa(gpqa_zip, "main", seed=0)}
    shared = [p for p in a if p.meta["trace_meta"]["record_id"] in main]
    assert shared and all(main[p.meta["trace_meta"]["record_id"]] == perms([p])[0] for p in shared)
    assert Counter(p.meta["domain"] for p in a) == {"Chemistry": 93, "Physics": 86, "Biology": 19}


def test_extended_subset_count(gpqa_zip):
    assert len(load_gpqa(gpqa_zip, "extended")) == 546


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (
            lambda rows: rows[2].__setitem__(1, ""),
            r"record 3 \(ending at line \d+\): field 'Correct Answer' is empty",
        ),
        (lambda rows: rows[1].__setitem__(5, "rec000"), "record 2 .*Record ID rec000 appears twice"),
        (lambda rows: rows[3].__setitem__(0, "   "), "record 4 .*field 'Question'"),
    ],
)
def test_malformed_rows_name_record_line_and_field_but_no_text(tmp_path, mutate, needle):
    rows = [fake_row(i) for i in range(5)]
    mutate(rows)
    path = tmp_path / "gpqa_diamond.csv"
    path.write_text(fake_csv(rows), encoding="utf-8")
    with pytest.raises(GPQAError, match=needle) as info:
        load_gpqa(path, "diamond")
    message = str(info.value)
    assert str(path) in message and "line" in message
    assert "made-up" not in message and "right " not in message and "wrong " not in message


def test_bad_files_and_options(tmp_path):
    missing_column = tmp_path / "a.csv"
    missing_column.write_text(fake_csv([fake_row(0)[:-3]], HEADER[:-3]), encoding="utf-8")
    with pytest.raises(GPQAError, match=r"line 1: the header lacks column\(s\) \['Record ID'\]"):
        load_gpqa(missing_column)
    not_zip = tmp_path / "dataset.zip"
    not_zip.write_bytes(b"not a zip at all")
    with pytest.raises(GPQAError, match="not a readable zip"):
        load_gpqa(tmp_path)
    with zipfile.ZipFile(not_zip, "w") as archive:
        archive.writestr("dataset/other.csv", "x")
    with pytest.raises(
        GPQAError, match=r"no member dataset/gpqa_diamond.csv; its CSV members are \['dataset/other.csv'\]"
    ):
        load_gpqa(not_zip)
    with pytest.raises(GPQAError, match="unknown GPQA subset 'gold'"):
        load_gpqa(not_zip, "gold")
    with pytest.raises(GPQAError, match="does not exist"):
        load_gpqa(tmp_path / "nope.zip")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GPQAError, match=r"holds no GPQA dataset\.zip"):
        load_gpqa(empty)


def test_gpqa_records_hold_no_text_and_the_run_is_owner_only(tmp_path, tiny_model_dir):
    """GPQA's text never lands in a run directory unless asked for, and the directory is owner-only."""
    import json
    import stat

    from reasonkit.evals.runner import eval_command
    from reasonkit.rundir import read_jsonl

    csv_path = tmp_path / "gpqa_main.csv"
    csv_path.write_text(fake_csv([fake_row(i) for i in range(3)]), encoding="utf-8")
    common = ["--bench", "gpqa_main", "--data", str(csv_path), "--model", str(tiny_model_dir),
              "--strategy", "sc", "--n", "2", "--max-new-tokens", "4", "--progress", "false"]  # fmt: skip
    out = tmp_path / "run"
    assert eval_command([*common, "--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    written = "".join(p.read_text(errors="replace") for p in out.iterdir() if p.is_file())
    assert "made-up question" not in written and "right 0" not in written and "wrong a0" not in written
    records = read_jsonl(out / "records.jsonl")
    assert [r["problem_id"] for r in records] == [f"gpqa-main-rec{i:03d}" for i in range(3)]
    assert all(r["meta"]["redacted"] and r["answer"] in (None, *"ABCD") for r in records)
    step = records[0]["steps"][0]
    assert step["prompt"].startswith("sha256:") and all(
        s.startswith("sha256:") for s in step["meta"]["samples"]
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 3
    assert eval_command([*common, "--out", str(out)]) == 0  # a redacted run resumes
    assert len(read_jsonl(out / "records.jsonl")) == 3

    kept = tmp_path / "kept"
    assert eval_command([*common, "--out", str(kept), "--keep-gpqa-text", "true"]) == 0
    assert "made-up question 0" in (kept / "records.jsonl").read_text()


def test_a_pack_that_cannot_show_the_options_refuses_gpqa(tmp_path):
    from reasonkit.evals.runner import eval_command

    csv_path = tmp_path / "gpqa_main.csv"
    csv_path.write_text(fake_csv([fake_row(0)]), encoding="utf-8")
    out = tmp_path / "run"
    argv = ["--bench", "gpqa_main", "--data", str(csv_path), "--model", "builtin", "--out", str(out),
            "--progress", "false"]  # fmt: skip
    with pytest.raises(ValueError, match="prompt pack 'compact2' cannot show the options"):
        eval_command(argv)
    assert not (out / "records.jsonl").exists() or not (out / "records.jsonl").read_text()
