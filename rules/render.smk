rule render:
    """Apply the symmetry intervention and its control on the strength grid and render one
    shard's faces into image[face, side, strength, y, x, channel], with symmetry scores and
    face boxes."""
    input:
        model=rules.face_model.output.model,
        scenes=f"{RESULTS}/scenes/{{shard}}.zarr",
    output:
        renders=directory(f"{RESULTS}/renders/{{shard}}.zarr"),
    params:
        cfg=lambda wc: stage_config(config, "render", faces=shard_faces(wc)),
    wildcard_constraints:
        shard=r"shard-\d+",
    log:
        f"{RESULTS}/logs/render_{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/render_{{shard}}.tsv"
    conda:
        "../envs/render.yaml"
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1 if config["render"]["device"].startswith("cuda") else 0,
    # one thread a job: a study's shards render side by side, and the classify jobs of the
    # first shard start while the next one renders
    threads: 1
    priority: 10
    script:
        "../scripts/run_stage.py"
