"""`python -m communicators`: print the all2all backend table block to paste into docs/communicators.md."""

from communicators.backend_table import render_readme_block

print(render_readme_block(), end="")
