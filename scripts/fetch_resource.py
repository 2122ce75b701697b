"""Snakemake entry point: fetch and verify one declared resource."""

from facesym.logs import logged
from facesym.resources import fetch_resource, write_stamp

with logged(snakemake.log[0]) as log:  # noqa: F821
    rid = snakemake.wildcards.rid  # noqa: F821
    params = snakemake.params  # noqa: F821
    sums = fetch_resource(rid, params.cache, params.mirror or None)
    log.info("resource %s: %d files verified", rid, len(sums))
    write_stamp(rid, params.cache, snakemake.output.stamp, sums)  # noqa: F821
