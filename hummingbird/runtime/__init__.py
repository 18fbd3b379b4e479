"""How a job runs: ranks, barriers and summed results under ``torchrun``
(:mod:`~hummingbird.runtime.distributed`) and wall time per stage (:mod:`~hummingbird.runtime.profiling`)."""
