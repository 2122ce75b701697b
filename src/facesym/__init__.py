"""facesym: causal symmetry interventions on 3D faces and their effect on expression classifiers."""

__version__ = "0.1.0"
