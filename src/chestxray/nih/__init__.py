"""NIH ChestX-ray14 itself: its 14 findings and the layout of a dataset folder."""
