"""detection stage of the pipeline."""
