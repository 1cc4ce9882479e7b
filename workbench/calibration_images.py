"""Calibration data from images: an archive (.zip, .tar.gz) or a folder on the server, preprocessed like the
model expects (resize, center crop, scale/mean/std, channel order, layout, dtype).

The result is an ordinary :class:`~workbench.calibration_data.CalibrationData` for the model's one image input,
checked exactly like an ``.npz`` (shape against the model and the profile, dtype, finite values).
:func:`materialize_npz` writes it once as an ``.npz`` into the workspace's data folder, named by a digest of
the source and the preprocessing, with a JSON sidecar saying where it came from; the rest of the pipeline
(quantization jobs, INT8 builds) then reads that ``.npz`` like any other, and it is reused next time::

    spec = image_input(model_inputs("cnn.onnx"))  # [N, 3, 32, 32]
    pre = propose_preprocess(spec)  # NCHW float32, resize shorter side to 37, center crop 32x32, ImageNet mean/std
    made = materialize_npz("images.zip", spec, pre, ws.root / "data")
    data = load_npz(made.npz_path, [spec])

Only files whose names end in an image suffix are decoded (anything else is skipped with a note); a file that
claims to be an image but is not, or is damaged, is an error naming it; so is an image declaring more pixels
than Pillow's decompression-bomb limit (checked from its header, before decoding). Folders on the server are
accepted only below the allowed roots (``WORKBENCH_DATA_ROOTS``, default: the workspace's ``data/`` folder),
after resolving symbolic links; links inside the folder that lead outside the roots are refused. Listing and
reading are separate steps (:func:`list_images`, then :func:`read_listing`), so every file is opened again from
its root's folder descriptor, one component at a time without following links, and must then be the very file
that was listed (device and inode); a file or folder swapped for a link in between is refused, naming it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import os
import shutil
import stat
import tempfile
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .archives import ArchiveLimits, extract_archive, is_archive
from .calibration_data import (
    DEFAULT_MAX_NPZ_BYTES,
    CalibrationData,
    InputSpec,
    _bounds,
    _check_dtype,
    _check_finite,
    _check_shape,
)
from .errors import ArchiveError, DataError, SpecError
from .progress import Cancelled, NullReporter, Reporter
from .workspace import confined_server_path, roots_text

log = logging.getLogger(__name__)

ENV_DATA_ROOTS = "WORKBENCH_DATA_ROOTS"
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm"}
)
DEFAULT_MAX_IMAGES = 512
DEFAULT_MIN_IMAGES = 8
MAX_LISTED_FILES = 100_000  # a folder (or archive) with more entries than this is refused, not walked
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's default Image.MAX_IMAGE_PIXELS (used when Pillow's is disabled)
MAX_SIDE = 16_384
IMAGE_ARCHIVE_LIMITS = ArchiveLimits(max_total_bytes=2 << 30, max_members=MAX_LISTED_FILES)
SIDECAR_VERSION = 1

LAYOUTS = ("NCHW", "NHWC")
CHANNEL_ORDERS = ("RGB", "BGR")
DTYPES = ("float32", "float16", "uint8")
# name: (scale, mean, std); a value x becomes (x * scale - mean) / std per channel
NORMALIZATIONS: dict[str, tuple[float, tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": (1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "unit": (1 / 255, (0.0,), (1.0,)),
    "symmetric": (1 / 255, (0.5,), (0.5,)),
    "raw": (1.0, (0.0,), (1.0,)),
}
NORMALIZATION_LABELS = {
    "imagenet": "ImageNet mean/std on [0, 1] (torchvision)",
    "unit": "[0, 1] (x / 255)",
    "symmetric": "[-1, 1] ((x / 255 - 0.5) / 0.5)",
    "raw": "raw pixels 0–255",
}
_FLOAT16_MAX = float(np.finfo(np.float16).max)


# ---------------------------------------------------------------------------------------------- preprocessing


def _size_pair(value: Any, what: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError) as err:
        raise SpecError(f"{what} must be two whole numbers (height, width), not {value!r}.") from err
    for v in (h, w):
        if not 1 <= v <= MAX_SIDE:
            raise SpecError(f"{what} {h}x{w} is out of range.", f"Use sizes from 1 to {MAX_SIDE} pixels.")
    return h, w


def _channel_values(value: Any, what: str) -> tuple[float, ...]:
    values = (value,) if isinstance(value, int | float) else value
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as err:
        raise SpecError(f"{what} must be numbers (one per channel, or one for all), not {value!r}.") from err
    if not out or not all(math.isfinite(v) for v in out):
        raise SpecError(f"{what} must be finite numbers (one per channel, or one for all), not {value!r}.")
    return out


def parse_channel_values(text: str, what: str = "Mean") -> tuple[float, ...]:
    """``"0.485, 0.456, 0.406"`` → a tuple of floats (for a form's text field); SpecError when it is not that."""
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        return _channel_values([float(p) for p in parts], what)
    except ValueError as err:
        raise SpecError(
            f"{what} '{text}' is not a list of numbers.", "Write one number per channel, e.g. 0.5, 0.5, 0.5."
        ) from err


@dataclass(frozen=True)
class ImagePreprocess:
    """How an image file becomes one sample of the model's input.

    Steps, in order: decode and convert to RGB (or grayscale when ``channels`` is 1); ``resize`` (an int: the
    shorter side to that many pixels, keeping the aspect ratio, as torchvision's ``Resize(n)``; ``(h, w)``:
    exactly that size; None: keep); center ``crop`` ``(h, w)``; for float dtypes ``(x * scale - mean) / std``
    per channel; ``channel_order`` (RGB or BGR); ``layout`` NCHW or NHWC; ``dtype``. uint8 keeps raw pixels.
    ``mean`` and ``std`` are in the channel order used (BGR: blue first); see :func:`normalization`.
    """

    resize: int | tuple[int, int] | None = 256
    crop: tuple[int, int] | None = (224, 224)
    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    channel_order: str = "RGB"
    channels: int = 3
    layout: str = "NCHW"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        put = object.__setattr__
        if self.resize is not None:
            if isinstance(self.resize, int | float) and not isinstance(self.resize, bool):
                side = int(self.resize)
                if side != self.resize or not 1 <= side <= MAX_SIDE:
                    raise SpecError(
                        f"Resize to {self.resize!r} pixels is out of range.",
                        f"Use a whole number from 1 to {MAX_SIDE}.",
                    )
                put(self, "resize", side)
            else:
                put(self, "resize", _size_pair(self.resize, "Resize"))
        if self.crop is not None:
            put(self, "crop", _size_pair(self.crop, "Center crop"))
        if self.channels not in (1, 3):
            raise SpecError(
                f"Images with {self.channels} channels are not supported.",
                "Use 3 (RGB/BGR) or 1 (grayscale).",
            )
        for name, options in (("channel_order", CHANNEL_ORDERS), ("layout", LAYOUTS), ("dtype", DTYPES)):
            if getattr(self, name) not in options:
                raise SpecError(
                    f"Unknown {name.replace('_', ' ')} {getattr(self, name)!r}.",
                    f"Choose one of {', '.join(options)}.",
                )
        scale = self.scale
        if (
            isinstance(scale, bool)
            or not isinstance(scale, int | float)
            or not math.isfinite(scale)
            or scale <= 0
        ):
            raise SpecError(f"Scale {scale!r} must be a positive number (e.g. 1/255 = 0.00392).")
        put(self, "scale", float(scale))
        for name in ("mean", "std"):
            values = _channel_values(getattr(self, name), name.capitalize())
            if len(values) not in (1, self.channels):
                raise SpecError(
                    f"{name.capitalize()} has {len(values)} values, but the images have "
                    f"{self.channels} channel(s).",
                    "Give one value per channel, or one for all.",
                )
            put(self, name, values)
        if any(s == 0 for s in self.std):
            raise SpecError("Std must not be 0 (every value is divided by it).")
        if self.dtype == "uint8" and (self.scale != 1 or any(self.mean) or any(s != 1 for s in self.std)):
            raise SpecError(
                "uint8 input takes raw pixels 0–255: scale, mean and std cannot be applied.",
                "Choose 'raw pixels' (scale 1, mean 0, std 1), or a float dtype.",
            )
        self._check_crop_fits()

    def _check_crop_fits(self) -> None:
        if self.crop is None or self.resize is None:
            return
        ch, cw = self.crop
        if isinstance(self.resize, int):
            if self.resize < max(ch, cw):
                raise SpecError(
                    f"The shorter side resized to {self.resize} pixels is smaller than the {ch}x{cw} "
                    "center crop.",
                    f"Resize the shorter side to at least {max(ch, cw)}.",
                )
        elif self.resize[0] < ch or self.resize[1] < cw:
            raise SpecError(
                f"Images resized to {self.resize[0]}x{self.resize[1]} are smaller than the {ch}x{cw} "
                "center crop.",
                "Make the crop smaller than the resized images.",
            )

    @property
    def out_size(self) -> tuple[int, int] | None:
        """(height, width) of every preprocessed image, or None when it depends on the image."""
        if self.crop is not None:
            return self.crop
        if isinstance(self.resize, tuple):
            return self.resize
        return None

    def describe(self) -> str:
        steps = []
        if isinstance(self.resize, int):
            steps.append(f"shorter side resized to {self.resize}")
        elif self.resize:
            steps.append(f"resized to {self.resize[0]}x{self.resize[1]}")
        if self.crop:
            steps.append(f"center crop {self.crop[0]}x{self.crop[1]}")
        steps.append("grayscale" if self.channels == 1 else self.channel_order)
        if self.dtype != "uint8":
            steps.append(f"(x * {self.scale:.6g} - mean {_fmt(self.mean)}) / std {_fmt(self.std)}")
        steps.append(f"{self.layout} {self.dtype}")
        return ", ".join(steps)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for k in ("resize", "crop", "mean", "std"):
            if isinstance(data[k], tuple):
                data[k] = list(data[k])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImagePreprocess:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise SpecError(f"Unknown image preprocessing fields: {', '.join(sorted(unknown))}.")
        d = dict(data)
        for k in ("crop", "mean", "std"):
            if isinstance(d.get(k), list):
                d[k] = tuple(d[k])
        if isinstance(d.get("resize"), list):
            d["resize"] = tuple(d["resize"])
        return cls(**d)

    def key(self) -> str:
        """Canonical JSON, for digests and caches."""
        return json.dumps(self.to_dict(), sort_keys=True)


def _fmt(values: tuple[float, ...]) -> str:
    return "/".join(f"{v:.4g}" for v in values)


def normalization(
    name: str, channel_order: str = "RGB"
) -> tuple[float, tuple[float, ...], tuple[float, ...]]:
    """(scale, mean, std) of a named normalization (:data:`NORMALIZATIONS`, given for RGB), in ``channel_order``."""
    if name not in NORMALIZATIONS:
        raise SpecError(f"Unknown normalization '{name}'.", f"Choose one of {', '.join(NORMALIZATIONS)}.")
    scale, mean, std = NORMALIZATIONS[name]
    if channel_order == "BGR":
        mean, std = mean[::-1], std[::-1]
    return scale, mean, std


def image_input(inputs: Sequence[InputSpec]) -> InputSpec:
    """The model's one image input: rank 4. A model with several inputs is fed from an .npz instead."""
    if len(inputs) != 1:
        names = ", ".join(f"'{i.name}' {i.shape_text()}" for i in inputs) or "none"
        raise DataError(
            f"Images can feed a model with exactly one input; this model has {len(inputs)} ({names}).",
            "Save the calibration data as an .npz with one array per input.",
        )
    spec = inputs[0]
    if spec.shape is None or len(spec.shape) != 4:
        raise DataError(
            f"Input '{spec.name}' is {spec.shape_text()}, not an image batch (rank 4: NCHW or NHWC).",
            "Save the calibration data as an .npz instead.",
        )
    return spec


def _layout_of(spec: InputSpec) -> str:
    shape = spec.shape or ()
    if len(shape) == 4:
        if shape[1] in (1, 3):
            return "NCHW"
        if shape[3] in (1, 3):
            return "NHWC"
    return "NCHW"


def propose_preprocess(spec: InputSpec, norm: str | None = None) -> ImagePreprocess:
    """Defaults read from the input's shape: [N, 3, 224, 224] → NCHW, shorter side 256, center crop 224x224,
    ImageNet mean/std, float32. Dynamic height/width: crop 224x224. ``norm`` names one of
    :data:`NORMALIZATIONS` (default: ImageNet for colour, [0, 1] for grayscale, raw for uint8); check it against
    how the model was trained: the shape cannot tell."""
    image_input([spec])
    assert spec.shape is not None
    layout = _layout_of(spec)
    c = spec.shape[1] if layout == "NCHW" else spec.shape[3]
    hw = spec.shape[2:4] if layout == "NCHW" else spec.shape[1:3]
    channels = c if isinstance(c, int) and c in (1, 3) else 3
    hh, ww = hw[0], hw[1]
    h, w = (hh, ww) if isinstance(hh, int) and isinstance(ww, int) and hh > 0 and ww > 0 else (224, 224)
    dtype = spec.dtype if spec.dtype in DTYPES else "float32"
    if norm is None:
        norm = "raw" if dtype == "uint8" else "imagenet" if channels == 3 else "unit"
    scale, mean, std = normalization(norm)
    return ImagePreprocess(
        resize=math.ceil(max(h, w) * 256 / 224),
        crop=(h, w),
        scale=scale,
        mean=mean,
        std=std,
        channels=channels,
        layout=layout,
        dtype=dtype,
    )


def check_against_input(spec: InputSpec, pre: ImagePreprocess) -> None:
    """Cheap checks before any image is decoded: channels, height/width and dtype the model fixes."""
    image_input([spec])
    assert spec.shape is not None
    c_axis, h_axis, w_axis = (1, 2, 3) if pre.layout == "NCHW" else (3, 1, 2)
    c = spec.shape[c_axis]
    if isinstance(c, int) and c != pre.channels:
        other = "NHWC" if pre.layout == "NCHW" else "NCHW"
        raise DataError(
            f"Input '{spec.name}' is {spec.shape_text()}: read as {pre.layout} it has {c} channel(s), but the "
            f"preprocessing makes {pre.channels}.",
            f"Check the layout (perhaps {other}) and the channel count.",
        )
    size = pre.out_size
    h, w = spec.shape[h_axis], spec.shape[w_axis]
    if size is not None and isinstance(h, int) and isinstance(w, int) and (h, w) != size:
        raise DataError(
            f"Input '{spec.name}' is {spec.shape_text()} ({pre.layout}: {h}x{w} images), but the preprocessing "
            f"makes {size[0]}x{size[1]} images.",
            f"Set the center crop (or the exact resize) to {h}x{w}.",
        )
    try:
        want = np.dtype(spec.dtype)
    except TypeError as err:
        raise DataError(f"Input '{spec.name}' has type {spec.dtype}, which images cannot feed.") from err
    have = np.dtype(pre.dtype)
    if want != have and not (want.kind == "f" and have.kind == "f"):
        raise DataError(
            f"Input '{spec.name}' is {spec.dtype}, but the preprocessing makes {pre.dtype} data.",
            f"Choose dtype {spec.dtype}" + (" and a normalization." if want.kind == "f" else "."),
        )


# ---------------------------------------------------------------------------------------------- server folders


def data_roots(workspace_root: str | os.PathLike[str] | None = None) -> tuple[Path, ...]:
    """Folders on the server that calibration images may be read from: ``WORKBENCH_DATA_ROOTS`` (separated by
    ``os.pathsep``), else ``<workspace>/data`` (created). Returned resolved (symbolic links followed)."""
    env = os.environ.get(ENV_DATA_ROOTS, "")
    roots = [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    if not roots:
        if workspace_root is None:
            from .workspace import Workspace

            workspace_root = Workspace.default().root
        default = Path(workspace_root) / "data"
        default.mkdir(parents=True, exist_ok=True)
        roots = [default]
    return tuple(dict.fromkeys(r.resolve() for r in roots))


def resolve_server_source(path: str | os.PathLike[str], roots: Sequence[Path]) -> Path:
    """A folder of images (or an image archive) on the server, below one of ``roots``; symbolic links are
    resolved first, so a link leading outside the roots is refused. Relative paths are taken below the first
    root. DataError says what is wrong."""
    text = str(path).strip()
    if not text:
        raise DataError("No folder given.", f"Give a folder below {roots_text(roots)}.")
    if not roots:
        raise DataError(
            "No folders on this server are allowed for calibration data.",
            f"Ask the administrator to set {ENV_DATA_ROOTS}.",
        )
    hint = (
        f"Calibration images are read only below {roots_text([Path(r).resolve() for r in roots])}; copy them "
        f"there, or ask the administrator to add their folder to {ENV_DATA_ROOTS}."
    )
    real = confined_server_path(text, roots, "calibration data", hint, DataError)
    if not real.exists():
        raise DataError(f"'{text}' does not exist on the server.", "Check the path.")
    if real.is_file():
        if is_archive(real.name):
            return real
        raise DataError(
            f"'{text}' is a file, not a folder of images.",
            "Give the folder that holds the images (or a .zip / .tar.gz of them).",
        )
    if not real.is_dir():
        raise DataError(f"'{text}' is neither a folder nor an archive.")
    return real


# ---------------------------------------------------------------------------------------------- listing
#
# Every file and folder is opened the same way, when listed and again when read: from the descriptor of an
# allowed root (or of the folder itself), one path component at a time, each with O_NOFOLLOW. A folder or file
# swapped for a symbolic link after it was checked is therefore refused, never followed, and the file opened
# must still be the very file that was listed (same device and inode, checked on the open descriptor).

_O_DIRECTORY, _O_NOFOLLOW = getattr(os, "O_DIRECTORY", 0), getattr(os, "O_NOFOLLOW", 0)  # POSIX only
_SAFE_OPEN = bool(_O_DIRECTORY and _O_NOFOLLOW) and os.open in os.supports_dir_fd
_DIR_FLAGS = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# O_NONBLOCK: a FIFO swapped in for an image must not hang the open (it changes nothing for regular files).
_FILE_FLAGS = os.O_RDONLY | _O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
MAX_FOLDER_DEPTH = 64  # folders nested deeper than this below the chosen folder are refused, not walked


class _Blocked(Exception):
    """Opening component ``index`` of a path below a base folder failed (-1: the base folder itself)."""

    def __init__(self, index: int, err: OSError) -> None:
        super().__init__(index, err)
        self.index = index
        self.err = err


def _open_dir(base: Path, parts: Sequence[str]) -> int:
    """A descriptor of ``base/parts...``, walked from ``base`` without following any link below it."""
    if not _SAFE_OPEN:
        raise DataError(
            "Image folders can be read safely only where files open relative to a folder without following "
            "links (Linux, macOS); this system cannot.",
            "Use an .npz file for the calibration data.",
        )
    try:
        fd = os.open(base, os.O_RDONLY | _O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise _Blocked(-1, err) from err
    for i, part in enumerate(parts):
        try:
            nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError as err:
            raise _Blocked(i, err) from err
        finally:
            os.close(fd)
        fd = nfd
    return fd


def _open_file(base: Path, parts: Sequence[str]) -> int:
    """A read-only descriptor of the file ``base/parts...``, walked without following any link below ``base``."""
    dfd = _open_dir(base, parts[:-1])
    try:
        return os.open(parts[-1], _FILE_FLAGS, dir_fd=dfd)
    except OSError as err:
        raise _Blocked(len(parts) - 1, err) from err
    finally:
        os.close(dfd)


def _base_for(path: Path, allowed: Sequence[Path]) -> tuple[Path, tuple[str, ...]] | None:
    """(root, components below it) for the widest allowed root holding ``path`` (resolved), or None."""
    below = [r for r in allowed if path.is_relative_to(r)]
    if not below:
        return None
    root = min(below, key=lambda r: len(r.parts))
    return root, path.relative_to(root).parts


@dataclass(frozen=True)
class ListedImage:
    """One image file found by :func:`list_images`, how to open it again, and which file it must then be."""

    name: str  # relative to the listed folder, '/'-separated
    path: Path  # its real path (for a linked file: the link's target)
    base: Path  # opened from this folder (an allowed root, or the listed folder itself) ...
    parts: tuple[str, ...]  # ... through these components, never following a link
    link: Path | None  # where the symbolic link sits, for a linked file
    device: int
    inode: int
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ImageListing:
    """The image files of a folder, in sorted order, and what was left out."""

    root: Path
    files: tuple[ListedImage, ...]
    skipped: tuple[str, ...]  # files that are not images (by name), or not regular files
    linked_folders: tuple[str, ...]  # symbolic links to folders: not followed
    label: str = ""  # how errors name the folder
    allowed: tuple[Path, ...] = ()  # linked files must resolve below these

    def digest(self) -> str:
        """Names, sizes and modification times of the files, as listed."""
        h = hashlib.sha256()
        for f in self.files:
            h.update(f"{f.name}\0{f.size}\0{f.mtime_ns}\n".encode())
        return h.hexdigest()


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _outside_link_error(label: str, name: str) -> DataError:
    return DataError(
        f"'{label}': '{name}' is a symbolic link to a file outside the folders allowed for calibration data; "
        "it is not followed.",
        "Copy the file itself into the folder, or remove the link.",
    )


def list_images(folder: Path, roots: Sequence[Path] | None = None, label: str | None = None) -> ImageListing:
    """Walks ``folder`` without following links to folders; a linked file is used only when it resolves below
    ``roots`` (default: ``folder`` itself), else DataError. Hidden files and ``__MACOSX`` are ignored.

    Every folder is opened from the widest root holding ``folder`` (or from ``folder`` when no root does), one
    component at a time without following links, so a folder swapped for a link while it is walked is not
    entered (it is noted as a linked folder). :func:`open_listed` reopens each file the same way."""
    given = Path(os.path.abspath(folder))
    folder = given.resolve()
    label = label or folder.name
    allowed = tuple(dict.fromkeys(Path(r).resolve() for r in (roots or [folder])))
    where = _base_for(folder, allowed)
    if where is None and roots and _base_for(given, (*allowed, *map(Path, roots))) is not None:
        raise DataError(  # below a root as written, outside once resolved: a link (perhaps swapped in just now)
            f"'{label}' lies (through a symbolic link) outside the folders allowed for calibration data; it is "
            "not read.",
            f"Calibration images are read only below {roots_text(allowed)}; copy them there.",
        )
    base, prefix = where or (folder, ())
    files: list[ListedImage] = []
    skipped: list[str] = []
    linked: list[str] = []
    count = 0

    def unreadable(name: str, err: OSError) -> DataError:
        return DataError(
            f"'{label}': cannot read '{name}' ({err.strerror}).", "Check the folder's permissions."
        )

    def linked_file(name: str, link: Path) -> ListedImage | None:
        real = Path(os.path.realpath(link))
        where = _base_for(real, allowed)
        if where is None:
            raise _outside_link_error(label, name)
        try:
            fd = _open_file(*where)  # the target, opened without following links: it must be a regular file
        except _Blocked:
            return None
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return ListedImage(
            name, real, where[0], where[1], link, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns
        )

    def walk(dfd: int, rel: tuple[str, ...]) -> None:
        nonlocal count
        if len(rel) > MAX_FOLDER_DEPTH:
            raise DataError(
                f"'{label}': '{'/'.join(rel)}' is nested more than {MAX_FOLDER_DEPTH} folders deep.",
                "Point at a folder with a flatter layout (one folder per class is typical).",
            )
        try:
            with os.scandir(dfd) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            raise unreadable("/".join(rel) or ".", err) from err
        subdirs: list[str] = []
        for entry in entries:
            if _hidden(entry.name):
                continue
            name = "/".join((*rel, entry.name))
            try:
                if entry.is_symlink():
                    if entry.is_dir():  # follows the link, only to tell a linked folder from a linked file
                        linked.append(name)
                        continue
                elif entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.name)
                    continue
                count += 1
                if count > MAX_LISTED_FILES:
                    raise DataError(
                        f"'{label}' holds more than {MAX_LISTED_FILES:,} files.",
                        "Point at a folder with a representative subset (a few hundred images).",
                    )
                item: ListedImage | None = None
                if entry.is_symlink():
                    item = linked_file(name, folder.joinpath(*rel, entry.name))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)  # fstatat on the open folder: no link followed
                    item = ListedImage(
                        name,
                        folder.joinpath(*rel, entry.name),
                        base,
                        (*prefix, *rel, entry.name),
                        None,
                        st.st_dev,
                        st.st_ino,
                        st.st_size,
                        st.st_mtime_ns,
                    )
            except FileNotFoundError:  # removed while listed
                continue
            except OSError as err:
                raise unreadable(name, err) from err
            if item is not None and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
                files.append(item)
            else:
                skipped.append(name)
        for d in subdirs:
            name = "/".join((*rel, d))
            try:
                sub = os.open(d, _DIR_FLAGS, dir_fd=dfd)
            except OSError as err:
                if err.errno == errno.ELOOP:  # swapped for a link since it was listed: not followed
                    linked.append(name)
                    continue
                if err.errno in (errno.ENOENT, errno.ENOTDIR):  # removed, or replaced by a file
                    continue
                raise unreadable(name, err) from err
            try:
                walk(sub, (*rel, d))
            finally:
                os.close(sub)

    try:
        top = _open_dir(base, prefix)
    except _Blocked as blocked:
        if blocked.index >= 0 and blocked.err.errno in (errno.ELOOP, errno.ENOTDIR):
            swapped = base.joinpath(*prefix[: blocked.index + 1])
            raise DataError(
                f"'{label}': the folder '{swapped}' was replaced by a symbolic link (or a file) after it was "
                "checked; it is not followed.",
                "Make sure nothing changes the folder while calibration data is made, then try again.",
            ) from blocked
        raise unreadable(label, blocked.err) from blocked
    try:
        walk(top, ())
    finally:
        os.close(top)
    files.sort(key=lambda f: f.name)
    return ImageListing(folder, tuple(files), tuple(skipped), tuple(linked), label, allowed)


def open_listed(listing: ImageListing, item: ListedImage) -> BinaryIO:
    """Open a file of ``listing`` for reading: walked again from its root without following any link, and
    refused (DataError naming it and why) unless it is still the regular file that was listed — same device and
    inode, checked on the opened descriptor — and, for a linked file, the link still leads to the same target."""
    label = listing.label or listing.root.name
    allowed = listing.allowed or (listing.root,)

    def changed(why: str) -> DataError:
        return DataError(
            f"'{label}': '{item.name}' changed while the images were being read: {why}. It was not read.",
            "Make sure nothing changes the folder while calibration data is made, then try again.",
        )

    if item.link is not None:
        now = Path(os.path.realpath(item.link))
        if now != item.path:
            if _base_for(now, allowed) is None:
                raise changed("its symbolic link now leads outside the folders allowed for calibration data")
            raise changed("its symbolic link now leads to another file")
    try:
        fd = _open_file(item.base, item.parts)
    except _Blocked as blocked:
        code, last = blocked.err.errno, len(item.parts) - 1
        if code == errno.ELOOP and blocked.index == last:
            real = Path(os.path.realpath(item.base.joinpath(*item.parts)))
            if _base_for(real, allowed) is None:
                raise changed(
                    "it was replaced by a symbolic link to a file outside the folders allowed for calibration data"
                ) from blocked
            raise changed("it was replaced by a symbolic link") from blocked
        if code in (errno.ELOOP, errno.ENOTDIR) and blocked.index >= 0:
            where = item.base.joinpath(*item.parts[: blocked.index + 1])
            raise changed(
                f"the folder '{where}' on its path was replaced by a symbolic link (not followed)"
            ) from blocked
        if code == errno.ENOENT:
            gone = (
                f"the folder '{item.base}' it was listed from is gone"
                if blocked.index < 0
                else "it was removed"
            )
            raise changed(gone) from blocked
        raise DataError(
            f"'{label}': cannot read '{item.name}' ({blocked.err.strerror}).", "Check the file's permissions."
        ) from blocked
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise changed("it is no longer a regular file")
        if (st.st_dev, st.st_ino) != (item.device, item.inode):
            raise changed("it was replaced by another file")
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _open_source_file(source: Path, roots: Sequence[Path] | None) -> int:
    """A descriptor of the regular file ``source`` (an archive), opened from the widest root holding it without
    following links below that root; a file below no root is opened from its own folder."""
    real = source.resolve()
    allowed = tuple(Path(r).resolve() for r in roots or ())
    where = _base_for(real, allowed)
    if where is None:
        if allowed and _base_for(Path(os.path.abspath(source)), allowed) is not None:
            raise DataError(
                f"'{source.name}' lies (through a symbolic link) outside the folders allowed for calibration "
                "data; it is not read.",
                "Copy the archive itself below the allowed folders.",
            )
        where = (real.parent, (real.name,))
    try:
        fd = _open_file(*where)
    except _Blocked as blocked:
        raise DataError(
            f"'{source.name}' changed while it was being read ({blocked.err.strerror}); it was not read.",
            "Make sure nothing changes the file while calibration data is made, then try again.",
        ) from blocked
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DataError(f"'{source.name}' is not a regular file.", "Give a folder, or a .zip / .tar.gz file.")
    return fd


def _copy_source_archive(source: Path, roots: Sequence[Path] | None, dest: Path, limit: int) -> Path:
    """Copy the archive ``source`` (opened as :func:`_open_source_file` does) to ``dest/<its name>``, so it is
    unpacked from a file nobody else can swap."""
    fd = _open_source_file(source, roots)
    with os.fdopen(fd, "rb") as src:
        size = os.fstat(fd).st_size
        if size > limit:
            raise ArchiveError(
                f"'{source.name}' is {size / 2**30:.1f} GiB, more than the {limit / 2**30:.1f} GiB limit for "
                "image archives.",
                "Use fewer images, or unpack the archive into a folder below the allowed folders.",
            )
        out = dest / source.name
        with open(out, "xb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return out


# ---------------------------------------------------------------------------------------------- decoding


def _max_pixels() -> int:
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    return int(limit) if limit else DEFAULT_MAX_PIXELS


def _bomb_error(name: str, size: tuple[int, int] | None, limit: int) -> DataError:
    dims = f" declares {size[0]}x{size[1]} pixels," if size else " declares"
    return DataError(
        f"Image '{name}'{dims} more than the {limit:,}-pixel limit: a decompression bomb, or far too large for "
        "calibration. It was not decoded.",
        "Remove it, or downscale it first; calibration images are usually a few hundred pixels wide.",
    )


def _decode(fh: BinaryIO, name: str, pre: ImagePreprocess, max_pixels: int) -> np.ndarray:
    """One open image file → uint8 array (H, W, C) after resize and crop, RGB order (or grayscale)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(fh) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise _bomb_error(name, (w, h), max_pixels)
            img = im.convert("L" if pre.channels == 1 else "RGB")
    except DataError:
        raise
    except Image.DecompressionBombError as err:
        raise _bomb_error(name, None, max_pixels) from err
    except UnidentifiedImageError as err:
        raise DataError(
            f"'{name}' is not an image Pillow can read, though its name ends in '{Path(name).suffix}'.",
            "Remove it from the images, or save it again as PNG or JPEG.",
        ) from err
    except Exception as err:  # damaged files raise OSError, SyntaxError, ValueError, struct.error, ...
        raise DataError(
            f"Image '{name}' is damaged or truncated and could not be decoded ({type(err).__name__}: {err}).",
            "Remove it from the images, or save it again.",
        ) from err

    if pre.resize is not None:
        if isinstance(pre.resize, int):
            iw, ih = img.size
            s = pre.resize
            size = (s, max(1, int(s * ih / iw))) if iw <= ih else (max(1, int(s * iw / ih)), s)
        else:
            size = (pre.resize[1], pre.resize[0])
        if size != img.size:
            img = img.resize(size, Image.Resampling.BILINEAR)
    if pre.crop is not None:
        ch, cw = pre.crop
        iw, ih = img.size
        if ih < ch or iw < cw:
            raise DataError(
                f"Image '{name}' is {ih}x{iw} (height x width) after resizing, smaller than the {ch}x{cw} "
                "center crop.",
                f"Resize the shorter side to at least {max(ch, cw)} pixels, or make the crop smaller.",
            )
        top, left = int(round((ih - ch) / 2.0)), int(round((iw - cw) / 2.0))
        img = img.crop((left, top, left + cw, top + ch))
    arr = np.asarray(img, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def _to_sample(pixels: np.ndarray, pre: ImagePreprocess) -> np.ndarray:
    """(H, W, C) uint8 RGB → one sample in the preprocessing's order, layout and dtype."""
    x = pixels[:, :, ::-1] if pre.channels == 3 and pre.channel_order == "BGR" else pixels
    if pre.dtype != "uint8":  # mean and std are per channel in the order used (BGR means: B first)
        mean, std = np.asarray(pre.mean, np.float32), np.asarray(pre.std, np.float32)
        x = (x.astype(np.float32) * np.float32(pre.scale) - mean) / std
    if pre.layout == "NCHW":
        x = np.transpose(x, (2, 0, 1))
    return np.ascontiguousarray(x)


def _pick(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (so every class folder of a sorted listing is sampled)."""
    if n <= k:
        return list(range(n))
    return sorted({int(i) for i in np.linspace(0, n - 1, k).round()})


@dataclass(frozen=True)
class ImageData:
    """Images read into calibration data, and which files they came from (in sample order)."""

    data: CalibrationData
    files: tuple[str, ...]
    preprocess: ImagePreprocess


def _read_listing(
    listing: ImageListing,
    label: str,
    spec: InputSpec,
    pre: ImagePreprocess,
    *,
    profile: Any,
    max_images: int,
    min_images: int,
    max_pixels: int | None,
    max_bytes: int,
    reporter: Reporter,
) -> ImageData:
    n_found = len(listing.files)
    notes: list[str] = [f"preprocessing: {pre.describe()}"]
    if listing.skipped:
        few = ", ".join(f"'{s}'" for s in listing.skipped[:5]) + (" ..." if len(listing.skipped) > 5 else "")
        notes.append(f"{len(listing.skipped)} file(s) that are not images skipped: {few}")
    if listing.linked_folders:
        notes.append(
            f"{len(listing.linked_folders)} linked folder(s) not followed: "
            + ", ".join(f"'{s}'" for s in listing.linked_folders[:5])
        )
    if n_found < min_images:
        other = f" (and {len(listing.skipped)} other file(s), skipped)" if listing.skipped else ""
        raise DataError(
            f"'{label}' holds {n_found} image(s){other}; calibration needs at least {min_images}.",
            f"Add representative images ({', '.join(sorted(IMAGE_SUFFIXES))}); a few hundred are typical.",
        )
    chosen = [listing.files[i] for i in _pick(n_found, max_images)]
    if len(chosen) < n_found:
        notes.append(f"{len(chosen)} of {n_found} images used, spread evenly over the sorted file names")
    limit = max_pixels or _max_pixels()
    where = f"Input '{spec.name}' (images from '{label}')"
    out: np.ndarray | None = None
    first = ""
    n = len(chosen)
    for i, item in enumerate(chosen):
        if reporter.cancelled():
            raise Cancelled()
        name = item.name
        with open_listed(listing, item) as fh:  # exactly the file listed, or a DataError saying why not
            pixels = _decode(fh, name, pre, limit)
        sample = _to_sample(pixels, pre)
        if out is None:
            total = sample.nbytes * n
            if total > max_bytes:
                raise DataError(
                    f"{n} images of {'x'.join(map(str, sample.shape))} {pre.dtype} make {total / 2**30:.1f} GiB, "
                    f"more than the {max_bytes / 2**30:.1f} GiB limit for calibration data.",
                    "Use fewer images (a few hundred are enough), or a smaller crop.",
                )
            out = np.empty((n, *sample.shape), dtype=sample.dtype)
            first = name
        elif sample.shape != out.shape[1:]:
            raise DataError(
                f"Image '{name}' is {_hw(sample, pre)} after preprocessing, but '{first}' is {_hw(out[0], pre)}: "
                "every sample must have the same size.",
                "Set a center crop (or an exact resize) so all images end up the same size.",
            )
        out[i] = sample
        reporter.progress((i + 1) / n, "Reading images")
    assert out is not None
    if out.dtype == np.float16 or pre.dtype == "float16":
        peak = float(np.max(np.abs(out.astype(np.float32))))
        if not peak <= _FLOAT16_MAX:
            raise DataError(
                f"{where}: values reach {peak:.6g}, beyond float16's range (±{_FLOAT16_MAX:g}).",
                "Check the scale, mean and std.",
            )
    arr, note = _check_dtype(out, spec, where)
    if note:
        notes.append(note)
    _check_shape(arr, spec, where, _bounds(profile).get(spec.name), {})
    _check_finite(arr, where)
    for note in notes:
        log.info("%s: %s", label, note)
    data = CalibrationData({spec.name: arr}, source=label, notes=tuple(notes))
    return ImageData(data, tuple(item.name for item in chosen), pre)


def read_listing(
    listing: ImageListing,
    spec: InputSpec,
    preprocess: ImagePreprocess | None = None,
    *,
    profile: Any = None,
    max_images: int = DEFAULT_MAX_IMAGES,
    min_images: int = DEFAULT_MIN_IMAGES,
    max_pixels: int | None = None,
    max_bytes: int = DEFAULT_MAX_NPZ_BYTES,
    reporter: Reporter | None = None,
) -> ImageData:
    """The images of a :func:`list_images` listing read into calibration data (the second half of
    :func:`read_images` for a folder). Each file is reopened with :func:`open_listed`: a file or folder swapped
    for a link, or for another file, since it was listed is refused with a DataError naming it."""
    pre = preprocess or propose_preprocess(spec)
    check_against_input(spec, pre)
    if max_images < 1 or min_images < 1:
        raise DataError("max_images and min_images must be at least 1.")
    return _read_listing(
        listing,
        listing.label or listing.root.name,
        spec,
        pre,
        profile=profile,
        max_images=max_images,
        min_images=min_images,
        max_pixels=max_pixels,
        max_bytes=max_bytes,
        reporter=reporter or NullReporter(),
    )


def _hw(sample: np.ndarray, pre: ImagePreprocess) -> str:
    h, w = sample.shape[1:3] if pre.layout == "NCHW" else sample.shape[0:2]
    return f"{h}x{w}"


def read_images(
    source: str | os.PathLike[str],
    spec: InputSpec,
    preprocess: ImagePreprocess | None = None,
    *,
    profile: Any = None,
    max_images: int = DEFAULT_MAX_IMAGES,
    min_images: int = DEFAULT_MIN_IMAGES,
    roots: Sequence[Path] | None = None,
    max_pixels: int | None = None,
    max_bytes: int = DEFAULT_MAX_NPZ_BYTES,
    limits: ArchiveLimits | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    reporter: Reporter | None = None,
) -> ImageData:
    """Like :func:`images_to_data`, also returning which files were used (in sample order)."""
    source = Path(source)
    pre = preprocess or propose_preprocess(spec)
    check_against_input(spec, pre)
    if max_images < 1 or min_images < 1:
        raise DataError("max_images and min_images must be at least 1.")
    reporter = reporter or NullReporter()
    label = source.name

    def read(listing: ImageListing) -> ImageData:  # listings made here carry ``label``
        return read_listing(
            listing,
            spec,
            pre,
            profile=profile,
            max_images=max_images,
            min_images=min_images,
            max_pixels=max_pixels,
            max_bytes=max_bytes,
            reporter=reporter,
        )

    if source.is_dir():
        return read(list_images(source, roots, label))
    if source.is_file() and is_archive(source.name):
        if work_dir is not None:
            Path(work_dir).mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="images-", dir=work_dir))
        try:
            reporter.progress(0.0, "Unpacking images")
            limits = limits or IMAGE_ARCHIVE_LIMITS
            archive = source
            if (
                roots is not None
            ):  # a file on the server: unpack a private copy, so it cannot be swapped midway
                archive = _copy_source_archive(source, roots, tmp, limits.max_total_bytes)
            extract_archive(archive, tmp / "x", limits)
            return read(list_images(tmp / "x", None, label))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if source.is_file():
        raise DataError(
            f"'{label}' is neither a folder nor an image archive.",
            "Give a folder of images, or a .zip / .tar.gz of them.",
        )
    raise DataError(f"'{source}' does not exist.", "Check the path.")


def images_to_data(
    source: str | os.PathLike[str],
    spec: InputSpec,
    preprocess: ImagePreprocess | None = None,
    **kwargs: Any,
) -> CalibrationData:
    """Calibration data for the image input ``spec`` from a folder or an archive (.zip, .tar, .tar.gz).

    ``preprocess`` defaults to :func:`propose_preprocess`. Keyword arguments: ``profile`` ((min, max) shapes
    per input, or a ``spec.Profile``), ``max_images`` (spread evenly over the sorted files), ``min_images``,
    ``roots`` (linked files must resolve below these; default: the folder itself; an archive is then copied
    privately, from below them, before it is unpacked), ``max_pixels`` (per image;
    default Pillow's limit), ``max_bytes``, ``limits`` (archive extraction), ``work_dir`` (where an archive is
    unpacked, then removed), ``reporter``. Every problem is a DataError (ArchiveError for unsafe archives).
    """
    return read_images(source, spec, preprocess, **kwargs).data


# ---------------------------------------------------------------------------------------------- preview


def thumbnails(arr: np.ndarray, preprocess: ImagePreprocess, n: int = 6) -> list[tuple[int, np.ndarray]]:
    """Up to ``n`` samples (spread over the set) back as uint8 RGB (or grayscale) images for ``st.image``, each
    with its sample index: the normalization is undone, so they show what the model is fed."""
    out = []
    for i in _pick(int(arr.shape[0]), n):
        x = np.asarray(arr[i])
        if preprocess.layout == "NCHW":
            x = np.transpose(x, (1, 2, 0))
        if preprocess.dtype != "uint8":
            mean = np.asarray(preprocess.mean, np.float32)
            std = np.asarray(preprocess.std, np.float32)
            x = (x.astype(np.float32) * std + mean) / np.float32(preprocess.scale)
        x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
        if x.shape[2] == 3 and preprocess.channel_order == "BGR":
            x = x[:, :, ::-1]
        out.append((i, np.ascontiguousarray(x[:, :, 0] if x.shape[2] == 1 else x)))
    return out


# ---------------------------------------------------------------------------------------------- materialize


@dataclass(frozen=True)
class MaterializedImages:
    """An ``.npz`` made from images (one array, named like the input) and its JSON sidecar."""

    npz_path: Path
    meta_path: Path
    n_images: int
    files: tuple[str, ...]
    notes: tuple[str, ...]
    preprocess: ImagePreprocess
    reused: bool = False


def _file_digest(path: Path, roots: Sequence[Path] | None = None) -> str:
    h = hashlib.sha256()
    with os.fdopen(_open_source_file(path, roots), "rb") if roots is not None else open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def source_digest(source: Path, roots: Sequence[Path] | None = None) -> str:
    """Content digest of an archive, or of a folder's listing (names, sizes, modification times)."""
    if source.is_dir():
        return "folder:" + list_images(source, roots, source.name).digest()
    return "file:" + _file_digest(source, roots)


def _write_npz(path: Path, name: str, arr: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, arr, allow_pickle=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def materialize_npz(
    source: str | os.PathLike[str],
    spec: InputSpec,
    preprocess: ImagePreprocess | None,
    out_dir: str | os.PathLike[str],
    *,
    profile: Any = None,
    max_images: int = DEFAULT_MAX_IMAGES,
    min_images: int = DEFAULT_MIN_IMAGES,
    roots: Sequence[Path] | None = None,
    **kwargs: Any,
) -> MaterializedImages:
    """Read the images once into ``out_dir/images-<digest>.npz`` (+ ``.json`` sidecar: source, preprocessing,
    files, notes). The digest covers the source's content (an archive) or listing (a folder), the preprocessing
    and the input, so the same request reuses the file. Other keyword arguments go to :func:`read_images`."""
    source = Path(source)
    pre = preprocess or propose_preprocess(spec)
    check_against_input(spec, pre)
    if not source.exists():
        raise DataError(f"'{source}' does not exist.", "Check the path.")
    src_digest = source_digest(source, roots)
    key = json.dumps(
        {
            "version": SIDECAR_VERSION,
            "source": src_digest,
            "preprocess": pre.to_dict(),
            "input": [spec.name, spec.dtype, list(spec.shape or ())],
            "max_images": max_images,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    npz, meta = out / f"images-{digest}.npz", out / f"images-{digest}.json"
    if npz.is_file() and meta.is_file():
        try:
            doc = json.loads(meta.read_text())
            shape = tuple(int(d) for d in doc["shape"])
            _check_shape(
                np.empty((0, *shape[1:]), dtype=np.uint8),
                spec,
                f"Input '{spec.name}' ({npz.name})",
                _bounds(profile).get(spec.name),
                {},
            )
            if int(doc["n_images"]) >= min_images:
                return MaterializedImages(
                    npz,
                    meta,
                    int(doc["n_images"]),
                    tuple(doc["files"]),
                    tuple(doc["notes"]),
                    pre,
                    reused=True,
                )
        except (ValueError, KeyError, TypeError):
            log.warning("%s is unreadable; making it again", meta)
    got = read_images(
        source,
        spec,
        pre,
        profile=profile,
        max_images=max_images,
        min_images=min_images,
        roots=roots,
        **kwargs,
    )
    arr = got.data.arrays[spec.name]
    _write_npz(npz, spec.name, arr)
    _write_text(
        meta,
        json.dumps(
            {
                "version": SIDECAR_VERSION,
                "source": str(source),
                "source_digest": src_digest,
                "input": spec.name,
                "preprocess": pre.to_dict(),
                "shape": list(arr.shape),
                "dtype": str(arr.dtype),
                "n_images": int(arr.shape[0]),
                "files": list(got.files),
                "notes": list(got.data.notes),
            },
            indent=2,
        ),
    )
    log.info("wrote %s: %d images from %s", npz.name, arr.shape[0], source.name)
    return MaterializedImages(npz, meta, int(arr.shape[0]), got.files, got.data.notes, pre)


def read_sidecar(npz_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON sidecar of an ``.npz`` made by :func:`materialize_npz` (None for any other .npz)."""
    meta = Path(npz_path).with_suffix(".json")
    if not meta.is_file():
        return None
    try:
        doc = json.loads(meta.read_text())
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and doc.get("version") == SIDECAR_VERSION else None


def calibration_npz(
    path: str | os.PathLike[str],
    model_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    preprocess: ImagePreprocess | None = None,
) -> Path:
    """What the CLI's ``--calib-data`` names, as an .npz: an .npz as is; an image folder or archive preprocessed
    (defaults proposed from the model's image input) into ``out_dir``. The CLI user's own folder is the root."""
    from .archives import is_archive
    from .calibration_data import model_inputs

    path = Path(path).resolve()
    if path.is_file() and not is_archive(path.name):
        return path
    spec = image_input(model_inputs(Path(model_path)))
    made = materialize_npz(path, spec, preprocess, out_dir, roots=(path.parent,))
    return made.npz_path
