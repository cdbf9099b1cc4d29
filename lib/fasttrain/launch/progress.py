"""A job's progress in the notebook: one tqdm bar (a widget in JupyterLab, text under papermill and in a
terminal) fed by rank 0's progress lines, and one summary line when the job is done. The full log stays
in the run folder."""

from __future__ import annotations

import os
import re
import sys

from fasttrain.rundir import ENV_PROGRESS

STEP = re.compile(r"^\[fasttrain\] step (\d+)/(\d+)\s+loss (\S+)\s+([\d,.]+) img/s")
VALIDATION = re.compile(r"^\[fasttrain\] validation at step (\d+): accuracy (\S+)")
SAID = ("[fasttrain] warning", "fasttrain:")  # what a rank says to the learner, beside the bar
RESUMED = re.compile(r"^\[fasttrain\] resumed from the checkpoint at step (\d+)/")


def _bar_class():
    """tqdm.auto's choice (a widget in a notebook), unless FASTTRAIN_PROGRESS=text asks for plain text:
    an executed notebook keeps a widget's first frame only, so papermill runs set it."""
    if os.environ.get(ENV_PROGRESS) != "text":
        try:
            import ipywidgets  # noqa: F401  (tqdm.auto needs it for the widget)
            from tqdm.auto import tqdm

            return tqdm
        except ImportError:
            pass
    from tqdm.std import tqdm

    return tqdm


class JobProgress:
    """Reads the job's output lines; shows a bar for show='progress', every line for 'all', nothing for 'none'."""

    def __init__(self, label: str, total_steps: int, show: str):
        self.label, self.show = label, show
        self.step, self.loss, self.rate, self.accuracy = 0, None, None, None
        self.bar = None
        if show == "progress":
            self.bar = _bar_class()(total=total_steps, desc=label, unit="step", file=sys.stdout, mininterval=0.5)

    def feed(self, line: str) -> None:
        if self.show == "all":
            print(line, end="", flush=True)
        if match := STEP.match(line):
            step = int(match.group(1))
            self.loss, self.rate = match.group(3), match.group(4)
            self._advance(step)
        elif match := VALIDATION.match(line):
            self.accuracy = float(match.group(2))
        elif match := RESUMED.match(line):
            self._advance(int(match.group(1)))
        else:
            if self.show == "progress" and line.startswith(SAID):  # warnings and errors stay in view
                self.bar.write(line.rstrip("\n"), file=sys.stdout)
            return
        if self.bar is not None:
            shown = {"loss": self.loss, "img/s": self.rate}
            if self.accuracy is not None:
                shown["val acc"] = f"{self.accuracy:.3f}"
            self.bar.set_postfix(shown, refresh=False)

    def _advance(self, step: int) -> None:
        if self.bar is not None and step > self.step:
            self.bar.update(step - self.step)
        self.step = max(self.step, step)

    def close(self, summary: str | None = None) -> None:
        if self.bar is not None:
            self.bar.close()
        if summary and self.show != "none":
            print(summary, flush=True)
