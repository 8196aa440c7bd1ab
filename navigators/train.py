"""``reasonkit train-navigator``: train an RL-of-Thoughts navigator (arXiv 2505.14140) end to end.

    reasonkit train-navigator                      # the built-in model on arith, minutes on a laptop CPU
    reasonkit train-navigator --model Qwen/Qwen2.5-7B-Instruct --task math500 \\
        --reward prm --prm math-shepherd:peiyi9979/math-shepherd-mistral-7b-prm --episodes 3000

Steps: load the backend (cached on disk in the run directory), draw training problems from the
task's train split and keep the hard ones (wrong with a direct prompt), measure the baselines once on
the validation problems (Direct, CoT, ``--fixed-baselines``; kept in the run directory), run
``n_envs`` episodes at a time in a :class:`~reasonkit.navigators.env.ThoughtVecEnv`, learn with
:class:`~reasonkit.navigators.dqn.DuelingDoubleDQN`, and every ``eval_every`` episodes evaluate the
greedy navigator on the same validation problems and checkpoint (see :mod:`.training_run` for the
files). The final line and ``summary.json`` put the navigator next to CoT, the direct prompt and the
best fixed sequence.
Running the same command again resumes; a larger ``--episodes`` continues a finished run.
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonkit.backends.options import BackendOptions
from reasonkit.config import config_to_dict, parse_config
from reasonkit.navigators.rewards import REWARDS
from reasonkit.navigators.training_run import TrainingRun, best_fixed
from reasonkit.packs import BLOCK_IDS

_HELP = """Train an RL-of-Thoughts navigator (arXiv 2505.14140): a 2,566-parameter dueling double-DQN
that picks the next logic block (reason, decompose, debate, refine, terminate) from the LLM's
self-evaluation. With no arguments it trains on the built-in model and the arith task.

For a real model, name it and a task, and give a process reward model if you have one:
  reasonkit train-navigator --model Qwen/Qwen2.5-7B-Instruct --task math500 --hard-only true \\
      --reward prm --prm math-shepherd:peiyi9979/math-shepherd-mistral-7b-prm --episodes 3000
  reasonkit train-navigator --model openai:http://localhost:8000/v1#Qwen/Qwen2.5-14B-Instruct \\
      --task gpqa --hard-only true --reward self-eval --n-envs 64 --episodes 3000
--model takes an HF id, a local directory or an OpenAI-compatible URL (vLLM, SGLang …); --task takes
arith, math500, gsm8k, gpqa, aime24, aime25, amc23 or a JSONL file of Problem records. The paper
trains 3000 episodes on hard problems only (--hard-only true; off by default, docs/navigators.md). Evaluate the result with
  reasonkit eval --bench math500 --model ... --strategy rlot --navigator OUT/navigator.safetensors
"""


@dataclass
class TrainNavigatorConfig(BackendOptions):
    """What ``reasonkit train-navigator`` trains (defaults: the paper's, except the episode budget)."""

    task: str = field(
        default="arith",
        metadata={
            "help": "arith, arith-hard (4-digit operands), math500, gsm8k, gpqa, aime24, aime25, amc23, or a JSONL file of problems"
        },
    )
    reward: str = field(
        default="outcome",
        metadata={
            "help": f"step reward: {', '.join(REWARDS)}; the terminal reward is always correctness. The paper "
            "uses prm; outcome is the default because it needs nothing beyond the grader (docs/navigators.md)"
        },
    )
    prm: str | None = field(
        default=None,
        metadata={"help": "process reward model for --reward prm: math-shepherd:ID or qwen-prm:ID"},
    )
    episodes: int = field(
        default=1500,
        metadata={
            "help": "training episodes (the paper: 3000; 1500 keeps the default run under 10 CPU minutes)"
        },
    )
    hard_only: bool = field(
        default=False,
        metadata={
            "help": "train only on problems the model gets wrong with a direct prompt (the paper's setting; "
            "off by default: the navigator then never sees easy problems' states, docs/navigators.md)"
        },
    )
    train_problems: int = field(
        default=400, metadata={"help": "problems drawn from the train split before the hard-only filter"}
    )
    eval_problems: int = field(default=100, metadata={"help": "validation problems for periodic evaluation"})
    eval_every: int = field(
        default=250, metadata={"help": "evaluate and checkpoint every this many episodes"}
    )
    n_envs: int = field(
        default=50, metadata={"help": "episodes run in parallel (one backend batch per block)"}
    )
    seed: int = field(default=0, metadata={"help": "seed for problems, exploration and network init"})
    out: str | None = field(
        default=None,
        metadata={"help": "run directory (default runs/navigator-MODEL-TASK-REWARD); rerun to resume"},
    )
    pack: str | None = field(default=None, metadata={"help": "prompt pack (default: the backend's own)"})
    max_depth: int = field(default=5, metadata={"help": "non-terminal blocks before terminate is forced"})
    learning_rate: float = field(default=0.01, metadata={"help": "Adam learning rate"})
    lr_decay: float = field(default=0.5, metadata={"help": "learning-rate factor every --lr-decay-episodes"})
    lr_decay_episodes: int = field(default=1000, metadata={"help": "episodes between learning-rate decays"})
    gamma: float = field(default=0.9, metadata={"help": "discount factor"})
    batch_size: int = field(default=64, metadata={"help": "replay minibatch size"})
    buffer_size: int = field(default=500, metadata={"help": "replay buffer size (learning starts when full)"})
    target_update_interval: int = field(
        default=50, metadata={"help": "gradient updates between target syncs"}
    )
    epsilon_decay: float = field(default=0.9995, metadata={"help": "exploration rate factor per env step"})
    epsilon_final: float = field(default=0.0, metadata={"help": "exploration rate floor"})
    fixed_baselines: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "fixed block sequences to measure once on the validation problems at the start, next to "
            "Direct and CoT (always measured), e.g. reason,reason,reason,reason,reason; the best is reported "
            "beside the navigator. None by default: on the built-in model that sequence adds about 11%% to "
            "the default run, CoT about 4%% (docs/navigators.md)"
        },
    )
    cache: bool = field(default=True, metadata={"help": "cache backend calls in OUT/cache.sqlite"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reward not in REWARDS:
            raise ValueError(f"--reward must be one of {REWARDS}, got {self.reward!r}")
        if self.reward == "prm" and not self.prm:
            raise ValueError("--reward prm needs --prm FORMAT:MODEL (math-shepherd:ID or qwen-prm:ID)")
        for name in ("episodes", "train_problems", "eval_problems", "eval_every", "n_envs", "max_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        self.fixed_baselines = tuple(self.fixed_baselines)
        for sequence in self.fixed_baselines:
            blocks = [b.strip() for b in sequence.split(",")]
            if not blocks or any(b not in BLOCK_IDS or b == "terminate" for b in blocks):
                raise ValueError(
                    f"--fixed-baselines: {sequence!r} is not a comma-separated list of blocks "
                    f"({', '.join(b for b in BLOCK_IDS if b != 'terminate')})"
                )
        if not self.task.strip():
            raise ValueError("--task is empty; use arith, a benchmark name or a JSONL file")


def default_out(config: TrainNavigatorConfig) -> Path:
    name = f"{config.model}-{Path(config.task).stem}-{config.reward}"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")
    return Path("runs") / f"navigator-{slug}"


@dataclass
class TrainResult:
    out_dir: Path
    navigator_path: Path
    summary: dict[str, Any]


def block_histogram(traces: Sequence[Any]) -> dict[str, int]:
    """How often each block was chosen over ``traces`` (RLoT traces carry ``meta["blocks"]``)."""
    counts = Counter(b for t in traces for b in t.meta.get("blocks", ()))
    return {b: counts.get(b, 0) for b in ("reason", "decompose", "debate", "refine", "terminate")}


def train_navigator(config: TrainNavigatorConfig, backend: Any = None) -> TrainResult:
    """Train (or resume) a navigator as ``config`` says; return where it is and the summary.

    ``backend`` replaces ``config.model`` with a LanguageModel object (``config.model`` still names
    it in the run's metadata).
    """
    from reasonkit.backends.base import warn_outside_training
    from reasonkit.models.threads import set_threads
    from reasonkit.navigators.problems import load_task
    from reasonkit.navigators.rewards import make_reward

    started = time.perf_counter()
    # Everything a user can get wrong fails here, before the run directory is touched.
    pool = load_task(config.task, "train", config.train_problems, seed=config.seed)
    validation = load_task(config.task, "validation", config.eval_problems, seed=config.seed)
    reward = make_reward(config.reward, config.prm)
    if backend is None:
        backend = config.load(config.model)
    else:
        set_threads(config.threads, backend)
    warn_outside_training(backend, {p.kind for p in pool}, f"the {config.task} task")
    run = TrainingRun(config.out or default_out(config))
    settings = config_to_dict(config)
    with run.claim(settings):
        return _train(config, backend, run, settings, pool, validation, reward, started)


def _train(
    config: TrainNavigatorConfig,
    backend: Any,
    run: TrainingRun,
    settings: dict[str, Any],
    pool: Sequence[Any],
    validation: Sequence[Any],
    reward: Any,
    started: float,
) -> TrainResult:
    from reasonkit.backends.cached import CachedBackend
    from reasonkit.kit import resolve_pack
    from reasonkit.navigators.dqn import DuelingDoubleDQN
    from reasonkit.navigators.env import ThoughtVecEnv
    from reasonkit.navigators.monitor import TrainingMonitor
    from reasonkit.navigators.problems import hard_problems

    state = run.load_state()
    if state.get("finished") and state["episodes"] >= config.episodes:
        print(f"{run.dir} already holds a finished run of {state['episodes']} episodes; pass a new --out, or "
              f"a larger --episodes to continue it")  # fmt: skip
        return TrainResult(run.dir, run.navigator_path, state.get("summary", {}))
    if config.cache:
        backend = CachedBackend(backend, path=run.path("cache.sqlite"))
    pack = resolve_pack(config.pack, backend)
    train_set = hard_problems(pool, backend, pack) if config.hard_only else pool
    if not train_set:
        raise ValueError(
            f"{config.model} answers all {len(pool)} training problems with a direct prompt: nothing is hard; "
            "pass --hard-only false or a harder task"
        )
    baselines = measure_baselines(state, validation, backend, pack, config.fixed_baselines, config.max_depth)
    # Resuming replays the run from its start: every backend call it made is in the cache, so the
    # replayed episodes cost no model time and the run continues exactly as an uninterrupted one
    # would (networks, optimiser, replay buffer, RNG). Nothing is unpickled from the directory.
    replayed = int(state.get("episodes", 0))
    if replayed:
        print(f"{run.dir}: resuming - replaying the {replayed} episodes done so far from the cache, then "
              f"training to {config.episodes}", file=sys.stderr)  # fmt: skip
    state = run.restart(state)
    env = ThoughtVecEnv(
        train_set, backend, config.n_envs, pack=pack, reward=reward, max_depth=config.max_depth,
        seed=config.seed,
    )  # fmt: skip
    model = DuelingDoubleDQN(
        env=env, learning_rate=config.learning_rate, buffer_size=config.buffer_size,
        batch_size=config.batch_size, gamma=config.gamma, target_update_interval=config.target_update_interval,
        exploration_decay=config.epsilon_decay, exploration_final_eps=config.epsilon_final,
        lr_decay=config.lr_decay, lr_decay_episodes=config.lr_decay_episodes, seed=config.seed,
    )  # fmt: skip
    metadata = {
        "model": config.model, "task": config.task, "reward": reward.name, "pack": pack.name,
        "max_depth": str(config.max_depth), "hard_only": str(config.hard_only),
        "train_problems": str(len(train_set)), "config": _json(settings),
    }  # fmt: skip
    evaluator = _Evaluator(validation, backend, pack, config.max_depth)
    wall_before = float(state.get("wall_seconds", 0.0))

    def checkpoint(episodes: int, rows: list[dict[str, Any]], train_success: float) -> dict[str, Any]:
        navigator = _navigator(model, {**metadata, "episodes": str(episodes)})
        result = evaluator(navigator)
        best = state.get("best_accuracy")
        row = {
            "episode": episodes, "val_accuracy": result["accuracy"], "val_tokens": result["tokens_per_problem"],
            "val_calls": result["calls_per_problem"], "blocks": result["blocks"], "train_success": train_success,
            "epsilon": model.exploration_rate, "learning_rate": model.learning_rate_at(model._episode_num),
            "updates": model._n_updates, "env_steps": model.num_timesteps,
            "wall_seconds": round(wall_before + time.perf_counter() - started, 2),
        }  # fmt: skip
        navigator.save(run.navigator_path)
        if best is None or result["accuracy"] > best:
            navigator.save(run.path("navigator-best.safetensors"))
            state.update(best_accuracy=result["accuracy"], best_episode=episodes)
        run.append("episodes.jsonl", rows)
        run.append("metrics.jsonl", [row])
        state.update(episodes=episodes, wall_seconds=row["wall_seconds"], last=row, finished=False)
        run.commit(state)
        run.plot(baselines)
        return result

    checkpoint(0, [], 0.0)  # the untrained network: where the learning curve starts
    monitor = TrainingMonitor(
        total=config.episodes, done_before=0, eval_every=config.eval_every,
        checkpoint=checkpoint, progress=config.progress,
    )  # fmt: skip
    if config.episodes > 0:
        # An upper bound on env steps; the monitor stops training at the episode count.
        model.learn(total_timesteps=10 * config.episodes * (config.max_depth + 1), callback=monitor,
                    reset_num_timesteps=False)  # fmt: skip
    summary = _summary(config, run, state, len(pool), len(train_set), backend)
    state.update(finished=True, summary=summary)
    run.commit(state)
    from reasonkit.rundir import atomic_write_json

    atomic_write_json(run.path("summary.json"), summary)
    return TrainResult(run.dir, run.navigator_path, summary)


class _Evaluator:
    """Greedy navigation over the validation problems: accuracy, tokens, block histogram."""

    def __init__(self, problems: Sequence[Any], backend: Any, pack: Any, max_depth: int) -> None:
        self.problems, self.backend, self.pack, self.max_depth = problems, backend, pack, max_depth

    def __call__(self, navigator: Any) -> dict[str, Any]:
        from reasonkit.navigators.strategy import RLoT

        traces = RLoT(navigator, pack=self.pack, max_depth=self.max_depth).solve(self.problems, self.backend)
        return {**scores(traces), "blocks": block_histogram(traces)}


def scores(traces: Sequence[Any]) -> dict[str, float]:
    """Accuracy, tokens and calls per problem over graded traces."""
    n = len(traces)
    return {
        "accuracy": sum(bool(t.correct) for t in traces) / n,
        "tokens_per_problem": sum(t.cost.tokens for t in traces) / n,
        "calls_per_problem": sum(t.cost.calls for t in traces) / n,
    }


def measure_baselines(
    state: dict[str, Any],
    validation: Sequence[Any],
    backend: Any,
    pack: Any,
    fixed: Sequence[str],
    max_depth: int,
) -> dict[str, dict[str, Any]]:
    """Direct, CoT and the ``fixed`` block sequences on the validation problems, each measured once.

    Results live in ``state["baselines"]`` (name -> accuracy, tokens and calls per problem, seconds),
    which the run directory commits with its first checkpoint: a resumed run measures only a baseline
    it does not hold yet (a sequence added to ``--fixed-baselines``). Returns that dict.
    """
    from reasonkit.kit import CoT, Direct
    from reasonkit.navigators.strategy import FixedSequence

    stored: dict[str, dict[str, Any]] = state.setdefault("baselines", {})
    wanted: dict[str, Any] = {"direct": Direct(pack=pack), "cot": CoT(pack=pack)}
    for sequence in fixed:
        strategy = FixedSequence(sequence, pack=pack, max_depth=max_depth)
        wanted[strategy.name] = strategy
    for name, strategy in wanted.items():
        if name not in stored:
            started = time.perf_counter()
            traces = strategy.solve(validation, backend)
            stored[name] = {**scores(traces), "seconds": round(time.perf_counter() - started, 2)}
    state["direct_accuracy"] = stored["direct"]["accuracy"]  # read by runs made before CoT was measured
    return stored


def _navigator(model: Any, metadata: dict[str, str]) -> Any:
    import copy

    from reasonkit.navigators.navigator import Navigator

    return Navigator(copy.deepcopy(model.q_net.q_net).eval(), dict(metadata))


def _json(data: Any) -> str:
    import json

    return json.dumps(data, sort_keys=True)


def _summary(
    config: TrainNavigatorConfig, run: TrainingRun, state: dict[str, Any], drawn: int, hard: int, backend: Any
) -> dict[str, Any]:
    last = state.get("last", {})
    baselines = state.get("baselines", {})
    direct, cot = baselines.get("direct", {}), baselines.get("cot", {})
    return {
        "model": config.model,
        "task": config.task,
        "reward": config.reward,
        "episodes": state.get("episodes"),
        "train_problems_drawn": drawn,
        "train_problems_used": hard,
        "hard_only": config.hard_only,
        "validation_problems": config.eval_problems,
        "validation_accuracy": last.get("val_accuracy"),
        "validation_direct_accuracy": state.get("direct_accuracy"),
        "validation_direct_tokens_per_problem": direct.get("tokens_per_problem"),
        "validation_cot_accuracy": cot.get("accuracy"),
        "validation_cot_tokens_per_problem": cot.get("tokens_per_problem"),
        "validation_best_fixed": best_fixed(baselines),
        "validation_baselines": baselines,
        "best_validation_accuracy": state.get("best_accuracy"),
        "best_episode": state.get("best_episode"),
        "validation_tokens_per_problem": last.get("val_tokens"),
        "validation_blocks": last.get("blocks"),
        "navigator": str(run.navigator_path),
        "navigator_best": str(run.path("navigator-best.safetensors")),
        "learning_curve": str(run.path("learning_curve.png")),
        "wall_seconds": state.get("wall_seconds"),
        "backend_calls_made": getattr(backend, "misses", None),
        "backend_calls_cached": getattr(backend, "hits", None),
    }


def train_navigator_command(argv: Sequence[str]) -> int:
    """Entry point of ``reasonkit train-navigator`` (see ``--help``)."""
    config = parse_config(
        TrainNavigatorConfig, list(argv), prog="reasonkit train-navigator", description=_HELP
    )
    result = train_navigator(config)
    if result.summary:
        print(f"navigator: {result.navigator_path}\n{summary_text(result.summary)}")
        print(
            f"learning curve: {result.summary['learning_curve']}; summary: {result.out_dir / 'summary.json'}"
        )
    return 0


def summary_text(s: dict[str, Any]) -> str:
    """The navigator's validation figures next to the baselines' (what the command prints)."""

    def figure(name: str, accuracy: Any, tokens: Any) -> str:
        if accuracy is None:
            return f"{name} not measured"
        return f"{name} {accuracy:.3f}" + (f" ({tokens:.0f} tokens)" if tokens is not None else "")

    parts = [
        figure("CoT", s.get("validation_cot_accuracy"), s.get("validation_cot_tokens_per_problem")),
        figure(
            "direct prompt",
            s.get("validation_direct_accuracy"),
            s.get("validation_direct_tokens_per_problem"),
        ),
    ]
    fixed = s.get("validation_best_fixed")
    if fixed:
        parts.append(
            figure(f"best fixed sequence ({fixed['label']})", fixed["accuracy"], fixed["tokens_per_problem"])
        )
    text = (
        f"validation accuracy {s['validation_accuracy']:.3f}, {s['validation_tokens_per_problem']:.0f} tokens per "
        f"problem; on the same {s['validation_problems']} problems: {', '.join(parts)}\n"
        f"blocks {s['validation_blocks']}"
    )
    best, final = s.get("best_validation_accuracy"), s.get("validation_accuracy")
    if best is not None and final is not None and best > final:
        # the last navigator is not the best one validated: say which file holds that one
        text += (
            f"\nthe best validated navigator (episode {s.get('best_episode')}) scored {best:.3f}, above the final "
            f"one: {s.get('navigator_best')}"
        )
    return text


if __name__ == "__main__":
    import sys

    raise SystemExit(train_navigator_command(sys.argv[1:]))
