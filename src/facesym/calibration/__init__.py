"""Opt-in calibration of expression prototypes against classifiers, with honest hold-outs.

A seeded search over each emotion's AU intensities within FACS-plausible bounds maximises how
well a *search set* of classifiers recognises the emotion on *calibration identities*, then
reports recognition on held-out identities and (leave-one-classifier-out) on the classifiers
each search did not see. Modules:

- :mod:`~facesym.calibration.settings`: the ``calibration`` config section, bounds, AUs;
- :mod:`~facesym.calibration.search`: the shared design + per-fold CMA-ES search;
- :mod:`~facesym.calibration.evaluate`: render identities at a = 0 and score classifiers;
- :mod:`~facesym.calibration.report`: recognition tables and the prototypes file;
- :mod:`~facesym.calibration.run`: :func:`run_calibration`, the entry point;
- :mod:`~facesym.calibration.cli`: the ``facesym calibrate`` arguments.
"""

from facesym.calibration.report import read_prototypes_file
from facesym.calibration.run import CalibrationResult, run_calibration
from facesym.calibration.settings import CalibrationSettings, calibration_settings

__all__ = ["CalibrationResult", "CalibrationSettings", "calibration_settings",
           "read_prototypes_file", "run_calibration"]
