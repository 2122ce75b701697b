"""Send a job's output (prints, progress bars, warnings, tracebacks) to its log file."""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def logged(path: str | Path | None) -> Iterator[logging.Logger]:
    """Redirect stdout/stderr into ``path`` for the block; log and re-raise any exception."""
    logger = logging.getLogger("facesym")
    if path is None:
        yield logger
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as fh, contextlib.redirect_stdout(fh), \
            contextlib.redirect_stderr(fh):
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            yield logger
        except BaseException:
            traceback.print_exc(file=fh)
            raise
        finally:
            logger.removeHandler(handler)
