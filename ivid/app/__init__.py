"""A local web app (Gradio): generate a scene or lift a photo to 3D, watch it turn, inspect its 3D model.

Started by ``inference/app.py``; needs the ``app`` extra (``pip install -e ".[app]"``).

- :mod:`.settings` which models are served (released, a preset, given files) and the app's limits
- :mod:`.classes`  class names of the models (ImageNet, toy kinds)
- :mod:`.choices`  viewsets and samplers offered by the page (one list each)
- :mod:`.checks`   checks of uploads, values and model files, one-line messages
- :mod:`.jobs`     the jobs: :func:`ivid.sampling.run_sampling` + :func:`ivid.render.run_render`
- :mod:`.ui`       the Gradio page and server (imports gradio)

Only :mod:`.ui` imports gradio, so everything else works without the extra.
"""

from .checks import AppInputError
from .jobs import JobCancelled, JobRecord, JobResult, JobRunner, Scene
from .settings import AppSettings, ModelSet, resolve_models

__all__ = ["AppInputError", "AppSettings", "ModelSet", "resolve_models", "JobRunner", "JobResult", "JobRecord",
           "JobCancelled", "Scene"]
