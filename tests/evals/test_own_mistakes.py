"""The own-mistakes builder: rollouts labelled by the teacher's step checker, targets built from them,
and train-lm mixing them into its stream (issue 15)."""

from __future__ import annotations

import json

import pytest
import torch

from reasonkit.evals.own_mistakes import OwnStep, _flags, own_pairs, rollouts, tally
from reasonkit.models.builtin.data import PairEncoder, build_step, load_extra, mix_extra
from reasonkit.packs import load_pack
from reasonkit.tasks.arith.generate import make_problem
from reasonkit.types import Completion


class Scripted:
    """A stand-in model that answers each reason_step prompt from a hand-written table (the labels
    under test come from the arith teacher, not from this table)."""

    name = "scripted"

    def __init__(self, answers: dict[str, str], prompt_pack: str = "compact") -> None:
        self.answers, self.prompt_pack = answers, prompt_pack  # the pack it declares, as HFBackend does
        self.prompts: list[str] = []

    def generate(self, prompts, params):
        out = []
        for prompt in prompts:
            self.prompts.append(prompt)
            key = next(k for k in self.answers if prompt.endswith(k))
            out.append([Completion(text=self.answers[key] + "\n", tokens_in=1, tokens_out=1)])
        return out


def test_rollouts_label_a_hand_made_set_of_steps():
    good = make_problem("2*3+4")  # 2*3=6|6+4 then 6+4=10|10
    slip = make_problem("7+8*2")  # the model writes 8*2=18 (a slip), then carries on from it
    broken = make_problem("9-5")  # an unreadable step ends the rollout
    model = Scripted({
        "<q>2*3+4<step>": "2*3=6|6+4",
        "<q>2*3+4;2*3=6|6+4<step>": "6+4=10|10",
        "<q>7+8*2<step>": "8*2=18|7+18",
        "<q>7+8*2;8*2=18|7+18<step>": "7+18=25|25",
        "<q>9-5<step>": "9-=|",
    })  # fmt: skip
    pack = load_pack("compact")
    for p in (good, slip, broken):  # the prompts above are the pack's own
        assert pack.reason_step(p, []).endswith(f"<q>{p.question}<step>")
    labelled = rollouts(model, [good, slip, broken], batch=8)
    got = {(s.problem.question, s.step): s.ok for s in labelled}
    assert got == {
        ("2*3+4", "2*3=6|6+4"): True,
        ("2*3+4", "6+4=10|10"): True,
        ("7+8*2", "8*2=18|7+18"): False,  # wrong arithmetic
        ("7+8*2", "7+18=25|25"): True,  # right from the (wrong) expression before it
        ("9-5", "9-=|"): False,  # malformed
    }
    assert len(model.prompts) == 5  # nothing after a literal or an unreadable step


def test_pairs_teach_flagging_and_repairing_own_slips_and_leaving_right_steps_alone():
    slip = make_problem("7+8*2")
    wrong = OwnStep(slip, (), "8*2=18|7+18", ok=False)
    right = OwnStep(slip, ("8*2=16|7+16",), "7+16=23|23", ok=True)
    pairs = own_pairs([wrong, right], wrong_share=0.5)
    by = {(p["task"], p["own_step_ok"]): p for p in pairs}
    pack = load_pack("compact")
    scores = pack.parse_scores(by[("self_evaluate", "False")]["target"])
    assert scores[2] == 1 and _flags(scores)  # A3: the arithmetic is wrong
    assert not _flags(pack.parse_scores(by[("self_evaluate", "True")]["target"]))
    assert by[("refine", "False")]["target"].strip() == "8*2=16|7+16"  # repaired
    assert by[("refine", "True")]["target"].strip() == "7+16=23|23"  # left alone
    assert by[("refine", "False")]["prompt"].endswith("<q>7+8*2;8*2=18|7+18<refine>")


def test_wrong_share_subsamples_the_right_steps():
    p = make_problem("1+2")
    own = [OwnStep(p, (), "1+2=4|4", ok=False)] + [OwnStep(p, (), "1+2=3|3", ok=True)] * 9
    assert len(own_pairs(own, wrong_share=0.5)) == 4  # 1 wrong + 1 right state, two tasks each
    assert len(own_pairs(own, wrong_share=0.25)) == 8


def test_extra_pairs_take_their_share_of_the_stream_deterministically(tmp_path):
    path = tmp_path / "pairs.jsonl"
    extra = [("<q>1+2<refine>", "1+2=3|3\n"), ("<q>4*5<eval>", "3333333\n")]
    path.write_text("".join(json.dumps({"prompt": a, "target": b}) + "\n" for a, b in extra))
    assert load_extra(str(path)) == extra
    stream = [(f"p{i}", f"t{i}") for i in range(2000)]
    mixed = mix_extra(stream, 0, seed=0, extra=(extra, 0.3))
    share = sum(pair in extra for pair in mixed) / len(mixed)
    assert 0.27 < share < 0.33
    assert mixed == mix_extra(stream, 0, seed=0, extra=(extra, 0.3))  # a resume sees the same mixture
    assert mixed[1000:] == mix_extra(stream[1000:], 1000, seed=0, extra=(extra, 0.3))
    assert mix_extra(stream, 0, seed=0, extra=None) == stream
    batch = build_step(PairEncoder(), "train", 0, 0, 64, 4000, 0.75, extra=(extra, 1.0))
    assert {t for m in batch.micro for t in m.tasks} <= {"refine", "eval"}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"prompt": "a"}\n', 'line 1: each line needs non-empty "prompt" and "target"'),
        ("", "holds no pairs"),
    ],
)
def test_bad_extra_data_names_the_line(tmp_path, text, needle):
    path = tmp_path / "pairs.jsonl"
    path.write_text(text)
    with pytest.raises(ValueError, match=needle):
        load_extra(str(path))


def test_finetune_from_the_shipped_model_with_extra_pairs_changes_it(tmp_path):
    from reasonkit.backends.loading import BUILTIN_DIR
    from reasonkit.config import parse_config
    from reasonkit.models.builtin.config import TrainLMConfig
    from reasonkit.models.builtin.train import train_lm

    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "<q>7+8*2;8*2=18|7+18<refine>", "target": "8*2=16|7+16\n"}) + "\n")
    argv = ["--out", str(tmp_path / "run"), "--finetune-from", str(BUILTIN_DIR), "--extra-data", str(path),
            "--extra-share", "0.5", "--steps", "1", "--batch-size", "4", "--warmup-steps", "0", "--val-pairs", "0",
            "--workers", "0", "--device", "cpu", "--threads", "1", "--progress", "false"]  # fmt: skip
    summary = train_lm(parse_config(TrainLMConfig, argv))
    assert summary["status"] == "finished" and summary["step"] == 1
    from safetensors.torch import load_file

    before = load_file(str(BUILTIN_DIR / "model.safetensors"))
    after = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    card = json.loads((tmp_path / "run" / "model" / "reasonkit.json").read_text())
    assert card["step"] == 1 and card["train_config"]["finetune_from"] == str(BUILTIN_DIR)
    path.write_text(path.read_text() + path.read_text())  # other extra data: another run
    with pytest.raises(ValueError, match="extra_data_sha256"):
        train_lm(parse_config(TrainLMConfig, argv))


def test_summary_pairs_summarise_a_prefix_of_the_subtasks_with_the_teachers_step():
    from reasonkit.evals.own_mistakes import summary_pairs

    problems = [make_problem(q) for q in ("5*3+2*4", "7-2*3", "9+8", "(2+3)*(4+1)-6", "6*2-3*3+8*1")] * 8
    pairs = summary_pairs(problems, seed=0)
    assert len(pairs) == len(problems) and {p["task"] for p in pairs} == {"summarize"}
    hand = {  # summaries by hand: the listed results put into the expression
        "<q>5*3+2*4<sum>5*3=15": "5*3=15|15+2*4",
        "<q>5*3+2*4<sum>5*3=15,2*4=8": "5*3=15,2*4=8|15+8",
        "<q>7-2*3<sum>2*3=6": "2*3=6|7-6",
        "<q>9+8<sum>9+8=17": "9+8=17|17",
    }
    seen = {p["prompt"].split("<sep>")[-1]: p["target"] for p in pairs}
    checked = 0
    for prompt, target in seen.items():
        for tail, want in hand.items():
            if prompt.endswith(tail):
                assert target == want, prompt
                checked += 1
    assert checked >= 4
    single = sum(p["prompt"].count("=") == 1 for p in pairs if "(" not in p["prompt"])
    assert single >= len(pairs) // 3  # one subtask is the common case
    assert summary_pairs(problems, seed=0) == pairs  # seeded


def test_pairs_and_summaries_use_the_next_models_pack_and_the_models_own():
    from reasonkit.evals.own_mistakes import single_subtask_summaries, summary_pairs

    problems = [make_problem(q) for q in ("5*3+2*4", "7-2*3", "9+8")] * 4
    old, new = summary_pairs(problems, seed=0), summary_pairs(problems, seed=0, pack="compact2")
    assert [p["target"] for p in new] == [p["target"] for p in old]
    assert [p["prompt"] for p in new] == [p["prompt"] + "<sum>" for p in old]
    own = [
        OwnStep(make_problem("7+8*2"), (), "8*2=18|7+18", False),
        OwnStep(make_problem("9-4"), (), "9-4=5|5", True),
    ]
    assert own_pairs(own, 0.5, pack="compact2") == own_pairs(own, 0.5)  # only summarize differs
    # measured through the model's declared pack: a compact2 model is asked with the closed prompt
    for pack, tail in (("compact", "<sum>5*3=15"), ("compact2", "<sum>5*3=15<sum>")):
        model = Scripted({"=15": "5*3=15|15+2*4", "<sum>": "5*3=15|15+2*4"}, prompt_pack=pack)
        result = single_subtask_summaries(model, [make_problem("5*3+2*4")])
        assert model.prompts == [f"<q>5*3+2*4{tail}"] and result == {"exact": 1.0, "n": 1}


def test_judge_counts_flags_repairs_and_breaks_by_hand():
    from reasonkit.evals.own_mistakes import judge

    slip, fine = make_problem("7+8*2"), make_problem("2*3+4")
    own = [
        OwnStep(slip, (), "8*2=18|7+18", ok=False),  # flagged and repaired
        OwnStep(fine, (), "2*3=6|6+4", ok=True),  # not flagged, left alone
        OwnStep(fine, ("2*3=6|6+4",), "6+4=11|11", ok=False),  # missed, "repaired" into another slip
        OwnStep(fine, ("2*3=6|6+4",), "6+4=10|10", ok=True),  # a false alarm, then broken by refine
    ]
    model = Scripted({
        "<q>7+8*2;8*2=18|7+18<eval>": "3313333", "<q>7+8*2;8*2=18|7+18<refine>": "8*2=16|7+16",
        "<q>2*3+4;2*3=6|6+4<eval>": "3333333", "<q>2*3+4;2*3=6|6+4<refine>": "2*3=6|6+4",
        "<q>2*3+4;2*3=6|6+4;6+4=11|11<eval>": "3333333", "<q>2*3+4;2*3=6|6+4;6+4=11|11<refine>": "6+4=12|12",
        "<q>2*3+4;2*3=6|6+4;6+4=10|10<eval>": "1333333", "<q>2*3+4;2*3=6|6+4;6+4=10|10<refine>": "6+4=9|9",
    })  # fmt: skip
    records = judge(model, own, batch=3)
    assert [(r["flagged"], r["fixed_ok"]) for r in records] == [
        (True, True),
        (False, True),
        (False, False),
        (True, False),
    ]
    assert records[0]["refined"] == "8*2=16|7+16" and records[2]["ok"] is False

    # a fifth record: a slip self-evaluation missed that refine repairs anyway (repaired, not gated)
    records.append({**records[2], "fixed_ok": True})
    counts, figures = tally(records)
    assert counts == {
        "wrong": 3, "right": 2, "flagged_wrong": 1, "flagged_right": 1, "repaired": 2, "broken": 1,
        "flagged_repaired": 1, "flagged_broken": 1,
    }  # fmt: skip
    assert figures == {
        "self_eval_flags_wrong": 0.3333, "self_eval_false_alarms": 0.5, "refine_repairs_wrong": 0.6667,
        "refine_breaks_right": 0.5, "gated_repairs_wrong": 0.3333, "gated_breaks_right": 0.5,
    }  # fmt: skip
    assert tally([])[1]["gated_repairs_wrong"] is None


def test_refine_pairs_are_teacher_refines_written_in_the_packs_format():
    from reasonkit.evals.own_mistakes import problems_of, refine_pairs
    from reasonkit.tasks.arith import teacher
    from reasonkit.tasks.arith.training import restyle

    problems = problems_of("train", 40, 7)
    pairs = refine_pairs(problems, seed=0, pack="compact3")
    compact3 = load_pack("compact3")
    assert len(pairs) == 40 and {p["task"] for p in pairs} == {"refine"}
    assert refine_pairs(problems, seed=0, pack="compact3") == pairs  # seeded
    scratched = 0
    for p in pairs:
        question, _, rest = p["prompt"].removeprefix("<q>").removesuffix("<refine>").partition(";")
        steps = rest.split(";") if rest else []
        want = restyle(compact3, teacher.refine(question, steps))  # the teacher's corrected step
        assert compact3.parse_refine(p["target"]) == want and p["target"].endswith("#" + want)
        scratched += "~" in p["target"]
    assert scratched >= 30  # nearly every corrected step computes something
    plain = refine_pairs(problems, seed=0)  # the compact pack: the target is the step itself
    assert [p["target"] for p in plain] == [compact3.parse_refine(p["target"]) for p in pairs]


def test_judge_grades_a_scratch_pack_models_step_not_its_scratch():
    from reasonkit.evals.own_mistakes import judge

    slip = make_problem("7+8*2")
    own = [OwnStep(slip, (), "8*2=18|7+18", ok=False), OwnStep(slip, (), "8*2=16|7+16", ok=True)]
    model = Scripted({
        "<q>7+8*2;8*2=18|7+18<eval>": "3313333", "<q>7+8*2;8*2=18|7+18<refine>": "8*2~61#8*2=16|7+16",
        "<q>7+8*2;8*2=16|7+16<eval>": "3333333", "<q>7+8*2;8*2=16|7+16<refine>": "8*2~61#8*2=61|7+61",
    }, prompt_pack="compact3")  # fmt: skip
    records = judge(model, own, batch=2)
    assert [(r["refined"], r["fixed_ok"]) for r in records] == [("8*2=16|7+16", True), ("8*2=61|7+61", False)]
    assert records[0]["refine_output"] == "8*2~61#8*2=16|7+16"


def test_bad_refines_count_is_refused():
    from reasonkit.evals.own_mistakes import OwnMistakesConfig

    with pytest.raises(ValueError, match="--refines must be >= 0"):
        OwnMistakesConfig(model="builtin", refines=-1)
