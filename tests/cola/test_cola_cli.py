"""``reasonkit cola``: subcommands, help with the paper's defaults, and one clear error per bad input."""

from __future__ import annotations

import json

import pytest

from reasonkit.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_cola_lists_its_subcommands(capsys):
    code, text = run(["cola"], capsys)
    assert code == 0 and all(name in text for name in ("search", "train-predictor", "report"))
    code, text = run(["cola", "explore"], capsys)
    assert code == 2 and "unknown subcommand 'explore'" in text
    code, text = run(["--help"], capsys)
    assert "cola" in text


def test_search_help_shows_the_papers_defaults(capsys):
    code, text = run(["cola", "search", "--help"], capsys)
    assert code == 0
    for flag, default in [("--simulations", "200"), ("--length-penalty", "5.0"), ("--random-expand", "0.1"),
                          ("--max-block", "4"), ("--max-uses", "2"), ("--exploration", "1.414")]:  # fmt: skip
        entry = text.split(f"\n  {flag}", 1)[1]  # the option's own entry, past the usage line
        assert f"(default: {default}" in " ".join(entry.split("\n  --", 1)[0].split()), flag


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cola", "search"], "give a run directory: --out"),
        (["cola", "search", "--out", "x", "--simulations", "many"], "expected a whole number"),
        (["cola", "search", "--out", "x", "--moves", "jump"], "invalid choice"),
        (["cola", "search", "--out", "x", "--filter", "n_ops"], "KEY=VALUE"),
        (["cola", "search", "--out", "x", "--model", "openai:http://127.0.0.1:9/v1#m", "--limit", "1"],
         "needs the model itself"),
    ],
)  # fmt: skip
def test_bad_flags_fail_with_one_line_naming_the_fix(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, text = run(argv, capsys)
    assert code != 0 and message in text
    assert "Traceback" not in text


def test_missing_or_malformed_run_directories_name_the_fix(capsys, tmp_path):
    missing = str(tmp_path / "nothing")
    for argv in (["cola", "report", missing], ["cola", "train-predictor", missing],
                 ["eval", "cola-controls", missing], ["eval", "cola-recall", missing]):  # fmt: skip
        code, text = run(argv, capsys)
        assert code == 1 and "reasonkit cola search" in text and "Traceback" not in text, argv
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "searches.jsonl").write_text('{"problem_id": "a"}\nnot json\n')
    code, text = run(["cola", "report", str(broken)], capsys)
    assert code == 1 and "searches.jsonl, line 1" in text
    (broken / "run.json").write_text(json.dumps({"bench": "arith", "simulations": "many"}))
    (broken / "searches.jsonl").write_text("")
    code, text = run(["cola", "train-predictor", str(broken)], capsys)
    assert code == 1 and "run.json" in text
    code, text = run(["solve", "1+1", "--model", f"cola:{missing}"], capsys)
    assert code == 1 and "cola train-predictor" in text
