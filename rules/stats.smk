rule stats:
    """Paired tests per classifier x emotion x side (and against the symmetric control) with
    Holm and max-T corrections, per-classifier omnibus, derivative tests, cluster-robust OLS,
    the laterality report (image-flip control), summary tables and the dose-response figure."""
    input:
        cubes=classify_shards,
        # its provenance says which prototypes made the faces (all shards share them)
        scenes=f"{RESULTS}/scenes/{SHARDS[0]}.zarr",
    output:
        tests=directory(f"{RESULTS}/stats/tests.zarr"),
        csv=f"{RESULTS}/stats/summary.csv",
        md=f"{RESULTS}/stats/summary.md",
        omnibus=f"{RESULTS}/stats/omnibus.csv",
        derivatives=f"{RESULTS}/stats/derivatives.csv",
        ols=f"{RESULTS}/stats/ols.csv",
        laterality=f"{RESULTS}/stats/laterality.csv",
        figure=report(
            f"{RESULTS}/stats/dose_response.png",
            caption="../report/dose_response.rst",
            category="Results",
        ),
        effects=report(
            f"{RESULTS}/stats/effects.png",
            caption="../report/effects.rst",
            category="Results",
        ),
    params:
        cfg=stage_config(config, "stats"),
    log:
        f"{RESULTS}/logs/stats.log",
    conda:
        "../envs/core.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    threads: 1
    script:
        "../scripts/run_stage.py"
