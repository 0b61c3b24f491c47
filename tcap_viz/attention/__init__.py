"""attention stage of the pipeline."""
