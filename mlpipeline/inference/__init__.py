"""The models the pipeline runs: one class per model, each in its own module, holding all
of that model's facts (see :mod:`.base`), and one registry of them (:mod:`.registry`)."""
