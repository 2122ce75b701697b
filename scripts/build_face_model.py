"""Snakemake entry point: build the face model cache (ICT from its resource, or your FLAME)."""

import sys
from pathlib import Path

# the package from this checkout, also inside per-rule conda envs that lack it
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

from pathlib import Path

from facesym.logs import logged

smk = snakemake  # noqa: F821
with logged(smk.log[0]) as log:
    fm = smk.params.cfg["face_model"]
    if fm["name"] == "flame":
        from facesym.facemodel.flame import build_flame_model

        flame = fm["flame"]
        model = build_flame_model(
            smk.input.flame, identity_modes=fm["identity_modes"],
            expression_modes=flame["expression_modes"], landmarks=flame["landmarks"],
            mirror_tolerance_cm=flame["mirror_tolerance_cm"],
        )
    else:
        from facesym.facemodel.ict import build_ict_model
        from facesym.resources import get_resource, verify_resource

        cache = Path(smk.params.cache)
        verify_resource(get_resource("ict_facekit"), cache)
        model = build_ict_model(cache / "ict_facekit" / "FaceXModel",
                                identity_modes=fm["identity_modes"], progress=log.info)
        model.meta["resource_stamp"] = Path(smk.input.stamp).read_text()
    from facesym.provenance import provenance_attrs

    source = {"flame": smk.input.flame} if fm["name"] == "flame" else {"stamp": smk.input.stamp}
    model.meta["provenance"] = provenance_attrs("face_model", smk.params.cfg, inputs=source)
    model.save(smk.output.model)
    log.info("face model %s: %d vertices, %d triangles, %d expression shapes, %d identity modes",
             model.name, model.n_vertices, len(model.triangles), len(model.expression_names),
             len(model.identity))
