"""The results directory: its file names, how the harness reads what a cell wrote, and its records.

A cell's tests are untrusted code. Everything they can write (in a container, the work directory mounted
at /results; on the host, anything) is read here and only here: never through a symbolic link or another
non-regular file, never more than a bounded number of bytes.
"""
