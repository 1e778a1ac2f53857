"""``import saip_bench`` makes the SAIP models exist in timm, whichever of the two is imported first, without
importing torch or timm itself (so commands that need neither start fast)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CASES = {
    "saip_bench first, timm not imported by it": (
        "import sys, saip_bench\n"
        "assert 'timm' not in sys.modules and 'torch' not in sys.modules\n"
        "import timm\n"
        "m = timm.create_model('saip_vit_tiny_patch16', img_size=(256, 128))\n"
        "assert m.embed_dim == 192 and len(m.blocks) == 12\n"
    ),
    "timm first": "import timm, saip_bench\nassert timm.is_model('saip_tiny_vit_5m')\n",
    "timm submodule first": (
        "import saip_bench\nfrom timm.models import create_model\ncreate_model('saip_vit_tiny_patch16')\n"
    ),
}


@pytest.mark.parametrize("code", list(CASES.values()), ids=list(CASES))
def test_saip_models_are_registered_with_timm(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_cli_help_imports_neither_torch_nor_timm() -> None:
    code = (
        "import sys\nfrom saip_bench.cli.app import app\n"
        "assert 'torch' not in sys.modules and 'timm' not in sys.modules, 'heavy import at CLI start'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
