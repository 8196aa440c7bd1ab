"""reasonkit.evals.load: the data folder rule, JSONL field maps, arith, and malformed input."""

from __future__ import annotations

import json

import pytest

from reasonkit.evals import loaders
from reasonkit.evals.loaders import DatasetError, data_root, load


def write_jsonl(path, rows) -> None:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )


def test_math500_meta_and_folder_or_file(data_dir):
    problems = load("math500", data_dir)
    first = problems[0]
    assert first.id == "test/precalculus/807.json" and first.kind == "math"
    assert first.meta["subject"] == "Precalculus" and first.meta["level"] == 2
    assert first.meta["trace_meta"] == {"subject": "Precalculus", "level": 2}
    assert sorted({p.meta["level"] for p in problems}) == [1, 2, 3, 4, 5]
    assert [p.id for p in load("math500", data_dir / "math500" / "test.jsonl")] == [p.id for p in problems]


def test_data_root_rule(monkeypatch, tmp_path):
    assert data_root(tmp_path) == tmp_path
    monkeypatch.setenv("REASONKIT_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("REASONKIT_DATA")
    monkeypatch.setattr(loaders, "REPO_ROOT", tmp_path / "repo")
    with pytest.raises(DatasetError, match=r"pass --data PATH .* or set REASONKIT_DATA"):
        data_root()
    (tmp_path / "shared" / "data").mkdir(parents=True)
    assert data_root() == tmp_path / "shared" / "data"


def test_missing_benchmark_file_names_it(tmp_path):
    with pytest.raises(DatasetError, match=r"aime24: .*aime24/test.jsonl does not exist; pass --data"):
        load("aime24", tmp_path)


def test_jsonl_with_field_map(tmp_path):
    path = tmp_path / "mine.jsonl"
    write_jsonl(
        path, [{"problem": "1+1?", "solution": 2, "topic": "easy"}, {"problem": "2+2?", "solution": "4.0"}]
    )
    problems = load(
        str(path), fields={"question": "problem", "answer": "solution", "subject": "topic"}, kind="int"
    )
    assert [(p.id, p.question, p.answer, p.kind) for p in problems] == [
        ("mine-0", "1+1?", "2", "int"),
        ("mine-1", "2+2?", "4", "int"),
    ]
    assert problems[0].meta["subject"] == "easy" and "subject" not in problems[1].meta
    choice = tmp_path / "mc.jsonl"
    write_jsonl(choice, [{"id": "q1", "question": "pick", "choices": ["x", "y", "z"], "answer": "c"}])
    [p] = load("jsonl", choice, kind="choice")
    assert (p.id, p.answer, p.choices) == ("q1", "C", ("x", "y", "z"))


@pytest.mark.parametrize(
    ("rows", "options", "needle"),
    [
        (['{"question": "a", "answer": "1"}', "{not json"], {}, r"bad.jsonl, line 2: not valid JSON"),
        ([{"question": "a"}], {}, r"bad.jsonl, line 1: field 'answer' is missing \(fields present: \['question'\]\)"),
        ([{"question": "a", "answer": "1"}, {"question": 3, "answer": "1"}], {}, r"line 2: field 'question' must be str"),
        ([{"question": "a", "answer": "x"}], {"kind": "int"}, r"line 1: field 'answer' must be a number"),
        ([{"id": 1, "question": "a", "answer": "1"}, {"id": 1, "question": "b", "answer": "2"}], {},
         r"line 2: id '1' repeats line 1"),
        ([{"question": "a", "answer": "E", "choices": ["x", "y"]}], {"kind": "choice"},
         r"line 1: field 'answer' must be one letter of AB"),
        ([{"question": "a", "answer": "1"}], {"fields": {"prompt": "question"}}, r"unknown field mapping\(s\) \['prompt'\]"),
        ([{"question": "a", "answer": "1"}], {"kind": "essay"}, "unknown kind 'essay'"),
        ([{"question": "a", "answer": "1"}], {"subset": "x"}, r"unknown option\(s\) \['subset'\]"),
        ([], {}, "holds no problems"),
    ],
)  # fmt: skip
def test_malformed_jsonl_names_file_line_and_field(tmp_path, rows, options, needle):
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, rows)
    with pytest.raises(DatasetError, match=needle):
        load(str(path), **options)


def test_malformed_benchmark_rows(tmp_path):
    folder = tmp_path / "gsm8k"
    folder.mkdir()
    write_jsonl(
        folder / "test.jsonl",
        [{"question": "q", "answer": "so #### 1,234"}, {"question": "q", "answer": "no marker"}],
    )
    with pytest.raises(
        DatasetError, match=r"gsm8k/test.jsonl, line 2: field 'answer' has no '#### <number>'"
    ):
        load("gsm8k", tmp_path)
    write_jsonl(folder / "test.jsonl", [{"question": "q", "answer": "so #### 1,234"}])
    assert load("gsm8k", tmp_path)[0].answer == "1234"
    math = tmp_path / "math500"
    math.mkdir()
    row = {"problem": "p", "answer": "1", "subject": "Algebra", "level": "hard", "unique_id": "u1"}
    write_jsonl(math / "test.jsonl", [row])
    with pytest.raises(DatasetError, match=r"line 1: field 'level' must be an integer"):
        load("math500", tmp_path)


def test_unknown_names_and_hub_ids_fail_clearly(tmp_path):
    with pytest.raises(DatasetError, match=r"unknown benchmark 'mathh500'; choose one of \['math500'"):
        load("mathh500", tmp_path)
    with pytest.raises(DatasetError, match=r"does not exist; pass an existing JSONL file"):
        load(str(tmp_path / "none.jsonl"))
    try:
        import datasets  # noqa: F401
    except ImportError:
        with pytest.raises(
            DatasetError, match=r"install the datasets package: pip install 'reasonkit\[datasets\]'"
        ):
            load("someone/some-dataset")


def test_arith_from_the_generator_and_from_a_file(tmp_path):
    from reasonkit.tasks import arith

    problems = load("arith", per_ops=2, seed=3)
    assert len(problems) == 2 * 8 and {p.kind for p in problems} == {"arith"}
    assert [p.id for p in load("arith", per_ops=2, seed=3)] == [p.id for p in problems]
    path = arith.export_jsonl(problems[:5], tmp_path / "arith.jsonl")
    assert [p.id for p in load("arith", path)] == [p.id for p in problems[:5]]
