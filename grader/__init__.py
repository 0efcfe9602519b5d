"""ConvGrade: grades CNN-course notebooks against trusted references.

Student code runs only in a Jupyter kernel; values cross back as plain data
(.npy with allow_pickle=False, JSON) and every comparison runs in this process.
"""

__version__ = "0.1.0"
