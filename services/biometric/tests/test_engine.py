"""The face engine on the real test images and on variants generated here (dark, blurred, rotated by EXIF).

Decisions go through :func:`jmo_biometric.application.verification.judge`, the same code as the service's.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance, ImageFilter

from jmo_contracts.biometric import SelfieRejectionReason as Reason
from jmo_biometric.application.verification import DecisionPolicy, judge
from jmo_biometric.domain.quality import QualityLimits
from jmo_biometric.adapters.engine import FaceEngine, ImageLimits, InvalidImage, sniff_content_type
from jmo_biometric.settings import DEFAULT_THRESHOLD

pytestmark = pytest.mark.integration
DATA = Path(__file__).parent / "data"
FACES = DATA / "faces"
POLICY = DecisionPolicy(DEFAULT_THRESHOLD, ImageLimits(), QualityLimits())


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    return FaceEngine()


def jpeg(image: Image.Image, **save: object) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=92, **save)
    return out.getvalue()


def verify(engine: FaceEngine, selfie: bytes, reference: str) -> object:
    ref = engine.analyse_reference((FACES / reference).read_bytes(), ImageLimits())
    return judge(engine.analyse_selfie(selfie, ImageLimits(), QualityLimits()), ref.embedding, POLICY)


def test_face_recognition_models_really_imports_in_a_fresh_interpreter() -> None:
    """Without pkg_resources the package prints a hint and exits 0: check the output and the models too."""
    code = "import face_recognition, face_recognition_models as m, os; p = m.face_recognition_model_location(); print('OK' if os.path.exists(p) else 'MISSING')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "OK", result.stdout + result.stderr


def test_two_people_is_refused_as_multiple_faces(engine: FaceEngine) -> None:
    assert verify(engine, (FACES / "two_people.jpg").read_bytes(), "obama.jpg").reasons == (Reason.MULTIPLE_FACES,)  # type: ignore[attr-defined]


def test_a_face_partly_outside_the_picture_is_refused_as_cut_off(engine: FaceEngine) -> None:
    assert verify(engine, (FACES / "obama_partial_face.jpg").read_bytes(), "obama.jpg").reasons[0] == Reason.FACE_CUT_OFF  # type: ignore[attr-defined]


def test_a_darkened_selfie_is_too_dark(engine: FaceEngine) -> None:
    dark = ImageEnhance.Brightness(Image.open(FACES / "obama2.jpg")).enhance(0.25)
    assert verify(engine, jpeg(dark), "obama.jpg").reason == Reason.TOO_DARK  # type: ignore[attr-defined]


def test_an_overexposed_selfie_is_too_bright(engine: FaceEngine) -> None:
    bright = ImageEnhance.Brightness(Image.open(FACES / "obama2.jpg")).enhance(3.0)
    assert verify(engine, jpeg(bright), "obama.jpg").reason == Reason.TOO_BRIGHT  # type: ignore[attr-defined]


def test_a_picture_too_dark_to_find_a_face_is_too_dark_not_no_face(engine: FaceEngine) -> None:
    black = ImageEnhance.Brightness(Image.open(FACES / "obama2.jpg")).enhance(0.05)
    assert verify(engine, jpeg(black), "obama.jpg").reason == Reason.TOO_DARK  # type: ignore[attr-defined]


def test_a_blurred_selfie_is_blurry(engine: FaceEngine) -> None:
    image = Image.open(FACES / "obama2.jpg")
    blurred = image.filter(ImageFilter.GaussianBlur(max(image.size) / 200))
    assert verify(engine, jpeg(blurred), "obama.jpg").reasons == (Reason.BLURRY,)  # type: ignore[attr-defined]


def test_a_face_far_from_the_camera_is_too_small(engine: FaceEngine) -> None:
    face = Image.open(FACES / "obama2.jpg")
    face.thumbnail((600, 600))  # the face about 150 px wide: 13 % of the picture
    far = Image.new("RGB", (1600, 1200), (200, 200, 200))
    far.paste(face, (650, 300))
    assert verify(engine, jpeg(far), "obama.jpg").reasons == (Reason.FACE_TOO_SMALL,)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("orientation", "transpose"), [(6, Image.Transpose.ROTATE_90), (3, Image.Transpose.ROTATE_180), (8, Image.Transpose.ROTATE_270)])
def test_a_phone_photo_stored_rotated_matches_after_its_exif_orientation(engine: FaceEngine, orientation: int, transpose: Image.Transpose) -> None:
    """A phone stores the sensor's pixels and an orientation tag; upright only after applying it."""
    upright = Image.open(FACES / "obama2.jpg")
    upright = upright.transpose(Image.Transpose.ROTATE_90).transpose(Image.Transpose.ROTATE_270)  # drop any tag of the original
    stored = upright.transpose(transpose)  # e.g. orientation 6 = displayed rotated 90° clockwise
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = jpeg(stored, exif=exif.tobytes())
    assert verify(engine, data, "obama.jpg").match  # type: ignore[attr-defined]
    plain = jpeg(stored)  # the same pixels without the tag: the face lies on its side
    assert not verify(engine, plain, "obama.jpg").match  # type: ignore[attr-defined]


def test_a_png_is_accepted_and_the_type_comes_from_the_content_not_the_name(engine: FaceEngine) -> None:
    png = (FACES / "alex-lacamoire.png").read_bytes()
    assert sniff_content_type(png) == "image/png" and sniff_content_type((FACES / "obama.jpg").read_bytes()) == "image/jpeg"
    assert verify(engine, png, "alex_lacamoire2.jpg").match  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("data", "limits"),
    [
        (b"GIF89a" + b"\0" * 100, ImageLimits()),
        (b"\xff\xd8\xff" + b"not really a jpeg" * 10, ImageLimits()),
        ((FACES / "obama.jpg").read_bytes(), ImageLimits(max_bytes=1000)),
        ((FACES / "obama.jpg").read_bytes(), ImageLimits(max_side=1000)),
        ((FACES / "obama_small.jpg").read_bytes(), ImageLimits(min_side=300)),
    ],
    ids=["gif", "truncated-jpeg", "too-many-bytes", "too-large", "too-small"],
)
def test_what_is_not_a_bounded_jpeg_or_png_is_an_invalid_image(engine: FaceEngine, data: bytes, limits: ImageLimits) -> None:
    with pytest.raises(InvalidImage):
        engine.analyse_selfie(data, limits, QualityLimits())
