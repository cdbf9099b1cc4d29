"""Labs: student notebooks from instructor sources, self-checks, autograding into a gradebook."""


def check(exercise: str, lab=None, namespace=None, **kwargs) -> bool:
    """Run the visible tests of one exercise in your notebook and print what passed (see check.py)."""
    from .check import _caller_namespace
    from .check import check as run

    return run(exercise, lab, namespace if namespace is not None else _caller_namespace(), **kwargs)
