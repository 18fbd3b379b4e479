"""Scores and protocols: metrics (:mod:`~hummingbird.evaluation.metrics`), protocol presets
(:mod:`~hummingbird.evaluation.protocols`), the linear-probe and overclustering algorithms
(:mod:`~hummingbird.evaluation.probes`), agreement with a peer's answers (:mod:`~hummingbird.evaluation.fidelity`),
predictions saved while scoring (:mod:`~hummingbird.evaluation.saved_predictions`) the printed table
(:mod:`~hummingbird.evaluation.results`), depth metrics (:mod:`~hummingbird.evaluation.depth_metrics`) and video
J&F (:mod:`~hummingbird.evaluation.davis_metrics`)."""
