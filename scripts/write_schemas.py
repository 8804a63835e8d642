"""Write the JSON Schemas of forgetscope's config files to docs/schemas/, from the config classes themselves.

    python scripts/write_schemas.py          # rewrite docs/schemas/*.json
    python scripts/write_schemas.py --check  # exit 1 if a file is out of date (the test suite checks this too)

Editors use them to complete keys, show each field's documentation and flag a
wrong value while the file is typed (see docs/schemas/README.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "schemas"


def build() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema, for the training run, sweep, task spec and gate configs."""
    from forgetscope.configio import json_schema
    from forgetscope.gate.config import GateFile
    from forgetscope.tasks.spec import TaskSpec
    from forgetscope.train.config import RunConfig
    from forgetscope.train.sweep import SweepConfig

    train = json_schema(RunConfig, "forgetscope training run",
                        "A run config for `forgetscope train` (YAML or TOML): model, tokenizer, sources, stages.")
    sweep = json_schema(SweepConfig, "forgetscope sweep",
                        "A sweep config for `forgetscope sweep`: a base run, a grid over its fields, the evaluation.")
    # `base` is a run config inline (checked like one) or the path of a run config file
    run_def = {k: v for k, v in train.items() if k not in ("$schema", "$defs", "title", "description")}
    sweep["$defs"] = {**sweep.get("$defs", {}), **train.get("$defs", {}), "RunConfig": run_def}
    base = sweep["properties"]["base"]
    sweep["properties"]["base"] = {"anyOf": [{"$ref": "#/$defs/RunConfig"}, {"type": "string"}],
                                   **{k: v for k, v in base.items() if k == "description"}}
    task = json_schema(TaskSpec, "forgetscope task spec",
                       "A task spec for `forgetscope eval --task spec.yaml`: data source, columns, prompt, few-shot.")
    gate = json_schema(GateFile, "forgetscope gate config",
                       "Thresholds for `forgetscope gate --config` (YAML or TOML): defaults, per task, per category.")
    return {"train.schema.json": train, "sweep.schema.json": sweep, "task.schema.json": task,
            "gate.schema.json": gate}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for name, schema in build().items():
        path = SCHEMAS / name
        text = render(schema)
        if "--check" in argv:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python scripts/write_schemas.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
