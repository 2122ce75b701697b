rule contact_sheet:
    """A PNG of emotions x sides x strengths for chosen identities, to look at what the
    intervention does."""
    input:
        model=rules.face_model.output.model,
        scenes=contact_sheet_scenes,
    output:
        sheet=report(
            f"{RESULTS}/contact_sheet.png",
            caption="../report/contact_sheet.rst",
            category="Interventions",
        ),
    params:
        cfg=stage_config(config, "contact_sheet"),
    log:
        f"{RESULTS}/logs/contact_sheet.log",
    conda:
        "../envs/render.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    # off the way to the statistics: one thread, scheduled among the classify jobs (after the
    # renders) so that it does not lengthen the tail after the last classify job
    threads: 1
    priority: 1
    script:
        "../scripts/run_stage.py"
