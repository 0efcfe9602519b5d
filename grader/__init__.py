"""ConvGrade: grades CNN-course notebooks against trusted references.

Student code runs only in a Jupyter kernel; values cross back as plain data
(.npy with allow_pickle=False, JSON) and every comparison runs in this process.
"""

import os

__version__ = "0.1.0"

# TensorFlow (Keras exercises' checks) logs at import; the grader's output is its report.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
