"""Dense FUNGI: per-patch self-supervised gradients of a frozen ViT, randomly projected and
concatenated with its patch tokens, as retrieval features for the Hummingbird decoder."""
