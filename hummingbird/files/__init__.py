"""Files a job writes or a user writes by hand: atomic writes (:mod:`~hummingbird.files.atomic`), one
writer per output (:mod:`~hummingbird.files.locking`), ``.safetensors`` files with a metadata record
(:mod:`~hummingbird.files.tensorfile`) and the reader of hand-written text files
(:mod:`~hummingbird.files.textfiles`)."""
