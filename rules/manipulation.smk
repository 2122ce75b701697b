rule manipulation_check:
    """How often each classifier recognises the intended emotion on the untouched (a = 0)
    renders, its mean intended-class probability, and the confusion matrices."""
    input:
        cubes=classify_shards,
        # its provenance says which prototypes made the faces (all shards share them)
        scenes=f"{RESULTS}/scenes/{SHARDS[0]}.zarr",
    output:
        csv=f"{RESULTS}/stats/manipulation_check.csv",
        md=f"{RESULTS}/stats/manipulation_check.md",
        figure=report(
            f"{RESULTS}/stats/confusion.png",
            caption="../report/confusion.rst",
            category="Manipulation check",
        ),
    params:
        cfg=stage_config(config, "manipulation_check"),
    log:
        f"{RESULTS}/logs/manipulation_check.log",
    conda:
        "../envs/core.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    threads: 1
    script:
        "../scripts/run_stage.py"
