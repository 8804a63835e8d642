"""Per-item acc/acc_norm agree with lm-evaluation-harness (optional: needs lm-eval somewhere).

lm-eval is not a dependency. The test runs when `lm_eval` imports here, or when
FORGETSCOPE_LMEVAL_PYTHON points at a Python that has it (see benchmarks/setup_lmeval.sh).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
LMEVAL_PYTHON = os.environ.get("FORGETSCOPE_LMEVAL_PYTHON") or (
    sys.executable if importlib.util.find_spec("lm_eval") else None
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(LMEVAL_PYTHON is None,
                       reason="lm-evaluation-harness not installed (set FORGETSCOPE_LMEVAL_PYTHON)"),
]


def test_per_item_agreement_with_lm_eval(tmp_path, tiny_llama_dir):
    items = tmp_path / "items.jsonl"
    rows = [{"id": f"q{i}", "question": f"What is {i} + {i % 7}?",
             "choices": [str(i + i % 7), str(i + i % 7 + 1), "seven", f"{i}{i}"], "answer": 0}
            for i in range(40)]
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "agreement.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "eval_vs_lmeval.py"), "--model", str(tiny_llama_dir),
                    "--items", str(items), "--lm-eval-python", LMEVAL_PYTHON, "--json", str(out)], check=True)
    figures = json.loads(out.read_text())
    assert figures["items"] == 40
    assert figures["acc_agreement"] == 1.0 and figures["acc_norm_agreement"] == 1.0
    assert figures["max_abs_loglikelihood_diff"] < 1e-4
