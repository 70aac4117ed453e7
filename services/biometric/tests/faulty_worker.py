"""Run in each worker process of a test's engine pool (``runpy.run_path`` as the pool's initializer)
instead of loading the models: an engine whose worker kills itself (SIGKILL, as a native crash or the
OOM killer would end it) on chosen pictures, JPEG magic + a word:

* ``poison``: every time;
* ``once:<path>``: the first time only (the file at ``<path>`` remembers it across worker processes);
* anything else, and every KTP photo: one good face with the embedding ``(0.1,) * 128``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from jmo_biometric.adapters import workers
from jmo_biometric.domain.quality import FaceMeasures, ImageMeasures, QualityLimits
from jmo_biometric.adapters.engine import Analysis, ImageLimits

_GOOD = Analysis("image/jpeg", (640, 480), ImageMeasures((FaceMeasures(300, 0.3, True, 0.0, 130, 300),), 120), (0.1,) * 128)


class FaultyEngine:
    model_version = "faulty-test-engine"

    def analyse_selfie(self, data: bytes, limits: ImageLimits, quality: QualityLimits) -> Analysis:
        word = data[3:]
        if word == b"poison":
            os.kill(os.getpid(), signal.SIGKILL)
        if word.startswith(b"once:") and not (marker := Path(word[5:].decode())).exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return _GOOD

    def analyse_reference(self, data: bytes, limits: ImageLimits) -> Analysis:
        return _GOOD


workers._engine = FaultyEngine()  # type: ignore[assignment]  # noqa: SLF001 - what workers._load does with the real engine
