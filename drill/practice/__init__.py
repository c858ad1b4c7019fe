"""The practice around single drills: history, trends, due dates, comparisons, after-action
reviews and the people over time. Built on verified evidence folders only (report/verify)."""
