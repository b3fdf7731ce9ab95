"""Grad-CAM heatmaps, their localisation scores against boxes, and overlays."""
