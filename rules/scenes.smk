rule scenes:
    """Sample the SCM's exogenous noise (identity, emotion, intensity, pose, light, appearance,
    camera) of one shard's faces, one seeded stream per factor and face."""
    input:
        # expressions.prototypes_file, when set: editing it re-samples (and re-runs downstream)
        unpack(prototypes_input),
        model=rules.face_model.output.model,
    output:
        scenes=directory(f"{RESULTS}/scenes/{{shard}}.zarr"),
    params:
        cfg=lambda wc: stage_config(config, "scenes", faces=shard_faces(wc)),
    wildcard_constraints:
        shard=r"shard-\d+",
    log:
        f"{RESULTS}/logs/scenes_{{shard}}.log",
    conda:
        "../envs/core.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    threads: 1
    script:
        "../scripts/run_stage.py"
