"""Benchmark: how fast this machine is right now, as one number to print beside a CI timing.

Usage: python benchmarks/machine_speed.py [--runs 3]

The same work on this machine took up to 1.9 times as long from one hour to the next, so two
CI timings compare only with the machine's speed at each. The probe is what every stage and
test process starts with: a fresh Python importing TensorFlow, Keras, pandas, scikit-learn,
Matplotlib, DVC and dvclive. Prints the median CPU seconds (user + system) of ``--runs`` such
processes; run it before and after the timing. Bytecode must already be cached (any earlier
import in the environment does it), or the first run measures compiling.
"""
import argparse
import resource
import statistics
import subprocess
import sys

IMPORTS = "import tensorflow, keras, pandas, sklearn.metrics, matplotlib.pyplot, dvc.repo, dvclive"


def cpu_seconds_of_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    seconds = []
    for _ in range(runs):
        before = cpu_seconds_of_children()
        subprocess.run([sys.executable, "-c", IMPORTS], check=True, capture_output=True)
        seconds.append(cpu_seconds_of_children() - before)
    print(f"import probe: median {statistics.median(seconds):.2f} CPU s over {runs} processes "
          f"({', '.join(f'{value:.2f}' for value in seconds)})")


if __name__ == "__main__":
    main()
