"""Moved: the call encoding and answer parsing are grader/boundary.py's (the trust boundary).

This name stays for tests/conftest.py's in-process student (`from grader import probe`); new
code imports grader.boundary.
"""

from .boundary import (MAX_JSON_BYTES, MAX_MODEL_JSON_BYTES, AnswerFolder, KerasInitializer, KerasModelConfig,
                       ProbeError, StudentException, Unsupported, read_batch, read_result, write_batch, write_call)

__all__ = ["MAX_JSON_BYTES", "MAX_MODEL_JSON_BYTES", "AnswerFolder", "KerasInitializer", "KerasModelConfig",
           "ProbeError", "StudentException", "Unsupported", "read_batch", "read_result", "write_batch", "write_call"]
