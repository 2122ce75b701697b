rule fetch_resource:
    """Fetch a declared third-party resource (mirror, registry or upstream) and verify every file
    against its pinned SHA-256."""
    output:
        stamp=f"{CACHE}/{{rid}}.verified.json",
    params:
        cfg=lambda wc: stage_config(config, "fetch_resource", rid=wc.rid),
    log:
        f"{RESULTS}/logs/fetch_{{rid}}.log",
    conda:
        "../envs/fetch.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    threads: 1
    script:
        "../scripts/run_stage.py"
