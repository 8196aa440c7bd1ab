"""lm-evaluation-harness against ``reasonkit serve`` on loopback agrees with lm-eval's own ``hf`` model.

The first test speaks lm-eval's ``local-completions`` protocol by hand (echo, ``logprobs=1``,
``max_tokens=1``, token-id prompts; the continuation's score is ``sum(token_logprobs[ctxlen:-1])``),
so it runs without lm-eval installed. The second runs lm-eval itself, both model types, on the same
saved tiny Llama and the multiple-choice task of docs/lm_eval/, and compares per-document
log-likelihoods and accuracy (``-m slow``; skipped when ``lm_eval`` is not importable — in a venv
of its own: ``PYTHONPATH=<that venv's site-packages> .venv/bin/python -m pytest -m slow <this file>``).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import torch
from tiny_models import build_model, build_tokenizer

from reasonkit.backends.hf import HFBackend
from reasonkit.backends.server import start_server

DOCS = Path(__file__).resolve().parents[2] / "docs" / "lm_eval" / "rk_arith_mc.jsonl"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = build_tokenizer()
    build_model(tokenizer, "llama").save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def server(checkpoint):
    with start_server(HFBackend(str(checkpoint), threads=1), served_model_name="tiny") as srv:
        yield srv


def docs() -> list[dict]:
    return [json.loads(line) for line in DOCS.read_text().splitlines()]


def test_lm_eval_s_loglikelihood_protocol_scores_each_continuation_exactly(server, checkpoint):
    backend = HFBackend(str(checkpoint), threads=1)
    tok, model = backend.tokenizer, backend.model
    for doc in docs()[:8]:
        context = tok(doc["q"]).input_ids  # with BOS, as lm-eval's add_bos_token=True sends it
        for choice in doc["choices"]:
            whole = tok(doc["q"] + choice).input_ids
            body = {"model": "tiny", "prompt": whole, "max_tokens": 1, "temperature": 0, "logprobs": 1}
            request = urllib.request.Request(
                f"{server.url}/completions",
                json.dumps({**body, "echo": True, "seed": 1234}).encode(),
                {"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                logprobs = json.loads(response.read())["choices"][0]["logprobs"]["token_logprobs"]
            assert len(logprobs) == len(whole) + 1  # exactly one generated token after the echo
            got = sum(logprobs[len(context) : -1])
            with torch.no_grad():
                scores = torch.log_softmax(model(torch.tensor([whole])).logits[0].double(), -1)
            want = sum(float(scores[t - 1, whole[t]]) for t in range(len(context), len(whole)))
            assert got == pytest.approx(want, abs=1e-4)


@pytest.mark.slow  # ~35 s: lm-eval's imports and two evaluations
@pytest.mark.filterwarnings("ignore")
def test_lm_eval_hf_and_local_completions_agree(server, checkpoint, tmp_path):
    pytest.importorskip("lm_eval", reason="lm-evaluation-harness is not installed (pip install lm-eval)")
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    (tmp_path / "rk_arith_mc.yaml").write_text(
        f"task: rk_arith_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {DOCS}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{q}}'\n"
        "doc_to_choice: '{{choices}}'\ndoc_to_target: '{{gold}}'\ntarget_delimiter: ''\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )
    tasks = TaskManager(include_path=str(tmp_path))
    common = dict(tasks=["rk_arith_mc"], task_manager=tasks, log_samples=True, batch_size=1)
    hf = simple_evaluate(
        model="hf",
        model_args=f"pretrained={checkpoint},dtype=float32,add_bos_token=True",
        device="cpu",
        **common,
    )
    served = simple_evaluate(
        model="local-completions",
        model_args=f"model=tiny,base_url={server.url}/completions,tokenizer={checkpoint},"
        "tokenizer_backend=huggingface,add_bos_token=True,num_concurrent=1,max_retries=1",
        **common,
    )
    assert hf is not None and served is not None
    rows = [sorted(run["samples"]["rk_arith_mc"], key=lambda s: s["doc_id"]) for run in (hf, served)]
    assert len(rows[0]) == len(rows[1]) == 20
    for a, b in zip(*rows):
        assert [float(r[0][0]) for r in a["resps"]] == pytest.approx(
            [float(r[0][0]) for r in b["resps"]], abs=1e-4
        )
        assert a["acc"] == b["acc"]
    accs = [run["results"]["rk_arith_mc"]["acc,none"] for run in (hf, served)]
    assert accs[0] == accs[1]
