"""Package discovery for the one ``saip_bench`` import namespace.

``pretrain/``, ``evaluate/`` and ``tasks/`` live at the repository's top level but install as
``saip_bench.pretrain``, ``saip_bench.evaluate`` and ``saip_bench.tasks``. pyproject.toml cannot list
remapped subpackages dynamically, so this file walks the folders; all other metadata is in pyproject.toml.
"""

from setuptools import find_packages, setup

PACKAGE_DIRS = {
    "saip_bench": "saip_bench",
    "saip_bench.pretrain": "pretrain",
    "saip_bench.evaluate": "evaluate",
    "saip_bench.tasks": "tasks",
    "saip_bench.configs": "configs",  # YAML recipes, shipped as package data
}


def _packages() -> list[str]:
    packages = []
    for name, folder in PACKAGE_DIRS.items():
        packages.append(name)
        packages += [f"{name}.{sub}" for sub in find_packages(folder)]
    # saip_bench's own find must not pick up the remapped folders twice.
    return sorted(set(packages))


setup(packages=_packages(), package_dir=PACKAGE_DIRS)
