"""The rank entry point: what `python -m fasttrain.run` and `torchrun ... -m fasttrain.run` execute in every rank.

    python -m fasttrain.run --profile smoke --accelerator cpu --devices 2 --record build/r.json
    python -m fasttrain.run --config my.yaml --lr 0.2          # a file, then flags on top
    torchrun --standalone --nproc-per-node 2 -m fasttrain.run --devices 2 --profile smoke --record build/r.json

The job itself is `fasttrain.rank.job`; this module only runs it and exits.
"""

from __future__ import annotations

import os
import sys

from fasttrain.rank.job import main

if __name__ == "__main__":
    code = main()  # an error raises on, with its traceback, through the usual exit
    # The record is written and the process group closed: skip the interpreter's teardown of torch and
    # Lightning (~1.5 s per rank on the 2-core machine, freeing memory the OS takes back anyway).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
