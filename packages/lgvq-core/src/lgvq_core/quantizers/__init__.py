"""Quantizers: one file per kind, one output type (:class:`lgvq_core.outputs.QuantizerOutput`)."""
