"""Module state the conformance tests' fixtures change (attributes, functions) and the bodies read."""

MODULE_FLAG = "unset"


def greeting() -> str:
    return "hello"
