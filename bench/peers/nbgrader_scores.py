"""Dump nbgrader's gradebook as JSON: {student: {grade cell name: [score, max_score]}}.

Run with the peers' venv (nbgrader's own API):  .venv/bin/python nbgrader_scores.py DB ASSIGNMENT NOTEBOOK
"""

import json
import sys

from nbgrader.api import Gradebook, MissingEntry

db, assignment, notebook = sys.argv[1:4]
out = {}
with Gradebook(f"sqlite:///{db}") as gb:
    for student in gb.students:
        try:
            nb = gb.find_submission_notebook(notebook, assignment, student.id)
        except MissingEntry:
            continue
        out[student.id] = {g.name: [float(g.score), float(g.max_score)] for g in nb.grades}
json.dump(out, sys.stdout, indent=1, sort_keys=True)
