rule classify:
    """Run one classifier on one shard's rendered images: prob[face, side, strength, label] on
    the canonical label set (and its logits) as a Zarr cube."""
    input:
        renders=f"{RESULTS}/renders/{{shard}}.zarr",
        weights=classifier_weights,
    output:
        cube=directory(f"{RESULTS}/classify/{{classifier}}/{{shard}}.zarr"),
    params:
        cfg=lambda wc: stage_config(
            config,
            "classify",
            classifier=wc.classifier,
            zoo_entry=zoo_entry(wc.classifier, ZOO),
            faces=shard_faces(wc),
        ),
    wildcard_constraints:
        classifier="[A-Za-z0-9_.-]+",
        shard=r"shard-\d+",
    log:
        f"{RESULTS}/logs/classify_{{classifier}}_{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/classify_{{classifier}}_{{shard}}.tsv"
    conda:
        "../envs/classify.yaml"
    resources:
        mem_mb=6000,
        runtime=60,
        gpu=1 if config["classify"]["device"].startswith("cuda") else 0,
    threads: 1
    priority: classify_priority
    script:
        "../scripts/run_stage.py"
