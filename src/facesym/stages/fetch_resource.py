"""Fetch-resource stage: one declared third-party resource, fetched and verified, then stamped."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from facesym.resources import fetch_resource, write_stamp


def run(inputs: Mapping, outputs: Mapping, cfg: Mapping, log: logging.Logger) -> None:
    """Fetch resource ``cfg["rid"]`` into the cache (mirror first) and write its stamp.

    Without ``resources.mirror`` the mirror is ``$FACESYM_MIRROR``: where a file comes from is
    the machine's business, not the study's (every file is checked against its pinned
    checksum), so changing it must not re-run the study.
    """
    rid, cache = cfg["rid"], cfg["resources"]["cache_dir"]
    sums = fetch_resource(rid, cache, cfg["resources"]["mirror"] or None)
    log.info("resource %s: %d files verified", rid, len(sums))
    write_stamp(rid, cache, outputs["stamp"], sums)
