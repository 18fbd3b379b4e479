"""What a user sees: overlays, legends and neighbour grids (:mod:`~hummingbird.visual.render`), why a patch got
its label (:mod:`~hummingbird.visual.neighbours`, :mod:`~hummingbird.visual.geometry`,
:mod:`~hummingbird.visual.sources`), the static neighbour viewer (:mod:`~hummingbird.visual.viewer`) and
figures of results (:mod:`~hummingbird.visual.plots`; depth: :mod:`~hummingbird.visual.depth`;
video J&F bars: :mod:`~hummingbird.visual.video`)."""
