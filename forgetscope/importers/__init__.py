"""Per-sample logs of other evaluation tools → forgetscope records.

Teams often already have per-item results from lm-evaluation-harness
(`--log_samples`) or lighteval (`--save-details`). An importer turns those into
rows of the one records table (forgetscope.records.schema) and writes them into the
results store with the layout `forgetscope eval` uses (records.store.RunDir), so
`compare`, `report` and `gate` read them like any other records, without
running a model:

    from forgetscope.importers import read_lmeval, write_run
    run = read_lmeval("lm_eval_out/", checkpoint="step-1000")
    records_dir = write_run(run, "forgetscope-results")

Importers check what they can: correctness is recomputed from the stored
log-likelihoods and must agree with the tool's own per-sample metric, and
every problem is a `LogFormatError` naming the file and line (or row).
"""

from .common import ImportedRun, LogFormatError, write_run
from .inspect import read_inspect
from .lighteval import read_lighteval
from .lmeval import read_lmeval
from .olmes import read_olmes

__all__ = ["ImportedRun", "LogFormatError", "read_inspect", "read_lighteval", "read_lmeval", "read_olmes", "write_run"]
