"""pytest-forked compatibility: a failure's exception line carried through pytest-forked's
flattened report."""
