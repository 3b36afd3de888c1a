"""Layer 11, running (the harness side): orchestrating a run, the scheduler, the guardian that ends
leftovers, the image recipes and the executors (local, Docker, Slurm)."""
