"""Every public name of docs/design.md#public-api imports from the module it is documented in."""

import importlib

import pytest

API = {
    "ivid.models": ["AdmUnet2d"],
    "ivid.diffusion": ["GaussianDiffusion", "ClassifierFreeGuidance", "InpaintCFG", "SuperResCFG",
                       "DdpmSampler", "DdimSampler"],
    "ivid.config": ["load_config", "build", "ConfigError"],
    "ivid.geometry": ["look_at", "linearize_depth", "project_depth", "depth_to_mesh", "depth_edge",
                      "forward_backward_warp", "aggregate_conditions", "render_fusion", "viewset", "trajectory"],
    "ivid.scene": ["save_scene", "load_scene"],
    "ivid.depth": ["MidasDepth"],
    "ivid.metrics": ["compute_metrics"],
}


@pytest.mark.parametrize("module,names", sorted(API.items()))
def test_public_names(module, names):
    mod = importlib.import_module(module)
    missing = [n for n in names if not hasattr(mod, n)]
    assert not missing, f"{module} lacks {missing}"


def test_registries_name_reference_classes():
    from ivid.config import registry

    assert set(registry("backbone")) >= {"AdmUnet2d"}
    assert set(registry("framework")) >= {"GaussianDiffusion", "ClassifierFreeGuidance", "InpaintCFG", "SuperResCFG"}
    assert set(registry("dataset")) >= {"ImageNet", "ImageNetWarp", "ImageNetSR",
                                        "SingleCategory", "SingleCategoryWarp", "SingleCategorySR"}
    assert set(registry("trainer")) >= {"BasicTrainer", "InpaintTrainer", "SuperResTrainer"}


def test_import_ivid_is_cheap():
    """Importing the top-level package must not pull in torch-heavy subpackages."""
    import subprocess
    import sys

    code = "import sys, ivid; print(any(m.startswith('ivid.') and m != 'ivid.__init__' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
