"""Read safetensors headers without reading (or trusting) the tensor data.

The header is an 8-byte little-endian length followed by that many bytes of JSON mapping tensor names
to dtype, shape and data offsets. Reading only that lets us size a model and check it against its
config before loading gigabytes.
"""

from __future__ import annotations

import json
import math
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from .errors import WeightsMismatch

# Any real header is far smaller; a bigger claimed length means a corrupt or foreign file.
MAX_HEADER_BYTES = 100 * 1024 * 1024

DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4,
    "U64": 8, "I64": 8, "F64": 8,
}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Tensor infos of one .safetensors file; raises WeightsMismatch when the file is damaged."""
    try:
        info = path.stat()
        file_size = info.st_size
    except OSError as exc:
        # In a Hugging Face cache the file is a link to a blob, which an interrupted download or a
        # cache clean-up can leave missing.
        raise WeightsMismatch(
            f"{path.name} cannot be read ({exc.strerror or exc}); the file or the blob it links to "
            f"is missing."
        ) from exc
    if not stat.S_ISREG(info.st_mode):  # a FIFO would block the open, a device never end
        raise WeightsMismatch(f"{path.name} is not an ordinary file, so it cannot hold weights.")
    try:
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise WeightsMismatch(f"{path.name} is empty or truncated ({file_size} bytes).")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > MAX_HEADER_BYTES:
                raise WeightsMismatch(f"{path.name} is not a valid safetensors file (bad header).")
            if header_len + 8 > file_size:
                raise WeightsMismatch(
                    f"{path.name} is truncated: its header alone should be {header_len:,} bytes but the "
                    f"file holds {file_size:,}. The download or copy did not finish."
                )
            header = json.loads(f.read(header_len))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsMismatch(f"{path.name} cannot be read as safetensors: {exc}") from exc
    if not isinstance(header, dict):
        raise WeightsMismatch(f"{path.name} is not a valid safetensors file (header is not a map).")
    return _tensor_infos(path, header, data_size=file_size - 8 - header_len)


def _tensor_infos(path: Path, header: dict, data_size: int) -> dict[str, TensorInfo]:
    infos = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = (int(o) for o in entry["data_offsets"])
            shape = tuple(int(d) for d in entry["shape"])
            dtype = str(entry["dtype"])
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsMismatch(f"{path.name}: tensor {name!r} has a malformed entry.") from exc
        if begin < 0 or end < begin or any(d < 0 for d in shape):
            raise WeightsMismatch(f"{path.name}: tensor {name!r} has a malformed entry.")
        if end > data_size:
            raise WeightsMismatch(
                f"{path.name} is truncated: tensor {name!r} ends at byte {end:,} but the file holds "
                f"{data_size:,} bytes of data. The download or copy did not finish."
            )
        # The fit check trusts these sizes, so they must agree with dtype and shape.
        if dtype in DTYPE_BYTES and end - begin != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise WeightsMismatch(
                f"{path.name}: tensor {name!r} claims {end - begin:,} bytes, but a {dtype} tensor of "
                f"shape {list(shape)} takes {math.prod(shape) * DTYPE_BYTES[dtype]:,}."
            )
        infos[name] = TensorInfo(name, dtype, shape, end - begin)
    return infos


def read_headers(paths: list[Path]) -> dict[str, TensorInfo]:
    tensors: dict[str, TensorInfo] = {}
    for path in paths:
        tensors.update(read_header(path))
    return tensors
