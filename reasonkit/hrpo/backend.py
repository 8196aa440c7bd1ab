"""A trained HRPO run as a backend: ``hrpo:OUT`` (registered in ``reasonkit.backends.loading.METHOD_SPECS``).

    reasonkit eval --bench arith --model hrpo:runs/hrpo
    reasonkit solve "48-7*(3+2)" --model hrpo:runs/hrpo
    reasonkit serve --model hrpo:runs/hrpo

It loads the base model the run was trained from (``hrpo.json``'s ``base_model``), merges the LoRA
adapter into it, and decodes through the white-box loop with the policy's hybrid input: greedy
decoding still builds h from softmax(top-k(z/τ)) with the τ and top-k the policy was trained with
(stored in ``hrpo.json``, never parsed from a folder name). A GRPO run (``mode: grpo``) is the plain
fine-tuned model and decodes with ``generate``.
"""

from __future__ import annotations

from typing import Any

from reasonkit.backends.base import LanguageModel


def load(arguments: str, **kwargs: Any) -> LanguageModel:
    """``hrpo:OUT``: the policy saved in run directory ``OUT`` (or its ``checkpoint/policy`` folder)."""
    from peft import PeftModel
    from safetensors.torch import load_file

    from reasonkit.backends.hf import HFBackend
    from reasonkit.backends.hf_load import fingerprint
    from reasonkit.backends.loading import SpecError, load_base, parse_spec
    from reasonkit.hrpo.build import decode_hooks, make_mixer
    from reasonkit.hrpo.checkpoint import policy_dir, read_policy_card

    if not arguments.strip():
        raise SpecError("'hrpo:' needs the run directory of a train-hrpo run after it, e.g. 'hrpo:runs/hrpo'")
    directory = policy_dir(arguments)
    card = read_policy_card(directory)
    base_spec = str(card["base_model"])
    if parse_spec(base_spec).kind not in ("builtin", "hf"):
        raise SpecError(f"{directory}: the base model {base_spec!r} is not a local model spec")
    name = kwargs.pop("name", f"hrpo:{arguments}")
    base = load_base(base_spec, card.get("base_digest"), str(directory / "hrpo.json"), **kwargs)
    assert isinstance(base, HFBackend)
    model = PeftModel.from_pretrained(base.model, str(directory)).merge_and_unload()
    mixer = None
    if card["mode"] != "grpo":
        embedding = model.get_input_embeddings().weight
        mixer = make_mixer(
            str(card["mode"]), int(embedding.shape[1]), float(card.get("r_min", 0.99)),
            float(card.get("r_max", 0.999)), card.get("fixed_a"), 0, embedding,
        )  # fmt: skip
        if mixer is not None and any(True for _ in mixer.parameters()):
            mixer.load_state_dict(load_file(directory / "mixer.safetensors"))
    hooks = decode_hooks(mixer, base.tokenizer, card) if mixer is not None else None
    backend = HFBackend(
        model, base.tokenizer, prompt_pack=str(card.get("prompt_pack") or base.prompt_pack), hooks=hooks,
        name=name, threads=base.threads, batch_size=base.batch_size,
    )  # fmt: skip
    backend.kinds = base.kinds
    backend.fingerprint = f"{name}@{base.fingerprint}@{fingerprint(directory)}"
    return backend
