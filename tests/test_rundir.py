import json
import os
import signal
import subprocess
import sys
import time

import pytest

from reasonkit.rundir import JsonlAppender, RecordError, RunDirError, atomic_write_json, claim, read_jsonl


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


def test_claim_records_the_identity_and_refuses_another_run(tmp_path):
    run = tmp_path / "run"
    with claim(run, {"model": "a", "seed": 1}) as held:
        assert held.record["model"] == "a" and "created" in held.record
    stored = json.loads((run / "run.json").read_text())
    assert {k: stored[k] for k in ("model", "seed")} == {"model": "a", "seed": 1}
    with claim(run, {"model": "a", "seed": 1}):  # the same run resumes
        pass
    with pytest.raises(RunDirError, match=r"a different run \(seed: stored 1 vs now 2\).*new --out"):
        claim(run, {"model": "a", "seed": 2})
    with claim(run, {"model": "a", "extra": True}):  # a field the record lacks is added, not a clash
        pass
    assert json.loads((run / "run.json").read_text())["extra"] is True
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="not a directory"):
        claim(tmp_path / "file", {})


def test_claims_nest_in_one_process(tmp_path):
    outer = claim(tmp_path, {"a": 1})
    with claim(tmp_path, {"a": 1}):
        pass
    outer.release()
    outer.release()  # releasing twice is harmless
    with claim(tmp_path, {"a": 1}):
        pass


HOLDER = """
import sys, time
from reasonkit.rundir import claim
held = claim(sys.argv[1], {"who": "holder"})
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_process_is_refused_until_the_holder_dies(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirError, match=rf"in use by pid {holder.pid} .*since .*rerun to resume"):
            claim(run, {"who": "holder"})
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # a killed run leaves the lock file, never the lock
        holder.wait()
    deadline = time.monotonic() + 10
    while True:
        try:
            with claim(run, {"who": "holder"}):
                break
        except RunDirError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
