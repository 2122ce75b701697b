rule fetch_resource:
    """Fetch a declared third-party resource (mirror, registry or upstream) and verify every file
    against its pinned SHA-256."""
    output:
        stamp=f"{CACHE}/{{rid}}.verified.json",
    params:
        cache=lambda wildcards, output: os.path.dirname(output.stamp),
        mirror=MIRROR,
    log:
        f"{RESULTS}/logs/fetch_{{rid}}.log",
    conda:
        "../envs/fetch.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    threads: 1
    script:
        "../scripts/fetch_resource.py"
