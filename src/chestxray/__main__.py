"""Command line: ``python -m chestxray predict IMAGE_OR_FOLDER...``."""
import argparse
import sys

from chestxray import predict
from chestxray.core.paths import MODEL_FILE
from chestxray.core.stage import run_stage
from chestxray.explain.gradcam import DEFAULT_LAYER
from chestxray.model.saved import load_model
from chestxray.nih.labels import FINDINGS


def parser():
    """The argument parser of ``python -m chestxray``."""
    program = argparse.ArgumentParser(prog="python -m chestxray")
    commands = program.add_subparsers(dest="command", required=True)
    command = commands.add_parser(
        "predict", help="probabilities of the 14 findings for PNG/JPEG radiographs",
        description="Score radiographs with the trained model. Unreadable files are "
                    "reported on stderr and skipped; the exit status is 1 if any failed.")
    command.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER",
                         help="image files, or folders searched recursively for PNG/JPEG")
    command.add_argument("--model", default=str(MODEL_FILE),
                         help=f"trained model; it records its own preprocessing "
                              f"(default: {MODEL_FILE})")
    command.add_argument("--out", default="predictions.csv",
                         help="output file, .csv or .json (default: predictions.csv)")
    command.add_argument("--gradcam", metavar="DIR",
                         help="also write Grad-CAM overlays of the top findings into DIR")
    command.add_argument("--top", type=int, default=3,
                         help="findings per image with an overlay (default: 3)")
    command.add_argument("--layer", default=DEFAULT_LAYER,
                         help="layer explained by Grad-CAM (default: the backbone's last feature "
                         "map)")
    command.add_argument("--batch-size", type=int, default=32, help="images per model call")
    return program


def main(argv=None):
    """Parse ``argv`` and run the command; exits with its status."""
    arguments = parser().parse_args(argv)
    if not 1 <= arguments.top <= len(FINDINGS) or arguments.batch_size < 1:
        raise predict.PredictError(f"--top must be in [1, {len(FINDINGS)}] and "
                                   "--batch-size at least 1")
    predict.check_output_path(arguments.out)
    model, preprocessing = load_model(arguments.model)
    sys.exit(predict.run(arguments.inputs, model, preprocessing, arguments.out,
                         gradcam_dir=arguments.gradcam, top=arguments.top,
                         layer=arguments.layer, batch_size=arguments.batch_size))


if __name__ == "__main__":
    run_stage(main)
