rule render:
    """Apply the symmetry intervention and its control on the strength grid and render every
    face into image[face, side, strength, y, x, channel], with symmetry scores and face boxes."""
    input:
        model=rules.face_model.output.model,
        scenes=rules.scenes.output.scenes,
    output:
        renders=directory(f"{RESULTS}/renders.zarr"),
    params:
        cfg=stage_config(config, "render"),
    log:
        f"{RESULTS}/logs/render.log",
    benchmark:
        f"{RESULTS}/benchmarks/render.tsv"
    conda:
        "../envs/render.yaml"
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1 if config["render"]["device"].startswith("cuda") else 0,
    threads: 2
    script:
        "../scripts/run_stage.py"
