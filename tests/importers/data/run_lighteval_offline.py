"""Run the lighteval CLI with no network (used by make_fixtures.py).

lighteval 0.13 imports every built-in task when its registry loads, and two of
them reach the network at import time, although our custom tasks need neither:

1. tiny_benchmarks fetches a pickle from GitHub: that one request gets a 404;
2. mt_bench checks its LLM-judge model with `HfApi.list_models(model_name=...)`,
   an argument huggingface_hub 1.x no longer has: it is answered "found".

Everything else is the real `lighteval` command line (arguments pass through).
"""

import sys

import huggingface_hub
import requests

_get = requests.get


def _offline_get(url, *args, **kwargs):
    if "tinyBenchmarks" in str(url):
        response = requests.Response()
        response.status_code = 404
        return response
    return _get(url, *args, **kwargs)


requests.get = _offline_get
huggingface_hub.HfApi.list_models = lambda self, *args, **kwargs: ["offline"]

from lighteval.__main__ import app  # noqa: E402

sys.argv[0] = "lighteval"
sys.exit(app())
