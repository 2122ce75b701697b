# The real-photo branch, on when photos.manifest is set: manifest -> photo cube -> statistics.
# Inputs, params and the outputs of rule all come from rules/common.smk (PHOTO_*, photo_*).

rule photo_cube:
    """Detect each photo's face and 68 landmarks, score its asymmetry, build its 2D mirror
    composites and run the classifiers: prob[image, classifier, label] as a Zarr cube, and the
    manifest rows that could not be used with their reasons."""
    input:
        manifest=photo_manifest,
        images=photo_images,
        detector=photo_detector_stamps,
        weights=photo_classifier_weights,
    output:
        cube=directory(f"{PHOTOS}/cube.zarr"),
        bad_rows=f"{PHOTOS}/bad_rows.csv",
    params:
        cfg=stage_config(
            config,
            "photo_cube",
            classifiers=PHOTO_CLASSIFIERS,
            zoo_entries={name: zoo_entry(name, ZOO) for name in PHOTO_CLASSIFIERS},
        ),
    log:
        f"{RESULTS}/logs/photo_cube.log",
    benchmark:
        f"{RESULTS}/benchmarks/photo_cube.tsv"
    conda:
        "../envs/photos.yaml"
    resources:
        mem_mb=6000,
        runtime=60,
    threads: 2
    script:
        "../scripts/run_stage.py"


rule photo_stats:
    """Group differences within each expression label (subject-cluster permutation tests),
    GCM tests of output vs asymmetry given the label, photos vs their composites; CSV tables
    and a Markdown summary that counts the skipped manifest rows."""
    input:
        cube=rules.photo_cube.output.cube,
        bad_rows=rules.photo_cube.output.bad_rows,
    output:
        groups=f"{PHOTOS}/groups.csv",
        gcm=f"{PHOTOS}/gcm.csv",
        gcm_correlations=f"{PHOTOS}/gcm_correlations.csv",
        composites=f"{PHOTOS}/composites.csv",
        md=f"{PHOTOS}/summary.md",
    params:
        cfg=stage_config(config, "photo_stats"),
    log:
        f"{RESULTS}/logs/photo_stats.log",
    conda:
        "../envs/core.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    threads: 1
    script:
        "../scripts/run_stage.py"
