rule scenes:
    """Sample the SCM's exogenous noise (identity, emotion, intensity, pose, light, appearance,
    camera), one seeded stream per factor and face."""
    input:
        model=rules.face_model.output.model,
    output:
        scenes=directory(f"{RESULTS}/scenes.zarr"),
    params:
        cfg=stage_config(config, "scenes"),
    log:
        f"{RESULTS}/logs/scenes.log",
    conda:
        "../envs/core.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    threads: 1
    script:
        "../scripts/run_stage.py"
