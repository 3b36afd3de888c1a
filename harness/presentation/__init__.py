"""Layer 10, presentation: how results are shown: the live progress view, Markdown summaries,
GitHub annotations, comparisons and the conformance table. Everything shown passes through
common.untrusted_text."""
