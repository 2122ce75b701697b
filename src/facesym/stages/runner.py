"""Run the stage of a Snakemake job: what ``scripts/run_stage.py`` calls for every rule."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from typing import Any

from facesym.logs import logged
from facesym.stages import STAGES


def named_files(files: Any) -> dict[str, str | list[str]]:
    """A Snakemake ``input``/``output`` list as {name: path or list of paths}."""
    return {name: value if isinstance(value, str) else [str(v) for v in value]
            for name, value in files.items()}


def limit_threads(threads: int) -> None:
    """Keep torch (when the stage uses it) to the job's threads, as Snakemake scheduled it."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(max(1, int(threads)))


def run_stage(rule: str, inputs: dict, outputs: dict, cfg: dict, log_path: str | None,
              threads: int = 1) -> None:
    """Import ``facesym.stages.<rule>`` and run it with its log file capturing all output."""
    if rule not in STAGES:
        raise KeyError(f"rule {rule!r} has no stage; stages: {', '.join(STAGES)}")
    stage = importlib.import_module(f"facesym.stages.{rule}")
    with logged(log_path) as log:
        limit_threads(threads)
        stage.run(inputs, outputs, cfg, log)


def run_job(job: Any) -> None:
    """Run the Snakemake job ``job`` (the ``snakemake`` object a script receives)."""
    logs: Iterable[str] = job.log
    run_stage(job.rule, named_files(job.input), named_files(job.output), job.params.cfg,
              next(iter(logs), None), job.threads)
