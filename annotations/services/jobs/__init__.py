"""The jobs wing: runs from starting to their end (starting, lifecycle, dispatch, watchdog),
and the jobs themselves (training, promotion, pseudo-labeling and its writer, schedules).

Only dispatch.py publishes task messages, by name; nothing here imports annotations.tasks.
"""
