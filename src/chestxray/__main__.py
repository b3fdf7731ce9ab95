"""Command line: ``python -m chestxray predict IMAGE_OR_FOLDER...``."""
import argparse
import sys

from chestxray import predict
from chestxray.gradcam import DEFAULT_LAYER
from chestxray.labels import FINDINGS
from chestxray.stage import run_stage


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
    command.add_argument("--model", default="outputs/model.keras", help="trained model")
    command.add_argument("--stats", default="outputs/stats.json",
                         help="JSON with the training pixel_mean and pixel_std")
    command.add_argument("--out", default="predictions.csv",
                         help="output file, .csv or .json (default: predictions.csv)")
    command.add_argument("--gradcam", metavar="DIR",
                         help="also write Grad-CAM overlays of the top findings into DIR")
    command.add_argument("--top", type=int, default=3,
                         help="findings per image with an overlay (default: 3)")
    command.add_argument("--layer", default=DEFAULT_LAYER,
                         help=f"layer explained by Grad-CAM (default: {DEFAULT_LAYER})")
    command.add_argument("--batch-size", type=int, default=32, help="images per model call")
    return program


def main(argv=None):
    """Parse ``argv`` and run the command; exits with its status."""
    arguments = parser().parse_args(argv)
    if not 1 <= arguments.top <= len(FINDINGS) or arguments.batch_size < 1:
        raise predict.PredictError(f"--top must be in [1, {len(FINDINGS)}] and "
                                   "--batch-size at least 1")
    predict.check_output_path(arguments.out)
    pixel_stats = predict.read_pixel_stats(arguments.stats)
    model = predict.load_model(arguments.model)
    sys.exit(predict.run(arguments.inputs, model, pixel_stats, arguments.out,
                         gradcam_dir=arguments.gradcam, top=arguments.top,
                         layer=arguments.layer, batch_size=arguments.batch_size))


if __name__ == "__main__":
    run_stage(main)
