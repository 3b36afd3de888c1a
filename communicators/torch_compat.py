"""Equal-size collectives under their current names, on every torch this package supports (>= 2.8)."""

from __future__ import annotations

import torch.distributed as dist

# torch 2.13 renamed all_gather_into_tensor / reduce_scatter_tensor to *_single and deprecated the old
# names with a FutureWarning; torch < 2.13 (e.g. 2.11 on the GPU machines) has only the old names.
all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
reduce_scatter_single = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
