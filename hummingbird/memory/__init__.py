"""The memory and its decoder: the bank of patch features and targets (:mod:`~hummingbird.memory.bank`,
sharded: :mod:`~hummingbird.memory.shards`, :mod:`~hummingbird.memory.rows`), what a patch stores
(:mod:`~hummingbird.memory.patch_labels`, :mod:`~hummingbird.memory.sampling`), the neighbour search (torch:
:mod:`~hummingbird.memory.search`; faiss: :mod:`~hummingbird.memory.faiss_index`; stored beside its bank:
:mod:`~hummingbird.memory.search_store`), the Hummingbird decoder (:mod:`~hummingbird.memory.decoder`),
images of any shape through it (:mod:`~hummingbird.memory.tiling`), target kinds (:mod:`~hummingbird.memory.targets`)
and a video's context frames with their windowed attention (:mod:`~hummingbird.memory.video_context`)."""
