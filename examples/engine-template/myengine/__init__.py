"""A template engine: one communicator over a torch.distributed process group (stands in for yours)."""

from myengine.communicator import RingCommunicator

__all__ = ["RingCommunicator"]
