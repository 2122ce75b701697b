"""Snakemake entry point: fetch and verify one declared resource."""

import sys
from pathlib import Path

# the package from this checkout, also inside per-rule conda envs that lack it
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

from facesym.logs import logged
from facesym.resources import fetch_resource, write_stamp

with logged(snakemake.log[0]) as log:  # noqa: F821
    rid = snakemake.wildcards.rid  # noqa: F821
    params = snakemake.params  # noqa: F821
    sums = fetch_resource(rid, params.cache, params.mirror or None)
    log.info("resource %s: %d files verified", rid, len(sums))
    write_stamp(rid, params.cache, snakemake.output.stamp, sums)  # noqa: F821
