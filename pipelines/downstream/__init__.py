"""The downstream stages of the pipeline: a trained tokenizer's codes and the second-stage tasks on them.

- ``codes`` (stage ``codes@<run>``): the pipeline's ``data/shards`` encoded by ``models/<run>`` into
  ``data/codes/<run>`` (``lgvq_downstream.codes.encode_shards``).
- ``caption``, ``vqa``, ``ground``, ``retrieve`` (stages ``<task>@<run>``): one module each, all run by
  ``task.run_stage``: train the task's second-stage model on the train split of the codes under Ray Train
  (``ray_task``; checkpoints, resume), evaluate it on the test split next to the task's trivial baseline and
  the shuffled-codes control, write ``models/downstream/<task>-<run>/``,
  ``reports/downstream/<task>-<run>.json`` and ``reports/downstream/<task>-<run>.png``.
- ``report``: the downstream section of ``reports/report.md`` (``pipelines.report`` calls it).

Settings: the ``downstream`` section of ``params.yaml`` (``params.DownstreamParams``).
"""
