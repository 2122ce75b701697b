rule face_model:
    """Load the morphable face model's source files, triangulate, pair mirror vertices and cache
    it as one compact array file."""
    input:
        unpack(face_model_inputs),
    output:
        model=f"{RESULTS}/face_model/{config['face_model']['name']}.npz",
    params:
        cfg=stage_config(config, "face_model"),
    log:
        f"{RESULTS}/logs/face_model.log",
    benchmark:
        f"{RESULTS}/benchmarks/face_model.tsv"
    conda:
        "../envs/core.yaml"
    resources:
        mem_mb=6000,
        runtime=20,
    threads: 2
    script:
        "../scripts/run_stage.py"
