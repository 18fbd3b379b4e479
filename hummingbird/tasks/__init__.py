"""Dense tasks beyond semantic segmentation on the same memory and decoder: depth (:mod:`.depth`) and video
label propagation (:mod:`.video`)."""
