"""One module per Snakemake rule: ``facesym.stages.<rule>.run(inputs, outputs, cfg, log)``.

``inputs``/``outputs`` map the rule's names to paths (or lists of paths), ``cfg`` is exactly the
rule's ``params.cfg`` (see :mod:`facesym.stages.params`) and ``log`` a :class:`logging.Logger`.
A stage reads no other configuration, so its params are its whole dependency map.
"""

STAGES = ("fetch_resource", "face_model", "scenes", "render", "classify", "stats",
          "manipulation_check", "contact_sheet", "photo_cube", "photo_stats")
