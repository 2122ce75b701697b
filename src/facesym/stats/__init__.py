"""Statistics of the symmetry intervention's effect on classifier outputs.

- :mod:`~facesym.stats.paired`: one paired test (differences, Wilcoxon, t, BCa CI, effect sizes)
  and the family correction;
- :mod:`~facesym.stats.family`: the family of tests over classifier × emotion × comparison with
  the max-T permutation test and the per-classifier omnibus;
- :mod:`~facesym.stats.location`: the Hodges–Lehmann shift and its Wilcoxon-inverted CI;
- :mod:`~facesym.stats.tables`: the family as tables (summary, omnibus, headline counts);
- :mod:`~facesym.stats.verdict`: the plain answer per classifier and its rules;
- :mod:`~facesym.stats.markdown`: the tables as Markdown;
- :mod:`~facesym.stats.manipulation`: the manipulation check on the untouched renders;
- :mod:`~facesym.stats.dose`: derivative tests and clustered OLS along the strength;
- :mod:`~facesym.stats.synthetic`: a cube with known effects, to try all of it on.
"""

from facesym.stats.dose import dose_response_tables
from facesym.stats.family import (
    DEFAULT_EQUIVALENCE_MARGIN,
    DEFAULT_FLOOR,
    FAMILY_DIMS,
    effect_tests,
    untested_reasons,
)
from facesym.stats.location import hodges_lehmann
from facesym.stats.manipulation import confusion_matrices, manipulation_check
from facesym.stats.markdown import manipulation_markdown, summary_markdown
from facesym.stats.paired import (
    METRICS,
    bca_interval,
    bootstrap_seed,
    correct,
    intended_probability,
    paired_differences,
    paired_test,
    reference_probability,
)
from facesym.stats.synthetic import synthetic_cube
from facesym.stats.tables import headline_counts, omnibus_table, summary_table
from facesym.stats.verdict import verdicts

__all__ = [
    "DEFAULT_EQUIVALENCE_MARGIN", "DEFAULT_FLOOR", "FAMILY_DIMS", "METRICS", "bca_interval",
    "bootstrap_seed", "confusion_matrices", "correct", "dose_response_tables", "effect_tests",
    "headline_counts", "hodges_lehmann", "intended_probability", "manipulation_check",
    "manipulation_markdown", "omnibus_table", "paired_differences", "paired_test",
    "reference_probability", "summary_markdown", "summary_table", "synthetic_cube",
    "untested_reasons", "verdicts",
]

from facesym.stats.realdata import group_difference  # noqa: E402
from facesym.stats.realdata_gcm import gcm_test  # noqa: E402
from facesym.stats.realdata_tables import realdata_markdown, realdata_tables  # noqa: E402

__all__ += ["gcm_test", "group_difference", "realdata_markdown", "realdata_tables"]
