"""The path predictor: features, training, the choice rule, safetensors round trip, train-predictor on a
real search run, and ``cola:DIR`` generating exactly what the chosen ``layers:`` paths generate."""

from __future__ import annotations

import json

import pytest
import torch

from reasonkit.backends.hf_load import fingerprint
from reasonkit.backends.loading import BUILTIN_V1_DIR, SpecError, load_backend
from reasonkit.cola.backend import PredictedPathBackend
from reasonkit.cola.grammar import format_path
from reasonkit.cola.predictor import CARD, PathPredictor, fit, prompt_features
from reasonkit.cola.search import SearchConfig, run_search
from reasonkit.cola.train_predictor import TrainPredictorConfig, choose_candidates, train_predictor
from reasonkit.types import SamplingParams

CANDIDATES = [(0, 1, 2, 3), (0, 1, 2), (0, 1, 3)]


def synthetic(n: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    """Features whose first coordinate says which candidate is right (the default path always is)."""
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(n, 6, generator=gen)
    labels = torch.stack([torch.ones(n), features[:, 0] > 0, features[:, 0] <= 0], dim=1).float()
    return features, labels


def test_the_predictor_learns_which_shorter_path_works_and_prefers_short_ones():
    features, labels = synthetic()
    predictor = PathPredictor(CANDIDATES, 4, fit(features, labels, epochs=300), length_weight=0.2)
    chosen = predictor.choose(features)
    right = [bool(labels[i, CANDIDATES.index(p)]) for i, p in enumerate(chosen)]
    assert all(right)
    clear = [i for i in range(len(chosen)) if abs(float(features[i, 0])) > 0.5]  # away from the boundary
    assert all(len(chosen[i]) == 3 for i in clear)  # the correct 3-layer path, not the 4-layer default
    cautious = PathPredictor(CANDIDATES, 4, predictor.network, length_weight=0.0)
    assert set(cautious.choose(features)) <= set(CANDIDATES)
    assert fit(features, labels, epochs=50).state_dict().keys() == predictor.network.state_dict().keys()
    again = fit(features, labels, epochs=300)
    assert all(
        torch.equal(a, b)
        for a, b in zip(again.state_dict().values(), predictor.network.state_dict().values())
    )


def test_save_and_load_round_trip_without_pickle(tmp_path):
    features, labels = synthetic()
    predictor = PathPredictor(CANDIDATES, 4, fit(features, labels, epochs=20), 0.1, {"base_model": "builtin"})
    predictor.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictor.json", "predictor.safetensors"]
    loaded = PathPredictor.load(tmp_path)
    assert loaded.candidates == CANDIDATES and loaded.info == {
        "base_model": "builtin",
        "format": loaded.info["format"],
        "num_layers": 4,
    }
    assert torch.equal(loaded.scores(features), predictor.scores(features))
    (tmp_path / "predictor.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="retrain it"):
        PathPredictor.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="cola train-predictor"):
        PathPredictor.load(tmp_path / "nothing")


def test_prompt_features_of_a_left_padded_batch_match_each_prompt_alone(builtin):
    lm = builtin.whitebox
    prompts = [builtin.encode(text) for text in ("<q>6*17<cot>", "<q>48-7*(3+2)<cot>", "<q>1<ans>")]
    together = prompt_features(lm, prompts)
    assert together.shape == (3, 2 * lm.hidden_size)
    for i, prompt in enumerate(prompts):
        torch.testing.assert_close(prompt_features(lm, [prompt])[0], together[i], atol=1e-5, rtol=1e-5)


def test_candidates_are_the_default_and_the_most_often_correct_paths(builtin, tmp_path):
    run = tmp_path / "run"
    run_search(
        SearchConfig(out=str(run), limit=4, call="direct", simulations=30, progress=False), backend=builtin
    )
    from reasonkit.cola.records import read_records

    records = read_records(run / "searches.jsonl")
    default = tuple(range(8))
    candidates = choose_candidates(records, default, 3)
    assert candidates[0] == default and len(candidates) <= 3
    counts = [
        sum(r.scored.get(c) is not None and r.scored[c].correct for r in records) for c in candidates[1:]
    ]
    assert counts == sorted(counts, reverse=True)

    evaluation = train_predictor(
        TrainPredictorConfig(run=str(run), candidates=3, heldout=5, epochs=50), backend=builtin
    )
    assert evaluation["heldout"] == 5 and evaluation["trained_on"] == 4
    assert (run / "predictor" / "choices.jsonl").is_file() and "Path predictor" in (
        run / "report.md"
    ).read_text()

    # cola:DIR picks one path per prompt and generates exactly what that layers: spec generates
    backend = load_backend(f"cola:{run}")
    assert isinstance(backend, PredictedPathBackend) and "whitebox" not in backend.capabilities
    prompts = ["<q>6*17<ans>", "<q>3+4*2<ans>", "<q>9-5<ans>"]
    params = SamplingParams(max_new_tokens=20, stop=("\n",))
    outputs = backend.generate(prompts, params)
    for prompt, path, output in zip(prompts, backend.paths_for(prompts), outputs):
        [[reference]] = load_backend(f"layers:{format_path(path)}@builtin").generate([prompt], params)
        assert output[0].text == reference.text
    with pytest.raises(FileNotFoundError, match="train-predictor"):
        load_backend(f"cola:{tmp_path / 'nothing'}")

    # the card records which weights the predictor was trained on; 'builtin' changing under it is caught
    card_file = run / "predictor" / CARD
    card = json.loads(card_file.read_text())
    assert card["base_model"] == "builtin" and card["base_digest"] == builtin.weights_digest
    card_file.write_text(json.dumps({**card, "base_digest": fingerprint(BUILTIN_V1_DIR)}))
    with pytest.warns(UserWarning, match="now shipped as 'builtin-v1'"):
        assert load_backend(f"cola:{run}").base.name == "builtin-v1"
    card_file.write_text(json.dumps({**card, "base_digest": "0123456789abcdef"}))
    with pytest.raises(SpecError, match="trained on 'builtin' with weights 0123456789abcdef"):
        load_backend(f"cola:{run}")
