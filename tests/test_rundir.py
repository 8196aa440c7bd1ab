import json

import pytest

from reasonkit.rundir import JsonlAppender, RecordError, atomic_write_json, read_jsonl


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "summary.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_appender_repairs_torn_tail_and_reader_names_line(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text('{"i": 0}\n{"i": 1}\n{"i": 2, "torn')
    assert [r["i"] for r in read_jsonl(path, tolerate_torn_tail=True)] == [0, 1]
    with pytest.raises(RecordError, match=r"records.jsonl, line 3"):
        read_jsonl(path)
    with JsonlAppender(path) as out:
        out.write({"i": 2})
    assert [r["i"] for r in read_jsonl(path)] == [0, 1, 2]
    path.write_text('{"i": 0}\n[1, 2]\n')
    with pytest.raises(RecordError, match="line 2: expected a JSON object"):
        read_jsonl(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_atomic_write_respects_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "r.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644
