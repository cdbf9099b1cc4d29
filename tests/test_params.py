"""Chapter parameters: unknown names, wrong types, 0 versus unset, booleans for numbers: each a clear error."""

import json
import math
from pathlib import Path

import pytest
from fasttrain import params
from fasttrain.params import Bool, Choice, Float, Int, ListOf, ParameterError, check_chapter, check_parameters

CHAPTERS_DIR = Path(__file__).resolve().parents[1] / "chapters"


def parameters_cell(chapter: str) -> str:
    """The source of the chapter notebook's `parameters`-tagged cell."""
    (notebook,) = CHAPTERS_DIR.glob(f"{chapter}_*.ipynb")
    cells = json.loads(notebook.read_text())["cells"]
    (cell,) = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    return "".join(cell["source"])


def notebook_globals(chapter: str, **injected) -> dict:
    """What the first code cell's globals() hold under papermill: IPython's names, the parameters cell's
    defaults, then papermill's injected cell on top."""
    namespace = {"__name__": "__main__", "In": ["", "x = 1"], "Out": {}, "_": None, "_i1": "x = 1", "exit": None}
    exec(parameters_cell(chapter), namespace)
    namespace.update(injected)
    return namespace


def error(chapter: str, **injected) -> str:
    with pytest.raises(ParameterError) as info:
        check_chapter(chapter, notebook_globals(chapter, **injected))
    return str(info.value)


@pytest.mark.parametrize("chapter", sorted(params.CHAPTERS))
def test_every_chapters_defaults_pass_and_declare_exactly_its_parameters(chapter):
    namespace = notebook_globals(chapter)
    values = check_chapter(chapter, namespace)
    declared = {k for k, v in namespace.items() if not k.startswith("_") and k not in ("In", "Out", "exit")}
    assert set(values) == declared == set(params.CHAPTERS[chapter])


def test_every_chapter_notebook_has_a_spec():
    notebooks = {p.name[:2] for p in CHAPTERS_DIR.glob("[0-9][0-9]_*.ipynb")}
    assert notebooks == set(params.CHAPTERS)


def test_max_steps_0_is_an_error_not_unset():
    message = error("00", max_steps=0)
    assert "max_steps=0: must be 1 or more (None, not 0, means the profile's choice)" in message
    assert "A valid example: max_steps = 30 (papermill: -p max_steps 30), or max_steps = None" in message
    assert check_chapter("00", notebook_globals("00", max_steps=None))["max_steps"] is None


def test_unknown_name_suggests_the_parameter_meant():
    message = error("00", prfile="smoke")
    assert "prfile='smoke' is not a parameter of chapter 00. Did you mean 'profile'?" in message
    assert "Its parameters: profile, devices, max_steps, target_accuracy" in message


def test_a_parameter_of_another_chapter_is_refused():
    message = error("00", global_batch_size=256)
    assert "global_batch_size=256 is not a parameter of chapter 00." in message and "Did you mean" not in message


def test_a_number_as_text_from_papermill_r():
    message = error("01", per_device_batch="256")
    assert "per_device_batch='256': a number is needed, not the string '256'" in message
    assert "pass numbers with -p" in message and "-p per_device_batch 32" in message


@pytest.mark.parametrize("given", [256, "16,64", 16.0])
def test_a_list_given_as_a_number_or_a_string(given):
    message = error("03", batch_sizes=given)
    assert f"batch_sizes={given!r}: a list is needed" in message
    assert "papermill: -y 'batch_sizes: [16, 64, 256]'" in message


def test_list_items_are_checked():
    assert "item 1 (0): must be 1 or more" in error("03", batch_sizes=[16, 0])
    assert "item 0 ('64'): a number is needed" in error("03", batch_sizes=["64"])
    assert "the list is empty; give None" in error("03", batch_sizes=[])
    assert "item 0 ('bf16'): not one of" in error("02", precisions=["bf16"])


@pytest.mark.parametrize(
    "chapter, name, value", [("00", "devices", True), ("03", "batch_sizes", [True]), ("03", "lr", False)]
)
def test_a_boolean_is_not_a_number(chapter, name, value):
    assert "a number is needed, not the boolean" in error(chapter, **{name: value})


def test_a_count_of_runs_is_a_whole_number():
    assert "runs=1.5" in error("04", runs=1.5)
    check_chapter("04", notebook_globals("04", runs=2, loo_runs=0))


def test_choice_is_suggested_case_insensitively():
    assert "profile='GPU': not one of 'auto', 'smoke', 'cpu', 'gpu'. Did you mean 'gpu'?" in error("00", profile="GPU")


def test_whole_numbers_finite_numbers_and_bounds():
    assert "devices=1.5: a whole number is needed, not the float 1.5" in error("00", devices=1.5)
    assert "lr=inf: a finite number is needed" in error("03", lr=math.inf)
    assert "lr=nan: a finite number is needed" in error("03", lr=math.nan)
    assert "target_accuracy=85: must be at most 1" in error("00", target_accuracy=85)
    assert "lr=0: must be more than 0 (None, not 0" in error("03", lr=0)
    assert "None is not allowed here" in error("01", accumulation=None)
    check_chapter("03", notebook_globals("03", lr=1, epochs=2))  # an int is a fine float


def test_every_problem_is_reported_at_once():
    message = error("00", prfile="smoke", max_steps=0, devices="2")
    assert message.startswith("3 parameter problem(s) in chapter 00:")


def test_modules_functions_and_kernel_names_are_not_parameters():
    namespace = notebook_globals("00", _private=3, Out={1: 2}, helper=lambda: 1, math=math)
    check_chapter("00", namespace)


def test_an_interactive_rerun_looks_only_at_the_values():
    """Once checked, the kernel's globals hold the notebook's own variables: no unknown-name check then."""
    namespace = notebook_globals("00")
    check_chapter("00", namespace)
    namespace.update(target=0.35, overrides={"devices": 1})  # what the chapter's first cell defines
    check_chapter("00", namespace)
    namespace["max_steps"] = 0
    with pytest.raises(ParameterError, match="max_steps=0"):
        check_chapter("00", namespace)


def test_a_failed_check_looks_for_unknown_names_again():
    namespace = notebook_globals("00", prfile="smoke")
    with pytest.raises(ParameterError):
        check_chapter("00", namespace)
    with pytest.raises(ParameterError, match="prfile"):
        check_chapter("00", namespace)


def test_the_generic_helper_on_its_own():
    spec = dict(n=Int(0), mode=Choice(("a", "b")), on=Bool(), xs=ListOf(Float(above=0), optional=True))
    given = dict(n=0, mode="a", on=True, xs=None)
    assert check_parameters(dict(given), spec) == given
    with pytest.raises(ParameterError, match="n=-1: must be 0 or more. A valid example: n = 0 \\(papermill: -p n 0\\)"):
        check_parameters(dict(given, n=-1), spec, where="my notebook")
    with pytest.raises(ParameterError, match="No parameters declared for chapter '9'"):
        check_chapter("9", {})


def test_papermill_injects_after_the_parameters_cell_and_the_check_sees_it(tmp_path):
    """One real papermill run: a notebook of chapter 00's parameters cell and its check, given a misspelt name."""
    import nbformat
    import papermill

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(parameters_cell("00"), metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell('from fasttrain.params import check_chapter\ncheck_chapter("00", globals())'),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(
            str(path), str(tmp_path / "out.ipynb"), parameters={"prfile": "smoke"}, progress_bar=False
        )
    assert "prfile='smoke' is not a parameter of chapter 00. Did you mean 'profile'?" in str(info.value)
    papermill.execute_notebook(str(path), str(tmp_path / "ok.ipynb"), parameters={"max_steps": 5}, progress_bar=False)
