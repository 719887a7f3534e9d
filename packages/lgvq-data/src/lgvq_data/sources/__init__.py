"""Dataset sources: each module turns a raw layout into schema-v1 rows (``records``) and shards
(``build``)."""
