"""Snakemake entry point of every rule: run ``facesym.stages.<rule>`` on the job's files/params."""

import sys
from pathlib import Path

# the package from this checkout, also inside per-rule conda envs that lack it
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

from facesym.stages.runner import run_job  # noqa: E402

run_job(snakemake)  # noqa: F821
