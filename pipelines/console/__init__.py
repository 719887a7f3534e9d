"""The console of ``make pipeline``: runs ``dvc repro``, keeps its full output in log files and shows a short
account of it.

Per stage one line when it starts and one when it ends (name, wall time, the stage's key figure), a live
progress bar while a training, evaluation or search runs (drawn here from the files the stage writes, see
``pipelines.progress``), a summary of the report at the end, and on a failure the failing stage with the tail
of its log. Everything ``dvc repro`` prints goes to ``reports/logs/dvc.log``, each stage's share of it also to
``reports/logs/<stage>.log``.

One concept per module: ``dvc_output`` (what dvc's lines mean), ``stage_logs`` (where lines are kept),
``watcher`` (following a stage's progress files), ``bar`` and ``lines`` (formatting), ``summary`` (the closing
table), ``terminal`` (the only writer to the screen), ``session`` (the state machine tying them together) and
``runner`` (the ``dvc repro`` child process). ``python -m pipelines.console -- dvc repro ...`` runs it.
"""
