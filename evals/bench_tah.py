"""Think-at-Hard decoding speed and memory against the same model's standard decoding, side by side.

    python -m reasonkit.evals.bench_tah                                   # built-in model + tiny HF Llama
    python -m reasonkit.evals.bench_tah --tah-dir runs/tah-study/tah/tah  # the trained built-in TaH too

For each model and batch size, one process times, alternating so that drift on a shared machine hits
both alike: *standard* — the white-box decode loop with no hooks (the loop a TaH backend runs, minus
Think-at-Hard) and transformers' ``generate`` (what a plain HFBackend runs) — against *TaH*: the same
loop with :class:`~reasonkit.tah.hooks.TaHHooks` (decider on every generated token, second passes over
the rows that iterate). Every row generates exactly ``--tokens`` tokens (EOS ignored), greedy; the
figure is generated tokens per second, median of ``--repeats``. The iterating share is what the
decider did in those runs. A random (untrained) model's decider is calibrated to iterate
``--rate`` of the tokens (the paper's ≈ 6 %), by a threshold at that quantile of its outputs.

Memory: each (model, batch, arm) decodes once more in a fresh subprocess, which reports its peak
resident memory (``ru_maxrss``: weights, activations, cache) and the decode cache's own bytes
(:meth:`SlotCache.nbytes`).
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from reasonkit.config import parse_config


@dataclass
class BenchTaHConfig:
    """Time Think-at-Hard decoding against standard decoding on the built-in model and a tiny HF Llama."""

    models: tuple[str, ...] = field(
        default=("builtin", "llama"), metadata={"help": "builtin, llama, tah-dir"}
    )
    tah_dir: str | None = field(
        default=None, metadata={"help": "a trained built-in TaH directory (adds 'tah-dir')"}
    )
    batch_sizes: tuple[int, ...] = field(default=(1, 16), metadata={"help": "decoding batch sizes"})
    tokens: int = field(default=64, metadata={"help": "tokens generated per row"})
    repeats: int = field(default=5, metadata={"help": "timed runs per arm (median reported)"})
    rate: float = field(default=0.06, metadata={"help": "iterating share the random deciders are set to"})
    memory: bool = field(default=True, metadata={"help": "measure peak memory in subprocesses"})
    child: str | None = field(
        default=None, metadata={"help": "internal: MODEL,BATCH,ARM for a memory subprocess"}
    )

    def __post_init__(self) -> None:
        self.models, self.batch_sizes = tuple(self.models), tuple(int(b) for b in self.batch_sizes)
        if self.tah_dir and "tah-dir" not in self.models:
            self.models = (*self.models, "tah-dir")
        unknown = sorted(set(self.models) - {"builtin", "llama", "tah-dir"})
        if unknown:
            raise ValueError(f"--models takes builtin, llama, tah-dir; got {unknown}")
        if "tah-dir" in self.models and not self.tah_dir:
            raise ValueError(
                "--models tah-dir needs --tah-dir DIR (a directory reasonkit train-tah exported)"
            )
        if min(self.tokens, self.repeats, *self.batch_sizes) < 1 or not 0 < self.rate < 1:
            raise ValueError("tokens, repeats and batch sizes must be >= 1 and 0 < rate < 1")


def build(name: str, cfg: BenchTaHConfig) -> tuple[Any, Any, list[list[int]]]:
    """(TaHModel, the same weights without adapters, prompt pool) for ``name``; random deciders are
    calibrated to ``cfg.rate``. Standard decoding runs the adapter-free copy: peft's wrappers cost
    time even when switched off, and a plain model does not carry them."""
    import copy

    from reasonkit.backends.loading import load_backend
    from reasonkit.models.whitebox import open_whitebox
    from reasonkit.tah.config import TaHConfig
    from reasonkit.tah.model import TaHModel

    torch.manual_seed(0)
    if name == "tah-dir":
        backend: Any = load_backend(f"tah:{cfg.tah_dir}", threads=1)
        plain: Any = load_backend(f"{cfg.tah_dir}/model", threads=1)
        return backend.hooks.model, plain.whitebox, _arith_prompts(backend)
    if name == "builtin":
        backend = load_backend("builtin", threads=1)
        plain_lm = open_whitebox(copy.deepcopy(backend.model).eval(), backend.tokenizer)
        model = TaHModel(backend.whitebox, TaHConfig(lora_r=8))
        prompts = _arith_prompts(backend)
    else:
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)  # fmt: skip
        config._attn_implementation = "sdpa"
        llama = LlamaForCausalLM(config).eval()
        plain_lm = open_whitebox(copy.deepcopy(llama))
        model = TaHModel(open_whitebox(llama), TaHConfig(lora_r=8))
        gen = torch.Generator().manual_seed(0)
        prompts = [
            torch.randint(3, 512, (int(n),), generator=gen).tolist()
            for n in torch.randint(20, 60, (64,), generator=gen)
        ]
    with torch.no_grad():
        for n, p in model.lm.model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    model.decider = model.new_decider().eval()
    model.config.threshold = _calibrate(model, prompts[:16], cfg.rate)
    return model.eval(), plain_lm, prompts


def _arith_prompts(backend: Any) -> list[list[int]]:
    from reasonkit.packs import load_pack
    from reasonkit.tasks import arith

    pack = load_pack("compact")
    return [
        backend.encode(pack.cot(p))
        for p in arith.generate(64, split="test", seed=1, config=arith.problem_config("arith-hard"))
    ]


@torch.no_grad()
def _calibrate(model: Any, prompts: list[list[int]], rate: float) -> float:
    lm = model.lm
    scores = []
    for p in prompts:
        out = lm.forward(lm.embed(torch.tensor([p])), hidden_states=model.decider_layers)
        scores.append(torch.sigmoid(model.decider(out.hidden_states, lm.logits(out.hidden))).flatten())
    return float(torch.cat(scores).quantile(1 - rate))


class _Measured:
    """Decode hooks wrapper that keeps the final cache (for its size)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.cache = inner, None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def refine(self, lm: Any, step: Any) -> Any:
        self.cache = step.output.cache
        return self.inner.refine(lm, step)


def run_arm(model: Any, plain: Any, prompts: list[list[int]], arm: str, tokens: int) -> dict[str, Any]:
    """One timed decode of ``prompts``; arm = standard (loop, no hooks) | generate | tah; the first two
    run ``plain`` (the same weights, no adapters)."""
    from reasonkit.models.whitebox import DecodeHooks, decode
    from reasonkit.tah.hooks import TaHHooks

    lm = model.lm if arm == "tah" else plain
    start = time.perf_counter()
    with torch.no_grad():
        if arm == "generate":
            width = max(map(len, prompts))
            ids = torch.zeros(len(prompts), width, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, p in enumerate(prompts):
                ids[r, width - len(p) :], mask[r, width - len(p) :] = torch.tensor(p), 1
            lm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=tokens, min_new_tokens=tokens,
                              do_sample=False, pad_token_id=0)  # fmt: skip
            return {"seconds": time.perf_counter() - start}
        hooks = _Measured(TaHHooks(model) if arm == "tah" else DecodeHooks())
        rows = decode(lm, prompts, max_new_tokens=tokens, hooks=hooks)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    depths = [d for r in rows for d in r.meta.get("tah", {}).get("depths", [])]
    return {
        "seconds": seconds,
        "iterated": sum(d > 1 for d in depths) / len(depths) if depths else 0.0,
        "cache_bytes": hooks.cache.nbytes() if hooks.cache is not None else 0,
    }


def child(cfg: BenchTaHConfig) -> None:
    name, batch, arm = (cfg.child or "").split(",")
    model, plain, prompts = build(name, cfg)
    result = run_arm(model, plain, prompts[: int(batch)], arm, cfg.tokens)
    result["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result))


def memory(cfg: BenchTaHConfig, name: str, batch: int, arm: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "reasonkit.evals.bench_tah", "--child", f"{name},{batch},{arm}",
            "--tokens", str(cfg.tokens), "--rate", str(cfg.rate)] + (["--tah-dir", cfg.tah_dir] if cfg.tah_dir else [])  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def bench(cfg: BenchTaHConfig) -> list[dict[str, Any]]:
    torch.set_num_threads(1)
    rows = []
    for name in cfg.models:
        model, plain, prompts = build(name, cfg)
        for batch in cfg.batch_sizes:
            pool = (prompts * (batch // len(prompts) + 1))[:batch]
            times: dict[str, list[float]] = {"standard": [], "generate": [], "tah": []}
            iterated = []
            for arm in times:  # warm-up
                run_arm(model, plain, pool, arm, 4)
            for _ in range(cfg.repeats):
                for arm in times:
                    result = run_arm(model, plain, pool, arm, cfg.tokens)
                    times[arm].append(result["seconds"])
                    if arm == "tah":
                        iterated.append(result["iterated"])
            speed = {arm: batch * cfg.tokens / statistics.median(t) for arm, t in times.items()}
            row = {"model": name, "batch": batch, "threshold": model.config.threshold, **{f"{a}_tok_s": s for a, s in speed.items()},
                   "tah_vs_standard": speed["tah"] / speed["standard"], "tah_vs_generate": speed["tah"] / speed["generate"],
                   "iterated": statistics.mean(iterated)}  # fmt: skip
            if cfg.memory:
                std, tah = memory(cfg, name, batch, "standard"), memory(cfg, name, batch, "tah")
                row.update(peak_rss_ratio=tah["maxrss_kb"] / std["maxrss_kb"], cache_ratio=tah["cache_bytes"] / std["cache_bytes"],
                           standard_peak_mb=std["maxrss_kb"] / 1024, tah_peak_mb=tah["maxrss_kb"] / 1024)  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| model | batch | standard loop tok/s | generate tok/s | TaH tok/s | TaH / loop | TaH / generate | "
             "iterating | peak RSS TaH / std | cache TaH / std |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        mem = (f"{r['peak_rss_ratio']:.3f} ({r['tah_peak_mb']:.0f} / {r['standard_peak_mb']:.0f} MB) | {r['cache_ratio']:.3f}"
               if "peak_rss_ratio" in r else "— | —")  # fmt: skip
        lines.append(f"| {r['model']} | {r['batch']} | {r['standard_tok_s']:.0f} | {r['generate_tok_s']:.0f} | "
                     f"{r['tah_tok_s']:.0f} | {r['tah_vs_standard']:.2f}x | {r['tah_vs_generate']:.2f}x | "
                     f"{100 * r['iterated']:.1f} % | {mem} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(BenchTaHConfig, argv, prog="python -m reasonkit.evals.bench_tah")
    if cfg.child:
        child(cfg)
        return 0
    print(table(bench(cfg)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
