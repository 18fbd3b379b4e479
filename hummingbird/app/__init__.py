"""``hummingbird label``: a local web app to paint a few masks and watch the other images segment.

:mod:`~hummingbird.app.state` keeps the annotations on disk, :mod:`~hummingbird.app.features` the query
features, :mod:`~hummingbird.app.session` the labelling loop over a :class:`hummingbird.Segmenter`,
:mod:`~hummingbird.app.export` writes a dataset and a bank, and :mod:`~hummingbird.app.server` serves the page
(``static/``) and its HTTP API.
"""
