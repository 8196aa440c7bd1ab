"""HFBackend: any transformers causal LM (an HF id, a local directory or a loaded model) as a LanguageModel.

    >>> lm = HFBackend("Qwen/Qwen2.5-0.5B-Instruct")                       # doctest: +SKIP
    >>> lm.generate(["2+2="], SamplingParams(max_new_tokens=8))[0][0].text   # doctest: +SKIP

What it guarantees:
  - batched, left-padded generation; rows are sorted by prompt length into batches of at most
    ``batch_size`` sequences (prompts x samples) to waste little compute on padding;
  - greedy decoding (temperature 0) computes one row per prompt and copies it ``n`` times;
  - a seeded request is reproducible whatever else shares its batch: sample j of a prompt seeded
    with s uses a generator seeded from (s, j) (see :mod:`reasonkit.models.sampling`); results can
    still differ in the last float bits between batch compositions (padding changes kernel shapes),
    which can flip a near-tie; unseeded sampling follows ``torch.manual_seed``;
  - stop strings end each row early and are trimmed from the text; ``tokens_out`` counts the tokens
    generated up to and including the one that completed the stop string or the EOS token;
  - no row runs past the model's context (:attr:`HFBackend.context_length`: ``max_position_embeddings``,
    scaled when the config declares RoPE scaling): a row that reaches it ends there with
    ``finish_reason="length"``, as vLLM ends a sequence at ``max_model_len``. ``max_new_tokens`` is a
    budget, and a budget past the context is not an error (a prompt pack's budget is fixed while its
    prompts grow); only a prompt that fills the context by itself is generated from past it, with a
    warning (once per backend);
  - chat prompts go through the tokenizer's chat template (``add_generation_prompt=True``); without
    one, messages render as ``"{role}: {content}\\n"`` lines followed by ``"assistant:"`` (warned once);
  - :meth:`loglikelihood` scores continuations of a shared prefix, running the prefix once.

SamplingParams is the whole sampling specification: the checkpoint's ``generation_config`` sampling
defaults (temperature, top_p, repetition_penalty ...) are not applied, so HF and served runs agree.
"""

from __future__ import annotations

import copy
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from reasonkit.backends.base import BackendError, CapabilityError
from reasonkit.backends.hf_load import fingerprint, load, read_model_card, register_reasonkit_models
from reasonkit.backends.request import check_prompt, check_prompts, trim_at_stop
from reasonkit.models.sampling import (
    StopAtLength,
    StopOnStrings,
    TokenTap,
    row_generator,
    token_processors,
)
from reasonkit.models.threads import auto_threads, check_threads, torch_threads
from reasonkit.models.whitebox.cache import check_path
from reasonkit.models.whitebox.decode_loop import DecodeHooks, decode
from reasonkit.models.whitebox.handle import WhiteBoxLM, open_whitebox
from reasonkit.types import Completion, Prompt, SamplingParams

_Row = tuple[int, int, list[int]]  # (prompt index, sample index, prompt token ids)
#: ``on_tokens(keys, tokens)``: the running batch's (prompt, sample) keys and generated ids so far
TokenCallback = Callable[[list[tuple[int, int]], list[list[int]]], None]


class HFBackend:
    """A transformers ``AutoModelForCausalLM`` behind the LanguageModel protocol (white-box)."""

    #: SamplingParams' presence/frequency penalties are applied (reasonkit.models.sampling.OpenAIPenalties)
    supports_penalties = True

    def __init__(
        self,
        model: str | Any,
        tokenizer: Any = None,
        *,
        device: str | None = None,
        dtype: str | torch.dtype = "auto",
        trust_remote_code: bool = False,
        batch_size: int = 32,
        download: bool | None = None,
        prompt_pack: str | None = None,
        name: str | None = None,
        threads: int | None = None,
        path: Sequence[int] | None = None,
        hooks: DecodeHooks | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        card: dict[str, Any] = {}
        digest = ""
        if isinstance(model, str):
            loaded = load(
                model, device=device, dtype=dtype, trust_remote_code=trust_remote_code, download=download
            )
            self.model, card = loaded.model, read_model_card(loaded.directory)
            digest = fingerprint(loaded.directory) if loaded.directory is not None else ""
            self.tokenizer = tokenizer if tokenizer is not None else loaded.tokenizer
            self.model.eval()
            default_name = model
        else:
            register_reasonkit_models()
            self.model = model if device is None else model.to(device)
            self.tokenizer = tokenizer if tokenizer is not None else _tokenizer_for(model)
            default_name = getattr(model, "name_or_path", "") or type(model).__name__
        self.name: str = name or default_name
        self._whitebox: WhiteBoxLM | None = None
        #: the layer path every forward runs (None: the model's own), and decode hooks (white-box loop)
        self.path: tuple[int, ...] | None = None
        if path is not None:
            self.path = check_path(path, self.whitebox.num_layers)
        self.hooks = hooks
        if self.path is not None:  # another model: run directories and caches must tell them apart
            self.name += f"@layers={format_path(self.path)}"
        #: name plus a digest of the checkpoint's files (CachedBackend keys on it); a model object passed in
        #: has no files to digest, so its fingerprint is its name: do not cache a model you are training.
        self.fingerprint: str = f"{self.name}@{digest}" if digest else self.name
        #: the digest alone (None for a model object passed in): which weights a method's run was
        #: trained on, recorded in its card and checked when the run is loaded (loading.load_base)
        self.weights_digest: str | None = digest or None
        self.batch_size = batch_size
        self.prompt_pack: str = prompt_pack or str(card.get("prompt_pack", "natural"))
        #: problem kinds the model was trained for (the model card's "kinds"); None: a general-purpose model
        self.kinds: tuple[str, ...] | None = tuple(card["kinds"]) if card.get("kinds") else None
        self.capabilities: frozenset[str] = frozenset(
            {"loglikelihood", "chat"} | ({"whitebox"} if self._open_whitebox() is not None else set())
        )
        check_threads(threads)
        #: torch CPU threads during this backend's calls: given, else 1 for a small CPU model (threads.py)
        self.threads: int | None = threads if threads is not None else auto_threads(self.model)
        self._lock = threading.Lock()  # one model, many callers (server threads, thread pools)
        self._warned_no_template = False
        self._warned_chat = False
        self._warned_context = False
        #: Positions a row may reach (prompt + generated): the context the model was configured for.
        self.context_length: int | None = context_length(getattr(self.model, "config", None))
        self._eos_ids = _eos_ids(self.model, self.tokenizer)
        pad = self.tokenizer.pad_token_id
        self._pad_id: int = pad if pad is not None else (min(self._eos_ids) if self._eos_ids else 0)

    # ---- white-box access ------------------------------------------------------------------------
    @property
    def whitebox(self) -> WhiteBoxLM:
        """The model opened up for methods that edit its forward (:mod:`reasonkit.models.whitebox`);
        CapabilityError when its family has no white-box adapter."""
        handle = self._open_whitebox()
        if handle is None:
            raise CapabilityError(
                f"{self.name!r} ({type(self.model).__name__}) has no white-box adapter: {self._whitebox_error}"
            )
        return handle

    def _open_whitebox(self) -> WhiteBoxLM | None:
        if self._whitebox is None and self.model is not None and not hasattr(self, "_whitebox_error"):
            try:
                self._whitebox = open_whitebox(self.model, self.tokenizer)
            except ValueError as exc:
                self._whitebox_error = str(exc)
        return self._whitebox

    @property
    def eos_ids(self) -> frozenset[int]:
        """Token ids that end a row (the generation config's and the tokenizer's EOS)."""
        return frozenset(self._eos_ids)

    @property
    def pad_id(self) -> int:
        """The token fed to left padding and to rows that have finished."""
        return self._pad_id

    @property
    def uses_whitebox_decode(self) -> bool:
        """Whether generation runs the white-box decode loop (a layer path or hooks) instead of
        transformers' ``generate``."""
        return self.path is not None or self.hooks is not None

    # ---- prompts -------------------------------------------------------------------------------
    def render(self, prompt: Prompt) -> str:
        """The exact text the model sees for ``prompt`` (chat messages through the chat template)."""
        if isinstance(prompt, str):
            return prompt
        if self.kinds and not self._warned_chat:
            self._warned_chat = self._warned_no_template = True  # one warning, the one that matters
            warnings.warn(
                f"{self.name!r} was trained only on the {'/'.join(self.kinds)} task's compact prompts and "
                "has never seen chat messages; expect nonsense. Chat with an instruction-tuned LLM instead",
                UserWarning,
                stacklevel=3,
            )
        messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
        if getattr(self.tokenizer, "chat_template", None):
            return str(
                self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            )
        if not self._warned_no_template:
            self._warned_no_template = True
            warnings.warn(
                f"tokenizer of {self.name!r} has no chat template; rendering messages as 'role: content' "
                "lines followed by 'assistant:'. Set tokenizer.chat_template for the model's real format",
                stacklevel=3,
            )
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids of ``prompt``: raw text gets the tokenizer's special tokens (BOS); chat templates bring their own."""
        text = self.render(prompt)
        add_special = isinstance(prompt, str) or not getattr(self.tokenizer, "chat_template", None)
        return list(self.tokenizer(text, add_special_tokens=add_special)["input_ids"])

    # ---- generation ----------------------------------------------------------------------------
    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, *, on_tokens: TokenCallback | None = None
    ) -> list[list[Completion]]:
        """One list of ``params.n`` completions per prompt, in prompt order.

        ``on_tokens(keys, tokens)``, when given, is called after every decoding step with the rows of
        the running batch: ``keys[r] = (prompt index, sample index)`` (greedy runs sample 0 only) and
        ``tokens[r]`` the ids generated so far (running past EOS or a stop string: the returned
        completion is what counts). ``reasonkit serve`` streams from it.
        """
        checked = check_prompts(prompts)
        return self.generate_encoded([self.encode(p) for p in checked], params, on_tokens=on_tokens)

    def generate_encoded(
        self,
        prompt_ids: Sequence[Sequence[int]],
        params: SamplingParams,
        *,
        on_tokens: TokenCallback | None = None,
    ) -> list[list[Completion]]:
        """:meth:`generate` from token ids (used exactly as given: no BOS added, no template)."""
        encoded = [list(ids) for ids in prompt_ids]
        for i, ids in enumerate(encoded):
            if not ids:
                raise ValueError(
                    f"prompt {i} is empty after tokenization; give the model some text to continue"
                )
        longest = max((len(ids) for ids in encoded), default=0)
        if self.context_length is not None and longest >= self.context_length:
            self._check_context(longest, params.max_new_tokens)  # nothing fits: generate past it, warned
        greedy = params.temperature == 0
        rows: list[_Row] = [
            (i, j, ids) for i, ids in enumerate(encoded) for j in range(1 if greedy else params.n)
        ]
        rows.sort(key=lambda row: -len(row[2]))
        results: dict[tuple[int, int], Completion] = {}
        with self._lock, torch_threads(self.threads), _inference(self.model):
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start : start + self.batch_size]
                for (i, j, _), completion in zip(chunk, self._generate_rows(chunk, params, on_tokens)):
                    results[(i, j)] = completion
        return [[results[(i, 0 if greedy else j)] for j in range(params.n)] for i in range(len(encoded))]

    def _check_context(self, longest_prompt: int, max_new_tokens: int) -> None:
        """Warn once when a request runs past the positions the model was configured for.

        :meth:`generate` caps every row at :attr:`context_length`, so it calls this only for a prompt
        that fills the context by itself. Not an error: RoPE models run (degraded) past it; models with
        learned absolute positions (GPT-2) then fail inside generate with an index error.
        """
        limit = self.context_length
        if isinstance(limit, int) and longest_prompt + max_new_tokens > limit and not self._warned_context:
            self._warned_context = True
            configured = getattr(getattr(self.model, "config", None), "max_position_embeddings", limit)
            where = (
                f"max_position_embeddings={limit}"
                if configured == limit
                else f"context of {limit} positions (max_position_embeddings={configured}, RoPE-scaled)"
            )
            warnings.warn(
                f"{self.name}: a prompt of {longest_prompt} tokens plus max_new_tokens={max_new_tokens} exceeds "
                f"the model's {where}; output past that position is unreliable",
                RuntimeWarning,
                stacklevel=3,
            )

    def _generate_rows(
        self, rows: Sequence[_Row], params: SamplingParams, on_tokens: TokenCallback | None = None
    ) -> list[Completion]:
        tap = None
        if on_tokens is not None:
            keys = [(i, j) for i, j, _ in rows]

            def tap(generated: torch.Tensor) -> None:
                on_tokens(keys, generated.tolist())

        if self.uses_whitebox_decode:
            return self._decode_rows(rows, params, tap)
        width = max(len(ids) for _, _, ids in rows)
        device = _input_device(self.model)
        input_ids = torch.full((len(rows), width), self._pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (_, _, ids) in enumerate(rows):  # left padding: the last prompt token sits at the same column
            input_ids[r, width - len(ids) :] = torch.tensor(ids)
            attention[r, width - len(ids) :] = 1
        processors = token_processors(
            prompt_length=width,
            temperature=params.temperature,
            top_k=params.top_k,
            top_p=params.top_p,
            generators=[row_generator(params.seed, j) for _, j, _ in rows]
            if params.temperature > 0
            else None,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
        )
        criteria: list[Any] = []
        stopper = StopOnStrings(self.tokenizer, params.stop, width, len(rows)) if params.stop else None
        if stopper is not None:
            criteria.append(stopper)
        caps = self._row_caps(rows, params.max_new_tokens)
        if any(cap is not None for cap in caps):
            criteria.append(StopAtLength(caps, width))
        if tap is not None:
            criteria.append(TokenTap(tap, width))
        from transformers import GenerationConfig, StoppingCriteriaList

        config = GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=False,  # RowSampler has already drawn the token; argmax reads it off
            num_beams=1,
            temperature=1.0,
            top_k=50,
            top_p=1.0,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            min_new_tokens=0,
            pad_token_id=self._pad_id,
            eos_token_id=sorted(self._eos_ids) or None,
            use_cache=True,
        )
        out = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            generation_config=config,
            logits_processor=processors,
            stopping_criteria=StoppingCriteriaList(criteria),
        )
        generated = out[:, width:].tolist()
        stopped = stopper.stopped_at if stopper is not None else [None] * len(rows)
        return [
            self._completion(tokens if cap is None else tokens[:cap], len(ids), stop_at, params)
            for tokens, (_, _, ids), stop_at, cap in zip(generated, rows, stopped, caps)
        ]

    def _decode_rows(
        self, rows: Sequence[_Row], params: SamplingParams, tap: Callable[[torch.Tensor], None] | None = None
    ) -> list[Completion]:
        """The white-box decode loop (same samplers, stop strings and caps as ``generate``)."""
        caps = self._row_caps(rows, params.max_new_tokens)
        decoded = decode(
            self.whitebox,
            [ids for _, _, ids in rows],
            max_new_tokens=[params.max_new_tokens if cap is None else cap for cap in caps],
            temperature=params.temperature,
            top_k=params.top_k,
            top_p=params.top_p,
            generators=[row_generator(params.seed, j) for _, j, _ in rows]
            if params.temperature > 0
            else None,
            eos_ids=self._eos_ids,
            stop=params.stop,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
            pad_id=self._pad_id,
            path=self.path,
            hooks=self.hooks,
            on_step=tap,
        )
        results = []
        for row, (_, _, ids) in zip(decoded, rows):
            stop_at = (
                len(row.tokens)
                if row.finish_reason == "stop" and row.tokens[-1] not in self._eos_ids
                else None
            )
            results.append(self._completion(row.tokens, len(ids), stop_at, params, row.meta))
        return results

    def _row_caps(self, rows: Sequence[_Row], max_new_tokens: int) -> list[int | None]:
        """New tokens each row may generate before reaching the context (None: the budget fits, or the
        prompt alone fills the context and is generated from anyway, see :meth:`_check_context`)."""
        limit = self.context_length
        if limit is None:
            return [None] * len(rows)
        return [limit - len(ids) if 0 < limit - len(ids) < max_new_tokens else None for _, _, ids in rows]

    def _completion(
        self,
        tokens: list[int],
        tokens_in: int,
        stop_at: int | None,
        params: SamplingParams,
        meta: dict[str, Any] | None = None,
    ) -> Completion:
        end, reason = len(tokens), "length"
        eos_at = next((k for k, t in enumerate(tokens) if t in self._eos_ids), None)
        if eos_at is not None:
            end, reason = eos_at + 1, "stop"
        if stop_at is not None and stop_at < end:
            end, reason = stop_at, "stop"
        body = tokens[: end - 1] if eos_at is not None and eos_at + 1 == end else tokens[:end]
        decoded = self.tokenizer.decode(body, skip_special_tokens=True)
        text, hit = trim_at_stop(decoded, params.stop)
        ids = tokens[:end] if not hit else self._ids_of_prefix(body, text)
        return Completion(
            text=text,
            tokens_in=tokens_in,
            tokens_out=end,
            finish_reason="stop" if hit else reason,
            meta=meta or {},
            token_ids=tuple(ids) if ids is not None else None,
        )

    def _ids_of_prefix(self, body: list[int], text: str, tries: int = 32) -> list[int] | None:
        """The shortest-cut prefix of ``body`` that decodes to ``text`` (a stop string trimmed the text;
        it sits in the last tokens, so a few tries from the end find it), else None."""
        for k in range(len(body), max(-1, len(body) - tries), -1):
            decoded = self.tokenizer.decode(body[:k], skip_special_tokens=True)
            if decoded == text:
                return body[:k]
            if len(decoded) < len(text):
                return None
        return None

    # ---- scoring -------------------------------------------------------------------------------
    def token_logprobs(self, ids: Sequence[int], start: int = 1, top_k: int = 0) -> list[Any]:
        """Teacher-forced log p(ids[t] | ids[:t]) for t >= ``start``, each with its ``top_k`` most likely
        tokens (:func:`reasonkit.backends.hf_scores.token_logprobs`); the same forward as :meth:`loglikelihood`."""
        from reasonkit.backends.hf_scores import token_logprobs

        return token_logprobs(self, ids, start, top_k)

    def loglikelihood(self, prefix: Prompt, continuations: Sequence[str]) -> list[float]:
        """Sum of log p(continuation tokens | prefix) for each continuation (natural log).

        The continuation is tokenized on its own (no special tokens) and appended to the prefix's
        tokens, as lm-evaluation-harness does: put a separating space at the start of the
        continuation, not the end of the prefix. An empty continuation scores 0.0. A prefix that
        tokenizes to nothing is replaced by the BOS (or EOS) token so the first token has a context.
        """
        check_prompt(prefix, 0)
        if isinstance(continuations, str):
            raise ValueError("loglikelihood() takes a list of continuations; wrap a single one in a list")
        context = self.encode(prefix)
        if not context:
            fallback = (
                self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self._pad_id
            )
            context = [fallback]
        conts = [list(self.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in continuations]
        scores = [0.0] * len(conts)
        todo = [k for k, ids in enumerate(conts) if ids]
        with self._lock, torch_threads(self.threads), _inference(self.model):
            if self.uses_whitebox_decode:
                for start in range(0, len(todo), self.batch_size):
                    chunk = todo[start : start + self.batch_size]
                    for k, value in zip(chunk, self._score_whitebox(context, [conts[k] for k in chunk])):
                        scores[k] = value
                return scores
            prefix_out = self.model(
                input_ids=torch.tensor([context], device=_input_device(self.model)), use_cache=True
            )
            cache = prefix_out.get("cache")  # transformers 5.x; 4.x calls it past_key_values
            if cache is None:
                cache = prefix_out.get("past_key_values")
            first = torch.log_softmax(prefix_out.logits[0, -1].float(), dim=-1)  # (V,)
            for start in range(0, len(todo), self.batch_size):
                chunk = todo[start : start + self.batch_size]
                batch = [conts[k] for k in chunk]
                if _can_share_prefix(cache):
                    values = self._score_after_cache(cache, len(context), first, batch)
                else:
                    values = self._score_full(context, batch)
                for k, value in zip(chunk, values):
                    scores[k] = value
        return scores

    def _score_after_cache(
        self, cache: Any, prefix_len: int, first: torch.Tensor, conts: list[list[int]]
    ) -> list[float]:
        """Run only the continuations, on copies of the prefix's KV cache (right-padded; causal, so safe)."""
        device = _input_device(self.model)
        ids, mask, width = _right_pad(conts, self._pad_id)
        shared = copy.deepcopy(cache)
        shared.batch_repeat_interleave(len(conts))
        attention = torch.cat([torch.ones((len(conts), prefix_len), dtype=torch.long), mask], dim=1)
        positions = torch.arange(prefix_len, prefix_len + width).expand(len(conts), -1)
        out = self.model(
            input_ids=ids.to(device),
            attention_mask=attention.to(device),
            position_ids=positions.to(device),
            use_cache=True,
            **{_cache_argument(self.model): shared},
        )
        logprobs = torch.log_softmax(out.logits.float(), dim=-1)  # (B, C, V)
        values = []
        for b, tokens in enumerate(conts):
            total = first[tokens[0]]
            if len(tokens) > 1:
                targets = torch.tensor(tokens[1:], device=logprobs.device)
                total = total + logprobs[b, : len(tokens) - 1].gather(1, targets[:, None]).sum()
            values.append(float(total))
        return values

    def _score_full(self, context: list[int], conts: list[list[int]]) -> list[float]:
        """Prefix and continuation in one forward per row (for models whose cache cannot be copied)."""
        device = _input_device(self.model)
        ids, mask, _ = _right_pad([context + c for c in conts], self._pad_id)
        logprobs = torch.log_softmax(
            self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float(), dim=-1
        )
        values = []
        for b, tokens in enumerate(conts):
            positions = torch.arange(len(context) - 1, len(context) + len(tokens) - 1, device=logprobs.device)
            targets = torch.tensor(tokens, device=logprobs.device)
            values.append(float(logprobs[b, positions, targets].sum()))
        return values

    def _score_whitebox(self, context: list[int], conts: list[list[int]]) -> list[float]:
        """Prefix and continuation in one white-box pass per batch (the backend's layer path; hooks may
        change the forward, e.g. Think-at-Hard's deeper passes)."""
        lm = self.whitebox
        ids, mask, _ = _right_pad([context + c for c in conts], self._pad_id)
        device = lm.device
        hooks = self.hooks or DecodeHooks()
        logits = hooks.score_logits(lm, ids.to(device), mask.to(device), self.path, len(context) - 1)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        values = []
        for b, tokens in enumerate(conts):
            positions = torch.arange(len(context) - 1, len(context) + len(tokens) - 1, device=logprobs.device)
            targets = torch.tensor(tokens, device=logprobs.device)
            values.append(float(logprobs[b, positions, targets].sum()))
        return values

    def close(self) -> None:
        """Drop the model so its memory can be freed (the object is unusable afterwards)."""
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def __enter__(self) -> HFBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HFBackend({self.name!r}, prompt_pack={self.prompt_pack!r}, batch_size={self.batch_size})"


def format_path(path: Sequence[int]) -> str:
    """A layer path as the spec writes it: comma-separated layer indices ("" for the empty path)."""
    return ",".join(str(i) for i in path)


@contextmanager
def _inference(model: Any) -> Iterator[None]:
    """Eval mode without gradients, restoring the caller's mode (a trainer may pass a model mid-training)."""
    if model is None:
        raise BackendError("this HFBackend was closed; create a new one")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def context_length(config: Any) -> int | None:
    """The positions a model may use: ``max_position_embeddings``, times the RoPE scaling factor when
    the config declares one (from ``original_max_position_embeddings`` when given: YaRN configs keep
    the original length in ``max_position_embeddings``, Llama 3.1 configs the scaled one). None when
    the config names no limit."""
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        return None
    scaling = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None)
    factor = scaling.get("factor") if isinstance(scaling, dict) else None
    if isinstance(factor, (int, float)) and factor > 1:
        original = scaling.get("original_max_position_embeddings")  # type: ignore[union-attr]
        base = original if isinstance(original, int) and original > 0 else limit
        limit = max(limit, int(base * factor))
    return limit


def _right_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s)
        mask[r, : len(s)] = 1
    return ids, mask, width


def _can_share_prefix(cache: Any) -> bool:
    from transformers import DynamicCache

    # Only the plain KV cache is known to extend correctly after batch_repeat_interleave; recurrent or
    # custom caches (GatedLM, Mamba) take the full-forward path.
    return type(cache) is DynamicCache


def _cache_argument(model: Any) -> str:
    """transformers 5.x names the KV-cache argument ``cache``; 4.x (and many custom models) ``past_key_values``."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _input_device(model: Any) -> torch.device:
    return model.get_input_embeddings().weight.device


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (configured, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


def _tokenizer_for(model: Any) -> Any:
    source = getattr(model, "name_or_path", "")
    if not source:
        raise BackendError("HFBackend got a model object without a tokenizer; pass tokenizer=... as well")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise BackendError(
            f"HFBackend got a model object and could not find its tokenizer at {source!r} ({exc}); "
            "pass tokenizer=... as well"
        ) from exc
