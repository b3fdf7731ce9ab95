"""The download stage: sources that produce a dataset folder in NIH layout."""
