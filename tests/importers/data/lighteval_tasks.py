"""lighteval custom tasks for the fixtures (used by make_fixtures.py; needs lighteval, not a test).

`quiz` is the same 32 four-choice items as the lm-eval fixtures (one task,
no group), scored with acc and char-normalised acc; `arith_gen` the same 8
generative items with exact match. Data directories come from the
FS_LIGHTEVAL_DATA environment variable (each holds a test.jsonl).
"""

import os

from lighteval.metrics.dynamic_metrics import LogLikelihoodAccMetric
from lighteval.metrics.metrics import Metrics
from lighteval.metrics.normalizations import LogProbCharNorm
from lighteval.tasks.lighteval_task import LightevalTaskConfig
from lighteval.tasks.requests import Doc

DATA = os.environ["FS_LIGHTEVAL_DATA"]


def quiz_prompt(line: dict, task_name: str | None = None) -> Doc:
    # the same context and continuations as the lm-eval task and forgetscope's default template
    return Doc(task_name=task_name, query=f"Question: {line['question']}\nAnswer:",
               choices=[f" {c}" for c in line["choices"]], gold_index=line["answer"])


def gen_prompt(line: dict, task_name: str | None = None) -> Doc:
    return Doc(task_name=task_name, query=line["prompt"], choices=[line["answer"]], gold_index=0)


quiz = LightevalTaskConfig(
    name="quiz", prompt_function=quiz_prompt, hf_repo=f"{DATA}/quiz", hf_subset="default",
    hf_avail_splits=["test"], evaluation_splits=["test"], few_shots_split=None, few_shots_select=None,
    metrics=[Metrics.loglikelihood_acc, LogLikelihoodAccMetric(normalization=LogProbCharNorm())], version=0,
)
arith_gen = LightevalTaskConfig(
    name="arith_gen", prompt_function=gen_prompt, hf_repo=f"{DATA}/arith_gen", hf_subset="default",
    hf_avail_splits=["test"], evaluation_splits=["test"], few_shots_split=None, few_shots_select=None,
    generation_size=8, stop_sequence=["\n"], metrics=[Metrics.exact_match], version=0,
)
TASKS_TABLE = [quiz, arith_gen]
