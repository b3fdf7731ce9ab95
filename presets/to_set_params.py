"""Print a preset file's values as `dvc exp run` arguments: -S section.key=value ...

Usage: dvc exp run $(python presets/to_set_params.py presets/gpu-full.yaml)
"""
import sys

import yaml


def set_param_arguments(preset):
    """``-S section.key=value`` arguments (YAML-formatted values) for a {section: {key: value}} dict."""
    return [f"-S {section}.{key}={yaml.safe_dump(value, default_flow_style=True).strip()}"
            .removesuffix("\n...") for section, values in preset.items()
            for key, value in values.items()]


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        print(" ".join(set_param_arguments(yaml.safe_load(handle))))
