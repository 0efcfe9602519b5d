"""Source files executed *inside* the student's kernel.

They are read as text and sent to the kernel (the kernel may not be able to
import the grader at all once sandboxed), so they must be self-contained.
Nothing here is trusted on the way back: the grader re-validates every byte.
"""

from importlib import resources


def source(name: str) -> str:
    """Return the text of kernel-side module `name` (without .py)."""
    return resources.files(__package__).joinpath(f"{name}.py").read_text(encoding="utf-8")
