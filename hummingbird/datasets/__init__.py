"""Annotated images: dataset layouts (:mod:`~hummingbird.datasets.base` and one module per layout, opened by
name through :mod:`~hummingbird.datasets.registry`), in-memory examples (:mod:`~hummingbird.datasets.examples`),
image reading (:mod:`~hummingbird.datasets.imageio`), paired transforms (:mod:`~hummingbird.datasets.transforms`),
batches (:mod:`~hummingbird.datasets.loader`), label conventions as data (:mod:`~hummingbird.datasets.classes`,
:mod:`~hummingbird.datasets.palettes`), the official file sets (:mod:`~hummingbird.datasets.filesets`),
checks (:mod:`~hummingbird.datasets.validation`), downloads and conversion (:mod:`hummingbird.datasets.prepare`)
a generated demo dataset (:mod:`~hummingbird.datasets.synthetic`) and videos with object masks
(:mod:`~hummingbird.datasets.davis`)."""
