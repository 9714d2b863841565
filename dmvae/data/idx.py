"""Reader for the IDX format of MNIST and Fashion-MNIST (big-endian header, then unsigned bytes)."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import torch

from dmvae.errors import UserError

UBYTE = 0x08


def read_idx(path: str | Path) -> torch.Tensor:
    """uint8 tensor shaped by the header: magic 0x0803 -> [n, rows, cols], 0x0801 -> [n]."""
    path = Path(path)
    try:
        data = bytearray(path.read_bytes())
    except OSError as error:
        raise UserError(f"cannot read IDX file {path}: {error.strerror}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != UBYTE or data[3] == 0:
        raise UserError(f"{path} is not an IDX file of unsigned bytes (bad magic number); fetch it again")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"IDX file {path} is truncated (its header is incomplete); fetch it again")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + math.prod(dims)
    if len(data) != expected:
        raise UserError(
            f"IDX file {path} is truncated or corrupt: its header says shape {list(dims)} ({expected} bytes) "
            f"but the file has {len(data)} bytes; fetch it again"
        )
    if math.prod(dims) == 0:
        return torch.zeros(dims, dtype=torch.uint8)
    return torch.frombuffer(data, dtype=torch.uint8, offset=header).reshape(dims)
