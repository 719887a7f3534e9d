"""Language guidance: text encoders, semantic and relation alignment, the LanguageGuided wrapper."""
