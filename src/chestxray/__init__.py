"""Reference DVC pipeline for multi-label ChestX-ray14 diagnosis."""
