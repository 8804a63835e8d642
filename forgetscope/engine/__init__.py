"""Items × checkpoint → records: evaluation with caching and resume, and what is built on it.

evaluate.py      score every item of the tasks, write records (cached, resumable)
executor.py      who scores the (checkpoint, task, chunk) units: this process, or
ray_executor.py  the workers of a Ray cluster (docs/cluster.md)
units.py         what both share: jobs, unit reports, ExecutorError, WorkerLostError
fingerprint.py   content hashes that identify a checkpoint in the cache
compare.py       two sides (models or stored records) → records → analysis
noise.py         one checkpoint under two settings: the noise floor
results.py       stored results as an ordered sequence of checkpoints
"""
