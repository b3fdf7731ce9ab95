"""ChestX-ray14 multi-label classification as a DVC pipeline.

Subpackages follow the pipeline: ``core`` (params, paths, errors, atomic
writes, the stage runner), ``nih`` (the ChestX-ray14 label schema and dataset
folder layout), ``acquire`` (the download stage's sources), ``data`` (splits,
statistics, image preprocessing, the tf.data input), ``model`` (network,
loss, training, the saved model), ``evaluation`` (metrics and report) and
``explain`` (Grad-CAM and localisation). ``predict`` serves the command line.
"""
