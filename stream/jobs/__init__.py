"""Many videos, or one long one, converted by several workers: a job of tasks, resumable.

A *job* is one ``stylize convert`` run over many inputs (or one input on several workers). It is
planned on the machine that runs the command (:mod:`~stream.jobs.plan`: inputs probed, long videos
split into segments at keyframes), its tasks (a whole file, or one segment) run on workers that
each load the model and the style once (:mod:`~stream.jobs.worker`): in this process one after
another, or on Ray actors (:mod:`~stream.jobs.ray_pool`, the only module that imports Ray), and
segments are joined without re-encoding (:mod:`~stream.jobs.join`). A manifest in the output folder
(:mod:`~stream.jobs.manifest`) records every finished output with its size and sha256, so a re-run
skips what was done and verified and redoes the rest (:mod:`~stream.jobs.job`).
"""
