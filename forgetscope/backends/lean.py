"""A lean Llama forward for scoring: transformers' arithmetic without its import cost.

Loading a model through transformers imports its whole modeling stack (AutoConfig
pulls in torch.distributed.tensor, torch._dynamo, scipy, ...: ~2-3 s per process on
this 2-core machine, more than scoring 500 items takes with an 8M model). For the
Llama architecture in its plain form (what SmolLM2, TinyLlama and the models
`forgetscope train` writes are) the hf backend scores with this module instead: the
weights come from the same safetensors files, the tokenizer is transformers' own
fast tokenizer class (what AutoTokenizer returns for these files), and the forward
is LlamaModel's, operation for operation (RMSNorm in float32, rotary embedding,
scaled-dot-product attention with the same mask conventions, SiLU MLP). Two things
differ, neither changes what is computed:

- q/k/v and gate/up projections run as one matrix product each (weights concatenated);
- in the last layer only the positions whose next-token log-probabilities are read
  go through the query, attention output and MLP (keys and values are computed for
  every position, as they must be).

Anything else (other architectures, rope scaling, remote code, revisions, GGUF files
before conversion, generation) goes through transformers. `lean_unsupported` says why
a model does not qualify; FORGETSCOPE_LEAN_FORWARD=0 turns the lean forward off.
Tests check it against transformers' LlamaForCausalLM on the same weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from ..env import switched_on

_TOKENIZER_CLASSES = {"TokenizersBackend", "PreTrainedTokenizerFast"}


def lean_enabled() -> bool:
    return switched_on("FORGETSCOPE_LEAN_FORWARD")


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _rope_theta(config: dict) -> float | None:
    """rope_theta for default RoPE (transformers 5 `rope_parameters`, 4.x `rope_theta`/`rope_scaling`);
    None when the model uses another RoPE type."""
    params = config.get("rope_parameters")
    if isinstance(params, dict):
        if params.get("rope_type", "default") != "default":
            return None
        theta = params.get("rope_theta", config.get("rope_theta"))
    else:
        scaling = config.get("rope_scaling")
        if scaling and (scaling.get("rope_type") or scaling.get("type")) not in (None, "default"):
            return None
        theta = config.get("rope_theta", 10000.0)
    return float(theta) if isinstance(theta, (int, float)) else None


def config_unsupported(config: dict) -> str | None:
    """Why the lean forward cannot run a model with this config.json content, or None."""
    if config.get("model_type") != "llama":
        return f"model_type {config.get('model_type')!r} (only 'llama')"
    if config.get("hidden_act", "silu") != "silu":
        return f"hidden_act {config.get('hidden_act')!r}"
    if _rope_theta(config) is None:
        return "rope scaling other than the default"
    if config.get("pretraining_tp", 1) not in (None, 1):
        return "pretraining_tp > 1"
    if config.get("auto_map"):
        return "config has auto_map"
    quantization = config.get("quantization_config")
    if quantization and quantization.get("quant_method") != "gguf":  # GGUF loads de-quantised to floats
        return "config has quantization_config"
    return None


def lean_unsupported(model: str | Path) -> str | None:
    """Why the lean forward cannot load `model` (a local directory) by itself, or None when it can."""
    folder = Path(model)
    if not folder.is_dir():
        return "not a local directory"
    config = _read_json(folder / "config.json")
    if config is None:
        return "no readable config.json"
    reason = config_unsupported(config)
    if reason:
        return reason
    if not ((folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()):
        return "no safetensors weights"
    tokenizer_config = _read_json(folder / "tokenizer_config.json")
    if tokenizer_config is None or not (folder / "tokenizer.json").is_file():
        return "no tokenizer.json / tokenizer_config.json"
    if tokenizer_config.get("tokenizer_class") not in _TOKENIZER_CLASSES:
        return f"tokenizer_class {tokenizer_config.get('tokenizer_class')!r}"
    if tokenizer_config.get("auto_map"):
        return "tokenizer has auto_map"
    return None


def _load_weights(folder: Path) -> dict[str, Any]:
    """Every tensor by name; names that `safetensors.torch.save_model` stored once for tied
    weights (listed in the file's metadata as name -> stored name) point at the stored tensor."""
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    for name in files:
        with safe_open(str(folder / name), framework="pt") as handle:
            weights.update({key: handle.get_tensor(key) for key in handle.keys()})
            aliases.update((handle.metadata() or {}))
    for alias, stored in aliases.items():
        if alias not in weights and stored in weights:
            weights[alias] = weights[stored]
    return weights


def load_lean(model: str | Path, dtype: str = "float32") -> tuple["LeanLlama", Any]:
    """(LeanLlama, tokenizer) for a directory that `lean_unsupported` accepts."""
    import torch
    from transformers import PreTrainedTokenizerFast

    from .base import canonical_dtype

    folder = Path(model)
    config = json.loads((folder / "config.json").read_text())
    dtype = canonical_dtype(dtype)  # fp32, bf16, half, ... as the transformers path accepts them
    if dtype == "auto":
        name = config.get("dtype") or config.get("torch_dtype") or "float32"
        torch_dtype = getattr(torch, name) if isinstance(name, str) and hasattr(torch, name) else torch.float32
    else:
        torch_dtype = getattr(torch, dtype)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder))
    return LeanLlama(config, _load_weights(folder), str(folder), torch_dtype), tokenizer


class LeanLlama:
    """LlamaForCausalLM's forward for scoring (see the module docstring)."""

    def __init__(self, config: dict, weights: dict[str, Any], path: str, dtype: Any,
                 reload: Callable[[], Any] | None = None) -> None:
        import torch

        self.path = path
        self._reload = reload
        self.config = SimpleNamespace(**config)
        self.dtype = dtype
        heads = int(config["num_attention_heads"])
        kv_heads = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or config["hidden_size"] // heads)
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.intermediate = int(config["intermediate_size"])
        self.eps = float(config.get("rms_norm_eps", 1e-6))
        theta = _rope_theta(config)
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))

        def get(name: str):
            return weights.pop(name).to(dtype)

        def optional(name: str):
            return weights.pop(name).to(dtype) if name in weights else None

        self.embed = get("model.embed_tokens.weight")
        self.layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"model.layers.{i}."
            qkv_bias = [optional(p + f"self_attn.{x}_proj.bias") for x in "qkv"]
            gate_up_bias = [optional(p + f"mlp.{x}_proj.bias") for x in ("gate", "up")]
            self.layers.append(SimpleNamespace(
                input_norm=get(p + "input_layernorm.weight"),
                qkv=torch.cat([get(p + f"self_attn.{x}_proj.weight") for x in "qkv"]),
                qkv_bias=torch.cat(qkv_bias) if all(b is not None for b in qkv_bias) else None,
                o=get(p + "self_attn.o_proj.weight"), o_bias=optional(p + "self_attn.o_proj.bias"),
                post_norm=get(p + "post_attention_layernorm.weight"),
                gate_up=torch.cat([get(p + f"mlp.{x}_proj.weight") for x in ("gate", "up")]),
                gate_up_bias=torch.cat(gate_up_bias) if all(b is not None for b in gate_up_bias) else None,
                down=get(p + "mlp.down_proj.weight"), down_bias=optional(p + "mlp.down_proj.bias"),
            ))
        self.norm = get("model.norm.weight")
        head = weights.pop("lm_head.weight", None)
        if head is None and not config.get("tie_word_embeddings", True):
            raise ValueError(f"{path}: no lm_head.weight and the embeddings are not tied")
        self.head = head.to(dtype) if head is not None else self.embed
        weights.pop("model.rotary_emb.inv_freq", None)
        for layer in range(int(config["num_hidden_layers"])):
            weights.pop(f"model.layers.{layer}.self_attn.rotary_emb.inv_freq", None)
        if weights:
            raise ValueError(f"{path}: weights the lean Llama forward does not use: {sorted(weights)[:5]}")

    @property
    def device(self):
        return self.embed.device

    @classmethod
    def from_transformers(cls, model: Any, reload: Callable[[], Any]) -> "LeanLlama":
        """A transformers Llama model's weights in a LeanLlama (the model is not kept: `reload`
        loads it again for generation). A GGUF file's de-quantised model qualifies: its
        quantization_config only says where the float tensors came from."""
        config = model.config.to_dict()
        if (config.get("quantization_config") or {}).get("quant_method") == "gguf":
            config.pop("quantization_config")
        return cls(config, dict(model.state_dict()), str(getattr(model, "name_or_path", "")), model.dtype,
                   reload=reload)

    def transformers_model(self):
        """The same checkpoint as transformers' model (for generation)."""
        if self._reload is not None:
            return self._reload()
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(self.path, dtype=self.dtype).eval()

    # ------------------------------------------------------------------ forward
    def _norm(self, x, weight):
        import torch

        dtype = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * x.to(dtype)

    def _rotate(self, x, cos, sin):
        import torch

        half = x.shape[-1] // 2
        return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin

    def _attend(self, q, k, v, mask, is_causal):
        import torch.nn.functional as F

        if self.kv_heads != self.heads:
            if mask is None:  # as transformers does: GQA in the kernel only without a mask
                return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal, scale=self.head_dim ** -0.5,
                                                      enable_gqa=True)
            groups = self.heads // self.kv_heads
            b, h, t, d = k.shape
            k = k[:, :, None].expand(b, h, groups, t, d).reshape(b, h * groups, t, d)
            v = v[:, :, None].expand(b, h, groups, t, d).reshape(b, h * groups, t, d)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                              scale=self.head_dim ** -0.5)

    def _qkv(self, layer, h):
        import torch.nn.functional as F

        qkv = F.linear(h, layer.qkv, layer.qkv_bias)
        hd = self.head_dim
        return qkv.split([self.heads * hd, self.kv_heads * hd, self.kv_heads * hd], dim=-1)

    def _mlp(self, layer, h):
        import torch.nn.functional as F

        gate, up = F.linear(h, layer.gate_up, layer.gate_up_bias).split([self.intermediate] * 2, dim=-1)
        return F.linear(F.silu(gate) * up, layer.down, layer.down_bias)

    def hidden_at(self, input_ids, attention_mask, position_ids, rows, positions):
        """Final-normed hidden states at (rows[i], positions[i]): shape (len(rows), hidden).

        attention_mask is either transformers' 2D padding mask (1 = token), with
        position_ids None, or a 4D additive float mask with explicit position_ids
        (the packed choices of HFBackend._pack_inputs).
        """
        import torch
        import torch.nn.functional as F

        batch, width = input_ids.shape
        device = input_ids.device
        if len(rows) == 0:
            return self.embed.new_zeros((0, self.embed.shape[1]))
        if position_ids is None:
            position_ids = torch.arange(width, device=device).expand(batch, width)
        mask, is_causal = attention_mask, False
        if attention_mask.dim() == 2:
            if bool(attention_mask.all()):
                mask, is_causal = None, width > 1
            else:
                causal = torch.ones((width, width), dtype=torch.bool, device=device).tril()
                mask = causal[None, None] & attention_mask.bool()[:, None, None, :]
        freqs = position_ids[..., None].float() * self.inv_freq.to(device)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(self.dtype), emb.sin().to(self.dtype)

        # the query positions the last layer needs: unique (row, position), padded per row
        flat = rows * width + positions
        unique, inverse = torch.unique(flat, return_inverse=True)
        sel_rows, sel_pos = unique // width, unique % width
        counts = torch.bincount(sel_rows, minlength=batch)
        starts = torch.cumsum(counts, 0) - counts
        slots = torch.arange(len(unique), device=device) - starts[sel_rows]
        picked = torch.zeros((batch, int(counts.max())), dtype=torch.long, device=device)
        picked[sel_rows, slots] = sel_pos

        hd = self.head_dim
        x = F.embedding(input_ids, self.embed)
        cos_b, sin_b = cos[:, None], sin[:, None]
        for n, layer in enumerate(self.layers):
            last = n == len(self.layers) - 1
            h = self._norm(x, layer.input_norm)
            q, k, v = self._qkv(layer, h)
            k = self._rotate(k.view(batch, width, -1, hd).transpose(1, 2), cos_b, sin_b)
            v = v.view(batch, width, -1, hd).transpose(1, 2)
            if not last:
                q = self._rotate(q.view(batch, width, -1, hd).transpose(1, 2), cos_b, sin_b)
                out = self._attend(q, k, v, mask, is_causal)
                x = x + F.linear(out.transpose(1, 2).reshape(batch, width, -1), layer.o, layer.o_bias)
                x = x + self._mlp(layer, self._norm(x, layer.post_norm))
                continue
            # last layer: queries, attention output and MLP at the picked positions only
            s = picked.shape[1]
            take = picked[:, :, None]
            q = q.gather(1, take.expand(batch, s, q.shape[-1])).view(batch, s, -1, hd).transpose(1, 2)
            q = self._rotate(q, cos.gather(1, take.expand(batch, s, hd))[:, None],
                             sin.gather(1, take.expand(batch, s, hd))[:, None])
            if mask is None:  # causal over token indices
                keys = torch.arange(width, device=device)
                picked_mask = (keys[None, None, None, :] <= picked[:, None, :, None])
            else:
                picked_mask = mask.expand(batch, 1, width, width).gather(
                    2, picked[:, None, :, None].expand(batch, 1, s, width))
            out = self._attend(q, k, v, picked_mask, False)
            x = x.gather(1, take.expand(batch, s, x.shape[-1]))
            x = x + F.linear(out.transpose(1, 2).reshape(batch, s, -1), layer.o, layer.o_bias)
            x = x + self._mlp(layer, self._norm(x, layer.post_norm))
        x = self._norm(x, self.norm)
        return x[sel_rows, slots][inverse]

    def logits(self, hidden):
        import torch.nn.functional as F

        return F.linear(hidden, self.head)
