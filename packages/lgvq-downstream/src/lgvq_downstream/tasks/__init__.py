"""Downstream tasks on tokenizer codes; one subpackage per task (``build``, ``train``, ``evaluate``,
save/load, a CLI subcommand), sharing :mod:`lgvq_downstream.tasks.common`."""
