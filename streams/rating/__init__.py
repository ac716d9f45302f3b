"""The rating role: validate, price, judge lateness, deduplicate (rater.py), as a Faust agent
(agent.py), with the fixes Faust needs for it to be exact (faust_fixes.py)."""
