"""storage stage of the pipeline."""
