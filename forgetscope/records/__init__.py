"""The records: one row per (checkpoint, task, item, repeat), its schema, its store, and its key encoders.

schema.py     the one table's columns and types
store.py      Parquet files under a results directory (also the cache)
fsstore.py    the same at a URL (s3://, gs://, file://) without a lock
codes.py      integer codes of key columns (fast joins and group-bys at 10M rows)
strings.py    exact hashing of text columns, for codes.py
margins.py    decision margins computed from the per-choice lists
checkpoint_order.py   which checkpoint came first, recorded beside the records
tempfiles.py, memory.py   atomic writes' temporaries; memory of large reads

Records know no model: nothing here imports a backend, the engine or the analysis.
"""
