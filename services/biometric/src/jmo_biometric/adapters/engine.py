"""The face engine: dlib's HOG detector, 5-point landmarks and ResNet embeddings (face_recognition's models).

What it does with a picture, in order (every step timed):

1. the content type from the bytes themselves (JPEG / PNG magic numbers, never the name), bounds on
   bytes and on dimensions read from the header before anything is decoded → :class:`InvalidImage`;
2. decode — a large JPEG directly at a reduced scale (libjpeg's DCT scaling, ``Image.draft``) — and apply
   the EXIF orientation (phone photos are stored rotated; ``face_recognition.load_image_file`` ignores it);
3. detect faces on a copy whose long side is at most ``detect_max_side`` pixels (detection cost grows
   with pixels; a selfie's face is large) and map the boxes back; when none is found, once more with
   the copy upsampled, so that a small face is refused as small rather than missing;
4. per face: 5-point landmarks on the full working picture, whether the face is inside the frame, the
   nose offset (frontal or turned), brightness and sharpness of the face;
5. only when the quality checks pass: the 128-d embedding from the aligned face chip.

It uses dlib directly rather than ``face_recognition.api``, whose import loads four models including
the 68-point predictor (~100 MB on disk, ~64 MB in memory) that nothing here needs. The model files come
from the ``face_recognition_models`` package, located without importing it (its ``__init__`` imports
``pkg_resources``). One engine uses one core: :mod:`jmo_biometric.adapters.workers` runs one per process.
"""

from __future__ import annotations

import importlib.util
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..domain.quality import FaceMeasures, ImageMeasures, QualityLimits, quality_reasons

ENGINE = "face_recognition"
DETECTOR_MODEL = "dlib_hog_frontal_face_detector"
LANDMARK_MODEL = "shape_predictor_5_face_landmarks"
EMBEDDING_MODEL = "dlib_face_recognition_resnet_model_v1"

JPEG = "image/jpeg"
PNG = "image/png"
_MAGIC = ((b"\xff\xd8\xff", JPEG), (b"\x89PNG\r\n\x1a\n", PNG))


class InvalidImage(ValueError):
    """Not a JPEG / PNG by content, undecodable, or outside the bounds on size and dimensions.

    The message says which check failed and never contains image content.
    """


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on an uploaded picture, checked before it is decoded."""

    max_bytes: int = 10 * 1024 * 1024
    min_side: int = 64
    max_side: int = 8000
    max_pixels: int = 40_000_000


@dataclass(frozen=True)
class Analysis:
    """What the engine found in one picture. ``embedding`` is ``None`` unless one face passed the checks
    (or, for a reference picture, unless a face was found)."""

    content_type: str
    size: tuple[int, int]
    measures: ImageMeasures
    embedding: tuple[float, ...] | None
    timings_ms: dict[str, float] = field(default_factory=dict)


def sniff_content_type(data: bytes) -> str | None:
    """``image/jpeg`` or ``image/png`` from the magic numbers at the start of ``data``; else ``None``."""
    for magic, content_type in _MAGIC:
        if data.startswith(magic):
            return content_type
    return None


def models_dir() -> Path:
    """Where ``face_recognition_models`` keeps its weights (found without importing the package)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face_recognition_models is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def model_version() -> str:
    """The engine's model version as carried in events, so an auditor can reproduce a decision."""
    import dlib

    return f"{EMBEDDING_MODEL}+{LANDMARK_MODEL}+{DETECTOR_MODEL}@dlib-{dlib.__version__}"


def embedding_distance(a: tuple[float, ...] | np.ndarray, b: tuple[float, ...] | np.ndarray) -> float:
    """Euclidean distance between two embeddings (as ``face_recognition.face_distance``)."""
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))


def _laplacian_variance(gray: np.ndarray) -> float:
    g = gray.astype(np.float32)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(lap.var())


def nose_offset(points: list[tuple[float, float]]) -> float:
    """Horizontal offset of the nose from the middle of the eyes, in eye distances (5-point model:
    0-1 one eye's corners, 2-3 the other's, 4 the nose). 0 when frontal; grows as the head turns."""
    p = np.asarray(points, dtype=np.float64)
    eye_a, eye_b, nose = p[0:2].mean(axis=0), p[2:4].mean(axis=0), p[4]
    axis = eye_b - eye_a
    norm = float(axis @ axis)
    if norm == 0.0:
        return 1.0
    return float((nose - (eye_a + eye_b) / 2) @ axis / norm)


class FaceEngine:
    """Loads the models once (about 32 MB of weights) and analyses pictures; one core per engine."""

    #: A face this wide (in the working picture) is encoded without loss; the chip is 150 px.
    SHARPNESS_SIDE = 128

    def __init__(self, *, detect_max_side: int = 480, work_max_side: int = 1280, upsample_below: int = 400) -> None:
        import dlib

        models = models_dir()
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(str(models / f"{LANDMARK_MODEL}.dat"))
        self._encoder = dlib.face_recognition_model_v1(str(models / f"{EMBEDDING_MODEL}.dat"))
        self.detect_max_side = detect_max_side
        self.work_max_side = work_max_side
        self.upsample_below = upsample_below
        self.model_version = model_version()

    # -- public ----------------------------------------------------------------------------

    def analyse_selfie(self, data: bytes, limits: ImageLimits, quality: QualityLimits) -> Analysis:
        """Measure every face; embed the face only if the picture passes the quality checks."""
        return self._analyse(data, limits, quality)

    def analyse_reference(self, data: bytes, limits: ImageLimits) -> Analysis:
        """Embed the largest face of a reference (KTP) picture, without quality checks."""
        return self._analyse(data, limits, None)

    # -- steps -----------------------------------------------------------------------------

    def _open(self, data: bytes, limits: ImageLimits) -> tuple[str, Image.Image, tuple[int, int]]:
        if len(data) > limits.max_bytes:
            raise InvalidImage(f"larger than {limits.max_bytes} bytes")
        content_type = sniff_content_type(data)
        if content_type is None:
            raise InvalidImage("neither JPEG nor PNG by content")
        try:
            im = Image.open(io.BytesIO(data), formats=("JPEG",) if content_type == JPEG else ("PNG",))
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise InvalidImage(f"undecodable {content_type}: {type(e).__name__}") from None
        w, h = im.size
        if min(w, h) < limits.min_side or max(w, h) > limits.max_side or w * h > limits.max_pixels:
            raise InvalidImage(f"dimensions {w}x{h} outside {limits.min_side}..{limits.max_side} px, {limits.max_pixels} pixels")
        orientation = im.getexif().get(0x0112, 1)
        original = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
        try:
            if content_type == JPEG:
                im.draft("RGB", (self.work_max_side, self.work_max_side))  # DCT-domain downscale, ≥ the size asked
            im = ImageOps.exif_transpose(im)
            im = im.convert("RGB")
        except (OSError, ValueError, SyntaxError) as e:
            raise InvalidImage(f"undecodable {content_type}: {type(e).__name__}") from None
        if max(im.size) > self.work_max_side * 1.5:
            im.thumbnail((self.work_max_side, self.work_max_side), Image.Resampling.BILINEAR)
        return content_type, im, original

    def _analyse(self, data: bytes, limits: ImageLimits, quality: QualityLimits | None) -> Analysis:
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = round((now - clock) * 1000, 2)
            clock = now

        content_type, work, original = self._open(data, limits)
        work_rgb = np.asarray(work)
        gray_work = np.asarray(work.convert("L"))
        lap("decode_ms")

        scale = min(1.0, self.detect_max_side / max(work.size))
        small = work.resize((max(1, round(work.width * scale)), max(1, round(work.height * scale))), Image.Resampling.BILINEAR) if scale < 1 else work
        small_rgb = np.asarray(small)
        upsample = 1 if max(small.size) < self.upsample_below else 0
        boxes = self._detector(small_rgb, upsample)
        if not boxes and upsample == 0:
            boxes = self._detector(small_rgb, 1)  # a face too small for one pass: found, then refused as small
        scene_brightness = float(np.asarray(small.convert("L")).mean())
        lap("detect_ms")

        to_original = original[0] / work.width
        faces: list[FaceMeasures] = []
        shapes = []
        for box in boxes:
            rect = self._dlib.rectangle(round(box.left() / scale), round(box.top() / scale), round(box.right() / scale), round(box.bottom() / scale))
            shape = self._landmarks(work_rgb, rect)
            points = [(pt.x, pt.y) for pt in shape.parts()]
            inside_box = rect.left() >= 0 and rect.top() >= 0 and rect.right() < work.width and rect.bottom() < work.height
            inside_points = all(0 <= x < work.width and 0 <= y < work.height for x, y in points)
            top, bottom = max(rect.top(), 0), min(rect.bottom(), work.height)
            left, right = max(rect.left(), 0), min(rect.right(), work.width)
            crop = gray_work[top:bottom, left:right]
            if crop.size == 0:
                continue
            face_img = Image.fromarray(crop).resize((self.SHARPNESS_SIDE, self.SHARPNESS_SIDE), Image.Resampling.BILINEAR)
            faces.append(FaceMeasures(
                width_px=rect.width() * to_original,
                width_fraction=rect.width() / min(work.size),
                in_frame=inside_box and inside_points,
                nose_offset=nose_offset(points),
                brightness=float(crop.mean()),
                sharpness=_laplacian_variance(np.asarray(face_img)),
            ))
            shapes.append((rect.width() * rect.height(), shape))
        measures = ImageMeasures(tuple(faces), scene_brightness)
        lap("measure_ms")

        embedding: tuple[float, ...] | None = None
        wants_embedding = bool(shapes) and (quality is None or not quality_reasons(measures, quality))
        if wants_embedding:
            _, shape = max(shapes, key=lambda s: s[0])
            embedding = tuple(float(x) for x in self._encoder.compute_face_descriptor(work_rgb, shape, 1))
            lap("encode_ms")
        return Analysis(content_type, original, measures, embedding, timings)
