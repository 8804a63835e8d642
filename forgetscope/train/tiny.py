"""Tiny tokenizers and random-init models, built locally (nothing is downloaded).

Both are saved as ordinary Hugging Face directories, so anything that loads a
model with `AutoModelForCausalLM.from_pretrained(dir)` (our backends,
lm-evaluation-harness) can load them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Literal

if TYPE_CHECKING:  # heavy imports stay lazy
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|eos|>"
PAD_TOKEN = "<|pad|>"
SPECIAL_TOKENS = (BOS_TOKEN, EOS_TOKEN, PAD_TOKEN)

Arch = Literal["llama", "gpt2"]


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 2048,
    out_dir: str | Path | None = None,
    *,
    model_max_length: int = 256,
) -> "PreTrainedTokenizerFast":
    """Train a byte-level BPE tokenizer on `texts` and wrap it for transformers.

    Digits are split one per token (as in Llama): otherwise BPE merges frequent
    numbers like "68" into single tokens and arithmetic becomes memorisation.
    No BOS/EOS is added automatically: the caller decides (the training loop puts
    EOS between documents; scoring code decides about BOS once, in shared code).
    Saved to `out_dir` when given.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=model_max_length,
    )
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        wrapped.save_pretrained(str(out_dir))
    return wrapped


def make_model(
    tokenizer: "PreTrainedTokenizerFast",
    arch: Arch = "llama",
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    context: int = 256,
    seed: int = 0,
    dropout: float = 0.0,
    intermediate: int | None = None,
) -> "PreTrainedModel":
    """A random-init causal LM sized for `tokenizer`; same seed → same weights.

    `intermediate` is the MLP width (default 4 × hidden).

    The global torch RNG is left as it was (initialisation runs under `fork_rng`).
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    if hidden % heads:
        raise ValueError(f"hidden={hidden} must be divisible by heads={heads}")
    ids = dict(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    if arch == "llama":
        config = LlamaConfig(
            hidden_size=hidden,
            intermediate_size=intermediate or 4 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=context,
            attention_dropout=dropout,
            **ids,
        )
        cls = LlamaForCausalLM
    elif arch == "gpt2":
        config = GPT2Config(
            n_embd=hidden,
            n_layer=layers,
            n_head=heads,
            n_positions=context,
            n_inner=intermediate,
            resid_pdrop=dropout,
            embd_pdrop=dropout,
            attn_pdrop=dropout,
            **ids,
        )
        cls = GPT2LMHeadModel
    else:
        raise ValueError(f"unknown arch {arch!r}: use 'llama' or 'gpt2'")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(config)
    return model.float().eval()


def save_checkpoint(model: "PreTrainedModel", tokenizer: "PreTrainedTokenizerFast", out_dir: str | Path) -> Path:
    """Save model (safetensors) and tokenizer side by side; returns the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def build_tiny_model(
    out_dir: str | Path,
    tokenizer: "PreTrainedTokenizerFast",
    arch: Arch = "llama",
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    context: int = 256,
    seed: int = 0,
    dropout: float = 0.0,
    intermediate: int | None = None,
) -> Path:
    """Build a random-init tiny model (see `make_model`) and save it with its tokenizer.

    `AutoModelForCausalLM.from_pretrained(out_dir)` and
    `AutoTokenizer.from_pretrained(out_dir)` reload both.
    """
    model = make_model(
        tokenizer, arch, hidden=hidden, layers=layers, heads=heads, context=context, seed=seed, dropout=dropout,
        intermediate=intermediate,
    )
    previous, tokenizer.model_max_length = tokenizer.model_max_length, context  # saved with the model's context
    try:
        return save_checkpoint(model, tokenizer, out_dir)
    finally:
        tokenizer.model_max_length = previous
