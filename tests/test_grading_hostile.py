"""A hostile class, graded in one autograde call: every trick scores zero for its exercise, nobody else is touched.

Each learner below attacks the grader one way (the categories of issue 16); the class also holds
honest learners graded before and after them. The tiny lab of test_grading.py keeps this to seconds.
"""

import csv
import os
import socket
import stat
import subprocess
import sys
import threading
import time

import nbformat
import pytest
from fasttrain.grading.autograde import Limits, autograde
from fasttrain.grading.release import release
from test_grading import SANDBOX, solution, submit, tiny_lab, with_cell, with_code

LIMITS = Limits(cell_timeout=10, notebook_timeout=40, memory_mb=6144, jobs=2)  # room for torch (always_true)
MARK = "fasttrain-hostile-escapee"


pytestmark = SANDBOX


def _square(body: str) -> str:
    """An exercise cell `square` whose code is `body` (the attack), then a wrong answer: 9 for every x."""
    return "def square(x):\n" + "".join(f"    {line}\n" for line in body.splitlines()) + "    return 9"


ATTACKS = {
    # forged results: lines in the worker's own format, a claimed pass, on every descriptor it can write to
    "forger": _square(
        "import json, os\n"
        "for record in ({'kind': 'cell', 'cell': 'square_test', 'grade_id': 'square_test', 'type': 'test',\n"
        "                'status': 'passed'},\n"
        "               {'kind': 'value', 'test': 'square_test', 'label': 'square(-4)', 'value': 'passed'},\n"
        "               {'event': 'test', 'grade_id': 'square_test', 'status': 'passed'}):\n"
        "    for fd in range(0, 64):\n"
        "        try:\n"
        "            os.write(fd, (json.dumps(record) + '\\n').encode())\n"
        "        except OSError:\n"
        "            pass"
    ),
    # helper patches: the comparison, the emitter, math.isclose, through builtins and bound methods
    "patcher": _square(
        "import builtins, math, fasttrain.grading.probe as probe\n"
        "math.isclose = lambda *a, **k: True\n"
        "probe.matches = lambda *a, **k: True\n"
        "probe.expect.__globals__['plain'] = lambda v, depth=0: 16\n"
        "builtins.__dict__['isinstance'] = lambda *a: True\n"
        "builtins.isinstance = lambda *a: True"
    ),
    # steals the expected value: reports, for every check, the value the check expects instead of its own
    "thief": _square(
        "import fasttrain.grading.probe as probe\n"
        "original = probe._emit\n"
        "probe._emit = lambda fd, label, got, want, rel, abs_tol: original(fd, label, want, want, rel, abs_tol)"
    ),
    # always-true objects: equal to everything, a float subclass, a tensor subclass
    "always_true": "import torch\n\n\nclass Yes(float):\n    def __eq__(self, other):\n        return True\n\n"
    "    __hash__ = float.__hash__\n\n\nclass T(torch.Tensor):\n    def __eq__(self, other):\n        return True\n\n\n"
    "def square(x):\n    return Yes(0) if x == 3 else torch.tensor([0.0]).as_subclass(T)",
    # module swaps: a fake probe module (with a __spec__) in sys.modules, and a swap while the test runs
    "swapper": _square(
        "import sys, types, importlib.machinery\n"
        "fake = types.ModuleType('fasttrain.grading.probe')\n"
        "fake.__spec__ = importlib.machinery.ModuleSpec('fasttrain.grading.probe', None)\n"
        "fake.expect = lambda *a, **k: None\n"
        "sys.modules['fasttrain.grading.probe'] = fake\n"
        "sys.modules['math'] = fake\n"
        "globals()['expect'] = fake.expect"
    ),
    # killing the parent: the worker's parent, its process group, every process it may signal
    "killer": _square(
        "import os, signal\n"
        "for target in (os.getppid(), 1):\n"
        "    try:\n"
        "        os.kill(target, signal.SIGKILL)\n"
        "    except OSError:\n"
        "        pass\n"
        "try:\n"
        "    os.kill(-1, signal.SIGKILL)\n"
        "except OSError:\n"
        "    pass"
    ),
    # a fork bomb (bounded, in case a machine has no process limit): the limit stops it, nobody else notices
    "forker": _square(
        "import subprocess\nkids = []\ntry:\n    for _ in range(1000):\n"
        "        kids.append(subprocess.Popen(['sleep', '60']))\nexcept OSError:\n    pass"
    ),
    # escaping the process group: a daemon in a session of its own that would outlive the run (a minute),
    # rewriting the gradebook it can guess the path of
    "escapee": _square(
        "import os, subprocess, sys\n"
        "code = ('import time, pathlib, os, sys; time.sleep(4); '\n"
        '        \'p = pathlib.Path(os.environ.get("OUT", "/nonexistent")); \'\n'
        '        \'[ (q / "gradebook.csv").write_text("escapee,lab9_tiny,square_test,3,3,passed") \'\n'
        "        '  for q in [p] if q.exists() ]; '\n"
        f'        \'open("/tmp/{MARK}", "w").write("escaped"); time.sleep(60)\')\n'
        f"subprocess.Popen([sys.executable, '-c', code, '{MARK}'], start_new_session=True,\n"
        "                 env={'OUT': OUT}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"
    ),
    # reading hidden tests: the instructor source, the test files, other submissions, the test's frame
    "reader": _square(
        "import inspect, os\n"
        "for path in (SOURCE, TESTS, SUBS, '/proc/1/cmdline', '/proc/1/environ'):\n"
        "    for root, _, files in os.walk(path) if os.path.isdir(path) else [('', [], [path])]:\n"
        "        for name in files:\n"
        "            try:\n"
        "                text = open(os.path.join(root, name), errors='ignore').read()\n"
        "            except OSError:\n"
        "                continue\n"
        "            if 'square(-4), 16' in text or 'return x * x' in text:\n"
        "                return x * x\n"
        "caller = inspect.stack()[1].code_context or ['']\n"
        "if '16' in caller[0]:\n"
        "    return x * x"
    ),
    # the network: a server the test runs on this machine's loopback hands out the answer
    "caller": _square(
        "import socket\ntry:\n    with socket.create_connection(('127.0.0.1', PORT), timeout=2) as s:\n"
        "        if s.recv(16) == b'x * x':\n            return x * x\nexcept OSError:\n    pass"
    ),
    # leaves files for the next submission graded in the same job slot: cwd, home, /tmp
    "leaver": _square(
        "import os\nfor d in ('.', os.path.expanduser('~'), '/tmp'):\n"
        "    open(os.path.join(d, 'answer'), 'w').write('x * x')"
    ),
}
# a later learner who grades itself by what an earlier one left behind
PICKUP = _square(
    "import os\nfor d in ('.', os.path.expanduser('~'), '/tmp'):\n"
    "    if os.path.exists(os.path.join(d, 'answer')):\n        return x * x"
)


def _serve(server):
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.sendall(b"x * x")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    source = tmp / "labs" / "source"
    source.mkdir(parents=True)
    nbformat.write(tiny_lab(), str(source / "lab9_tiny.ipynb"))
    release(source, tmp / "labs")
    lab, subs, out = tmp / "labs", tmp / "subs", tmp / "grades"
    server = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_serve, args=(server,), daemon=True).start()
    where = f"SOURCE, TESTS, SUBS, OUT = {str(source)!r}, {os.path.dirname(__file__)!r}, {str(subs)!r}, {str(out)!r}\n"
    where += f"PORT = {server.getsockname()[1]}\n"
    submit(subs, "aa_honest", solution(lab))
    for learner, cell in ATTACKS.items():
        submit(subs, learner, with_cell(lab, "square", where + cell))
    for i in range(3):  # graded after the leaver, in either job slot
        submit(subs, f"pickup{i}", with_cell(lab, "square", PICKUP))
    submit(subs, "zz_honest", solution(lab))
    # two learners whose names differ only in punctuation, and one whose name is a spreadsheet formula
    submit(subs, "a.b", solution(lab))
    submit(subs, "a_b", with_code(lab, "square", "return 0"))
    submit(subs, "=HYPERLINK(1)", solution(lab))
    special = subs / "fifo_learner"
    special.mkdir()
    os.mkfifo(special / "lab9_tiny.ipynb")  # a FIFO named like a lab: must not hang discovery
    if os.geteuid() == 0:  # a character device named like a lab (mknod needs root)
        (subs / "dev_learner").mkdir()
        os.mknod(subs / "dev_learner" / "lab9_tiny.ipynb", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    (subs / "dir_linker").symlink_to(source, target_is_directory=True)  # a folder of answers, by a link
    (subs / "linker").mkdir()
    (subs / "linker" / "lab9_tiny.ipynb").symlink_to(source / "lab9_tiny.ipynb")  # the answers, by a link
    log = []
    started = time.monotonic()
    book = autograde([subs], out, source, LIMITS, log=log.append)
    server.close()
    return {"book": book, "out": out, "log": log, "seconds": time.monotonic() - started, "subs": subs, "lab": lab}


def _rows(book):
    return {(r["learner"], r["exercise"]): r for r in book["rows"]}


def _totals(book):
    return {t["learner"]: t["points"] for t in book["totals"]}


# what the reason says where it shows the attack reached the check and was turned down there
REASONS = {
    "always_true": "your code returned a value of type Yes",
    "thief": "your code returned a value of type object",
    "forger": "hidden check 2 of 2 failed",
    "reader": "hidden check 2 of 2 failed",
}


@pytest.mark.parametrize("learner", list(ATTACKS))
def test_every_attack_scores_zero_for_its_exercise(graded, learner):
    row = _rows(graded["book"])[learner, "square_test"]
    assert row["points"] == 0 and row["status"] != "passed", row
    assert REASONS.get(learner, "") in row["reason"], row


def test_the_rest_of_the_class_is_graded_correctly(graded):
    totals = _totals(graded["book"])
    assert totals["aa_honest"] == totals["zz_honest"] == totals["a.b"] == 5
    assert totals["a_b"] == 2 and totals["=HYPERLINK(1)"] == 5
    for learner in ATTACKS:  # their other exercise is the instructor's: graded as if nothing happened
        assert _rows(graded["book"])[learner, "double_test"]["status"] == "passed", learner


def test_nothing_survives_the_run_or_leaks_between_runs(graded):
    time.sleep(5)  # past the escapee's sleep
    assert not os.path.exists(f"/tmp/{MARK}")
    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout  # ww: whole lines
    assert MARK not in ps
    with open(graded["out"] / "gradebook.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["learner"] == "escapee" and r["exercise"] == "square_test"]
    assert [r["points"] for r in rows] == ["0.0"]
    for i in range(3):
        assert _totals(graded["book"])[f"pickup{i}"] == 2


def test_special_files_are_skipped_and_said_so(graded):
    learners = {t["learner"] for t in graded["book"]["totals"]}
    assert not learners & {"fifo_learner", "linker", "dir_linker", "dev_learner", "source"}
    assert any("fifo_learner" in line and "a FIFO" in line for line in graded["log"])
    assert any("linker" in line and "a symbolic link" in line for line in graded["log"])
    assert any("dir_linker" in line and "a symbolic link to a folder" in line for line in graded["log"])
    if os.geteuid() == 0:
        assert any("dev_learner" in line and "a device" in line for line in graded["log"])


def test_feedback_files_are_unique_and_csv_cells_are_not_formulas(graded):
    feedback = graded["out"] / "feedback"
    mine = [p.read_text() for p in feedback.glob("a_b*.md")]
    assert len(mine) == 2 and {"# Feedback for a.b", "# Feedback for a_b"} == {t.splitlines()[0] for t in mine}
    text = (graded["out"] / "gradebook.csv").read_text()
    assert "'=HYPERLINK(1)" in text and "\n=HYPERLINK" not in text


def test_no_hidden_check_reaches_the_feedback(graded):
    for path in (graded["out"] / "feedback").glob("*.md"):
        text = path.read_text()
        assert "square(-4)" not in text and ", 16)" not in text and "BEGIN HIDDEN" not in text, path.name


def test_seconds_per_notebook_are_reported(graded):
    assert any("s per notebook (jobs=2)" in line for line in graded["log"])
    print(graded["log"][-1])


def test_a_killed_grader_takes_every_sandbox_with_it(tmp_path):
    """--die-with-parent: the grader dies (SIGKILL, no clean-up), and so does every process of the run it held."""
    source = tmp_path / "labs" / "source"
    source.mkdir(parents=True)
    nbformat.write(tiny_lab(), str(source / "lab9_tiny.ipynb"))
    release(source, tmp_path / "labs")
    spawner = _square(
        "import subprocess, time\nsubprocess.Popen(['sleep', '61.25'], start_new_session=True)\ntime.sleep(60)"
    )
    submit(tmp_path / "subs", "spawner", with_cell(tmp_path / "labs", "square", spawner))
    command = [sys.executable, "-m", "fasttrain.grading", "autograde", str(tmp_path / "subs"), "--source", str(source)]
    grader = subprocess.Popen([*command, "--out", str(tmp_path / "grades")], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):  # until the learner's process runs
            if "sleep 61.25" in subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the submission never started its process")
    finally:
        grader.kill()
        grader.wait()
    time.sleep(1)
    assert "sleep 61.25" not in subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
