"""ConvGrade's command line: `convgrade grade|check|merge`, `python -m convgrade`, `python grade.py`.

Thin command modules over the grader package: options.py parses and validates the options once
(into the run's settings.RunSettings), grade.py, check.py and merge.py are the commands, cli.py
dispatches and keeps the terminal from stopping a batch.
"""
