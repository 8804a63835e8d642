"""The transformers backend: CPU or GPU, fp32 by default.

Scoring runs one forward pass per batch of (context + continuation)
sequences, right-padded and sorted by length so little padding is computed.
Right padding keeps every real token's positions and attention exactly as in
an unpadded pass, which is why batch size does not change the scores.
Only the hidden states at continuation positions go through the LM head, so
a 49k-token vocabulary costs (continuation tokens × vocab), not
(all tokens × vocab). Requests that share a context are packed: the context
once, then the choices as a prefix tree (see _pack_inputs).
"""

from __future__ import annotations

import os
import pickle
from contextlib import nullcontext
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from safetensors import SafetensorError

from .base import (
    AUTO_BATCH,
    Backend,
    BackendError,
    GenerationRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    NonFiniteScoreError,
    canonical_dtype,
    check_finite,
    truncate_left,
)
from .adapters import attach_adapter, is_adapter_dir, read_adapter
from .batching import AUTO_BATCH_CPU, AUTO_BATCH_START, BatchSizer
from .gguf_cache import gguf_cache_enabled, gguf_parsed_once, load_gguf_cached
from .hub import from_snapshot, resolve_snapshot, split_revision
from .malloc import tune_malloc
from .weights import ALLOW_PICKLE_HINT, refuse_pickle, transformers_weight_options

# Architectures whose logits are exactly lm_head(final hidden state): for these
# we can apply the head to the continuation positions only.
_PLAIN_HEAD_MODEL_TYPES = {
    "llama", "gpt2", "mistral", "qwen2", "qwen3", "phi3", "gpt_neox", "olmo", "olmo2", "smollm3",
}


def _torch_dtype(name: str):
    import torch

    canonical = canonical_dtype(name)
    return "auto" if canonical == "auto" else getattr(torch, canonical)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(f"device {device!r} requested but no CUDA GPU is available; use --device cpu")
    return device


def split_gguf(model: str, gguf_file: str | None) -> tuple[str, str | None]:
    """`dir/model.gguf` → (`dir`, `model.gguf`); otherwise unchanged."""
    if gguf_file is None and model.endswith(".gguf") and Path(model).is_file():
        path = Path(model)
        return str(path.parent), path.name
    return model, gguf_file


def load_model_and_tokenizer(
    model: str,
    *,
    dtype: str = "float32",
    device: str = "cpu",
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
    allow_pickle: bool = False,
    model_args: dict[str, Any] | None = None,
    merge_adapter: bool = False,
):
    """Load a causal LM and its tokenizer from a local dir, a hub id[@revision], a PEFT adapter folder or a GGUF file.

    Weights only in pickle format (pytorch_model.bin) are refused unless
    `allow_pickle` (see weights.py). A hub id is
    loaded from its snapshot folder at `revision` (hub.py). An adapter folder loads its
    base model, then the adapter (adapters.py; merged into the weights with `merge_adapter`).
    `model_args` go to the model's from_pretrained (model_args.py checks them).
    """
    model_args = dict(model_args or {})
    if revision is None:
        model, revision = split_revision(model)
    revision = model_args.pop("revision", None) or revision
    if from_snapshot(model, revision):
        model = str(resolve_snapshot(model, revision).folder)
    if not gguf_file and is_adapter_dir(model):
        adapter = read_adapter(model, allow_pickle)
        lm, tokenizer = load_model_and_tokenizer(
            adapter.base, dtype=dtype, device=device, trust_remote_code=trust_remote_code,
            revision=adapter.base_revision, allow_pickle=allow_pickle, model_args=model_args)
        if missing_tokenizer(adapter.folder) is None:  # an adapter may ship its own tokenizer (added tokens)
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(adapter.folder), trust_remote_code=trust_remote_code)
        lm = attach_adapter(lm, adapter, merge=merge_adapter).to(resolve_device(device))
        lm.eval()
        return lm, tokenizer
    model, gguf_file = split_gguf(model, gguf_file)
    if not gguf_file:
        refuse_pickle(Path(model, model_args["subfolder"]) if model_args.get("subfolder") else model, allow_pickle)
    device = resolve_device(device)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    subfolder = model_args.get("subfolder")
    tokenizer_kwargs = ({"subfolder": subfolder} if subfolder and missing_tokenizer(Path(model, subfolder)) is None
                        else {})

    def load(source: str, **extra):
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # forgetscope shows its own progress
        with gguf_parsed_once() if "gguf_file" in extra else nullcontext():
            tokenizer = AutoTokenizer.from_pretrained(source, **kwargs, **extra, **tokenizer_kwargs)
            weights = {} if "gguf_file" in extra else transformers_weight_options(allow_pickle)
            lm = AutoModelForCausalLM.from_pretrained(source, dtype=_torch_dtype(dtype), **kwargs, **extra, **weights,
                                                      **model_args)
        lm.to(device)
        lm.eval()
        return lm, tokenizer

    try:
        if gguf_file and Path(model, gguf_file).is_file() and gguf_cache_enabled():
            lm, tokenizer, _ = load_gguf_cached(Path(model, gguf_file), dtype,
                                                convert=lambda: load(model, gguf_file=gguf_file),
                                                load=lambda converted: load(str(converted)))
        else:
            lm, tokenizer = load(model, **({"gguf_file": gguf_file} if gguf_file else {}))
    except pickle.UnpicklingError as exc:  # --allow-pickle, and the file holds more than tensors
        raise BackendError(f"{model}: torch.load(weights_only=True) refused the pickle weights "
                           f"({_unpickling_reason(exc)}); they may be malicious, do not load them otherwise") from None
    except ImportError as exc:  # e.g. gguf not installed
        raise BackendError(f"cannot load {model!r}: {exc}. For GGUF files: pip install gguf accelerate") from None
    except TypeError as exc:  # a --model-args keyword the model's __init__ does not take
        raise BackendError(f"cannot load {model!r}: {_one_line(exc)} (check --model-args)") from None
    except ValueError as exc:  # transformers reports missing optional packages this way too
        reason = None if gguf_file else missing_tokenizer(model)
        raise BackendError(f"cannot load {model!r}: {reason or _one_line(exc)}") from None
    except OSError as exc:
        if "cannot be loaded with `safetensors`" in str(exc):  # a hub model with pickle weights only
            raise BackendError(f"{model}: the weights are not in safetensors format; {ALLOW_PICKLE_HINT}") from None
        reason = None if gguf_file else missing_tokenizer(model)
        raise BackendError(f"cannot load {model!r}: {reason}" if reason else
                           f"cannot load model {model!r}: {_one_line(exc)}. "
                           "Pass a local directory with config.json and weights (or a .gguf file); "
                           "hub ids need a network connection or a populated HF cache.") from None
    except SafetensorError as exc:
        raise BackendError(f"cannot load {model!r}: {damaged_safetensors(model, exc)}") from None
    return lm, tokenizer


def _unpickling_reason(exc: Exception) -> str:
    """The line of torch's weights-only message that says what was blocked."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return next((line for line in lines if "GLOBAL" in line or "Unsupported" in line), lines[-1] if lines else "")


#: Files a saved tokenizer consists of (fast, BPE, WordPiece, SentencePiece, tiktoken); one suffices.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model",
                   "sentencepiece.bpe.model", "tekken.json", "tokenizer.tiktoken")


def missing_tokenizer(model: str | Path) -> str | None:
    """Why a local model directory has no tokenizer, with the fix; None when it has one (or is no directory).

    transformers' own message for this case is "Couldn't instantiate the backend
    tokenizer from one of: ..." and speaks of slow tokenizers and sentencepiece.
    """
    folder = Path(model)
    if not folder.is_dir() or any((folder / name).is_file() for name in TOKENIZER_FILES):
        return None
    return (f"{folder} has no tokenizer (none of {', '.join(TOKENIZER_FILES[:5])}, ...); save the tokenizer the "
            f"model was trained with into it (tokenizer.save_pretrained(DIR)) or copy its tokenizer files there")


def damaged_safetensors(model: str | Path, exc: Exception) -> str:
    """Which .safetensors file of a model cannot be opened (a cut-short download or copy) and what to do."""
    from safetensors import SafetensorError, safe_open

    path = Path(model)
    for file in sorted(path.glob("*.safetensors")) if path.is_dir() else [path]:
        try:
            with safe_open(str(file), framework="numpy"):
                pass
        except (SafetensorError, OSError) as bad:
            return (f"{file} is not a complete safetensors file ({_one_line(bad)}); it is damaged or was cut short "
                    "(an interrupted download or copy?): copy or download it again")
    return f"a safetensors file is not readable ({_one_line(exc)}); copy or download the model again"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class HFBackend(Backend):
    """Score and generate with a transformers causal LM."""

    name = "hf"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        batch_size: int | str = 16,
        max_length: int | None = None,
        settings: dict[str, Any] | None = None,
        pack: bool = True,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = model.device
        auto = batch_size == AUTO_BATCH
        on_cpu = str(self.device).startswith("cpu")
        if auto:  # the search pays only where memory is the limit (batching.py)
            batch_size = AUTO_BATCH_CPU if on_cpu else AUTO_BATCH_START
        #: batches run through here: with `auto` on a GPU it halves on out-of-memory and keeps what fits
        self.batches = BatchSizer(int(batch_size), auto=auto and not on_cpu)
        self.max_length = int(max_length or self._model_max_length())
        self.settings = dict(settings or {})
        #: score a shared context once with all its continuations (see _plan)
        self.pack = pack
        self._plain_head = getattr(model.config, "model_type", "") in _PLAIN_HEAD_MODEL_TYPES
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (tokenizer.eos_token_id or 0))

    @property
    def batch_size(self) -> int:
        """Sequences per forward pass now (with `auto`: the size that fit so far)."""
        return self.batches.size

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        dtype: str = "float32",
        device: str = "cpu",
        batch_size: int | str = 16,
        max_length: int | None = None,
        gguf_file: str | None = None,
        trust_remote_code: bool = False,
        threads: int | None = None,
        allow_pickle: bool = False,
        revision: str | None = None,
        model_args: dict[str, Any] | None = None,
    ) -> "HFBackend":
        import torch

        if resolve_device(device) == "cpu":
            tune_malloc()  # activations stay in the heap between layers (see malloc.py)
        if threads:
            torch.set_num_threads(threads)
        elif device == "cpu" and os.environ.get("OMP_NUM_THREADS") is None:
            torch.set_num_threads(max(1, os.cpu_count() or 1))
        lm, tok = load_model_and_tokenizer(
            model, dtype=dtype, device=device, gguf_file=gguf_file, trust_remote_code=trust_remote_code,
            allow_pickle=allow_pickle, revision=revision, model_args=model_args,
        )
        return cls(lm, tok, batch_size=batch_size, max_length=max_length)

    def _model_max_length(self) -> int:
        cfg = self.model.config
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(cfg, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return 2048

    # ------------------------------------------------------------------ scoring
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        import torch

        results: list[LoglikelihoodResult | None] = [None] * len(requests)
        packs, singles = self._plan(requests) if self.pack else ([], list(range(len(requests))))
        with torch.inference_mode():
            if packs:
                self._score_packs(packs, results)
            if singles:
                self._score_singles([requests[i] for i in singles], singles, results)
        check_finite(results)  # type: ignore[arg-type]  # a NaN weight must not become "choice 0"
        return results  # type: ignore[return-value]

    def _plan(self, requests: Sequence[LoglikelihoodRequest]):
        """Group requests that share a context into packs (context once, then every continuation).

        A pack is scored in one sequence: the context's hidden states are
        computed once instead of once per choice (and choice tokens shared by
        prefix once, see _pack_inputs). The length check counts every choice's
        tokens unshared: an upper bound of the tree. Requests whose context is
        unique, or whose pack would not fit in max_length, are scored alone.
        """
        by_context: dict[tuple[int, ...], list[int]] = {}
        for index, req in enumerate(requests):
            by_context.setdefault(req.context_ids, []).append(index)
        packs, singles = [], []
        for context, members in by_context.items():
            if len(members) < 2:
                singles.extend(members)
                continue
            pack: list[int] = []
            length = len(context)
            for index in members:
                n = len(requests[index].continuation_ids) - 1  # the last token is not fed
                if length + n > self.max_length or len(context) + n + 1 > self.max_length:
                    if len(context) + n + 1 > self.max_length:  # needs truncation: score alone
                        singles.append(index)
                        continue
                    if len(pack) > 1:
                        packs.append((context, [(i, requests[i].continuation_ids) for i in pack]))
                    else:
                        singles.extend(pack)
                    pack, length = [], len(context)
                pack.append(index)
                length += n
            if len(pack) > 1:
                packs.append((context, [(i, requests[i].continuation_ids) for i in pack]))
            else:
                singles.extend(pack)
        return packs, singles

    def _score_packs(self, packs, results) -> None:
        # longest first (by the unshared length: cheap, and close enough for ordering)
        packs = sorted(packs, key=lambda p: -(len(p[0]) + sum(len(c) for _, c in p[1])))

        def score(batch) -> None:
            scores = self._forward_scores(*self._pack_inputs(batch))
            flat = [(index, cont) for _, members in batch for index, cont in members]
            for (index, cont), (logprob, greedy) in zip(flat, scores):
                results[index] = LoglikelihoodResult(logprob, greedy, len(cont))

        self.batches.run(packs, score)

    def _pack_inputs(self, batch):
        """Token ids, a tree-causal 4D mask and positions for a batch of packs.

        Sequence b is the context, then the choices' fed tokens as a prefix tree:
        a token shared by several choices at the same place after the same
        earlier tokens ("Gus takes the bus to the market" / "... harbour") is
        fed once. Every tree token attends to the context and to its own
        ancestors, never to another branch, and its position continues from
        the context's end: exactly the attention and positions of scoring
        context + that choice alone.
        """
        import torch

        trees = [_prefix_tree(members) for _, members in batch]
        width = max(len(ctx) + len(tree.tokens) for (ctx, _), tree in zip(batch, trees))
        n = len(batch)
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        position = torch.zeros((n, width), dtype=torch.long)
        allowed = torch.zeros((n, width, width), dtype=torch.bool)
        allowed |= torch.eye(width, dtype=torch.bool)  # padding rows attend to themselves: no NaN
        rows, positions, targets, owner = [], [], [], []
        k = 0
        for b, ((ctx, members), tree) in enumerate(zip(batch, trees)):
            c = len(ctx)
            input_ids[b, :c] = torch.tensor(ctx, dtype=torch.long)
            position[b, :c] = torch.arange(c)
            allowed[b, :c, :c] = torch.ones((c, c), dtype=torch.bool).tril()
            if tree.tokens:
                m = len(tree.tokens)
                input_ids[b, c:c + m] = torch.tensor(tree.tokens, dtype=torch.long)
                position[b, c:c + m] = c + torch.tensor(tree.depth, dtype=torch.long)
                allowed[b, c:c + m, :c] = True
                allowed[b, c:c + m, c:c + m] = torch.from_numpy(tree.ancestors)
            for (_, cont), nodes in zip(members, tree.paths):
                # token j of the choice is predicted from the position before it:
                # the context's last token for j = 0, the tree node of token j-1 after
                rows.extend([b] * len(cont))
                positions.extend([c - 1] + [c + node for node in nodes])
                targets.extend(cont)
                owner.extend([k] * len(cont))
                k += 1
        dtype = self.model.dtype if self.model.dtype.is_floating_point else torch.float32
        mask = torch.zeros((n, 1, width, width), dtype=dtype)
        mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
        return (input_ids, mask, position, rows, positions, targets, owner, k)

    def _score_singles(self, requests, indices, results) -> None:
        prepared = []
        for index, req in zip(indices, requests):
            kept, n_cont = truncate_left(req.context_ids, req.continuation_ids, self.max_length)
            tokens = list(kept[:-1])  # the last token is only a target
            prepared.append((index, tokens, list(req.continuation_ids[-n_cont:]) if n_cont else []))
        # longest first: the first batch shows memory problems at once, and
        # sorting by length keeps padding (wasted compute) small
        prepared.sort(key=lambda p: -len(p[1]))

        def score(batch) -> None:
            for (index, _, cont), (logprob, greedy) in zip(batch, self._score_batch(batch)):
                results[index] = LoglikelihoodResult(logprob, greedy, len(cont))

        self.batches.run(prepared, score)

    def _score_batch(self, batch: list[tuple[int, list[int], list[int]]]) -> list[tuple[float, bool]]:
        import torch

        width = max(len(tokens) for _, tokens, _ in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        rows, positions, targets, owner = [], [], [], []
        for b, (_, tokens, cont) in enumerate(batch):
            input_ids[b, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            attention[b, : len(tokens)] = 1
            # logits at position t predict token t+1: the continuation's tokens
            # are predicted from the last len(cont) input positions
            first = len(tokens) - len(cont)
            rows.extend([b] * len(cont))
            positions.extend(range(first, first + len(cont)))
            targets.extend(cont)
            owner.extend([b] * len(cont))
        return self._forward_scores(input_ids, attention, None, rows, positions, targets, owner, len(batch))

    def _forward_scores(self, input_ids, attention, position_ids, rows, positions, targets, owner, n_out):
        """Run the model and sum log p(target) per output; greedy = every target is the argmax."""
        import torch

        device = self.device
        kwargs = {"input_ids": input_ids.to(device), "attention_mask": attention.to(device)}
        if position_ids is not None:
            kwargs["position_ids"] = position_ids.to(device)
        rows_t = torch.tensor(rows, dtype=torch.long, device=device)
        pos_t = torch.tensor(positions, dtype=torch.long, device=device)
        if self._plain_head:
            hidden = self.model.base_model(**kwargs).last_hidden_state
            logits = self.model.get_output_embeddings()(hidden[rows_t, pos_t])
        else:
            logits = self.model(**kwargs).logits[rows_t, pos_t]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        target_t = torch.tensor(targets, dtype=torch.long, device=device)
        token_lp = logprobs.gather(1, target_t[:, None]).squeeze(1)
        greedy_tok = logprobs.argmax(dim=-1) == target_t
        owner_t = torch.tensor(owner, dtype=torch.long, device=device)
        sums = torch.zeros(n_out, dtype=torch.float64, device=device)
        sums.index_add_(0, owner_t, token_lp.double())
        misses = torch.zeros(n_out, dtype=torch.long, device=device)
        misses.index_add_(0, owner_t, (~greedy_tok).long())
        return [(float(x), int(m) == 0) for x, m in zip(sums.cpu(), misses.cpu())]

    # --------------------------------------------------------------- generation
    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        import torch

        order = sorted(range(len(requests)), key=lambda i: -len(requests[i].context_ids))
        outputs: list[str] = [""] * len(requests)
        broken: list[int] = []
        def decode(idx) -> None:
            texts, bad = self._generate_batch([requests[i] for i in idx])
            broken.extend(idx[b] for b in bad)
            for i, text in zip(idx, texts):
                outputs[i] = text

        with torch.inference_mode():
            self.batches.run(order, decode)
        if broken:  # an arbitrary token is no answer
            raise NonFiniteScoreError(f"{len(broken)} of {len(requests)} generation requests got non-finite "
                                      "logits (NaN or inf); the model's weights or numerics are broken",
                                      sorted(broken))
        return outputs

    def _generate_batch(self, batch: list[GenerationRequest]) -> tuple[list[str], list[int]]:
        """Generated texts, and the positions whose logits went NaN or +inf (those stop at once)."""
        import torch

        model = self.model
        budget = [max(1, r.max_new_tokens) for r in batch]
        contexts = [list(r.context_ids)[-max(1, self.max_length - b):] for r, b in zip(batch, budget)]
        width = max(len(c) for c in contexts)
        n = len(batch)
        # left padding: every row's next token is at the same column
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((n, width), dtype=torch.long)
        for b, ctx in enumerate(contexts):
            input_ids[b, width - len(ctx):] = torch.tensor(ctx, dtype=torch.long)
            attention[b, width - len(ctx):] = 1
        input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        position = (attention.cumsum(-1) - 1).clamp(min=0)
        generators = [self._generator(r.seed) if r.temperature > 0 else None for r in batch]
        eos = self.tokenizer.eos_token_id
        new_tokens: list[list[int]] = [[] for _ in batch]
        done = [False] * n
        out = model(input_ids=input_ids, attention_mask=attention, position_ids=position, use_cache=True)
        cache = out.past_key_values
        logits = out.logits[:, -1, :].float()
        broken: list[int] = []
        for _ in range(max(budget)):
            for b in _broken_rows(logits, done):
                done[b] = True
                broken.append(b)
            if all(done):
                break
            next_ids = [self.pad_id if done[b] else self._choose(logits[b], batch[b], generators[b])
                        for b in range(n)]
            for b in range(n):
                if done[b]:
                    continue
                token = next_ids[b]
                if token == eos:
                    done[b] = True
                    continue
                new_tokens[b].append(token)
                if len(new_tokens[b]) >= budget[b] or self._hit_stop(new_tokens[b], batch[b].stop):
                    done[b] = True
            if all(done):
                break
            step = torch.tensor([[t if not d else self.pad_id] for t, d in zip(next_ids, done)],
                                dtype=torch.long, device=self.device)
            attention = torch.cat([attention, torch.ones((n, 1), dtype=attention.dtype, device=self.device)], 1)
            position = position[:, -1:] + 1
            out = model(input_ids=step, attention_mask=attention, position_ids=position,
                             past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            logits = out.logits[:, -1, :].float()
        return [cut_at_stop(self.tokenizer.decode(toks, skip_special_tokens=True), r.stop)
                for toks, r in zip(new_tokens, batch)], broken

    def _generator(self, seed: int):
        import torch

        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(seed) % (2**63))
        return gen

    @staticmethod
    def _choose(logits, request: GenerationRequest, generator) -> int:
        import torch

        if request.temperature <= 0:
            return int(logits.argmax())
        probs = torch.softmax(logits / request.temperature, dim=-1)
        if request.top_p < 1.0:
            sorted_p, sorted_i = probs.sort(descending=True)
            keep = sorted_p.cumsum(0) - sorted_p < request.top_p
            probs = torch.zeros_like(probs).scatter(0, sorted_i[keep], sorted_p[keep])
        return int(torch.multinomial(probs, 1, generator=generator))

    def _hit_stop(self, tokens: list[int], stop: tuple[str, ...]) -> bool:
        if not stop:
            return False
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        return any(s in text for s in stop)


def _broken_rows(logits, done: list[bool]) -> list[int]:
    """Rows still generating whose logits hold a NaN or +inf (or no finite value): their argmax would be an
    arbitrary token. -inf alone is a legitimate "never this token"."""
    import torch

    broken = ~torch.isfinite(logits.amax(dim=-1))  # amax propagates NaN
    return [b for b, flag in enumerate(broken.tolist()) if flag and not done[b]]


class _Tree(NamedTuple):
    """The fed tokens of a pack's choices as a prefix tree, in the order they are laid out."""

    tokens: list[int]  # one per node
    depth: list[int]  # position after the context's end
    paths: list[list[int]]  # per choice: its fed tokens' nodes
    ancestors: Any  # numpy bool [nodes, nodes]: node i may attend to node j


def _prefix_tree(members) -> _Tree:
    """Each choice's tokens but the last (a choice's last token is only a target), shared by prefix."""
    import numpy as np

    tokens: list[int] = []
    depth: list[int] = []
    parent: list[int] = []
    child: dict[tuple[int, int], int] = {}  # (parent node, token) -> node
    paths: list[list[int]] = []
    for _, cont in members:
        node, path = -1, []
        for j, token in enumerate(cont[:-1]):
            found = child.get((node, token))
            if found is None:
                found = len(tokens)
                child[(node, token)] = found
                tokens.append(token)
                depth.append(j)
                parent.append(node)
            node = found
            path.append(node)
        paths.append(path)
    ancestors = np.eye(len(tokens), dtype=bool)
    for node in range(len(tokens)):  # parents come first: inherit the parent's row
        if parent[node] >= 0:
            ancestors[node] |= ancestors[parent[node]]
    return _Tree(tokens, depth, paths, ancestors)


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """Text up to the earliest stop sequence (excluded)."""
    cut = len(text)
    for s in stop:
        found = text.find(s)
        if 0 <= found < cut:
            cut = found
    return text[:cut]
